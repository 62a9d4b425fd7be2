"""Datasets converted to sharded TFRecord files, streamed from disk (`--dataset=tfrecord --data_dir=D`).

    D/dataset.json                      class names, image shape, pixel mean, and per split its size
                                        and shards (file, records, bytes, SHA-256); written last
    D/labels.txt                        "0:name" per class, as TF-Slim writes it
    D/train-00000-of-00004.tfrecord     tf.train.Examples with TF-Slim's feature keys (FEATURES)
    D/validation-..., D/test-...

`python -m cnn_tf.data.convert` writes such a folder (cnn_tf.data.convert). A folder written by
TF-Slim's download_and_convert_*.py scripts works too: it has no dataset.json, so the split comes
from each file's name, the class names from labels.txt, the image shape from the first record, and
the sizes are counted once, when the dataset is loaded.

RecordPipeline (cnn_tf.data.record_pipeline) streams a split from the shards.
"""
import dataclasses
import hashlib
import json
import os
import re

import numpy as np
import tensorflow as tf

from cnn_tf import errors, log
from cnn_tf.data.dataset import register_dataset
from cnn_tf.data.preprocess import MAX_IMAGE_PIXELS, bounded, decode
from cnn_tf.data.record_pipeline import FEATURES, RecordPipeline
from cnn_tf.errors import UserError
from cnn_tf.textfile import read_text

METADATA = "dataset.json"
LABELS = "labels.txt"
FORMAT = "cnn_tf.tfrecord/1"
STAGING = ".partial"  # suffix of a conversion's folder until it is complete
SPLITS = ("train", "validation", "test")
_SLIM_SPLIT = re.compile(r"(?:^|[_\-.])(train|validation|test)(?:[_\-.]|$)")


def example(encoded, image_format, label, height, width, filename):
    """One image as a tf.train.Example (FEATURES, plus image/filename)."""
    def b(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def i(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": b(encoded), "image/format": b(image_format.encode()), "image/class/label": i(label),
        "image/height": i(height), "image/width": i(width), "image/filename": b(filename.encode()),
    }))


def sha256(path, chunk=1 << 22):
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class RecordSplit:
    """A split's shards (full paths, in their stored order) and its number of records."""
    files: tuple
    size: int

    def __len__(self):
        return self.size


@dataclasses.dataclass
class RecordDataset:
    """A converted dataset: the same attributes and methods as cnn_tf.data.dataset.Dataset, but
    its splits are RecordSplits, read by RecordPipeline."""
    name: str
    splits: dict  # split name -> RecordSplit
    class_names: list
    image_shape: tuple
    source: str = ""
    shuffle_buffer: int = 10000
    mean: tuple = None  # per-channel mean of the training images in [0, 1]; counted when first asked
    shard_digests: dict = dataclasses.field(default_factory=dict)  # path -> SHA-256 from dataset.json
    max_image_pixels: int = None  # a record whose image's header gives more is refused before decoding

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def pixel_mean(self):
        if self.mean is None:
            log.info(f"computing the training images' mean of {self.source} (its dataset.json has none) ...")
            self.mean = tuple(_pixel_mean(self.splits["train"].files, self.image_shape, self.max_image_pixels))
        return np.asarray(self.mean)

    def split(self, name):
        if name not in self.splits:
            raise UserError(f"split {name!r} is not one of {', '.join(self.splits)}")
        return self.splits[name]

    def fingerprint(self, name):
        """SHA-256 of split `name`'s shards: their names and SHA-256s (dataset.json), else names and sizes."""
        digest = hashlib.sha256()
        for path in self.split(name).files:
            digest.update(f"{os.path.basename(path)} {self.shard_digests.get(path) or tf.io.gfile.stat(path).length}\n"
                          .encode())
        return digest.hexdigest()

    def size(self, name):
        return self.split(name).size

    def pipeline(self, image_shape):
        return RecordPipeline(image_shape, self.shuffle_buffer, self.max_image_pixels)


