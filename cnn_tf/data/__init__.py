"""Datasets: name -> loader, in cnn_tf.registry.DATASETS; each dataset module registers its own
(`register_dataset("cifar10", load)` at its end). Every loader returns a `Dataset` of uint8 arrays in
memory, except tfrecord's: a `RecordDataset` of shards written by `python -m cnn_tf.data.convert`, streamed.

Pixels stay uint8 here; they are scaled to [0, 1] exactly once, inside the graph
(`cnn_tf.data.pipeline`).
"""
from cnn_tf.data import cifar10, image_folder, mnist, oxford_pets, records  # noqa: F401 - each registers its datasets
from cnn_tf.data.dataset import Dataset
from cnn_tf.registry import DATASETS


def load_dataset(name, **kwargs):
    """kwargs: the loader's own parameters (data_dir, validation_size, ...)."""
    return DATASETS[name].load(**kwargs)


def load_dataset_for(cfg, record=None, train_dir=None):
    """The dataset a run configuration (`cnn_tf.config.RunConfig`) names. `record`: the manifest of the
    run in `train_dir` that resumes (an image folder is then checked file by file against it, before
    decoding, and split as it recorded)."""
    source = DATASETS[cfg.dataset]
    return source.load(**source.options(cfg, record, train_dir))


def load_split_for(cfg, record, split):
    """What `evaluate` reads: the dataset of `cfg`, or of an image folder only the recorded members of `split`."""
    if cfg.dataset == "image_folder" and record is not None and record.files is not None:
        return image_folder.load_split(record, cfg.data_dir, split, record.image_shape[0])
    return load_dataset_for(cfg)


__all__ = ["DATASETS", "Dataset", "load_dataset", "load_dataset_for", "load_split_for"]
