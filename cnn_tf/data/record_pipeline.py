"""Batches from TFRecord shards, streamed: `RecordPipeline`, what a RecordDataset's training and
evaluation read through (the same start_pass / start_epoch as cnn_tf.data.pipeline.InputPipeline).

RecordPipeline reads a split without ever holding it in memory: the files in a (seed, epoch)
order, read in parallel (interleave), shuffled in a seeded buffer, decoded in parallel, batched and
prefetched, every step deterministic. A resumed epoch skips the records already trained on before
they are decoded: the order is a pure function of (seed, epoch), so nothing has to be saved.
"""
import numpy as np
import tensorflow as tf

from cnn_tf.data.pipeline import Augmentation, EpochPlan, _without_autotune, epoch_order
from cnn_tf.data.preprocess import MAX_IMAGE_PIXELS, bounded, decode

# TF-Slim's keys (datasets/dataset_utils.py image_to_tfexample), plus the image's file name / id.
FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/format": tf.io.FixedLenFeature([], tf.string, default_value="png"),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    "image/height": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "image/width": tf.io.FixedLenFeature([], tf.int64, default_value=0),
}
READERS = 4  # files read at once


def _parse_batch(serialized, image_shape, max_pixels=MAX_IMAGE_PIXELS):
    """A batch of serialized Examples -> uint8 images, int64 labels. Decoding a batch in one map
    costs a third of decoding record by record (tf.data's per-element cost dominates small images).
    Shards from elsewhere (TF-Slim's) may hold anything: each header is checked before decoding."""
    features = tf.io.parse_example(serialized, FEATURES)
    images = tf.map_fn(lambda contents: decode(contents, *image_shape), bounded(features["image/encoded"], max_pixels),
                       fn_output_signature=tf.TensorSpec(image_shape, tf.uint8), parallel_iterations=128)
    return images, features["image/class/label"]


class RecordPipeline:
    """Batches of [0, 1] pixels, labels and mix weights from TFRecord shards (see the module docstring); the
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
                pixels, mix_weight = self._augment.prepare(index, images)
                return pixels, labels, mix_weight

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
            self.images, self.labels, self.mix_weight = self._iterator.get_next()

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
        feed.update(self._augment.feed(plan))
        sess.run(self._iterator.initializer, feed)
