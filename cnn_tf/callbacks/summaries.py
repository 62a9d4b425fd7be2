"""The train dir's event files (what TensorBoard reads), and the training summaries written to them."""
import tensorflow as tf

from cnn_tf.graph import PER_EPOCH, TRAIN
from cnn_tf.loop import Callback
from cnn_tf.traindir import drop_events_after


class EventWriters(Callback):
    """Owns the FileWriters of summaries/train and summaries/test; other callbacks write through
    `trainer.events.write(run, summary, step)`. At start, cuts what a killed run logged past the
    checkpoint; after a resume or a rollback, marks the restart so TensorBoard drops the steps it
    replaces; flushes at the end of each epoch, before the checkpoint is listed."""

    chief_only = True
    RUNS = ("train", "test")

    def __init__(self, run_dir):
        self.run_dir = run_dir

    def setup(self, trainer):
        super().setup(trainer)
        trainer.events = self

    def before_train(self):
        step = self.trainer.global_step
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
        for writer in self.writers.values():
            writer.flush()

    def after_train(self, state):
        for writer in self.writers.values():
            writer.close()


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
            self.trainer.events.write("train", summary, self.trainer.global_step)
