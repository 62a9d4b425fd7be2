"""Where data enters the graph: an initializable tf.data iterator over arrays held in memory
(InputPipeline), or over TFRecord shards streamed from disk (cnn_tf.data.record_pipeline.RecordPipeline),
both behind the same `start_pass` / `start_epoch`; TrainFeed hands the training loop its epochs.

The arrays are fed once per pass to the iterator's initializer (never baked into the GraphDef
as constants), batched by index before the map so the uint8 -> float32 scaling runs once per
batch, and prefetched so the next batch is ready while the current step runs. An epoch's order is
drawn in numpy from (seed, epoch), and augmentation (cnn_tf.data.augmentation) draws from stateless seeds (seed, epoch,
batch),
so a resumed run sees exactly the batches an uninterrupted one would.
"""
import math

import numpy as np
import tensorflow as tf

from cnn_tf.data.augmentation import AugmentSpec, Augmentation, augment_batch  # noqa: F401 (re-exported)


def steps_per_epoch(num_examples, batch_size, num_replicas=1):
    """Steps of one epoch; every example is seen once, the last batch may be partial."""
    return max(1, math.ceil(num_examples / (batch_size * num_replicas)))


def epoch_order(num_examples, seed, epoch):
    """The shuffled order of one epoch; a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


class InputPipeline:
    """Batches of [0, 1] pixels, labels and the batch's mix weight (1 unless mixup or cutmix made it)
    from arrays in memory (the graph normalizes them after
    `image:0`). The arrays are fed whole to the iterator's initializer and batches are gathered by
    index: an epoch's shuffled order is a vector of indices, never a shuffled copy of the images.
    A split, for `start_pass` and `start_epoch`, is the pair (images, labels)."""

    def __init__(self, image_shape):
        with tf.compat.v1.name_scope("input"), tf.device("/cpu:0"):
            self._images = tf.compat.v1.placeholder(tf.uint8, [None, *image_shape], name="images")
            self._labels = tf.compat.v1.placeholder(tf.int64, [None], name="labels")
            self._order = tf.compat.v1.placeholder(tf.int64, [None], name="order")
            self._batch_size = tf.compat.v1.placeholder(tf.int64, [], name="batch_size")
            self._augment = Augmentation()

            def gather(index, batch):
                pixels, mix_weight = self._augment.prepare(index, tf.gather(self._images, batch))
                return pixels, tf.gather(self._labels, batch), mix_weight

            dataset = (
                tf.data.Dataset.from_tensor_slices(self._order)
                .batch(self._batch_size)
                .enumerate(self._augment.first_batch)
                .map(gather)
                .prefetch(2)
            )
            self._iterator = tf.compat.v1.data.make_initializable_iterator(_without_autotune(dataset))
            self.images, self.labels, self.mix_weight = self._iterator.get_next()

    @staticmethod
    def size(split):
        return len(split[0])

    def start(self, sess, images, labels, batch_size, order=None, plan=None):
        """Makes the iterator yield (images, labels, mix weight) in `order` (default: as they are), in
        batches; the last may be partial. `plan` (an EpochPlan) turns its augmentation on."""
        order = np.arange(len(images)) if order is None else order
        feed = {self._images: images, self._labels: labels, self._order: order, self._batch_size: batch_size}
        feed.update(self._augment.feed(plan))
        sess.run(self._iterator.initializer, feed)

    def start_pass(self, sess, split, batch_size):
        """One pass over `split` in order, unaugmented (evaluation)."""
        self.start(sess, *split, batch_size)

    def start_epoch(self, sess, split, batch_size, plan):
        """The training batches of `plan` (an EpochPlan) from `split`."""
        images, labels = split
        order = plan.share(epoch_order(len(images), plan.seed, plan.epoch), batch_size)[plan.first_step * batch_size:]
        self.start(sess, images, labels, batch_size, order, plan)


def _without_autotune(dataset):
    # No autotuning: its model thread sleeps for long intervals, and re-initializing the iterator
    # (every epoch, every evaluation) waited for it to wake, up to 25 s.
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


class EpochPlan:
    """Which batches of an epoch a process trains on: the epoch's order is a pure function of (seed,
    epoch); in a cluster of `num_workers`, worker w takes batches w, w + W, w + 2W, ... of it; the
    first `first_step` of those are already done (a resume). Augmentation's seeds are (seed, stream,
    batch index), one stream per (epoch, worker)."""

    def __init__(self, seed, epoch, first_step, worker=0, num_workers=1, augment=AugmentSpec()):
        self.seed, self.epoch, self.first_step = seed, epoch, first_step
        self.worker, self.num_workers = worker, num_workers
        stream = epoch * num_workers + worker
        self.augment = augment  # an AugmentSpec
        self.augment_seed = (seed, stream, first_step) if augment.on else None

    def share(self, order, batch_size):
        """This worker's part of an epoch's `order` of example indices."""
        if self.num_workers == 1:
            return order
        b = batch_size
        return np.concatenate([order[i * b:(i + 1) * b] for i in range(self.worker, -(-len(order) // b),
                                                                        self.num_workers)])


class TrainFeed:
    """The training loop's data source: the training split, started by `pipeline` (InputPipeline or
    cnn_tf.data.record_pipeline.RecordPipeline) epoch by epoch, from any step of the epoch (a resume
    continues mid-epoch). See EpochPlan for the order and a worker's share. `global_steps_per_epoch`
    is what one epoch of the cluster's data adds to the global step: every worker's step in
    asynchronous training, one per round with `sync`."""

    def __init__(self, pipeline, split, batch_size, seed=0, augment=AugmentSpec(), worker=0, num_workers=1, sync=True):
        self.pipeline, self.split = pipeline, split
        self.batch_size, self.seed, self.augment = batch_size, seed, augment
        self.worker, self.num_workers = worker, num_workers
        num_examples = pipeline.size(split)
        batches = steps_per_epoch(num_examples, batch_size)
        self.steps_per_epoch = len(range(worker, batches, num_workers))
        self.global_steps_per_epoch = steps_per_epoch(num_examples, batch_size, num_workers) if sync else batches

    def start(self, sess, epoch, first_step):
        plan = EpochPlan(self.seed, epoch, first_step, self.worker, self.num_workers, self.augment)
        self.pipeline.start_epoch(sess, self.split, self.batch_size, plan)
