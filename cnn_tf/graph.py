"""Where the graph is built: input, model, loss, metrics, learning rate, train op, summaries.

Everything lives in one explicit tf.Graph, with the model built twice on the same variables: a
training tower (batch statistics, dropout) that the train op and train summaries use, and an
inference tower (moving averages, no dropout) for evaluation and prediction. Tensors a user may
look up by name after `import_meta_graph`: placeholders `image`, `label`, `keep_prob` (with
defaults: training pulls from the in-graph input pipeline, evaluation and prediction feed them),
and the inference tower's `logits`, `predictions`, `loss`, `accuracy`.
"""
import inspect
import math
import sys
import types

import tensorflow as tf

from cnn_tf.data.pipeline import InputPipeline
from cnn_tf.errors import UserError
from cnn_tf.nets import arg_scopes_map, nets_map
from cnn_tf.nets.layers import InputSizeError
from cnn_tf.nets.scopes import arg_scope

UPDATE_OPS = tf.compat.v1.GraphKeys.UPDATE_OPS
TRAIN, TEST, PER_EPOCH = "train", "test", "per_epoch_train"  # summary collections


def steps_per_epoch(num_examples, batch_size, num_replicas=1):
    """Steps of one epoch; every example is seen once, the last batch may be partial."""
    return max(1, math.ceil(num_examples / (batch_size * num_replicas)))


def learning_rate_schedule(hp, global_step, num_train_examples, num_replicas=1):
    """Staircase exponential decay every `num_epochs_per_decay` epochs. The decay period counts
    the batches all replicas consume together (slim counted one replica's and decayed too late)."""
    decay_steps = max(1, int(hp.num_epochs_per_decay * steps_per_epoch(
        num_train_examples, hp.batch_size, num_replicas)))
    return tf.compat.v1.train.exponential_decay(
        hp.initial_learning_rate, global_step, decay_steps, hp.learning_rate_decay_factor,
        staircase=True, name="learning_rate")


def make_optimizer(hp, learning_rate):
    if hp.optimizer == "adam":
        return tf.compat.v1.train.AdamOptimizer(learning_rate)
    if hp.optimizer == "momentum":
        return tf.compat.v1.train.MomentumOptimizer(learning_rate, hp.momentum)
    if hp.optimizer == "rmsprop":
        return tf.compat.v1.train.RMSPropOptimizer(learning_rate, momentum=hp.momentum)
    if hp.optimizer == "sgd":
        return tf.compat.v1.train.GradientDescentOptimizer(learning_rate)
    raise ValueError(f"unknown optimizer {hp.optimizer!r}")


def model_device(hp):
    return "/gpu:0" if hp.device == "gpu" else "/cpu:0"


def _scalar(tag, value, collection):
    # Raw summary ops take the tag as given; tf.summary.scalar would uniquify a second "loss"
    # into "loss_1", and TensorBoard could not lay train and test curves over each other.
    tf.compat.v1.add_to_collection(collection, tf.raw_ops.ScalarSummary(tags=tag, values=value))


COMPUTE_DTYPES = {"float32": tf.float32, "mixed_bfloat16": tf.bfloat16, "mixed_float16": tf.float16}


def cpu_has_bfloat16():
    """AVX512_BF16 or AMX: the CPU instructions that make bfloat16 faster than float32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def effective_precision(hp):
    """--precision where the hardware runs it fast; else float32, with a warning saying why."""
    if hp.precision == "float32":
        return "float32"
    has_gpu = hp.device == "gpu" and bool(tf.config.list_physical_devices("GPU"))
    if has_gpu or (hp.precision == "mixed_bfloat16" and cpu_has_bfloat16()):
        return hp.precision
    need = "a GPU" if hp.precision == "mixed_float16" else "a CPU with AVX512_BF16 or AMX, or a GPU"
    print(f"warning: --precision={hp.precision} needs {need} (--device={hp.device} here has none); "
          "computing in float32", file=sys.stderr)
    return "float32"


def build_graph_for(hp, data, num_replicas=1):
    """The graph for dataset `data` (a `cnn_tf.data.Dataset`) under the run's flags `hp`."""
    return build_graph(hp, data.image_shape, data.num_classes, len(data.split("train")[0]), num_replicas,
                       pixel_mean=data.pixel_mean if hp.normalization == "mean" else None,
                       precision=effective_precision(hp))


