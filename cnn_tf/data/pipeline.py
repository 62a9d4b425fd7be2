"""Where data enters the graph: an initializable tf.data iterator over arrays held in memory.

The arrays are fed once per pass to the iterator's initializer (never baked into the GraphDef
as constants), batched before the map so the uint8 -> float32 scaling runs once per batch, and
prefetched so the next batch is ready while the current step runs. Shuffling is done in numpy
from (seed, epoch), and augmentation draws from stateless seeds (seed, epoch, batch), so a resumed
run sees exactly the batches an uninterrupted one would.
"""
import math

import numpy as np
import tensorflow as tf

from cnn_tf.data.preprocess import scale_pixels


def steps_per_epoch(num_examples, batch_size, num_replicas=1):
    """Steps of one epoch; every example is seen once, the last batch may be partial."""
    return max(1, math.ceil(num_examples / (batch_size * num_replicas)))


def epoch_order(num_examples, seed, epoch):
    """The shuffled order of one epoch; a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def augment_batch(images, seed):
    """Per image: a random horizontal flip, and a random crop of the image zero-padded by 1/8 of
    its size (the CIFAR recipe), on a uint8 batch [N, H, W, C]. `seed`: int64 [2], stateless."""
    n, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    pad_h, pad_w = max(1, height // 8), max(1, width // 8)
    flip_seed, row_seed, col_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    flip = tf.random.stateless_uniform([n], flip_seed) < 0.5
    images = tf.where(flip[:, None, None, None], tf.reverse(images, [2]), images)
    padded = tf.pad(images, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
    top = tf.random.stateless_uniform([n], row_seed, 0, 2 * pad_h + 1, tf.int32)
    left = tf.random.stateless_uniform([n], col_seed, 0, 2 * pad_w + 1, tf.int32)
    # Gathers of per-image row and column windows crop every image at its own offset, batched.
    rows = top[:, None] + tf.range(height)[None, :]
    cols = left[:, None] + tf.range(width)[None, :]
    return tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)


class InputPipeline:
    """Yields batches of [0, 1] pixels and labels (the graph normalizes them after `image:0`)."""

    def __init__(self, image_shape):
        with tf.compat.v1.name_scope("input"), tf.device("/cpu:0"):
            self._images = tf.compat.v1.placeholder(tf.uint8, [None, *image_shape], name="images")
            self._labels = tf.compat.v1.placeholder(tf.int64, [None], name="labels")
            self._batch_size = tf.compat.v1.placeholder(tf.int64, [], name="batch_size")
            # Augmentation is on for training passes only; its seeds are (seed, epoch, batch index).
            self._augment = tf.compat.v1.placeholder_with_default(False, [], name="augment")
            self._seed = tf.compat.v1.placeholder_with_default(tf.zeros([2], tf.int64), [2], name="seed")
            self._first_batch = tf.compat.v1.placeholder_with_default(tf.constant(0, tf.int64), [],
                                                                      name="first_batch")

            def prepare(index, batch):
                x, y = batch
                x = tf.cond(self._augment,
                            lambda: augment_batch(x, tf.random.experimental.stateless_fold_in(self._seed, index)),
                            lambda: x)
                return scale_pixels(x), y

            dataset = (
                tf.data.Dataset.from_tensor_slices((self._images, self._labels))
                .batch(self._batch_size)
                .enumerate(self._first_batch)
                .map(prepare)
                .prefetch(2)
            )
            # No autotuning: its model thread sleeps for long intervals, and re-initializing the
            # iterator (every epoch, every evaluation) waited for it to wake, up to 25 s. A cast
            # per batch needs no tuning.
            options = tf.data.Options()
            options.autotune.enabled = False
            dataset = dataset.with_options(options)
            self._iterator = tf.compat.v1.data.make_initializable_iterator(dataset)
            self.images, self.labels = self._iterator.get_next()

    def start(self, sess, images, labels, batch_size, augment_seed=None):
        """Makes the iterator yield (images, labels) in order, in batches; the last may be partial.

        `augment_seed` = (seed, epoch, index of the first batch in the epoch) turns augmentation on.
        """
        feed = {self._images: images, self._labels: labels, self._batch_size: batch_size}
        if augment_seed is not None:
            seed, epoch, first_batch = augment_seed
            feed.update({self._augment: True, self._seed: [seed, epoch], self._first_batch: first_batch})
        sess.run(self._iterator.initializer, feed)


class TrainFeed:
    """The training loop's data source: the training split, fed to `pipeline` epoch by epoch in the
    shuffled order of (seed, epoch), from any step of the epoch (a resume continues mid-epoch).

    In a cluster of `num_workers`, the epoch's batches are dealt out in turn: worker w trains on
    batches w, w + W, w + 2W, ... of that order, a disjoint share that is a pure function of (seed,
    epoch, worker). `global_steps_per_epoch` is what one epoch of the cluster's data adds to the
    global step: every worker's step in asynchronous training, one per round with `sync`."""

    def __init__(self, pipeline, images, labels, batch_size, seed=0, augment=False, worker=0, num_workers=1,
                 sync=True):
        self.pipeline, self.images, self.labels = pipeline, images, labels
        self.batch_size, self.seed, self.augment = batch_size, seed, augment
        self.worker, self.num_workers = worker, num_workers
        batches = steps_per_epoch(len(images), batch_size)
        self.steps_per_epoch = len(range(worker, batches, num_workers))
        self.global_steps_per_epoch = steps_per_epoch(len(images), batch_size, num_workers) if sync else batches

    def _share(self, order):
        if self.num_workers == 1:
            return order
        b = self.batch_size
        return np.concatenate([order[i * b:(i + 1) * b] for i in range(self.worker, -(-len(order) // b),
                                                                        self.num_workers)])

    def start(self, sess, epoch, first_step):
        order = self._share(epoch_order(len(self.images), self.seed, epoch))[first_step * self.batch_size:]
        # The augmentation stream of each (epoch, worker) pair; (seed, epoch) in one process.
        stream = epoch * self.num_workers + self.worker
        self.pipeline.start(sess, self.images[order], self.labels[order], self.batch_size,
                            augment_seed=(self.seed, stream, first_step) if self.augment else None)
