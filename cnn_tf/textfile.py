"""Text files people write (labels CSVs, flagfiles, flags.cfg, labels.txt): UTF-8, a byte-order mark
accepted; anything else is one line naming the file and the line, never a UnicodeDecodeError."""
import os

import tensorflow as tf

from cnn_tf.errors import UserError


def read_text(path):
    """The text of `path` (any filesystem TensorFlow reads), without a leading UTF-8 BOM. A FIFO or a
    device is refused, not read: reading one could wait forever."""
    check_regular(path)
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    return decode(data, path)


def decode(data, path):
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise UserError(f"{path}:{line}: byte 0x{data[e.start]:02x} at column {column} is not UTF-8 (the file is in "
                        "another encoding, e.g. Latin-1); save it as UTF-8") from None



def check_regular(path):
    """A local path that exists but is no regular file or folder (a FIFO, device, socket) is refused."""
    if "://" not in path and os.path.exists(path) and not (os.path.isfile(path) or os.path.isdir(path)):
        raise UserError(f"{path} is not a regular file (a FIFO, device or socket): not read")
