"""Fetch a dataset ahead of training: `python -m cnn_tf.data.fetch --dataset=fashion_mnist`.

Looks where training looks (--data_dir, /usr/share/datasets, the cache) and downloads what is
missing, with checksums; prints where the files are.
"""
import dataclasses

from absl import flags

from cnn_tf import cli, config
from cnn_tf.data import mnist


def main(argv):
    cli.no_arguments(argv)
    opts = config.from_flags(config.FetchOptions, flags.FLAGS)
    for role, path in mnist.locate_files(opts.dataset, opts.data_dir, opts.download_mirror).items():
        print(f"{role}: {path}")


def run():
    cli.run(main, "python -m cnn_tf.data.fetch --dataset=fashion_mnist|mnist [--data_dir=DIR]",
            dataclasses.fields(config.FetchOptions))


if __name__ == "__main__":
    run()
