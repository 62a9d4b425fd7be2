"""Writes classes of the real Fashion-MNIST as an image folder of grayscale PNGs, for fine-tuning:

    .venv/bin/python scripts/fashion_mnist_subset.py [--output_dir=data/fashion_mnist_tops]
        [--classes=T-shirt/top,Pullover,Dress,Coat,Shirt] [--split=test] [--per_class=N]

OUTPUT_DIR/<class>/<split>_<index>.png, one sub-folder per class ('/' in a name becomes '_').
The default takes the five kinds of tops, the classes Fashion-MNIST confuses most, from the *test*
split: `make train`'s LeNet learned from the train split, so a model fine-tuned from it is
evaluated on images it never saw. The folder is written beside its final name and renamed into
place: an interrupted run leaves no folder that looks complete.
"""
import argparse
import os
import shutil
import sys

from cnn_tf.data import load_dataset  # first: cnn_tf loads TensorFlow without its start-up chatter
from cnn_tf.errors import UserError
import numpy as np
import tensorflow as tf

TOPS = ["T-shirt/top", "Pullover", "Dress", "Coat", "Shirt"]


def write_subset(output_dir, classes=TOPS, split="test", per_class=None, data_dir=None):
    """Returns {folder name: image count}."""
    if os.path.exists(output_dir):
        raise UserError(f"--output_dir={output_dir} already exists; delete it or choose another")
    data = load_dataset("fashion_mnist", data_dir=data_dir, validation_size=0)
    unknown = [c for c in classes if c not in data.class_names]
    if unknown:
        raise UserError(f"--classes: {', '.join(unknown)} not in Fashion-MNIST ({', '.join(data.class_names)})")
    images, labels = data.split(split)
    staging = output_dir.rstrip("/") + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    counts = {}
    for name in classes:
        folder = name.replace("/", "_")
        os.makedirs(os.path.join(staging, folder))
        members = np.flatnonzero(labels == data.class_names.index(name))[:per_class]
        for i in members:
            png = tf.io.encode_png(images[i].reshape(28, 28, 1)).numpy()
            with open(os.path.join(staging, folder, f"{split}_{i:05d}.png"), "wb") as f:
                f.write(png)
        counts[folder] = len(members)
    os.rename(staging, output_dir)
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="data/fashion_mnist_tops")
    parser.add_argument("--classes", default=",".join(TOPS), help="comma-separated Fashion-MNIST class names")
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--per_class", type=int, default=None, help="at most this many images per class")
    parser.add_argument("--data_dir", default=None, help="where the IDX files are (default: as cnn_tf looks)")
    args = parser.parse_args(argv)
    try:
        counts = write_subset(args.output_dir, args.classes.split(","), args.split, args.per_class, args.data_dir)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {sum(counts.values()):,} PNGs to {args.output_dir}: "
          + ", ".join(f"{name} {n:,}" for name, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
