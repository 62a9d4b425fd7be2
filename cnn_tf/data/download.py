"""Downloads with a SHA-256 check; a failure never leaves a partial file behind."""
import hashlib
import os
import tempfile
import urllib.error
import urllib.request

from cnn_tf.errors import UserError


def download(url, dest, sha256, timeout=60):
    """Fetches `url` to `dest` through a temporary file renamed into place once its hash matches
    (`sha256` None: any, for archives whose digest is not published)."""
    directory = os.path.dirname(os.path.abspath(dest))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(dest) + ".", suffix=".part", dir=directory)
    except OSError as e:
        raise UserError(f"cannot write to {directory}: {e.strerror}; pass a writable --data_dir") from e
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                h.update(block)
                out.write(block)
        if sha256 is not None and h.hexdigest() != sha256:
            raise UserError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {h.hexdigest()}; "
                "the mirror may be corrupt, try again later or another --download_mirror"
            )
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as e:
        raise UserError(f"download of {url} failed: {getattr(e, 'reason', e)}") from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest
