"""What every in-memory dataset loader returns: uint8 images, int64 labels, class names.
(A converted dataset streamed from TFRecord shards is cnn_tf.data.records.RecordDataset, with the
same attributes and methods.)"""
import dataclasses
import hashlib
import typing

import numpy as np

from cnn_tf.data.pipeline import InputPipeline
from cnn_tf.errors import UserError
from cnn_tf.registry import DATASETS

ALIGNMENT = 64  # bytes; TensorFlow takes a fed array this aligned without copying it


def aligned(array):
    """`array`, or a copy of it starting at an ALIGNMENT-byte boundary."""
    if array.ctypes.data % ALIGNMENT == 0 and array.flags.c_contiguous:
        return array
    buffer = np.empty(array.nbytes + ALIGNMENT, np.uint8)
    offset = -buffer.ctypes.data % ALIGNMENT
    copy = buffer[offset:offset + array.nbytes].view(array.dtype).reshape(array.shape)
    copy[...] = array
    return copy


@dataclasses.dataclass
class Dataset:
    name: str
    splits: dict  # split name -> (uint8 images [N, H, W, C], int64 labels [N])
    class_names: list
    source: str = ""  # where the files were read from, for people
    # For the run manifest (cnn_tf.manifest): split name -> SHA-256 of its content, when the loader knows it
    # from the files (else, of the arrays); an image folder's per-file digests and labels CSV's digest.
    fingerprints: dict = None
    files: dict = None
    labels_file: dict = None
    pipeline = InputPipeline  # where its data enters a graph (cnn_tf.data.pipeline)

    def __post_init__(self):
        self.splits = {name: (aligned(images), labels) for name, (images, labels) in self.splits.items()}
        self.fingerprints = dict(self.fingerprints or {})

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def image_shape(self):
        return tuple(next(iter(self.splits.values()))[0].shape[1:])

    def fingerprint(self, name):
        """SHA-256 of split `name`'s pixels and labels (computed once)."""
        if name not in self.fingerprints:
            images, labels = self.split(name)
            digest = hashlib.sha256(str(images.shape).encode())
            if images.size:  # an empty split (--validation_size=0) has no bytes to view
                digest.update(memoryview(np.ascontiguousarray(images)).cast("B"))
            digest.update(np.ascontiguousarray(labels, np.int64).tobytes())
            self.fingerprints[name] = digest.hexdigest()
        return self.fingerprints[name]

    @property
    def pixel_mean(self):
        """Per-channel mean of the training images, in [0, 1] units (--normalization=mean)."""
        images = self.splits["train"][0]
        return images.reshape(-1, images.shape[-1]).mean(axis=0) / 255.0

    def split(self, name):
        """(images, labels) of split `name`."""
        if name not in self.splits:
            raise UserError(f"split {name!r} is not one of {', '.join(self.splits)}")
        return self.splits[name]

    def size(self, name):
        return len(self.split(name)[0])


def check_labels(labels, num_classes, source):
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise UserError(f"{source} holds label {bad}, outside the {num_classes} classes 0..{num_classes - 1}")


def array_options(cfg, record=None, train_dir=None):
    """The loader arguments of an array dataset (mnist's, cifar10's) from a RunConfig."""
    return dict(data_dir=cfg.data_dir, validation_size=cfg.validation_size, download_mirror=cfg.download_mirror)


@dataclasses.dataclass(frozen=True)
class DatasetSource:
    """What --dataset=NAME means: `load(**kwargs)` returns the Dataset (or RecordDataset), and
    `options(cfg, record, train_dir)` makes those kwargs from a run's configuration (`record`: the
    manifest of the run that resumes, `train_dir` its directory)."""
    load: typing.Callable
    options: typing.Callable = array_options


def register_dataset(name, load, options=array_options):
    """Makes --dataset=`name` load with `load`; each dataset module registers itself."""
    return DATASETS.register(name, DatasetSource(load, options))
