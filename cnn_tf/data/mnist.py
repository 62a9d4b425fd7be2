"""MNIST and Fashion-MNIST: where their IDX files are found or fetched, and how they are split."""
import functools
import os

import numpy as np

from cnn_tf.data.dataset import Dataset, check_labels, register_dataset
from cnn_tf.data.download import download
from cnn_tf.data.idx import read_idx
from cnn_tf.errors import UserError

# file role -> (file name, SHA-256 of the official gzipped file)
_MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}
_FASHION_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
}

SPECS = {
    "mnist": dict(
        files=_MNIST_FILES,
        mirror="https://storage.googleapis.com/cvdf-datasets/mnist/",
        class_names=[str(d) for d in range(10)],
        how_to_get="put the four IDX files in --data_dir",
    ),
    "fashion_mnist": dict(
        files=_FASHION_FILES,
        mirror="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        class_names=["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        how_to_get="run `apt-get install dataset-fashion-mnist` or put the four IDX files in --data_dir",
    ),
}

SYSTEM_DIR = "/usr/share/datasets"


def cache_dir(name):
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cnn_tf", name)


def _find(file_name, directories):
    for directory in directories:
        for candidate in (file_name, file_name[: -len(".gz")]):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                return path
    return None


def locate_files(name, data_dir=None, download_mirror=None):
    """Returns {role: path}: --data_dir, then the system dir, then the cache; else downloads."""
    spec = SPECS[name]
    if data_dir:
        if not os.path.exists(data_dir):
            raise UserError(f"--data_dir={data_dir} does not exist; create it or point it at the {name} files")
        if not os.path.isdir(data_dir):
            raise UserError(f"--data_dir={data_dir} is a file, not a directory")
    # Debian's dataset-fashion-mnist installs /usr/share/datasets/fashion-mnist (a hyphen).
    system = [os.path.join(SYSTEM_DIR, n) for n in dict.fromkeys((name, name.replace("_", "-")))]
    directories = [d for d in (data_dir, *system, cache_dir(name)) if d]
    target = data_dir or cache_dir(name)
    mirror = (download_mirror or spec["mirror"]).rstrip("/") + "/"
    paths = {}
    for role, (file_name, sha256) in spec["files"].items():
        path = _find(file_name, directories)
        if path is None:
            try:
                path = download(mirror + file_name, os.path.join(target, file_name), sha256)
            except UserError as e:
                raise UserError(f"{name}: {file_name} is not in {', '.join(directories)} and {e}; "
                                f"to get it, {spec['how_to_get']}") from e
        paths[role] = path
    return paths


def load(name, data_dir=None, validation_size=5000, download_mirror=None):
    """train = the first N-validation_size training images, validation = the rest, test = t10k."""
    spec = SPECS[name]
    paths = locate_files(name, data_dir, download_mirror)
    arrays = {role: read_idx(path) for role, path in paths.items()}
    for part in ("train", "test"):
        images, labels = arrays[part + "_images"], arrays[part + "_labels"]
        if images.ndim != 3 or labels.ndim != 1:
            raise UserError(f"{paths[part + '_images']} / {paths[part + '_labels']}: expected images "
                            f"[N, H, W] and labels [N], got {images.shape} and {labels.shape}")
        if len(images) != len(labels):
            raise UserError(f"{paths[part + '_labels']} has {len(labels)} labels but "
                            f"{paths[part + '_images']} has {len(images)} images")
        check_labels(labels, len(spec["class_names"]), paths[part + "_labels"])
    train_x = arrays["train_images"][..., np.newaxis]
    train_y = arrays["train_labels"].astype(np.int64)
    if not 0 <= validation_size < len(train_x):
        raise UserError(f"--validation_size={validation_size} must be in [0, {len(train_x)}) for {name}")
    cut = len(train_x) - validation_size
    splits = {
        "train": (train_x[:cut], train_y[:cut]),
        "validation": (train_x[cut:], train_y[cut:]),
        "test": (arrays["test_images"][..., np.newaxis], arrays["test_labels"].astype(np.int64)),
    }
    return Dataset(name=name, splits=splits, class_names=list(spec["class_names"]),
                   source=os.path.dirname(paths["train_images"]))


register_dataset("mnist", functools.partial(load, "mnist"))
register_dataset("fashion_mnist", functools.partial(load, "fashion_mnist"))
