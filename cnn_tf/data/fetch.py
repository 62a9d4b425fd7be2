"""Fetch a dataset ahead of training: `python -m cnn_tf.data.fetch --dataset=fashion_mnist`, or
published ImageNet weights: `python -m cnn_tf.data.fetch --weights=mobilenet_v1_1.0_224`.

A dataset is looked for where training looks (--data_dir, /usr/share/datasets, the cache) and what
is missing downloaded, with checksums; weights go to DIR/NAME (DIR: --data_dir or the cache). Prints
where the files are (stdout); for weights, the archive's SHA-256 too, so that it can be pinned.
"""
import dataclasses
import typing

from absl import flags

from cnn_tf import cli, options
from cnn_tf import log
from cnn_tf.data import mnist
from cnn_tf.data.weights import PUBLISHED, fetch_weights
from cnn_tf.options import DATA, Options, option


@dataclasses.dataclass(frozen=True)
class FetchOptions(Options):
    dataset: str = option("fashion_mnist", "Dataset to fetch.", DATA, choices=("fashion_mnist", "mnist"), saved=False)
    data_dir: typing.Optional[str] = option(None, "Directory to look in first and download into (default: the "
                                            "cache).", DATA, saved=False)
    download_mirror: typing.Optional[str] = option(None, "Base URL to download from (default: the official "
                                                   "mirror).", DATA, saved=False)
    weights: typing.Optional[str] = option(None, "Published ImageNet weights to fetch instead of a dataset.", DATA,
                                           choices=tuple(PUBLISHED), saved=False)
    sha256: typing.Optional[str] = option(None, "--weights: the archive's SHA-256; a download that differs is refused "
                                          "(default: any, and its digest is printed).", DATA, saved=False)


def main(argv):
    cli.no_arguments(argv)
    opts = options.from_flags(FetchOptions, flags.FLAGS)
    if opts.weights:
        checkpoint, sha256 = fetch_weights(opts.weights, opts.data_dir, opts.download_mirror, opts.sha256)
        print(f"checkpoint: {checkpoint}")
        if sha256:
            print(f"sha256: {sha256}")
            if not opts.sha256:
                log.info(f"not pinned: pass --sha256={sha256} to refuse any other archive next time")
        return
    for role, path in mnist.locate_files(opts.dataset, opts.data_dir, opts.download_mirror).items():
        print(f"{role}: {path}")


def run():
    cli.run(main, "python -m cnn_tf.data.fetch --dataset=fashion_mnist|mnist | --weights=NAME [--sha256=HEX] "
            "[--data_dir=DIR]",
            dataclasses.fields(FetchOptions))


if __name__ == "__main__":
    run()
