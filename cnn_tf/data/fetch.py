"""Fetch a dataset ahead of training: `python -m cnn_tf.data.fetch --dataset=fashion_mnist`.

Looks where training looks (--data_dir, /usr/share/datasets, the cache) and downloads what is
missing, with checksums; prints where the files are.
"""
from absl import flags

from cnn_tf import errors
from cnn_tf.data import mnist

FLAGS = flags.FLAGS


def main(argv):
    paths = mnist.locate_files(FLAGS.dataset, FLAGS.data_dir, FLAGS.download_mirror)
    for role, path in paths.items():
        print(f"{role}: {path}")


def run():
    flags.DEFINE_enum("dataset", "fashion_mnist", sorted(mnist.SPECS), "Dataset to fetch.")
    flags.DEFINE_string("data_dir", None, "Directory to look in first and download into (default: the cache).")
    flags.DEFINE_string("download_mirror", None, "Base URL to download from (default: the official mirror).")
    errors.run(main)


if __name__ == "__main__":
    run()
