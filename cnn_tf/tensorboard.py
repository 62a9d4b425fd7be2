"""TensorBoard without TensorFlow's start-up log lines: `python -m cnn_tf.tensorboard --logdir=DIR ...`
(what `make tensorboard` runs). Every argument is TensorBoard's own."""
import sys

import cnn_tf  # noqa: F401  (first: it loads TensorFlow with its C++ start-up logging muted)
from tensorboard import main as tensorboard_main


def run():
    sys.argv[0] = "tensorboard"
    if not any(arg.startswith("--load_fast") for arg in sys.argv[1:]):
        # The Python loader: no "experimental fast data loading" notice, every plugin's data.
        sys.argv.append("--load_fast=false")
    tensorboard_main.run_main()


if __name__ == "__main__":
    run()
