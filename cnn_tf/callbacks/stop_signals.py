"""SIGINT and SIGTERM stop training after the current step, with a checkpoint there."""
import os
import signal

from cnn_tf import exit_codes, log
from cnn_tf.loop import Callback


class StopOnSignal(Callback):
    """The first SIGINT or SIGTERM asks the loop to stop after the current step (the Checkpoint
    callback then saves there; the exit code is 128 + the signal); a second one quits at once, which
    loses nothing complete either (see cnn_tf.checkpoints). Last in the list: its handlers are put
    back only after every other callback has ended the run."""

    def before_train(self):
        self.signum = None
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum, frame):
        if self.signum is not None:
            log.info(f"\n{signal.Signals(signum).name} again: quitting without saving")
            os._exit(exit_codes.of_signal(signum))
        self.signum = signum
        log.info(f"\n{signal.Signals(signum).name}: stopping after this step (send it again to quit at once)")

    def _check(self):
        if self.signum is not None:
            self.trainer.request_stop(signal.Signals(self.signum).name, exit_codes.of_signal(self.signum))

    def after_step(self, values):
        self._check()

    def after_epoch(self):  # a signal during validation or the checkpoint: stop before the next step
        self._check()

    def after_train(self, state):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
