"""--learning_rate_schedule=plateau: a lower learning rate when the validation metric stalls."""
from cnn_tf import log
from cnn_tf.best_checkpoints import METRICS, mode_of
from cnn_tf.loop import Callback


class ReduceOnPlateau(Callback):
    """After `patience` epochs in which `metric` did not improve on its best, multiplies the
    learning rate by `factor` (never below `min_rate`) and counts again (Keras' ReduceLROnPlateau).
    The factor is a variable saved in the checkpoints; the best value and the count are this
    callback's state, saved with them: a resume goes on where the run was."""

    chief_only = True

    def __init__(self, metric, factor, patience, initial_rate, min_rate=0.0):
        self.key, self.mode = METRICS[metric][0], mode_of(metric)
        self.metric, self.factor, self.patience = metric, factor, patience
        self.min_scale = min_rate / initial_rate
        self.load_state(None)

    def state(self):
        return {"best": self.best, "wait": self.wait}

    def load_state(self, state):
        self.best, self.wait = (state or {}).get("best"), (state or {}).get("wait", 0)

    def after_epoch(self):
        validation = self.trainer.logs.epoch.get("validation")
        if not validation:
            return
        value = float(validation[self.key])
        if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        t, plateau = self.trainer, self.trainer.g.plateau
        scale = t.sess.run(plateau.learning_rate_scale)
        lowered = max(scale * self.factor, self.min_scale)
        self.wait = 0
        if lowered < scale:
            t.sess.run(plateau.set, {plateau.new_learning_rate_scale: lowered})
            log.info(f"{self.metric} did not improve for {self.patience} epochs: learning rate x{lowered:g} of "
                     f"--initial_learning_rate from global step {t.global_step}")