def build_graph(hp, image_shape, num_classes, num_train_examples, num_replicas=1, pixel_mean=None,
                precision=None):
    """Returns a namespace of the graph and its named tensors and ops; see the module docstring.

    `hp` is anything with the attributes of the train flags (absl FlagValues in the CLIs).
    `pixel_mean`: per-channel mean the input pipeline subtracts (--normalization=mean).
    `precision` (default hp.precision): float32, or mixed_bfloat16 / mixed_float16: the layers
    compute in the low precision from float32 master weights (each layer casts its weights to its
    input's dtype); logits, loss and softmax stay float32; float16 gets dynamic loss scaling.
    """
    precision = precision or getattr(hp, "precision", "float32")
    graph = tf.Graph()
    g = types.SimpleNamespace(graph=graph)
    with graph.as_default():
        tf.compat.v1.set_random_seed(hp.seed)
        g.global_step = tf.compat.v1.train.get_or_create_global_step()
        g.pipeline = InputPipeline(image_shape, pixel_mean)
        g.image = tf.compat.v1.placeholder_with_default(g.pipeline.images, [None, *image_shape], "image")
        g.label = tf.compat.v1.placeholder_with_default(g.pipeline.labels, [None], "label")
        g.keep_prob = tf.compat.v1.placeholder_with_default(float(hp.keep_prob), [], "keep_prob")

        with tf.compat.v1.device(model_device(hp)):
            options = dict(weight_decay=hp.weight_decay, use_batch_norm=hp.batch_norm, init_stddev=hp.init_stddev)
            if hp.weights_initializer:  # else the model's own default
                options["weights_initializer"] = hp.weights_initializer
            net = nets_map[hp.model]
            extra = {}
            if "keep_prob_conv" in inspect.signature(net).parameters:  # four_conv's second dropout rate
                extra["keep_prob_conv"] = tf.compat.v1.placeholder_with_default(
                    float(hp.keep_prob_conv), [], "keep_prob_conv")

            def tower(is_training):
                try:
                    with arg_scope(arg_scopes_map[hp.model](**options)):
                        logits, end_points = net(tf.cast(g.image, COMPUTE_DTYPES[precision]), num_classes,
                                                 is_training=is_training, keep_prob=g.keep_prob, **extra)
                except InputSizeError as e:
                    raise UserError(f"--model={hp.model}: {e}") from e
                return _head(g, logits, end_points)

            # Two towers on the same variables, as tensorpack builds them: training (batch statistics,
            # dropout) and inference (moving averages, no dropout), each a plain graph with Python
            # booleans. A tf.cond on an is_training tensor in every layer kept Grappler from fusing
            # batch norm with its ReLU and put control flow into every step's gradients.
            with tf.compat.v1.name_scope("training"):
                g.train = tower(is_training=True)
            with tf.compat.v1.name_scope("inference"), \
                    tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(), reuse=True):
                inference = tower(is_training=False)
            g.logits, g.predictions, g.loss, g.accuracy, g.end_points = (
                tf.identity(inference.logits, name="logits"), tf.identity(inference.predictions, name="predictions"),
                tf.identity(inference.loss, name="loss"), tf.identity(inference.accuracy, name="accuracy"),
                inference.end_points)

            _add_nan_rollback(g)
            g.learning_rate = tf.multiply(
                learning_rate_schedule(hp, g.global_step, num_train_examples, num_replicas),
                g.learning_rate_scale, name="scaled_learning_rate")
            optimizer = make_optimizer(hp, g.learning_rate)
            before = {v.op.name for v in tf.compat.v1.global_variables()}
            if precision == "mixed_float16":  # float16 gradients underflow without a loss scale
                optimizer = tf.compat.v1.mixed_precision.MixedPrecisionLossScaleOptimizer(optimizer, "dynamic")
            # The dynamic loss scale's state: a checkpoint written in float32 (on a CPU, say, where
            # float16 falls back) lacks it, and a fresh scale is right for a run moving to a GPU.
            g.loss_scale_variables = [v for v in tf.compat.v1.global_variables() if v.op.name not in before]
            with tf.control_dependencies(tf.compat.v1.get_collection(UPDATE_OPS)):
                g.train_op = optimizer.minimize(g.train.loss, g.global_step, name="train_op")

        _add_eval_totals(g, inference.correct, num_classes)
        _add_summaries(g)
        # Checked before every save: a checkpoint of NaN weights must never become the latest.
        g.all_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in tf.compat.v1.global_variables()
                                      if v.dtype.base_dtype.is_floating], name="all_finite")
        g.saver = tf.compat.v1.train.Saver(max_to_keep=hp.max_num_checkpoint, save_relative_paths=True)
        if g.loss_scale_variables:  # restores a checkpoint without them; they start afresh
            loss_scale = {v.op.name for v in g.loss_scale_variables}  # by name: `in` would compare tensors
            g.saver_without_loss_scale = tf.compat.v1.train.Saver(
                [v for v in tf.compat.v1.global_variables() if v.op.name not in loss_scale])
            g.init_loss_scale = tf.compat.v1.variables_initializer(g.loss_scale_variables)
        g.local_init_op = tf.compat.v1.local_variables_initializer()
        g.init_op = tf.group(tf.compat.v1.global_variables_initializer(), g.local_init_op, name="init")
    graph.finalize()  # a graph op created by the loop would be a bug (and a slow leak)
    return g


