"""cnn_tf: train and evaluate convolutional image classifiers in TF1-style graph mode."""
import os

# TensorFlow's C++ start-up chatter (CUDA probing on GPU-less machines) drowns our own output.
# Set TF_CPP_MIN_LOG_LEVEL=0 yourself to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# oneDNN kernels train LeNet ~1.5x faster on this project's CPUs; TensorFlow enables them only on
# some Intel CPUs by default. TF_ENABLE_ONEDNN_OPTS=0 turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def _import_tensorflow_quietly():
    """TensorFlow 2.21 logs INFO lines while its libraries load, before it reads TF_CPP_MIN_LOG_LEVEL;
    they would come before every one-line error. Load it with stderr muted unless logs are asked for."""
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] != "3":
        return
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    # Its Python side too: "Restoring parameters from ..." and deprecation notices of the v1 API
    # this project uses on purpose.
    tensorflow.get_logger().setLevel("ERROR")


_import_tensorflow_quietly()

__version__ = "0.1.0"
