"""Datasets: name -> loader. Every loader returns a `Dataset` of uint8 arrays in memory, except
tfrecord's: a `RecordDataset` of shards written by `python -m cnn_tf.data.convert`, streamed.

Pixels stay uint8 here; they are scaled to [0, 1] exactly once, inside the graph
(`cnn_tf.data.pipeline`).
"""
import functools

from cnn_tf.data import cifar10, image_folder, mnist, records
from cnn_tf.data.dataset import Dataset
from cnn_tf.nets import nets_map

DATASETS = {
    "mnist": functools.partial(mnist.load, "mnist"),
    "fashion_mnist": functools.partial(mnist.load, "fashion_mnist"),
    "cifar10": cifar10.load,
    "image_folder": image_folder.load,
    "tfrecord": records.load,
}


def load_dataset(name, **kwargs):
    """kwargs: the loader's own parameters (data_dir, validation_size, ...)."""
    return DATASETS[name](**kwargs)


def load_dataset_for(cfg, record=None, train_dir=None):
    """The dataset a run configuration (`cnn_tf.config.RunConfig`) names. `record`: the manifest of the
    run in `train_dir` that resumes (an image folder is then checked file by file against it, before
    decoding, and split as it recorded)."""
    if cfg.dataset == "tfrecord":
        return records.load(data_dir=cfg.data_dir, image_size=cfg.image_size, channels=cfg.channels,
                            shuffle_buffer=cfg.shuffle_buffer, verify=cfg.verify_shards,
                            max_image_pixels=cfg.max_image_pixels)
    if cfg.dataset == "image_folder":
        return image_folder.load(
            data_dir=cfg.data_dir, labels_csv=cfg.labels_csv, class_names=cfg.class_names,
            image_size=cfg.image_size or nets_map[cfg.model].default_image_size, channels=cfg.channels,
            validation_fraction=cfg.validation_fraction, test_fraction=cfg.test_fraction,
            skip_bad_images=cfg.skip_bad_images, seed=cfg.seed, record=record if record and record.files else None,
            train_dir=train_dir, max_image_pixels=cfg.max_image_pixels)
    return load_dataset(cfg.dataset, data_dir=cfg.data_dir, validation_size=cfg.validation_size,
                        download_mirror=cfg.download_mirror)


def load_split_for(cfg, record, split):
    """What `evaluate` reads: the dataset of `cfg`, or of an image folder only the recorded members of `split`."""
    if cfg.dataset == "image_folder" and record is not None and record.files is not None:
        return image_folder.load_split(record, cfg.data_dir, split, record.image_shape[0])
    return load_dataset_for(cfg)


__all__ = ["DATASETS", "Dataset", "load_dataset", "load_dataset_for", "load_split_for"]
