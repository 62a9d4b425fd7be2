"""The epoch's training loss, accuracy and speed, from every step's own values."""
import math
import time

from cnn_tf.loop import Callback


class TrainMeans(Callback):
    """Averages the loss and accuracy of the epoch's training steps (the non-finite ones left out)
    and times them (not validation's or the checkpoint's time): `trainer.logs.epoch["train"]` =
    {loss, accuracy, steps, first_step, images_per_sec}. A run stopped mid-epoch keeps its sums in
    the checkpoint's state, so the resumed epoch's means cover all of it. On every worker of a
    cluster: each one's console line needs them."""

    def setup(self, trainer):
        super().setup(trainer)
        self._saved, self.steps, self.loss_sum, self.accuracy_sum, self.seconds, self.first_step = None, 0, 0.0, 0.0, 0.0, 0

    def state(self):
        t = self.trainer
        return {"global_step": t.global_step, "steps": self.steps, "loss_sum": self.loss_sum,
                "accuracy_sum": self.accuracy_sum, "seconds": self.seconds, "first_step": self.first_step}

    def load_state(self, state):
        self._saved = state

    def before_epoch(self):
        t, saved = self.trainer, self._saved
        self._saved = None
        if saved and t.step_in_epoch and saved["global_step"] == t.global_step:  # resumed mid-epoch
            self.steps, self.loss_sum, self.accuracy_sum = saved["steps"], saved["loss_sum"], saved["accuracy_sum"]
            self.seconds, self.first_step = saved["seconds"], saved["first_step"]
        else:
            self.steps, self.loss_sum, self.accuracy_sum, self.seconds = 0, 0.0, 0.0, 0.0
            self.first_step = t.step_in_epoch

    def before_step(self):
        self._started = time.perf_counter()
        return {"loss": self.trainer.g.train.loss, "accuracy": self.trainer.g.train.accuracy}

    def after_step(self, values):
        self.seconds += time.perf_counter() - self._started  # the steps' own time: not a mid-epoch validation's
        if math.isfinite(values["loss"]):
            self.steps += 1
            self.loss_sum += float(values["loss"])
            self.accuracy_sum += float(values["accuracy"])

    def after_epoch(self):
        t, steps = self.trainer, max(self.steps, 1)
        t.logs.epoch["train"] = {"loss": self.loss_sum / steps, "accuracy": self.accuracy_sum / steps,
                                 "steps": self.steps, "first_step": self.first_step,
                                 "images_per_sec": self.steps * t.feed.batch_size / max(self.seconds, 1e-9)}
