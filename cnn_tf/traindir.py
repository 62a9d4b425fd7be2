"""The layout of a train dir, and the few file operations that must not leave half a file.

    <train_dir>/flags.cfg            the effective flags of the run (a flagfile)
    <train_dir>/run.json             the run manifest: its data, classes, shape, mean (cnn_tf.manifest)
    <train_dir>/lock                 held by the training process (cnn_tf.lock)
    <train_dir>/status.json          running | finished | stopped | failed, at which global step
    <train_dir>/checkpoints/         model.ckpt-<global_step>.*, checkpoint
    <train_dir>/checkpoints/best/    the best checkpoints and best.json (cnn_tf.best_checkpoints)
    <train_dir>/history.csv          one row per epoch (cnn_tf.callbacks.history)
    <train_dir>/summaries/train|test|eval
    <train_dir>/eval/metrics.json    the latest `evaluate` result
"""
import json
import os
import tempfile

import tensorflow as tf

from cnn_tf import errors
from cnn_tf.errors import UserError


CHECKPOINT_NAME = "model.ckpt"  # checkpoints/model.ckpt-<global step>.*


class TrainDir:
    def __init__(self, path):
        self.path = path
        self.flags_cfg = os.path.join(path, "flags.cfg")
        self.run_json = os.path.join(path, "run.json")
        self.checkpoints = os.path.join(path, "checkpoints")
        self.best = os.path.join(self.checkpoints, "best")
        self.history_csv = os.path.join(path, "history.csv")
        self.eval = os.path.join(path, "eval")
        self.status_json = os.path.join(path, "status.json")

    def summaries(self, name):
        return os.path.join(self.path, "summaries", name)

    def make(self):
        """Creates the directories, or says plainly why they cannot be written."""
        self.created = [d for d in (self.path, self.checkpoints) if not tf.io.gfile.exists(d)]
        for directory in (self.path, self.checkpoints):
            try:
                tf.io.gfile.makedirs(directory)
            except (OSError, tf.errors.OpError) as e:
                reason = e.strerror if isinstance(e, OSError) else errors.reason(e)
                raise UserError(f"cannot create train dir {directory}: {reason}; "
                                "choose another --train_dir") from e
        if is_local(self.path) and (not os.access(self.path, os.W_OK) or not os.access(self.checkpoints, os.W_OK)):
            raise UserError(f"train dir {self.path} is not writable; choose another --train_dir")

    def remove_if_empty(self):
        """After a run that failed to start: the directories `make` created, if they are still empty (a full
        disk leaves nothing behind; a directory with anything in it is never touched)."""
        for directory in reversed(getattr(self, "created", [])):
            try:
                if is_local(directory):
                    os.rmdir(directory)  # refuses a directory that is not empty
            except OSError:
                pass

    def write_status(self, state, global_step):
        """What the training process is doing, for `evaluate --watch` and for people."""
        write_atomic(self.status_json, json.dumps(
            {"state": state, "global_step": int(global_step), "pid": os.getpid()}) + "\n")

    def status(self):
        try:
            with tf.io.gfile.GFile(self.status_json) as f:
                return json.load(f)
        except (OSError, ValueError, tf.errors.OpError):
            return {}

    @classmethod
    def find(cls, checkpoint_dir):
        """`checkpoint_dir` may be a train dir or its checkpoints/ directory."""
        if not tf.io.gfile.isdir(checkpoint_dir):
            if tf.io.gfile.exists(checkpoint_dir):
                raise UserError(f"--checkpoint_dir={checkpoint_dir} is a file, not a train dir; give the --train_dir "
                                "of a training run (a checkpoint goes in --checkpoint_path)")
            raise UserError(f"--checkpoint_dir={checkpoint_dir} does not exist")
        checkpoint_dir = absolute(checkpoint_dir).rstrip("/")
        for candidate in (checkpoint_dir, os.path.dirname(checkpoint_dir)):
            if tf.io.gfile.exists(os.path.join(candidate, "flags.cfg")):
                return cls(candidate)
        raise UserError(f"--checkpoint_dir={checkpoint_dir} is not a train dir (no flags.cfg in it or "
                        "its parent); point it at the --train_dir of a training run")


def is_local(path):
    """A path of this machine's filesystem, not a URL of another TensorFlow filesystem (gs://, ...)."""
    return "://" not in path


def absolute(path):
    return os.path.abspath(path) if is_local(path) else path


def write_atomic(path, text):
    """Writes `text` (str or bytes) to `path` through a temporary file, so a crash leaves the old
    file or the new. Another filesystem TensorFlow supports (a URL) goes through tf.io.gfile."""
    if not is_local(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with tf.io.gfile.GFile(tmp, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
        tf.io.gfile.rename(tmp, path, overwrite=True)
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def drop_events_after(directory, step):
    """Rewrites the event files in `directory` without the summaries a killed run wrote after
    `step`, the step training resumes from (and without a record the kill cut in half), so no
    reader of the files, TensorBoard or other, sees a step twice or a curve go back. At step 0
    (a start over) the graph goes too: it is written again."""
    for path in sorted(tf.io.gfile.glob(os.path.join(directory, "events.out.tfevents.*"))):
        kept, dropped = [], False
        try:
            for record in tf.compat.v1.io.tf_record_iterator(path):  # no graph: ours is finalized
                event = tf.compat.v1.Event.FromString(record)
                if event.step > step and (event.summary.value or event.HasField("session_log")) or (
                        step == 0 and event.graph_def):
                    dropped = True
                else:
                    kept.append(record)
        except tf.errors.DataLossError:
            dropped = True
        if dropped:
            with tf.io.TFRecordWriter(path + ".tmp") as writer:
                for record in kept:
                    writer.write(record)
            tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
