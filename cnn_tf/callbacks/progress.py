"""What the console shows of a run: a progress bar per epoch, one line per epoch."""
import math
import sys
import time

import tqdm

from cnn_tf.loop import Callback


# Loss first, then accuracy, then speed, and no tqdm rate field: the bar shrinks to fit 80 columns
# and the numbers stay whole (tqdm sorts a postfix given as keywords, and cuts what overflows).
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"


class Progress(Callback):
    """A tqdm bar while an epoch runs (loss, accuracy, images/s; on a terminal only, unless `file`
    is given), then one line: the epoch's mean train loss and accuracy and images/s (TrainMeans'),
    what validation put in `trainer.logs.epoch`, and the epoch's wall time. An epoch begun mid-way
    (a rollback) says over how many steps its means are."""

    def __init__(self, enabled=True, file=None, ncols=None, mininterval=0.1):
        self.enabled, self.file, self.ncols, self.mininterval, self.bar = enabled, file, ncols, mininterval, None

    def before_epoch(self):
        t = self.trainer
        self._close_bar()
        self.started = time.perf_counter()
        self.steps, self.train_seconds = 0, 1e-9
        self.bar = tqdm.tqdm(total=t.steps_per_epoch, initial=t.step_in_epoch, desc=f"epoch {t.epoch + 1}/{t.num_epochs}",
                             disable=None if self.enabled and not self.file else not self.enabled,
                             leave=False, file=self.file, ncols=self.ncols, mininterval=self.mininterval,
                             bar_format=BAR_FORMAT)

    def before_step(self):
        return {"loss": self.trainer.g.train.loss, "accuracy": self.trainer.g.train.accuracy}

    def after_step(self, values):
        if not math.isfinite(values["loss"]):
            return
        self.train_seconds = time.perf_counter() - self.started  # not validation's or the checkpoint's
        self.steps += 1
        if self.steps % 10 == 1 or self.trainer.step_in_epoch == self.trainer.steps_per_epoch:
            rate = self.steps * self.trainer.feed.batch_size / self.train_seconds
            self.bar.set_postfix_str(f"loss {values['loss']:.4f} acc {values['accuracy']:.4f} {rate:.0f} img/s",
                                     refresh=False)
        self.bar.update(1)  # redraws (at most every `mininterval` seconds) with the numbers above

    def after_epoch(self):
        t = self.trainer
        self._close_bar()
        seconds = time.perf_counter() - self.started
        train = t.logs.epoch["train"]
        since = f" ({train['steps']} steps, from step {train['first_step']} of {t.steps_per_epoch})" if train["first_step"] else ""
        line = (f"epoch {t.epoch + 1}/{t.num_epochs}  step {t.global_step}  train loss {train['loss']:.4f} "
                f"acc {train['accuracy']:.4f}{since}  {train['images_per_sec']:.0f} img/s")
        validation = t.logs.epoch.get("validation")
        if validation:
            line += (f"  validation loss {validation['loss']:.4f} acc {validation['accuracy']:.4f} "
                     f"in {validation['seconds']:.1f}s")
        print(f"{line}  ({seconds:.1f}s)", file=self.file or sys.stdout, flush=True)

    def after_train(self, state):
        self._close_bar()

    def _close_bar(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
