"""The graph's state besides the weights: --on_nan=rollback's, the evaluation totals, and what saves
and initializes the variables."""
import tensorflow as tf

from cnn_tf.graph.contract import EvalOps, Plateau, Rollback, Saving

TOP_K = 5  # evaluations of more classes than this count the top-5 accuracy too


def rollback_state():
    """--on_nan=rollback's state, saved with the checkpoints so a restart keeps it: a factor on the
    learning rate, and how many rollbacks were made."""
    def state(name, dtype, initial):
        return tf.compat.v1.get_variable(name, [], dtype, tf.constant_initializer(initial), trainable=False)

    with tf.compat.v1.variable_scope("nan_rollback"):
        scale, count = state("learning_rate_scale", tf.float32, 1.0), state("count", tf.int64, 0)
        new_scale = tf.compat.v1.placeholder(tf.float32, [], "new_learning_rate_scale")
        new_count = tf.compat.v1.placeholder(tf.int64, [], "new_count")
        assign = tf.group(scale.assign(new_scale), count.assign(new_count), name="set")
    return Rollback(learning_rate_scale=scale, count=count, new_learning_rate_scale=new_scale, new_count=new_count,
                    set=assign)


def plateau_state():
    """--learning_rate_schedule=plateau's factor on the learning rate, saved with the checkpoints."""
    with tf.compat.v1.variable_scope("plateau"):
        scale = tf.compat.v1.get_variable("learning_rate_scale", [], tf.float32, tf.constant_initializer(1.0),
                                          trainable=False)
        new_scale = tf.compat.v1.placeholder(tf.float32, [], "new_learning_rate_scale")
        return Plateau(learning_rate_scale=scale, new_learning_rate_scale=new_scale, set=scale.assign(new_scale))


def eval_totals(label, inference, num_classes):
    """Totals over a whole split, accumulated batch by batch in local variables, so an evaluation
    counts every image exactly once whatever the batch size; the top-5 accuracy too for more than 5
    classes."""

    def total(name, shape=(), dtype=tf.float64):
        return tf.compat.v1.get_variable(name, shape, dtype, tf.zeros_initializer(), trainable=False,
                                         collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES])

    with tf.compat.v1.variable_scope("evaluation"):
        probabilities = tf.nn.softmax(inference.logits, name="probabilities")
        n = tf.cast(tf.shape(label)[0], tf.float64)
        count, loss_sum, correct_sum = total("count"), total("loss_sum"), total("correct_sum")
        top5_sum = total("top5_sum") if num_classes > TOP_K else None
        confusion = total("confusion", (num_classes, num_classes), tf.int64)
        sparsity = {name: total("sparsity/" + name) for name in inference.end_points}
        updates = [
            count.assign_add(n),
            loss_sum.assign_add(tf.cast(inference.loss, tf.float64) * n),
            correct_sum.assign_add(tf.reduce_sum(tf.cast(inference.correct, tf.float64))),
            confusion.assign_add(tf.math.confusion_matrix(label, inference.predictions, num_classes, dtype=tf.int64)),
        ] + [sparsity[name].assign_add(tf.cast(tf.nn.zero_fraction(x), tf.float64) * n)
             for name, x in inference.end_points.items()]
        totals = [count, loss_sum, correct_sum, confusion, *sparsity.values()]
        if top5_sum is not None:
            in_top5 = tf.nn.in_top_k(targets=tf.cast(label, tf.int32), predictions=tf.cast(inference.logits, tf.float32),
                                     k=TOP_K)
            updates.append(top5_sum.assign_add(tf.reduce_sum(tf.cast(in_top5, tf.float64))))
            totals.append(top5_sum)
        update = tf.group(*updates, name="update")
        reset = tf.compat.v1.variables_initializer(totals, name="reset")
        safe_count = tf.maximum(count, 1.0)
        metrics = {
            "count": count,
            "loss": tf.cast(loss_sum / safe_count, tf.float32),
            "accuracy": tf.cast(correct_sum / safe_count, tf.float32),
            "confusion": confusion,
        }
        if top5_sum is not None:  # top-5 of 5 classes or fewer is always 1
            metrics["top5_accuracy"] = tf.cast(top5_sum / safe_count, tf.float32)
        mean_sparsity = {name: tf.cast(s / safe_count, tf.float32) for name, s in sparsity.items()}
    return EvalOps(update=update, reset=reset, metrics=metrics, sparsity=mean_sparsity, probabilities=probabilities)


def saving(max_to_keep, loss_scale_variables=()):
    """The savers and initializers of every variable made so far, and the check of their values that
    runs before every save: a checkpoint of NaN weights must never become the latest."""
    with tf.compat.v1.name_scope("nan_guard"):
        all_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in tf.compat.v1.global_variables()
                                    if v.dtype.base_dtype.is_floating], name="all_finite")
    saver = tf.compat.v1.train.Saver(max_to_keep=max_to_keep, save_relative_paths=True)
    without, init_loss_scale = None, None
    if loss_scale_variables:  # restores a checkpoint without them; they start afresh
        loss_scale = {v.op.name for v in loss_scale_variables}  # by name: `in` would compare tensors
        without = tf.compat.v1.train.Saver(
            [v for v in tf.compat.v1.global_variables() if v.op.name not in loss_scale])
        init_loss_scale = tf.compat.v1.variables_initializer(list(loss_scale_variables))
    with tf.compat.v1.name_scope("initialization"):
        local_init_op = tf.compat.v1.local_variables_initializer()
        init_op = tf.group(tf.compat.v1.global_variables_initializer(), local_init_op, name="init")
    return Saving(saver=saver, all_finite=all_finite, init_op=init_op, local_init_op=local_init_op,
                  saver_without_loss_scale=without, init_loss_scale=init_loss_scale)
