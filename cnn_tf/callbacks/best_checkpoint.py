"""The best checkpoints by a validation metric, kept apart from the rolling latest ones."""
import dataclasses

from cnn_tf import checkpoints, log
from cnn_tf.best_checkpoints import METRICS, BestDir, Entry, rank
from cnn_tf.loop import Callback


class BestCheckpoint(Callback):
    """After each epoch's validation, ranks the epoch by `metric` (validation_accuracy: higher is
    better; validation_loss: lower); when it is among the `keep` best, the checkpoint saved at that
    step is copied into checkpoints/best/ (cnn_tf.best_checkpoints). The ranking is this callback's
    state, saved with every checkpoint: a resumed run knows its best so far (Keras' ModelCheckpoint
    forgets it). `trainer.logs.best` is the best Entry so far."""

    chief_only = True

    def __init__(self, checkpoint_dir, keep, metric):
        self.best_dir, self.keep, self.metric = BestDir(checkpoint_dir, metric), keep, metric
        self.entries, self._pending = [], None

    def state(self):
        return {"metric": self.metric, "entries": [dataclasses.asdict(e) for e in self.entries]}

    def load_state(self, state):
        self.entries = [Entry(**e) for e in (state or {}).get("entries", [])]
        if state and state.get("metric") != self.metric:  # --best_metric must match on a resume: a guard
            self.entries = []
        self.trainer.logs.best = rank(self.entries, self.best_dir.mode)[0] if self.entries else None

    def before_train(self):
        self._sync()

    def after_rewind(self):
        self._sync()

    def _sync(self):
        t = self.trainer
        latest = checkpoints.latest(t.checkpoint_dir)  # what the run restored: at a resume, or a rollback
        source = latest if latest and checkpoints.step_of(latest) == t.global_step else None
        self.entries, notes = self.best_dir.sync(rank(self.entries, self.best_dir.mode)[:self.keep], source)
        for note in notes:
            log.warning(note)
        self.trainer.logs.best = self.entries[0] if self.entries else None

    def after_epoch(self):
        validation = self.trainer.logs.epoch.get("validation")
        self._pending = None
        if not validation:
            return
        t = self.trainer
        entry = Entry(step=t.global_step, epoch=t.epoch + 1, value=float(validation[METRICS[self.metric][0]]))
        ranked = rank([e for e in self.entries if e.step != entry.step] + [entry], self.best_dir.mode)[:self.keep]
        if entry in ranked:
            self.entries, self._pending = ranked, entry

    def after_save(self, path):
        if self._pending is not None and checkpoints.step_of(path) == self._pending.step:
            self.best_dir.add(path)
            self.entries, notes = self.best_dir.sync(self.entries, repair=False)
            for note in notes:
                log.warning(note)
            self.trainer.logs.best, self._pending = self.entries[0], None
