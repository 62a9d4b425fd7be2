"""The best checkpoints of a run, apart from the rolling latest ones:

    <train_dir>/checkpoints/best/model.ckpt-<N>.*    the --keep_best best, by --best_metric
    <train_dir>/checkpoints/best/checkpoint           their state file, the best one last (so
                                                      tf.train.latest_checkpoint(best/) is the best)
    <train_dir>/checkpoints/best/best.json            {metric, mode, best: {step, epoch, value, checkpoint},
                                                      kept: [the same, best first]}; `checkpoint`
                                                      is the name in best/ (the train dir may move)

The ranking itself is saved with every checkpoint (the BestCheckpoint callback's state), so it
survives a kill and a resume; best/ is brought in line with it when a run starts. A best checkpoint
is a copy of a checkpoint the run has just saved: hard links where the filesystem has them (no
second copy on disk), else copies, each through a temporary name, the index last.
"""
import dataclasses
import json
import os

import tensorflow as tf

from cnn_tf import checkpoints, errors
from cnn_tf.errors import UserError
from cnn_tf.traindir import CHECKPOINT_NAME, is_local, write_atomic

METRICS = {"validation_accuracy": ("accuracy", "max"), "validation_loss": ("loss", "min")}
BEST_JSON = "best.json"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One best checkpoint: its global step, the epoch it ended, and the metric's value there."""
    step: int
    epoch: int
    value: float

    def better_than(self, other, mode):
        """Strictly better (a tie keeps the earlier one)."""
        return self.value > other.value if mode == "max" else self.value < other.value


def mode_of(metric):
    return METRICS[metric][1]


def rank(entries, mode):
    """Best first; among equal values, the earliest."""
    return sorted(entries, key=lambda e: (-e.value if mode == "max" else e.value, e.step))


def read(best_dir):
    """best.json of `best_dir` as {metric, mode, best, kept}, or None when there is none."""
    path = os.path.join(best_dir, BEST_JSON)
    try:
        with tf.io.gfile.GFile(path) as f:
            record = json.load(f)
    except tf.errors.NotFoundError:
        return None
    except (tf.errors.OpError, ValueError) as e:
        raise UserError(f"cannot read {path}: {e}; delete it (the next epoch of training writes it again)") from e
    return record if isinstance(record, dict) and record.get("best") else None


def _link_or_copy(source, target):
    """`target` as a hard link to `source` (no second copy on disk) or, where links fail, a copy;
    through a temporary name, so a file of best/ is whole or absent."""
    temporary = f"{target}.{os.getpid() % 10**8:08d}.tmp"
    try:
        if not is_local(target):
            raise OSError("not a local filesystem")
        os.link(source, temporary)
    except OSError:
        tf.io.gfile.copy(source, temporary, overwrite=True)
    tf.io.gfile.rename(temporary, target, overwrite=True)


def best_path(run_best_dir, record):
    """The best checkpoint best.json `record` names that is complete on disk (the first of its kept
    ones, found in `run_best_dir` wherever the train dir was moved), or None."""
    for entry in record.get("kept") or [record["best"]]:
        path = path_of(run_best_dir, entry["step"])
        if checkpoints.is_complete(path):
            return path, entry
    return None, None


def path_of(best_dir, step):
    return os.path.join(best_dir, f"{CHECKPOINT_NAME}-{step}")


class BestDir:
    """The best/ folder of a checkpoints directory, kept as `entries` (best first) say."""

    def __init__(self, checkpoint_dir, metric):
        self.path = os.path.join(checkpoint_dir, "best")
        self.metric, self.mode = metric, mode_of(metric)

    def add(self, source):
        """A copy of checkpoint `source` (a prefix) in best/, made complete before it counts."""
        target_prefix = path_of(self.path, checkpoints.step_of(source))
        try:
            tf.io.gfile.makedirs(self.path)
            for name in checkpoints.parts(source):  # the index last: a cut copy is incomplete, `repair` removes it
                _link_or_copy(os.path.join(os.path.dirname(source), name), os.path.join(self.path, name))
        except (OSError, tf.errors.OpError) as e:
            reason = e.strerror if isinstance(e, OSError) else errors.reason(e)
            raise UserError(f"could not copy {source} into {self.path}: {reason} (is the disk full?); the checkpoint "
                            "itself is intact. Free some space and run the same command to continue") from e
        return target_prefix

    def sync(self, entries, source=None, repair=True):
        """Makes best/ hold exactly `entries`: the files of any other best checkpoint go (a ranking a
        killed run had not yet saved, or one pushed out), an entry at `source`'s step whose copy a
        kill cut short is copied again (`repair`: what a cut copy left is cleared first, as
        cnn_tf.checkpoints.repair does). Returns (the entries whose files are there, best first;
        notes for warnings)."""
        present = tf.io.gfile.isdir(self.path)
        notes = checkpoints.repair(self.path) if repair and present else []
        if repair and present:
            for name in tf.io.gfile.listdir(self.path):  # best.json's own temporary files, from a kill mid-write
                if name.startswith(BEST_JSON + ".") and name.endswith(".tmp"):
                    tf.io.gfile.remove(os.path.join(self.path, name))
        kept = []
        for entry in entries:
            path = path_of(self.path, entry.step)
            if not checkpoints.is_complete(path) and source and checkpoints.step_of(source) == entry.step:
                self.add(source)
            if checkpoints.is_complete(path):
                kept.append(entry)
            else:
                notes.append(f"the best checkpoint {path} is gone (deleted by hand?): left out of {BEST_JSON}")
        self._write_index(kept)  # before anything goes: best.json never names a checkpoint that is not there
        wanted = {e.step for e in kept}
        for path in checkpoints.on_disk(self.path) if present or kept else []:
            if checkpoints.step_of(path) not in wanted:
                checkpoints.remove(path)
        return kept, notes

    def _write_index(self, entries):
        if not entries:
            if tf.io.gfile.exists(os.path.join(self.path, BEST_JSON)):
                tf.io.gfile.remove(os.path.join(self.path, BEST_JSON))
            return
        paths = [path_of(self.path, e.step) for e in entries]
        state_file = os.path.join(self.path, checkpoints.STATE_FILE)
        if not tf.io.gfile.exists(state_file) or checkpoints.listed(self.path) != list(reversed(paths)):
            checkpoints.write_state(self.path, list(reversed(paths)))  # the best one last: the state's "latest"
        kept = [dict(dataclasses.asdict(e), checkpoint=os.path.basename(p)) for e, p in zip(entries, paths)]
        text = json.dumps({"metric": self.metric, "mode": self.mode, "best": kept[0], "kept": kept}, indent=2) + "\n"
        index = os.path.join(self.path, BEST_JSON)
        if not tf.io.gfile.exists(index) or tf.io.gfile.GFile(index).read() != text:  # unchanged: left as it is
            write_atomic(index, text)
