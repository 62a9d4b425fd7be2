"""A NaN or infinite loss (checked every step) or weights (checked every epoch) stop the run with a
clear error, or roll it back to the last checkpoint with a lower learning rate."""
import math

from cnn_tf import checkpoints, errors
from cnn_tf.loop import Callback


class NanGuard(Callback):
    """`on_nan="stop"`: TrainingDiverged (exit 3) naming the step and the intact checkpoint.
    `"rollback"`: restores the latest checkpoint (or the initial weights), multiplies the learning rate
    by `lr_factor` and goes on, at most `max_rollbacks` times; the factor and the count are variables
    saved in the checkpoints, so they hold across restarts."""

    def __init__(self, on_nan="stop", lr_factor=0.5, max_rollbacks=3):
        self.on_nan, self.lr_factor, self.max_rollbacks = on_nan, lr_factor, max_rollbacks

    def before_step(self):
        return {"loss": self.trainer.g.train.loss}

    def after_step(self, values):
        if not math.isfinite(values["loss"]):
            self.diverged(f"loss is {values['loss']}")

    def after_epoch(self):
        if not self.trainer.sess.run(self.trainer.g.saving.all_finite):
            self.diverged("the weights are not finite")

    def diverged(self, what):
        t, g = self.trainer, self.trainer.g
        step = t.global_step
        latest = checkpoints.latest(t.checkpoint_dir) if t.checkpoint_dir else None
        rollbacks, scale = t.sess.run([g.rollback.count, g.rollback.learning_rate_scale])
        kept = f"the latest checkpoint {latest} is finite" if latest else "no checkpoint was written"
        if self.on_nan == "stop" or rollbacks >= self.max_rollbacks:
            tried = f" after {rollbacks} rollbacks" if self.on_nan == "rollback" else ""
            raise errors.TrainingDiverged(
                f"{what} at global step {step}{tried}: training diverged; {kept}. Lower "
                f"--initial_learning_rate{'' if self.on_nan == 'rollback' else ' or pass --on_nan=rollback'} "
                "and run the same command to continue")
        restored, path = t.restore()
        # The count and the factor compound across rollbacks, whatever the checkpoint held.
        scale *= self.lr_factor
        t.sess.run(g.rollback.set, {g.rollback.new_learning_rate_scale: scale, g.rollback.new_count: rollbacks + 1})
        print(f"{what} at global step {step}: rolled back to step {restored} ({path or t.initial_weights}), "
              f"learning rate x{scale:g} (rollback {rollbacks + 1} of at most {self.max_rollbacks})", flush=True)
        t.rewind(restored)