def _parse(serialized, image_shape, max_pixels=MAX_IMAGE_PIXELS):
    features = tf.io.parse_single_example(serialized, FEATURES)
    height, width, channels = image_shape
    return decode(features["image/encoded"], height, width, channels, max_pixels), features["image/class/label"]


def _run(dataset, fn, where):
    """Runs `fn(next_element)` over a tf.data `dataset` (of shard `where`'s folder) in a graph of its
    own; returns the results."""
    graph = tf.Graph()
    with graph.as_default():
        element = tf.compat.v1.data.make_one_shot_iterator(dataset()).get_next()
    results = []
    with tf.compat.v1.Session(graph=graph) as sess:
        while True:
            try:
                results.append(fn(sess.run(element)))
            except tf.errors.OutOfRangeError:
                return results
            except tf.errors.DataLossError as e:
                raise UserError(f"a TFRecord file is corrupt ({errors.reason(e)}); convert the dataset "
                                "again") from e
            except tf.errors.InvalidArgumentError as e:  # a record that is not an image, or a bomb
                raise UserError(f"a record of {os.path.dirname(where)}'s shards cannot be used: {errors.reason(e)}")\
                    from e


def _count(path):
    return sum(_run(lambda: tf.data.TFRecordDataset(path).batch(4096).map(tf.size), int, path))


def _pixel_mean(files, image_shape, max_pixels=None):
    def image(record):
        return _parse(record, image_shape, max_pixels or MAX_IMAGE_PIXELS)[0]

    sums = _run(lambda: tf.data.TFRecordDataset(list(files)).map(image)
                .batch(256).map(lambda x: (tf.reduce_sum(tf.cast(x, tf.float64), [0, 1, 2]), tf.shape(x)[0])),
                lambda v: v, files[0])
    total = sum(s for s, _ in sums)
    count = sum(int(n) for _, n in sums) * image_shape[0] * image_shape[1]
    return total / max(count, 1) / 255.0


def _first_record(path, max_pixels=None):
    def first():
        return tf.data.TFRecordDataset(path).take(1).map(lambda r: tf.shape(tf.io.decode_image(
            bounded(tf.io.parse_single_example(r, FEATURES)["image/encoded"], max_pixels), expand_animations=False)))
    shapes = _run(first, lambda shape: tuple(int(d) for d in shape), path)
    if not shapes:
        raise UserError(f"{path} holds no records")
    return shapes[0]


def interrupted(data_dir):
    """Says why `data_dir` is an interrupted conversion, or None."""
    if data_dir.rstrip("/").endswith(STAGING):
        return f"{data_dir} is the folder of a conversion that did not finish; run the conversion again"
    if not tf.io.gfile.exists(data_dir) and tf.io.gfile.exists(data_dir.rstrip("/") + STAGING):
        return (f"--data_dir={data_dir} does not exist: {data_dir.rstrip('/')}{STAGING} is a conversion that did "
                "not finish; run the conversion again")
    return None


def load(data_dir=None, image_size=None, channels=None, shuffle_buffer=10000, verify=True, max_image_pixels=None):
    """A RecordDataset of `data_dir`: cnn_tf's conversion (dataset.json) or TF-Slim's shards.
    `image_size`, `channels`: what the images are decoded to (default: as converted). `verify`: check
    each shard's SHA-256 (else only its byte size) against dataset.json. `max_image_pixels`: a record
    whose image's header gives more is an error, before it is decoded."""
    if not data_dir:
        raise UserError("--dataset=tfrecord needs --data_dir, a folder written by `python -m cnn_tf.data.convert`")
    if reason := interrupted(data_dir):
        raise UserError(reason)
    if not tf.io.gfile.isdir(data_dir):
        raise UserError(f"--data_dir={data_dir} is not a directory; convert a dataset into it with "
                        "`python -m cnn_tf.data.convert --output_dir=...`")
    if tf.io.gfile.exists(os.path.join(data_dir, METADATA)):
        data = _load_converted(data_dir, verify)
    else:
        data = _load_slim(data_dir, max_image_pixels)
    height, width, depth = data.image_shape
    data.image_shape = (image_size or height, image_size or width, channels or depth)
    data.shuffle_buffer, data.max_image_pixels = shuffle_buffer, max_image_pixels
    if channels and channels != depth:
        data.mean = None  # counted again, in the channels asked for
    # The loop and evaluate expect every split; an absent one is empty.
    data.splits = {name: data.splits.get(name, RecordSplit((), 0)) for name in SPLITS}
    return data


