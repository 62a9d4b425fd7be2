"""The layout of a train dir, and the few file operations that must not leave half a file.

    <train_dir>/flags.cfg            the effective flags of the run (a flagfile)
    <train_dir>/checkpoints/         model.ckpt-<global_step>.*, checkpoint
    <train_dir>/summaries/train|test|eval
    <train_dir>/eval/metrics.json    the latest `evaluate` result
"""
import os
import tempfile

from cnn_tf.errors import UserError


class TrainDir:
    def __init__(self, path):
        self.path = path
        self.flags_cfg = os.path.join(path, "flags.cfg")
        self.checkpoints = os.path.join(path, "checkpoints")
        self.checkpoint_prefix = os.path.join(self.checkpoints, "model.ckpt")
        self.eval = os.path.join(path, "eval")

    def summaries(self, name):
        return os.path.join(self.path, "summaries", name)

    def make(self):
        """Creates the directories, or says plainly why they cannot be written."""
        for directory in (self.path, self.checkpoints):
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as e:
                raise UserError(f"cannot create train dir {directory}: {e.strerror}; "
                                "choose another --train_dir") from e
        if not os.access(self.path, os.W_OK) or not os.access(self.checkpoints, os.W_OK):
            raise UserError(f"train dir {self.path} is not writable; choose another --train_dir")

    @classmethod
    def find(cls, checkpoint_dir):
        """`checkpoint_dir` may be a train dir or its checkpoints/ directory."""
        if not os.path.isdir(checkpoint_dir):
            raise UserError(f"--checkpoint_dir={checkpoint_dir} does not exist")
        for candidate in (checkpoint_dir, os.path.dirname(os.path.abspath(checkpoint_dir))):
            if os.path.isfile(os.path.join(candidate, "flags.cfg")):
                return cls(os.path.abspath(candidate))
        raise UserError(f"--checkpoint_dir={checkpoint_dir} is not a train dir (no flags.cfg in it or "
                        "its parent); point it at the --train_dir of a training run")


def write_atomic(path, text):
    """Writes `text` to `path` through a temporary file, so a crash leaves the old file or the new."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