def _head(g, logits, end_points):
    """A tower's logits (float32 whatever the compute precision), predictions, loss, accuracy."""
    logits = tf.cast(logits, tf.float32)  # a no-op in float32
    predictions = tf.argmax(logits, 1)
    # Softmax and log in one op: stable where the tutorial's log(softmax) went to inf.
    cross_entropy = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=g.label, logits=logits))
    regularization = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES)
    loss = tf.add(cross_entropy, tf.add_n(regularization) if regularization else 0.0)
    correct = tf.equal(predictions, g.label)
    accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))
    return types.SimpleNamespace(logits=logits, predictions=predictions, loss=loss, correct=correct,
                                 accuracy=accuracy, end_points=end_points)


def _add_nan_rollback(g):
    """--on_nan=rollback's state, saved with the checkpoints so a restart keeps it: a factor on the
    learning rate, and how many rollbacks were made."""
    def state(name, dtype, initial):
        return tf.compat.v1.get_variable(name, [], dtype, tf.constant_initializer(initial), trainable=False)

    with tf.compat.v1.variable_scope("nan_rollback"):
        g.learning_rate_scale = state("learning_rate_scale", tf.float32, 1.0)
        g.nan_rollbacks = state("count", tf.int64, 0)
        g.new_learning_rate_scale = tf.compat.v1.placeholder(tf.float32, [], "new_learning_rate_scale")
        g.new_nan_rollbacks = tf.compat.v1.placeholder(tf.int64, [], "new_count")
        g.set_rollback_state = tf.group(g.learning_rate_scale.assign(g.new_learning_rate_scale),
                                        g.nan_rollbacks.assign(g.new_nan_rollbacks), name="set")


def _add_eval_totals(g, correct, num_classes):
    """Totals over a whole split, accumulated batch by batch in local variables, so an evaluation
    counts every image exactly once whatever the batch size."""

    def total(name, shape=(), dtype=tf.float64):
        return tf.compat.v1.get_variable(name, shape, dtype, tf.zeros_initializer(), trainable=False,
                                         collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES])

    with tf.compat.v1.variable_scope("eval_totals"):
        n = tf.cast(tf.shape(g.label)[0], tf.float64)
        count, loss_sum, correct_sum = total("count"), total("loss_sum"), total("correct_sum")
        confusion = total("confusion", (num_classes, num_classes), tf.int64)
        sparsity = {name: total("sparsity/" + name) for name in g.end_points}
        updates = [
            count.assign_add(n),
            loss_sum.assign_add(tf.cast(g.loss, tf.float64) * n),
            correct_sum.assign_add(tf.reduce_sum(tf.cast(correct, tf.float64))),
            confusion.assign_add(tf.math.confusion_matrix(g.label, g.predictions, num_classes, dtype=tf.int64)),
        ] + [sparsity[name].assign_add(tf.cast(tf.nn.zero_fraction(x), tf.float64) * n)
             for name, x in g.end_points.items()]
        g.eval_update = tf.group(*updates, name="update")
        g.eval_reset = tf.compat.v1.variables_initializer(
            [count, loss_sum, correct_sum, confusion, *sparsity.values()], name="reset")
        safe_count = tf.maximum(count, 1.0)
        g.eval_metrics = {
            "count": count,
            "loss": tf.cast(loss_sum / safe_count, tf.float32),
            "accuracy": tf.cast(correct_sum / safe_count, tf.float32),
            "confusion": confusion,
        }
        g.eval_sparsity = {name: tf.cast(s / safe_count, tf.float32) for name, s in sparsity.items()}


def _add_summaries(g):
    """Three collections, as in the tutorial: `train` every few steps, `test` after each
    evaluation pass (from the totals), `per_epoch_train` (histograms, images) once an epoch."""
    with tf.compat.v1.name_scope("summaries"):
        for tag, value in (("loss", g.train.loss), ("accuracy", g.train.accuracy),
                           ("global_step", tf.cast(g.global_step, tf.float32)),
                           ("learning_rate", g.learning_rate)):
            _scalar(tag, value, TRAIN)
        _scalar("loss", g.eval_metrics["loss"], TEST)
        _scalar("accuracy", g.eval_metrics["accuracy"], TEST)
        for name, x in g.train.end_points.items():  # the training tower's: they ride on a train step
            _scalar("sparsity/" + name, tf.nn.zero_fraction(x), TRAIN)
            _scalar("sparsity/" + name, g.eval_sparsity[name], TEST)
            tf.compat.v1.add_to_collection(
                PER_EPOCH, tf.raw_ops.HistogramSummary(tag="activations/" + name, values=tf.cast(x, tf.float32)))
        tf.compat.v1.add_to_collection(
            PER_EPOCH, tf.raw_ops.ImageSummary(tag="images", tensor=g.image[:3], max_images=3))
        g.summaries = {key: tf.compat.v1.summary.merge(tf.compat.v1.get_collection(key), name=key)
                       for key in (TRAIN, TEST, PER_EPOCH)}
