"""Learning-rate schedules (--learning_rate_schedule): each a function of the global step alone, so
a resumed run continues it exactly. Every schedule counts the run's global batches: one global step
per batch of all towers, and `num_replicas` processes stepping it together count once (slim counted
one clone's batches and decayed too late).

    exponential  initial * decay_factor ** floor(step / (num_epochs_per_decay epochs))   (the default)
    cosine       from initial down to end along half a cosine, over the steps after warm-up
    one_cycle    up from initial / 25 to initial over the warm-up (30% of the run by default), then
                 down along half a cosine to end
    piecewise    values[i] between boundaries_epochs[i-1] and boundaries_epochs[i]
    constant     initial
    plateau      initial, times a factor the ReduceOnPlateau callback lowers when the validation
                 metric stops improving (the factor is a variable in the checkpoints)

With --warmup_epochs, every schedule but one_cycle rises linearly from initial / W to initial over
its first W steps.
"""
import math

import tensorflow as tf

from cnn_tf.config import piecewise_schedule
from cnn_tf.data.pipeline import steps_per_epoch

ONE_CYCLE_START = 25.0  # one_cycle starts at initial / 25 (fastai's div)
ONE_CYCLE_WARMUP = 0.3  # of the run, when --warmup_epochs is 0


def rate_at(cfg, step, num_train_examples, num_replicas=1):
    """The schedule's rate at `step`, as a number (computed in a graph of its own)."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        return float(sess.run(learning_rate(cfg, tf.constant(step, tf.int64), num_train_examples, num_replicas)))


def horizon_moved(cfg, saved, step, num_train_examples):
    """What a resume that changed --num_epochs does to a schedule that ends with the run (cosine,
    one_cycle): a sentence with the epochs it moved by and the rate's jump at `step`; None otherwise."""
    if cfg.learning_rate_schedule not in ("cosine", "one_cycle") or saved.num_epochs == cfg.num_epochs:
        return None
    before, after = rate_at(saved, step, num_train_examples), rate_at(cfg, step, num_train_examples)
    return (f"--num_epochs moved from {saved.num_epochs} to {cfg.num_epochs}: the {cfg.learning_rate_schedule} "
            f"schedule now ends {cfg.num_epochs - saved.num_epochs:+d} epochs from where it did; its rate at step "
            f"{step} jumps from {before:.4g} to {after:.4g}")


def learning_rate(cfg, global_step, num_train_examples, num_replicas=1):
    """The learning rate at `global_step` (a tensor), as a float32 tensor named learning_rate."""
    per_epoch = steps_per_epoch(num_train_examples, cfg.update_batch_size, num_replicas)
    total = max(1, cfg.num_epochs * per_epoch)
    warmup = cfg.warmup_epochs * per_epoch
    if cfg.learning_rate_schedule == "one_cycle" and not cfg.warmup_epochs:
        warmup = ONE_CYCLE_WARMUP * total
    warmup = min(warmup, total - 1)
    initial, end = cfg.initial_learning_rate, cfg.end_learning_rate
    kind = cfg.learning_rate_schedule
    with tf.compat.v1.name_scope("learning_rate"):
        step = tf.cast(global_step, tf.float64)
        if kind == "exponential":
            period = max(1, int(cfg.num_epochs_per_decay * per_epoch))
            rate = initial * tf.pow(tf.constant(cfg.learning_rate_decay_factor, tf.float64), tf.floor(step / period))
        elif kind in ("cosine", "one_cycle"):
            progress = tf.clip_by_value((step - warmup) / max(total - warmup, 1.0), 0.0, 1.0)
            rate = end + (initial - end) * 0.5 * (1.0 + tf.cos(math.pi * progress))
        elif kind == "piecewise":
            boundaries, values = piecewise_schedule(cfg)
            rate = tf.constant(values[0], tf.float64)
            for boundary, value in zip(boundaries, values[1:]):
                rate = tf.where(step >= boundary * per_epoch, tf.constant(value, tf.float64), rate)
        else:
            rate = tf.constant(initial, tf.float64)
        if warmup > 0:
            start = initial / ONE_CYCLE_START if kind == "one_cycle" else initial / warmup
            ramp = start + (initial - start) * tf.minimum(step / warmup, 1.0)
            rate = tf.where(step < warmup, ramp, rate)
        return tf.cast(rate, tf.float32, name="learning_rate")
