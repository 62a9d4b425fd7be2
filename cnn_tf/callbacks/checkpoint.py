"""A checkpoint after every epoch and where a stop request lands, in cnn_tf.checkpoints' crash-safe order."""
import os

from cnn_tf import checkpoints, errors, log
from cnn_tf.loop import Callback
from cnn_tf.traindir import CHECKPOINT_NAME


class Checkpoint(Callback):
    """Saves `<trainer.checkpoint_dir>/model.ckpt-<global step>` after each epoch and when the run
    stops mid-epoch, keeping `max_to_keep`. Never saves weights that are not finite (the NaN guard
    runs first and handles them; without one, that is an error). At start, removes what a killed
    save left behind (before the session restores the latest checkpoint)."""

    chief_only = True

    def __init__(self, max_to_keep):
        self.max_to_keep = max_to_keep

    def setup(self, trainer):
        super().setup(trainer)
        self.prefix = os.path.join(trainer.checkpoint_dir, CHECKPOINT_NAME)
        for note in checkpoints.repair(trainer.checkpoint_dir):
            log.warning(note)

    def _save(self):
        t = self.trainer
        if not t.sess.run(t.g.saving.all_finite):
            return False
        checkpoints.save(t.sess, t.g, self.prefix, t.global_step, self.max_to_keep)
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
