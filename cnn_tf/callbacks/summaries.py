"""The train dir's event files (what TensorBoard reads), and the training summaries written to them.

    summaries/              the run's hyper-parameters and flags (TensorBoard's HParams and text)
    summaries/train         loss, accuracy, learning rate every few steps; once an epoch the input
                            images, the first layer's filters, histograms of every layer
    summaries/validation    after each epoch: the validation split's scalars, confusion matrix,
                            misclassified images, precision-recall curves, per-class report
    summaries/test          the same for the test split, once, when training finishes
    summaries/eval_<split>  what `evaluate --split=<split>` wrote, at each checkpoint's step
"""
import os
import time

import tensorflow as tf

from cnn_tf.graph import PER_EPOCH, TRAIN
from cnn_tf.loop import Callback
from cnn_tf.traindir import drop_events_after


class EventWriters(Callback):
    """Owns the FileWriters of summaries/train and summaries/validation; other callbacks write through
    `trainer.logs.events.write(run, summary, step)`. At start, cuts what a killed run logged past the
    checkpoint; after a resume or a rollback, marks the restart so TensorBoard drops the steps it
    replaces; flushes at the end of each epoch, before the checkpoint is listed."""

    chief_only = True
    RUNS = ("train", "validation")

    def __init__(self, run_dir):
        self.run_dir = run_dir

    def setup(self, trainer):
        super().setup(trainer)
        trainer.logs.events = self

    def before_train(self):
        step = self.trainer.global_step
        migrate_summaries(self.run_dir)
        for name in self.RUNS:
            drop_events_after(self.run_dir.summaries(name), step)
        self.writers = {name: tf.compat.v1.summary.FileWriter(self.run_dir.summaries(name)) for name in self.RUNS}
        if step == 0:
            self.writers["train"].add_graph(self.trainer.g.graph)
        else:
            self._mark_restart()

    def write(self, run, summary, step):
        self.writers[run].add_summary(summary, step)

    def _mark_restart(self):
        # TensorBoard drops what was logged after a SessionLog START's step - 1: everything a crashed
        # or rolled-back run wrote past the step it restarts from, while that step's own summaries stay.
        start = tf.compat.v1.SessionLog(status=tf.compat.v1.SessionLog.START)
        for writer in self.writers.values():
            writer.add_session_log(start, self.trainer.global_step + 1)

    def after_rewind(self):
        self._mark_restart()

    def after_epoch(self):
        self.flush()

    def flush(self):
        for writer in self.writers.values():
            writer.flush()

    def after_train(self, state):
        for writer in self.writers.values():
            writer.close()
        self.writers = {}  # a save after this (a stop's checkpoint) has nothing left to flush


class TrainSummaries(Callback):
    """The `train` summaries every `every_n_steps` steps and the costly per-epoch ones (histograms,
    images) on an epoch's last step, fetched in the step's own sess.run."""

    chief_only = True

    def __init__(self, every_n_steps):
        self.every_n_steps = every_n_steps

    def before_step(self):
        t = self.trainer
        fetches = {}
        if (t.global_step + 1) % self.every_n_steps == 0:
            fetches["train"] = t.g.summaries[TRAIN]
        if t.step_in_epoch + 1 == t.steps_per_epoch:
            fetches["per_epoch"] = t.g.summaries[PER_EPOCH]
        return fetches

    def after_step(self, values):
        for summary in (values or {}).values():
            self.trainer.logs.events.write("train", summary, self.trainer.global_step)


def migrate_summaries(run_dir):
    """A train dir written before the runs said which split they hold kept the validation split in
    summaries/test (and nothing directly in summaries/): that run becomes summaries/validation."""
    root = run_dir.summaries("")
    old, new = run_dir.summaries("test"), run_dir.summaries("validation")
    if not tf.io.gfile.isdir(old) or tf.io.gfile.exists(new):
        return
    if any(name.startswith("events.") for name in tf.io.gfile.listdir(root)):
        return  # today's layout: summaries/test is the test split
    tf.io.gfile.rename(old, new)


HPARAMS = ("model", "dataset", "batch_size", "num_epochs", "optimizer", "initial_learning_rate",
           "learning_rate_decay_factor", "num_epochs_per_decay", "weight_decay", "keep_prob", "batch_norm",
           "augment", "normalization", "precision", "num_towers", "seed", "weights_initializer")
METRICS = (("validation", "accuracy"), ("validation", "loss"), ("test", "accuracy"), ("test", "loss"),
           ("train", "loss"))


class RunSummary(Callback):
    """The run for TensorBoard's HParams dashboard (`tensorboard --logdir=runs` compares every run
    there) and its effective flags as text, in summaries/ itself: its hyper-parameters when it
    starts, its status when it ends; the metrics are the other runs' scalars (METRICS)."""

    chief_only = True

    def __init__(self, cfg, run_dir, flags_text):
        self.cfg, self.run_dir, self.flags_text = cfg, run_dir, flags_text

    def before_train(self):
        from tensorboard.plugins.hparams import api as hp
        from tensorboard.plugins.hparams import summary_v2
        from tensorboard.plugins.text import summary as text_summary

        values = {}
        for name in HPARAMS:
            value = getattr(self.cfg, name)
            values[name] = "default" if value is None else value
        hparams = [hp.HParam(name) for name in HPARAMS]
        metrics = [hp.Metric(tag, group=group, display_name=f"{group} {tag}") for group, tag in METRICS]
        with self.trainer.g.graph.as_default():
            self.writer = tf.compat.v1.summary.FileWriter(self.run_dir.summaries(""))
        step = self.trainer.global_step
        self.writer.add_summary(summary_v2.hparams_config_pb(hparams, metrics).SerializeToString(), step)
        trial = os.path.basename(os.path.normpath(self.cfg.train_dir or "run"))  # the dashboard's row name
        self.writer.add_summary(summary_v2.hparams_pb(values, trial_id=trial, start_time_secs=time.time())
                                .SerializeToString(), step)
        flags = "\n".join(f"    {line}" for line in self.flags_text.splitlines())  # markdown: verbatim
        self.writer.add_summary(text_summary.pb("flags", flags).SerializeToString(), step)
        self.writer.flush()

    def after_train(self, state):
        from tensorboard.plugins.hparams import api_pb2
        from tensorboard.plugins.hparams import summary as hparams_summary

        # A stopped run can be continued: still running, as far as comparing runs goes.
        status = {"finished": api_pb2.STATUS_SUCCESS, "stopped": api_pb2.STATUS_RUNNING}.get(state, api_pb2.STATUS_FAILURE)
        self.writer.add_summary(hparams_summary.session_end_pb(status).SerializeToString(), self.trainer.global_step)
        self.writer.close()
