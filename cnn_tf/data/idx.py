"""Reader for the IDX format of MNIST and Fashion-MNIST (gzipped or not)."""
import gzip
import zlib

import numpy as np

from cnn_tf.errors import UserError

# Third byte of the magic number -> element type (the IDX spec's table).
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


MAX_BYTES = 4 << 30  # what an IDX file may decode to: past it, it is damaged or a gzip bomb


def _gunzip(raw, path):
    """The decompressed IDX bytes, never more than its header declares (plus one byte, to see padding):
    a small gzip file that would expand to gigabytes is refused from its header."""
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = stream.decompress(raw, 4)
    if len(out) == 4 and out[:2] == b"\0\0" and out[2] in _DTYPES:
        out += stream.decompress(stream.unconsumed_tail, 4 * out[3])
        if len(out) == 4 + 4 * out[3]:
            shape = np.frombuffer(out, ">u4", out[3], 4)
            size = len(out) + int(np.prod(shape.astype(np.float64))) * np.dtype(_DTYPES[out[2]]).itemsize
            if size > MAX_BYTES:
                raise UserError(f"{path}: its header declares {tuple(int(d) for d in shape)}, {size:,} bytes decoded, "
                                f"over the limit of {MAX_BYTES:,}: damaged, or not MNIST-like data")
            while len(out) <= size and (stream.unconsumed_tail or not stream.eof):
                chunk = stream.decompress(stream.unconsumed_tail, size + 1 - len(out))
                if not chunk:
                    break
                out += chunk
            return out
    return out + stream.decompress(stream.unconsumed_tail, MAX_BYTES)  # not IDX: the magic check names it


def read_idx(path):
    """Returns the array stored in the IDX file at `path`; raises UserError naming the file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
            raw = _gunzip(raw, path)
    except OSError as e:  # also gzip.BadGzipFile, EOFError is below
        raise UserError(f"cannot read {path}: {e}") from e
    except (EOFError, zlib.error) as e:  # cut short, or damaged inside
        raise UserError(f"{path} is a truncated or damaged gzip file ({e}); delete it and fetch it again") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise UserError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'none'})")
    dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated: its header needs {header} bytes, it has {len(raw)}")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise UserError(
            f"{path} is truncated or padded: shape {shape} needs {expected} bytes, it has {len(raw)}"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def write_idx(path, array):
    """Writes `array` (uint8) as an IDX file, gzipped when `path` ends in .gz (for tests, tools)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())
