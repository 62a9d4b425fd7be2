"""Published ImageNet checkpoints (TF-Slim's), fetched and unpacked for --warm_start_from.

The archives are as slim's nets/mobilenet_v1.md, nets/mobilenet/README.md and README.md list them;
no digests are published, so `--sha256` pins one and the digest of each download is printed for that.
"""
import os
import re

from cnn_tf.data.archive import extract_folder
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
    downloaded beside DIR/NAME, checked against `sha256` when given, extracted safely beside it and
    renamed into place, then deleted, so a failure leaves nothing behind."""
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
    archive = download(url, os.path.join(root, f".{os.path.basename(url)}"), sha256)  # nothing left if it fails
    try:
        actual = digest(archive)["sha256"]
        extract_folder(archive, root, "", f"{name}.ckpt.index", f"slim's {name} checkpoint archive", name=name)
    finally:
        os.remove(archive)  # ours, just downloaded: unpacked or refused, it is not kept
    return checkpoint_in(target), actual
