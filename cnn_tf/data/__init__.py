"""Datasets: name -> loader. Every loader returns a `Dataset` of uint8 arrays in memory.

Pixels stay uint8 here; they are scaled to [0, 1] exactly once, inside the graph
(`cnn_tf.data.pipeline`).
"""
import functools
import inspect

from cnn_tf.data import cifar10, image_folder, mnist
from cnn_tf.data.dataset import Dataset
from cnn_tf.nets import nets_map

DATASETS = {
    "mnist": functools.partial(mnist.load, "mnist"),
    "fashion_mnist": functools.partial(mnist.load, "fashion_mnist"),
    "cifar10": cifar10.load,
    "image_folder": image_folder.load,
}


def load_dataset(name, **kwargs):
    """kwargs: the loader's parameters, named as the flags that set them (data_dir, ...)."""
    return DATASETS[name](**kwargs)


def load_dataset_from_flags(fv):
    """The dataset a run's flags name (train flags, or a train dir's saved flags.cfg). Each loader
    gets the flags its parameters are named after; `--image_size` defaults to the model's."""
    loader = DATASETS[fv.dataset]
    kwargs = {name: fv[name].value for name in inspect.signature(loader).parameters if name in fv}
    if "image_size" in kwargs and not kwargs["image_size"]:
        kwargs["image_size"] = nets_map[fv.model].default_image_size
    return loader(**kwargs)


__all__ = ["DATASETS", "Dataset", "load_dataset", "load_dataset_from_flags"]
