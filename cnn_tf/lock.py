"""The exclusive lock a training process holds on its train dir, `<train_dir>/lock`, and the one a
conversion holds beside its output (`<output_dir>.partial.lock`).

An flock, so the kernel releases it when the process dies however it dies (a stale file after a
SIGKILL is harmless: it is not locked). The file says who holds it (pid, host, start time) for the
message a second trainer gets. Readers (evaluate, export, predict) take no lock.
"""
import datetime
import fcntl
import json
import os
import socket

from cnn_tf.errors import UserError
from cnn_tf.traindir import is_local

LOCK_FILE = "lock"


class FileLock:
    """An exclusive flock on the file `path` (made if missing, deleted on release); `busy` is the
    message when another process holds it, formatted with {holder} and {path}."""

    def __init__(self, path, busy):
        self.path, self.busy, self.fd = path, busy, None

    def acquire(self):
        """Takes the lock (again: a no-op), or raises UserError (exit 2) naming the process holding it.
        A path on another filesystem TensorFlow supports (a URL) cannot be flocked: no lock."""
        if self.fd is not None or not is_local(self.path):
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise UserError(f"cannot lock {self.path}: {e.strerror}; choose another place to write") from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise UserError(self.busy.format(holder=holder, path=self.path)) from None
            # Its holder may have deleted the file between our open and our lock: lock the file at the path.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.datetime.now(
                datetime.timezone.utc).isoformat(timespec="seconds")}) + "\n").encode())
        except OSError as e:  # a full disk: the lock holds, but say so rather than run on a disk that is full
            self.release()
            raise UserError(f"cannot write {self.path}: {e.strerror}; free some space and run the same command "
                            "again") from e
        return self

    def release(self):
        """Deletes the file while still holding it (a process that opened it before then sees it is gone)."""
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


class TrainDirLock(FileLock):
    """Held by the training process of a train dir (or a cluster's chief) for its whole life."""

    def __init__(self, train_dir):
        super().__init__(os.path.join(train_dir, LOCK_FILE), f"train dir {train_dir} is in use by another training "
                         "process ({holder}; {path} is locked): wait for it to end, or choose another --train_dir")


def _holder(fd):
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode())
        return f"pid {info['pid']} on {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet said its pid"
