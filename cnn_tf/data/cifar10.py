"""CIFAR-10 from its official *binary* distribution.

Never the Python version: that one is a pickle, and unpickling a downloaded file runs its code.
Each record of the binary files is 1 label byte and 3,072 pixel bytes (1,024 red, then green, then
blue, each 32x32 row-major).
"""
import os

import numpy as np

from cnn_tf.data.archive import extract_folder, find_or_download
from cnn_tf.data.dataset import Dataset, check_labels, register_dataset
from cnn_tf.data.mnist import SYSTEM_DIR, cache_dir
from cnn_tf.errors import UserError

ARCHIVE = "cifar-10-binary.tar.gz"
SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
MIRROR = "https://www.cs.toronto.edu/~kriz/"
FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST_FILE = "test_batch.bin"
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
RECORD = 1 + 32 * 32 * 3


def locate_folder(data_dir=None, download_mirror=None):
    """The extracted cifar-10-batches-bin folder: found in --data_dir, /usr/share/datasets/cifar10
    or the cache, extracted from an archive found there, or downloaded and extracted."""
    if data_dir and not os.path.isdir(data_dir):
        raise UserError(f"--data_dir={data_dir} is not a directory; create it or point it at CIFAR-10")
    directories = [d for d in (data_dir, os.path.join(SYSTEM_DIR, "cifar10"), cache_dir("cifar10")) if d]
    for directory in directories:
        if os.path.isfile(os.path.join(directory, FOLDER, TEST_FILE)):
            return os.path.join(directory, FOLDER)
    target = data_dir or cache_dir("cifar10")
    archive = find_or_download("cifar10", ARCHIVE, SHA256, directories, target, download_mirror or MIRROR, FOLDER)
    extract_folder(archive, target, FOLDER, TEST_FILE, "the CIFAR-10 binary archive")
    return os.path.join(target, FOLDER)


def read_batches(paths):
    """Reads binary batch files; returns uint8 images [N, 32, 32, 3] and int64 labels."""
    records = []
    for path in paths:
        try:
            raw = np.fromfile(path, np.uint8)
        except OSError as e:
            raise UserError(f"cannot read {path}: {e.strerror}") from e
        if raw.size == 0 or raw.size % RECORD:
            raise UserError(f"{path} is truncated or not a CIFAR-10 binary batch: {raw.size} bytes is not "
                            f"a whole number of {RECORD}-byte records")
        records.append(raw.reshape(-1, RECORD))
        check_labels(records[-1][:, 0], len(CLASS_NAMES), path)
    records = np.concatenate(records)
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), records[:, 0].astype(np.int64)


def load(data_dir=None, validation_size=5000, download_mirror=None):
    """train = the first 50,000 - validation_size training images, validation = the rest."""
    folder = locate_folder(data_dir, download_mirror)
    missing = [f for f in TRAIN_FILES + [TEST_FILE] if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise UserError(f"{folder} lacks {', '.join(missing)}; delete the folder and fetch CIFAR-10 again")
    train_x, train_y = read_batches([os.path.join(folder, f) for f in TRAIN_FILES])
    test_x, test_y = read_batches([os.path.join(folder, TEST_FILE)])
    if not 0 <= validation_size < len(train_x):
        raise UserError(f"--validation_size={validation_size} must be in [0, {len(train_x)}) for cifar10")
    cut = len(train_x) - validation_size
    splits = {"train": (train_x[:cut], train_y[:cut]), "validation": (train_x[cut:], train_y[cut:]),
              "test": (test_x, test_y)}
    return Dataset(name="cifar10", splits=splits, class_names=list(CLASS_NAMES), source=folder)


register_dataset("cifar10", load)
