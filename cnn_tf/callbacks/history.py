"""history.csv: one row per completed epoch, the run's record in a form any tool reads."""
import csv
import io
import time

import tensorflow as tf

from cnn_tf.loop import Callback
from cnn_tf.traindir import write_atomic

COLUMNS = ("epoch", "global_step", "wall_time", "learning_rate", "train_loss", "train_accuracy",
           "validation_loss", "validation_accuracy", "validation_top5_accuracy", "images_per_sec")


class History(Callback):
    """Writes `<train_dir>/history.csv` after each epoch, before its checkpoint is saved: epoch,
    global step, wall time (seconds since 1970), learning rate, the epoch's train and validation
    loss and accuracy (and validation top-5 accuracy, empty for 5 classes or fewer), images/s. When a run starts, rows past its checkpoint's step (a kill after
    the row, before the checkpoint) go: a resumed run has exactly one row per epoch, never a
    duplicate or a gap (Keras' CSVLogger(append=True) repeats epochs after a crash). The whole file
    is rewritten atomically each time: a kill never leaves half a row. With `recall_of` (class
    names: the classes are unbalanced, or weighted), a validation_recall_<class> column for each."""

    chief_only = True

    def __init__(self, path, recall_of=None):
        self.path, self.recall_of = path, list(recall_of or [])
        self.columns = COLUMNS + tuple(f"validation_recall_{name}" for name in self.recall_of)

    def before_train(self):
        self.rows = [row for row in _read(self.path) if _step(row) is not None and _step(row) <= self.trainer.global_step]
        self._write()

    def after_rewind(self):
        self.before_train()

    def after_epoch(self):
        t = self.trainer
        train, validation = t.logs.epoch.get("train", {}), t.logs.epoch.get("validation", {})
        values = {"epoch": t.epoch + 1, "global_step": t.global_step, "wall_time": f"{time.time():.3f}",
                  "learning_rate": f"{float(t.sess.run(t.g.train_ops.learning_rate)):.6g}",
                  "images_per_sec": _number(train.get("images_per_sec"), "{:.1f}")}
        for split, metrics in (("train", train), ("validation", validation)):
            for name in ("loss", "accuracy", "top5_accuracy"):
                values[f"{split}_{name}"] = _number(metrics.get(name), "{:.6f}")
        confusion = validation.get("confusion")
        for k, name in enumerate(self.recall_of):
            support = confusion[k].sum() if confusion is not None else 0
            values[f"validation_recall_{name}"] = _number(confusion[k, k] / support if support else None, "{:.6f}")
        self.rows.append({column: str(values[column]) for column in self.columns})
        self._write()

    def _write(self):
        if not self.rows and not tf.io.gfile.exists(self.path):
            return
        out = io.StringIO()
        writer = csv.DictWriter(out, self.columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_atomic(self.path, out.getvalue())


def _number(value, form):
    return "" if value is None else form.format(value)


def _step(row):
    try:
        return int(row.get("global_step") or "")
    except ValueError:
        return None


def _read(path):
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as f:
        return list(csv.DictReader(io.StringIO(f.read())))
