"""Fetch a dataset ahead of training: `python -m cnn_tf.data.fetch --dataset=fashion_mnist`.

Looks where training looks (--data_dir, /usr/share/datasets, the cache) and downloads what is
missing, with checksums; prints where the files are.
"""
import dataclasses
import typing

from absl import flags

from cnn_tf import cli, options
from cnn_tf.data import mnist
from cnn_tf.options import DATA, Options, option


@dataclasses.dataclass(frozen=True)
class FetchOptions(Options):
    dataset: str = option("fashion_mnist", "Dataset to fetch.", DATA, choices=("fashion_mnist", "mnist"), saved=False)
    data_dir: typing.Optional[str] = option(None, "Directory to look in first and download into (default: the "
                                            "cache).", DATA, saved=False)
    download_mirror: typing.Optional[str] = option(None, "Base URL to download from (default: the official "
                                                   "mirror).", DATA, saved=False)


def main(argv):
    cli.no_arguments(argv)
    opts = options.from_flags(FetchOptions, flags.FLAGS)
    for role, path in mnist.locate_files(opts.dataset, opts.data_dir, opts.download_mirror).items():
        print(f"{role}: {path}")


def run():
    cli.run(main, "python -m cnn_tf.data.fetch --dataset=fashion_mnist|mnist [--data_dir=DIR]",
            dataclasses.fields(FetchOptions))


if __name__ == "__main__":
    run()
