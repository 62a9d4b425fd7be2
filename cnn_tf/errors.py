"""The exception types for mistakes a user can fix (cnn_tf.cli reports them as one line)."""
import errno
import re

from cnn_tf import exit_codes


class UserError(Exception):
    """Bad input: the message names the file, flag or value and says what to do."""

    exit_code = exit_codes.USER_ERROR


class TrainingDiverged(UserError):
    """The loss or the weights became NaN or infinite."""

    exit_code = exit_codes.DIVERGED


def reason(error):
    """The line of a TensorFlow (or other) error that says what went wrong. A graph-mode OpError's
    message starts "Graph execution error:" and a trace of where the op was defined; the cause is the
    last line of its own, e.g. "Read less bytes than requested"."""
    message = str(getattr(error, "message", None) or error)
    lines = [line.strip() for line in message.splitlines() if line.strip() and not line.startswith((" ", "\t"))]
    own = [line for line in lines if not line.startswith(("Graph execution error", "Detected at node", "Node:", "[["))]
    line = (own or lines or [type(error).__name__])[-1 if own else 0]
    # An error inside tf.data says where in the pipeline first; a failed assertion lists its operands.
    line = re.sub(r"^Error in user-defined function .*? with iterator: [\w:]+: ", "", line)
    return re.sub(r"^assertion failed: \[(.*?)\].*", r"\1", line)


_DISK = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is used up",
         errno.EROFS: "the file system is read-only"}


def disk_error(error):
    """A UserError for an OSError or TensorFlow error that a full or read-only disk caused, else None:
    the user frees space or picks another place; every write that failed removed its own partial file."""
    if isinstance(error, OSError) and error.errno in _DISK:
        where = f" writing {error.filename}" if error.filename else ""
        return UserError(f"{_DISK[error.errno]}{where}; free some space (or choose a writable place) and run the "
                         "same command again: nothing it had written is lost")
    text = reason(error)
    for words in ("No space left on device", "Disk quota exceeded", "Read-only file system"):
        if words in text:
            return UserError(f"{text}; free some space (or choose a writable place) and run the same command again: "
                             "nothing it had written is lost")
    return None
