"""Datasets: name -> loader. Every loader returns a `Dataset` of uint8 arrays in memory.

Pixels stay uint8 here; they are scaled to [0, 1] exactly once, inside the graph
(`cnn_tf.data.pipeline`).
"""
import functools

from cnn_tf.data import cifar10, mnist
from cnn_tf.data.dataset import Dataset

DATASETS = {
    "mnist": functools.partial(mnist.load, "mnist"),
    "fashion_mnist": functools.partial(mnist.load, "fashion_mnist"),
    "cifar10": cifar10.load,
}


def load_dataset(name, **kwargs):
    """kwargs: data_dir, validation_size, download_mirror."""
    return DATASETS[name](**kwargs)


def load_dataset_from_flags(fv):
    """The dataset a run's flags name (train flags, or a train dir's saved flags.cfg)."""
    return load_dataset(fv.dataset, data_dir=fv.data_dir, validation_size=fv.validation_size,
                        download_mirror=fv.download_mirror)


__all__ = ["DATASETS", "Dataset", "load_dataset", "load_dataset_from_flags"]
