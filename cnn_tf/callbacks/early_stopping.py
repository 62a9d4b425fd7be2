"""Stopping a run whose validation metric has stopped improving."""
from cnn_tf.best_checkpoints import METRICS, mode_of
from cnn_tf.loop import Callback


class EarlyStopping(Callback):
    """Counts the epochs after `start_epoch` whose `metric` did not improve on the best so far by
    more than `min_delta`; at `patience` of them the run finishes (exit 0) with the reason. The best
    value and the count are this callback's state, saved with every checkpoint, so they survive a
    kill and a resume (Keras' EarlyStopping starts over), and a finished run stays finished when its
    command is run again (until a larger --early_stopping_patience is given)."""

    chief_only = True

    def __init__(self, patience, metric, min_delta=0.0, start_epoch=0):
        self.patience, self.metric, self.min_delta, self.start_epoch = patience, metric, min_delta, start_epoch
        self.key, self.mode = METRICS[metric][0], mode_of(metric)
        self.load_state(None)

    def state(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state(self, state):
        state = state or {}
        self.best, self.best_epoch, self.wait = state.get("best"), state.get("best_epoch"), state.get("wait", 0)

    def before_train(self):
        self._check()

    def after_epoch(self):
        validation = self.trainer.logs.epoch.get("validation")
        epoch = self.trainer.epoch + 1
        if not validation or epoch <= self.start_epoch:
            return
        value = float(validation[self.key])
        gain = (value - self.best if self.mode == "max" else self.best - value) if self.best is not None else None
        if gain is None or gain > self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
        else:
            self.wait += 1
        self._check()

    def _check(self):
        if self.wait >= self.patience:
            self.trainer.request_stop(
                f"early stopping: {self.metric} did not improve by more than {self.min_delta:g} for {self.wait} "
                f"epoch{'s' if self.wait > 1 else ''} (best {self.best:.4f} at epoch {self.best_epoch})", finished=True)