def _load_converted(data_dir, verify):
    path = os.path.join(data_dir, METADATA)
    try:
        meta = json.loads(read_text(path))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise UserError(f"{path} is not a cnn_tf conversion ({FORMAT}); convert the dataset again")
        splits, digests = {}, {}
        for name, split in meta["splits"].items():
            files = []
            for shard in split["shards"]:
                file = os.path.join(data_dir, shard["file"])
                if not tf.io.gfile.exists(file):
                    raise UserError(f"{file} is missing ({path} lists it); convert the dataset again")
                size = tf.io.gfile.stat(file).length
                if size != shard["bytes"] or (verify and sha256(file) != shard["sha256"]):
                    what = f"{size} bytes, not {shard['bytes']}" if size != shard["bytes"] else "its SHA-256 differs"
                    raise UserError(f"{file} is not the file {path} lists ({what}): it changed or is corrupt; "
                                    "convert the dataset again")
                files.append(file)
                digests[file] = shard["sha256"]
            splits[name] = RecordSplit(tuple(files), int(split["size"]))
        return RecordDataset("tfrecord", splits, list(meta["class_names"]), tuple(meta["image_shape"]),
                             source=f"{data_dir} ({meta.get('dataset', 'converted')})",
                             mean=tuple(meta["pixel_mean"]) if meta.get("pixel_mean") else None,
                             shard_digests=digests)
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path} is not a valid {METADATA} ({type(e).__name__}: {e}); convert the dataset again") from e


def _load_slim(data_dir, max_image_pixels):
    names = sorted(tf.io.gfile.listdir(data_dir))
    files = {name: [] for name in SPLITS}
    for name in names:
        match = _SLIM_SPLIT.search(name)
        if match and "tfrecord" in name:
            files[match.group(1)].append(os.path.join(data_dir, name))
    if not files["train"]:
        raise UserError(f"{data_dir} has no {METADATA} and no TF-Slim train shards (*train*.tfrecord); convert a "
                        "dataset into it with `python -m cnn_tf.data.convert`")
    labels = os.path.join(data_dir, LABELS)
    if not tf.io.gfile.exists(labels):
        raise UserError(f"{data_dir} has TF-Slim shards but no {LABELS} naming the classes (lines \"0:name\")")
    class_names = {}
    for number, line in enumerate(read_text(labels).splitlines(), 1):
        if line.strip():
            index, sep, name = line.partition(":")
            if not sep or not index.strip().isdigit():
                raise UserError(f"{labels}:{number}: {line!r} is not \"<label>:<class name>\"")
            class_names[int(index)] = name.strip()
    if sorted(class_names) != list(range(len(class_names))):
        raise UserError(f"{labels} must name the classes 0..N-1, each once")
    log.info(f"counting the records of {data_dir}'s TF-Slim shards ...")
    splits = {name: RecordSplit(tuple(paths), sum(_count(p) for p in paths)) for name, paths in files.items() if paths}
    height, width, depth = _first_record(splits["train"].files[0], max_image_pixels)
    return RecordDataset("tfrecord", splits, [class_names[k] for k in range(len(class_names))],
                         (height, width, 3 if depth == 4 else depth), source=f"{data_dir} (TF-Slim shards)")


def _options(cfg, record=None, train_dir=None):
    return dict(data_dir=cfg.data_dir, image_size=cfg.image_size, channels=cfg.channels,
                shuffle_buffer=cfg.shuffle_buffer, verify=cfg.verify_shards, max_image_pixels=cfg.max_image_pixels)


register_dataset("tfrecord", load, _options)
