"""Published ImageNet checkpoints (TF-Slim's), fetched and unpacked for --warm_start_from.

The archives are as slim's nets/mobilenet_v1.md, nets/mobilenet/README.md and README.md list them;
no digests are published, so `--sha256` pins one and the digest of each download is printed for that.
"""
import os
import re
import shutil
import tempfile

from cnn_tf.data.archive import safe_extract
from cnn_tf.data.download import download
from cnn_tf.data.fingerprint import digest
from cnn_tf.data.mnist import cache_dir
from cnn_tf.errors import UserError

_V1 = "http://download.tensorflow.org/models/mobilenet_v1_2018_08_02/"
_V2 = "https://storage.googleapis.com/mobilenet_v2/checkpoints/"
PUBLISHED = {
    **{f"mobilenet_v1_{d}_{size}": f"{_V1}mobilenet_v1_{d}_{size}.tgz"
       for d in ("1.0", "0.75", "0.5", "0.25") for size in (224, 192, 160, 128)},
    **{f"mobilenet_v2_{d}_224": f"{_V2}mobilenet_v2_{d}_224.tgz" for d in ("1.4", "1.0", "0.75", "0.5", "0.35")},
    "resnet_v1_50": "http://download.tensorflow.org/models/resnet_v1_50_2016_08_28.tar.gz",
}


def checkpoint_in(folder):
    """The checkpoint prefix (PATH.ckpt, the name before .index) of the one checkpoint in `folder`, or None."""
    found = sorted(n[:-len(".index")] for n in os.listdir(folder) if n.endswith(".index")) if os.path.isdir(folder) \
        else []
    return os.path.join(folder, found[0]) if found else None


def fetch_weights(name, data_dir=None, download_mirror=None, sha256=None):
    """(checkpoint prefix, the archive's SHA-256 or None when it was there already): `name`'s archive
    downloaded into a temporary folder beside DIR/NAME, checked against `sha256` when given, extracted
    safely and renamed into place, so a failure leaves nothing behind."""
    if name not in PUBLISHED:
        raise UserError(f"--weights={name} is not one of the published checkpoints: {', '.join(PUBLISHED)}")
    if sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise UserError(f"--sha256={sha256} is not a SHA-256 digest (64 lowercase hex digits)")
    root = data_dir or cache_dir("weights")
    target = os.path.join(root, name)
    found = checkpoint_in(target)
    if found:
        return found, None
    if os.path.exists(target):
        raise UserError(f"{target} exists but holds no checkpoint (.index); move it away and fetch again")
    url = PUBLISHED[name]
    if download_mirror:
        url = download_mirror.rstrip("/") + "/" + os.path.basename(url)
    try:
        os.makedirs(root, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{name}-", dir=root)
    except OSError as e:
        raise UserError(f"cannot write to {root}: {e.strerror}; pass a writable --data_dir") from e
    try:
        archive = download(url, os.path.join(staging, os.path.basename(url)), sha256)
        actual = digest(archive)["sha256"]
        safe_extract(archive, os.path.join(staging, "unpacked"))
        if checkpoint_in(os.path.join(staging, "unpacked")) is None:
            raise UserError(f"{url} holds no checkpoint (no .index file at its top level)")
        os.replace(os.path.join(staging, "unpacked"), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return checkpoint_in(target), actual
