"""The run manifest, `<train_dir>/run.json`: what a run's data is, recorded once, before its first step.

    {"format": "cnn_tf.run/1", "created": ..., "dataset": "image_folder", "source": "/data/pets",
     "class_names": [...], "image_shape": [h, w, c], "normalization": "scale", "pixel_mean": [...],
     "preprocessing": "...", "data_options": {the data flags the run started with},
     "splits": {"train": {"size": N, "sha256": ...}, "validation": ..., "test": ...},
     "files": {"cats/001.jpg": {"size": ..., "sha256": ..., "label": "cats", "split": "test"}, ...},
     "labels_csv": {"name": "labels.csv", "sha256": ...}}          (files, labels_csv: image_folder)

A split's sha256 is of its content: the decoded arrays of IDX and CIFAR files (whatever their
compression), the shards' SHA-256s (dataset.json) or names and sizes of TFRecord shards, the
members' file digests of an image folder. `evaluate`, `export`, `predict` read the class names,
shape and mean from here, never from the training data; a resumed run is refused when its data is
not the data recorded here, and an image folder's split membership is read from here, never redrawn.
"""
import dataclasses
import datetime
import json

import numpy as np
import tensorflow as tf

from cnn_tf import log
from cnn_tf.errors import UserError
from cnn_tf.traindir import write_atomic

FORMAT = "cnn_tf.run/1"
PREPROCESSING = ("decode PNG/JPEG/BMP/GIF (tf.io.decode_image; grey replicated or colour to luminance as "
                 "channels asks), resize antialiased to image_shape, scale to [0, 1], subtract pixel_mean "
                 "when normalization is mean, or map to [-1, 1] (2x - 1) when it is inception, or to 255x "
                 "minus ImageNet's RGB means when it is vgg")
WHAT_TO_DO = ("a run's data must stay as it trained on it: train a new --train_dir, or start one from this run's "
              "weights with --warm_start_from={train_dir}")


@dataclasses.dataclass
class RunManifest:
    dataset: str
    source: str
    class_names: list
    image_shape: tuple
    normalization: str
    pixel_mean: list
    splits: dict  # split name -> {"size": int, "sha256": str}
    data_options: dict = dataclasses.field(default_factory=dict)
    files: dict = None  # image_folder: relative path -> {"size", "sha256", "label", "split" (None: unused)}
    labels_csv: dict = None  # image_folder with --labels_csv: {"name", "sha256"}
    created: str = ""
    preprocessing: str = PREPROCESSING
    format: str = FORMAT

    @classmethod
    def of(cls, cfg, data):
        """The manifest of dataset `data` (cnn_tf.data) loaded under run configuration `cfg`."""
        from cnn_tf.data.convert import CONVERT_DATA_FLAGS  # the flags that say which data and how it is split

        return cls(dataset=cfg.dataset, source=data.source, class_names=list(data.class_names),
                   image_shape=tuple(int(d) for d in data.image_shape), normalization=cfg.normalization,
                   # A stream without a recorded mean is not read through for one it does not use.
                   pixel_mean=[float(v) for v in data.pixel_mean] if cfg.normalization == "mean" or getattr(
                       data, "mean", ()) is not None else None,
                   splits={name: {"size": int(data.size(name)), "sha256": data.fingerprint(name)} for name in data.splits},
                   data_options={name: _jsonable(getattr(cfg, name)) for name in CONVERT_DATA_FLAGS},
                   files=getattr(data, "files", None), labels_csv=getattr(data, "labels_file", None),
                   created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))

    # What a graph builder asks of a dataset (cnn_tf.graph.build_graph_for), answered from the record.
    @property
    def num_classes(self):
        return len(self.class_names)

    def size(self, name):
        return self.splits[name]["size"] if name in self.splits else 0

    def mean_to_subtract(self):
        """The per-channel mean the graph subtracts after image:0, or None (--normalization=scale)."""
        return np.asarray(self.pixel_mean, np.float32) if self.normalization == "mean" else None

    def write(self, path):
        write_atomic(path, json.dumps(dataclasses.asdict(self), indent=1) + "\n")

    @classmethod
    def read(cls, path):
        """The manifest at `path`, or None when there is none (a train dir older than manifests)."""
        if not tf.io.gfile.exists(path):
            return None
        try:
            with tf.io.gfile.GFile(path, "rb") as f:
                fields = json.loads(f.read().decode("utf-8"))
            if fields.get("format") != FORMAT:
                raise ValueError(f"format {fields.get('format')!r}, not {FORMAT}")
            fields["image_shape"] = tuple(fields["image_shape"])
            return cls(**fields)
        except (ValueError, TypeError, KeyError, AttributeError, tf.errors.OpError) as e:
            raise UserError(f"{path} is not a readable run manifest ({str(e).splitlines()[0]}); restore it from a "
                            "backup, or delete it to have the next training resume derive it again from the data "
                            "as it is now") from e

    def check(self, data, train_dir):
        """Refuses data that is not the data recorded here: other classes, shape or split contents."""
        changes = self.changes(data)
        if changes:
            raise UserError(f"the data of {train_dir} changed since the run started ({self.created}): "
                            f"{'; '.join(changes)}; {WHAT_TO_DO.format(train_dir=train_dir)}")

    def changes(self, data, splits=None):
        """What differs between `data` and the record, for `splits` (default: every recorded one)."""
        if list(data.class_names) != list(self.class_names):
            return [f"its classes are {', '.join(data.class_names)}, the run's were {', '.join(self.class_names)}"]
        if tuple(data.image_shape) != tuple(self.image_shape):
            return [f"its images are {'x'.join(map(str, data.image_shape))}, the run's were "
                    f"{'x'.join(map(str, self.image_shape))}"]
        found = []
        for name, recorded in self.splits.items():
            if name not in data.splits or (splits is not None and name not in splits):
                continue
            size = data.size(name)
            if size != recorded["size"]:
                found.append(f"the {name} split has {size:,} images, it had {recorded['size']:,}")
            elif data.fingerprint(name) != recorded["sha256"]:
                found.append(f"the {name} split's images or labels differ from the ones it trained on "
                             f"(the same count, {size:,}, other content)")
        return found


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


def derived_note(train_dir, what):
    """Says, for a reader, that a train dir older than run manifests has its record derived from `what`."""
    log.note(f"{train_dir} has no run.json (it was written before run manifests): {what}; resuming training "
             "once records them")
