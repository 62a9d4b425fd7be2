"""A checkpoint after every epoch, every N steps or seconds if asked, and where a stop request
lands, in cnn_tf.checkpoints' crash-safe order."""
import os
import time

from cnn_tf import checkpoints, errors, log
from cnn_tf.loop import Callback
from cnn_tf.traindir import CHECKPOINT_NAME


class Checkpoint(Callback):
    """Saves `<trainer.checkpoint_dir>/model.ckpt-<global step>` after each epoch, when the run
    stops mid-epoch, and within epochs every `every_steps` global steps or `every_secs` seconds
    (0: not), keeping `max_to_keep`. Never saves weights that are not finite (the NaN guard
    runs first and handles them; without one, that is an error). At start, removes what a killed
    save left behind (before the session restores the latest checkpoint)."""

    chief_only = True

    def __init__(self, max_to_keep, every_steps=0, every_secs=0.0):
        self.max_to_keep, self.every_steps, self.every_secs = max_to_keep, every_steps, every_secs

    def setup(self, trainer):
        super().setup(trainer)
        self.prefix = os.path.join(trainer.checkpoint_dir, CHECKPOINT_NAME)
        for note in checkpoints.repair(trainer.checkpoint_dir):
            log.warning(note)

    def before_train(self):
        self._last, self._next = time.monotonic(), _next_multiple(self.trainer.global_step, self.every_steps)

    def after_rewind(self):
        self._next = _next_multiple(self.trainer.global_step, self.every_steps)

    def after_step(self, values):
        t = self.trainer
        due = (self.every_steps and t.global_step >= self._next) or (
            self.every_secs and time.monotonic() - self._last >= self.every_secs)
        if due and t.step_in_epoch < t.steps_per_epoch:  # the epoch's own checkpoint comes after its validation
            self._save()  # weights that are not finite: the NaN guard has stopped or rolled back already
        if self.every_steps and t.global_step >= self._next:  # a cluster's global step may jump past a multiple
            self._next = _next_multiple(t.global_step, self.every_steps)

    def _save(self):
        t = self.trainer
        if not t.sess.run(t.g.saving.all_finite):
            return False
        if t.logs.events is not None:  # a listed checkpoint's summaries are on disk
            t.logs.events.flush()
        self._last = time.monotonic()
        path = checkpoints.save(t.sess, t.g, self.prefix, t.global_step, self.max_to_keep, t.callback_states())
        t.saved(path)
        return True

    def after_epoch(self):
        if not self._save():
            raise errors.TrainingDiverged(f"the weights are not finite at global step {self.trainer.global_step}: "
                                          "not saved; lower --initial_learning_rate")

    def after_train(self, state):
        latest = checkpoints.latest(self.trainer.checkpoint_dir)
        # A stop mid-epoch; or, in an asynchronous cluster, an end the other workers reached mid-epoch.
        if state in ("stopped", "finished") and (latest is None or checkpoints.step_of(latest) != self.trainer.global_step):
            self._save()


def _next_multiple(step, every):
    """The first multiple of `every` after `step` (0: never)."""
    return (step // every + 1) * every if every else float("inf")
