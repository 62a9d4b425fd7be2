"""The graph's summaries, in three collections as in the tutorial: `train` every few steps, `test`
after each evaluation pass (from the totals), `per_epoch_train` (histograms, images) once an epoch."""
import tensorflow as tf

from cnn_tf.graph.contract import PER_EPOCH, TEST, TRAIN, TRAINING_SCOPE
from cnn_tf.nets.layers import PRE_ACTIVATIONS
from cnn_tf.visuals import filter_grid

HISTOGRAM_SAMPLE = 1 << 16  # values a histogram summarizes at most


def _scalar(tag, value, collection):
    # Raw summary ops take the tag as given; tf.summary.scalar would uniquify a second "loss"
    # into "loss_1", and TensorBoard could not lay train and test curves over each other.
    tf.compat.v1.add_to_collection(collection, tf.raw_ops.ScalarSummary(tags=tag, values=value))


def _histogram(tag, x):
    """A histogram of `x`, or of HISTOGRAM_SAMPLE of its values evenly strided: a distribution needs
    no more, and the summary op, run in the epoch's last training step, costs in proportion (a
    first conv layer's activations over a batch are millions of values)."""
    flat = tf.reshape(tf.cast(x, tf.float32), [-1])
    if x.shape.num_elements() is None or x.shape.num_elements() > HISTOGRAM_SAMPLE:
        stride = tf.maximum(1, tf.size(flat) // HISTOGRAM_SAMPLE)
        flat = flat[::stride]
    return tf.raw_ops.HistogramSummary(tag=tag, values=flat)


def add_summaries(train, evaluation, global_step, learning_rate, image, model_variables):
    """Returns {collection: merged summary op}; `train` is the training towers' Head."""
    with tf.compat.v1.name_scope("summaries"):
        for tag, value in (("loss", train.loss), ("accuracy", train.accuracy),
                           ("global_step", tf.cast(global_step, tf.float32)), ("learning_rate", learning_rate)):
            _scalar(tag, value, TRAIN)
        _scalar("loss", evaluation.metrics["loss"], TEST)
        _scalar("accuracy", evaluation.metrics["accuracy"], TEST)
        if "top5_accuracy" in evaluation.metrics:
            _scalar("top5_accuracy", evaluation.metrics["top5_accuracy"], TEST)
        for name, x in train.end_points.items():  # the training tower's: they ride on a train step
            _scalar("sparsity/" + name, tf.nn.zero_fraction(x), TRAIN)
            _scalar("sparsity/" + name, evaluation.sparsity[name], TEST)
            tf.compat.v1.add_to_collection(PER_EPOCH, _histogram("activations/" + name, x))
        for summary in _per_epoch_views(train, image, model_variables):
            tf.compat.v1.add_to_collection(PER_EPOCH, summary)
        return {key: tf.compat.v1.summary.merge(tf.compat.v1.get_collection(key), name=key)
                for key in (TRAIN, TEST, PER_EPOCH)}


def _per_epoch_views(train, image, model_variables):
    """The training batch as the model sees it (after augmentation), and the views the tutorials drew
    by hand: the first conv layer's filters, each layer's weights, biases and pre-activations, and
    the logits."""
    views = [tf.raw_ops.ImageSummary(tag="images", tensor=image[:3], max_images=3)]
    filters = [v for v in model_variables if v.shape.rank == 4 and v.op.name.endswith("/weights")]
    if filters:
        views.append(tf.raw_ops.ImageSummary(tag="filters/" + filters[0].op.name, tensor=filter_grid(filters[0]),
                                             max_images=1))
    for v in model_variables:
        if v in tf.compat.v1.trainable_variables():
            views.append(_histogram("parameters/" + v.op.name, v))
    for x in tf.compat.v1.get_collection(PRE_ACTIVATIONS):
        if x.op.name.startswith(TRAINING_SCOPE + "/"):  # the first tower's, as the other views
            # The layer's scope: training/<net>/<layer>[/<repeated layer>][/BatchNorm]/<op>.
            layer = x.op.name.split("/")[1:-1]
            layer = layer[:-1] if layer[-1] == "BatchNorm" else layer
            views.append(_histogram("pre_activations/" + "/".join(layer), x))
    views.append(_histogram("logits", train.logits))
    return views
