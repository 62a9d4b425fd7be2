"""--ema_decay: an exponential moving average of the model's weights, kept beside them (slim's
--moving_average_decay; timm's ModelEma), for validation, the best checkpoint, evaluate, export
and predict.

Averaged: every variable of the model, the batch-norm moving mean and variance too (as slim does),
so the statistics that normalize an averaged network are themselves averaged over the same steps
rather than the last weights' ones; re-estimating them would cost a pass over the training data per
validation. The shadows are `<variable>/ExponentialMovingAverage` in the checkpoints (slim's names),
updated after each step with the decay min(ema_decay, (1 + step) / (10 + step)): TensorFlow's
`num_updates` warm-up, so a short run's average is not mostly its random start.
"""
import tensorflow as tf

from cnn_tf.graph.contract import Averages

SUFFIX = "ExponentialMovingAverage"  # the shadows' names: <variable>/ExponentialMovingAverage


def moving_averages(decay, variables, global_step, train_op):
    """Returns (the train op followed by the averages' update, Averages); (train_op, None) at decay 0."""
    if not decay:
        return train_op, None
    ema = tf.compat.v1.train.ExponentialMovingAverage(decay, num_updates=global_step, name=SUFFIX)
    with tf.control_dependencies([train_op]):
        update = ema.apply(variables)
    with tf.compat.v1.name_scope("averages"):
        backups = [tf.compat.v1.get_variable(f"backup/{v.op.name}", v.shape, v.dtype.base_dtype, trainable=False,
                                             collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES])
                   for v in variables]
        saved = tf.group(*[b.assign(v) for b, v in zip(backups, variables)])
        with tf.control_dependencies([saved]):
            swap_in = tf.group(*[v.assign(ema.average(v)) for v in variables], name="swap_in")
        swap_out = tf.group(*[v.assign(b) for b, v in zip(backups, variables)], name="swap_out")
        load = tf.group(*[v.assign(ema.average(v)) for v in variables], name="load")
    return tf.group(train_op, update, name="train_op_and_averages"), Averages(
        decay=decay, shadows={v.op.name: ema.average(v) for v in variables}, swap_in=swap_in, swap_out=swap_out,
        load=load)


def shadow_names(variables):
    """{the name of a variable's shadow in a checkpoint: the variable}."""
    return {f"{v.op.name}/{SUFFIX}": v for v in variables}
