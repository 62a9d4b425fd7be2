"""Where data enters the graph: an initializable tf.data iterator over arrays held in memory.

The arrays are fed once per pass to the iterator's initializer (never baked into the GraphDef
as constants), batched before the map so the uint8 -> float32 scaling runs once per batch, and
prefetched so the next batch is ready while the current step runs. Shuffling is done in numpy
from (seed, epoch), so a resumed run sees exactly the order an uninterrupted one would.
"""
import numpy as np
import tensorflow as tf


def scale_pixels(images):
    """The one place pixels are scaled: uint8 [0, 255] -> float32 [0, 1]."""
    return tf.cast(images, tf.float32) * (1.0 / 255.0)


def epoch_order(num_examples, seed, epoch):
    """The shuffled order of one epoch; a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


class InputPipeline:
    def __init__(self, image_shape):
        with tf.compat.v1.name_scope("input"), tf.device("/cpu:0"):
            self._images = tf.compat.v1.placeholder(tf.uint8, [None, *image_shape], name="images")
            self._labels = tf.compat.v1.placeholder(tf.int64, [None], name="labels")
            self._batch_size = tf.compat.v1.placeholder(tf.int64, [], name="batch_size")
            dataset = (
                tf.data.Dataset.from_tensor_slices((self._images, self._labels))
                .batch(self._batch_size)
                .map(lambda x, y: (scale_pixels(x), y))
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

    def start(self, sess, images, labels, batch_size):
        """Makes the iterator yield (images, labels) in order, in batches; the last may be partial."""
        sess.run(
            self._iterator.initializer,
            {self._images: images, self._labels: labels, self._batch_size: batch_size},
        )
