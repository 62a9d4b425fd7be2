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

RecordPipeline reads a split without ever holding it in memory: the files in a (seed, epoch)
order, read in parallel (interleave), shuffled in a seeded buffer, decoded in parallel, batched and
prefetched, every step deterministic. A resumed epoch skips the records already trained on before
they are decoded: the order is a pure function of (seed, epoch), so nothing has to be saved.
"""
import dataclasses
import hashlib
import json
import os
import re

import numpy as np
import tensorflow as tf

from cnn_tf.data.pipeline import Augmentation, EpochPlan, _without_autotune, epoch_order
from cnn_tf.data.preprocess import MAX_IMAGE_PIXELS, bounded, decode
from cnn_tf import errors, log
from cnn_tf.errors import UserError
from cnn_tf.textfile import read_text

METADATA = "dataset.json"
LABELS = "labels.txt"
FORMAT = "cnn_tf.tfrecord/1"
STAGING = ".partial"  # suffix of a conversion's folder until it is complete
SPLITS = ("train", "validation", "test")
# TF-Slim's keys (datasets/dataset_utils.py image_to_tfexample), plus the image's file name / id.
FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/format": tf.io.FixedLenFeature([], tf.string, default_value="png"),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    "image/height": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "image/width": tf.io.FixedLenFeature([], tf.int64, default_value=0),
}
READERS = 4  # files read at once
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


def _parse_batch(serialized, image_shape, max_pixels=MAX_IMAGE_PIXELS):
    """A batch of serialized Examples -> uint8 images, int64 labels. Decoding a batch in one map
    costs a third of decoding record by record (tf.data's per-element cost dominates small images).
    Shards from elsewhere (TF-Slim's) may hold anything: each header is checked before decoding."""
    features = tf.io.parse_example(serialized, FEATURES)
    images = tf.map_fn(lambda contents: decode(contents, *image_shape), bounded(features["image/encoded"], max_pixels),
                       fn_output_signature=tf.TensorSpec(image_shape, tf.uint8), parallel_iterations=128)
    return images, features["image/class/label"]


class RecordPipeline:
    """Batches of [0, 1] pixels and labels from TFRecord shards (see the module docstring); the
    same `start_pass` / `start_epoch` as cnn_tf.data.pipeline.InputPipeline."""

    def __init__(self, image_shape, shuffle_buffer=10000, max_pixels=None):
        self.shuffle_buffer = shuffle_buffer
        max_pixels = max_pixels or MAX_IMAGE_PIXELS
        image_shape = tuple(image_shape)
        with tf.compat.v1.name_scope("input"), tf.device("/cpu:0"):
            self._files = tf.compat.v1.placeholder(tf.string, [None], name="files")
            self._buffer = tf.compat.v1.placeholder_with_default(tf.constant(1, tf.int64), [], name="shuffle_buffer")
            self._shuffle_seed = tf.compat.v1.placeholder_with_default(tf.constant(0, tf.int64), [],
                                                                       name="shuffle_seed")
            self._batch_size = tf.compat.v1.placeholder(tf.int64, [], name="batch_size")
            self._workers = tf.compat.v1.placeholder_with_default(tf.constant(1, tf.int64), [], name="num_workers")
            self._worker = tf.compat.v1.placeholder_with_default(tf.constant(0, tf.int64), [], name="worker")
            self._skip = tf.compat.v1.placeholder_with_default(tf.constant(0, tf.int64), [], name="skip")
            self._augment = Augmentation()

            def prepare(index, serialized):
                images, labels = _parse_batch(serialized, image_shape, max_pixels)
                return self._augment.prepare(index, images), labels

            dataset = (
                tf.data.Dataset.from_tensor_slices(self._files)
                .interleave(lambda f: tf.data.TFRecordDataset(f, buffer_size=1 << 20), cycle_length=READERS,
                            block_length=1, num_parallel_calls=READERS, deterministic=True)
                .shuffle(self._buffer, seed=self._shuffle_seed)
                .batch(self._batch_size)  # of serialized records: the epoch's batches, not yet decoded
                .enumerate()
                .filter(lambda index, batch: tf.equal(index % self._workers, self._worker))  # w, w + W, ...
                .map(lambda index, batch: batch)
                .skip(self._skip)  # a resume: the batches already trained on, skipped as bytes
                .enumerate(self._augment.first_batch)
                .map(prepare, num_parallel_calls=2, deterministic=True)
                .prefetch(2)
            )
            self._iterator = tf.compat.v1.data.make_initializable_iterator(_without_autotune(dataset))
            self.images, self.labels = self._iterator.get_next()

    @staticmethod
    def size(split):
        return split.size

    def start_pass(self, sess, split, batch_size):
        """One pass over `split`, its files in their stored order, unshuffled and unaugmented."""
        sess.run(self._iterator.initializer, {self._files: list(split.files), self._batch_size: batch_size})

    def start_epoch(self, sess, split, batch_size, plan: EpochPlan):
        files = np.asarray(split.files)[epoch_order(len(split.files), plan.seed, plan.epoch)]
        shuffle_seed = int(np.random.default_rng([plan.seed, plan.epoch, 0x5EED]).integers(2 ** 62))
        feed = {self._files: list(files), self._batch_size: batch_size, self._buffer: self.shuffle_buffer,
                self._shuffle_seed: shuffle_seed, self._workers: plan.num_workers, self._worker: plan.worker,
                self._skip: plan.first_step}
        feed.update(self._augment.feed(plan.augment_seed, plan.augment, plan.padding))
        sess.run(self._iterator.initializer, feed)


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
    sums = _run(lambda: tf.data.TFRecordDataset(list(files)).map(lambda r: _parse(r, image_shape, max_pixels or MAX_IMAGE_PIXELS)[0])
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
