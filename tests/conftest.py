"""Shared fixtures: small generated IDX datasets, a CLI runner, an event-file reader."""
import collections
import functools
import glob
import http.server
import os
import struct
import subprocess
import sys
import threading

import numpy as np
import pytest

from cnn_tf.data.idx import write_idx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}


def make_images(labels, size=28, channels=None, seed=0):
    """Learnable but noisy uint8 images: class k is a bright bar whose row and length depend on k."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    images = rng.integers(0, 90, size=(n, size, size), dtype=np.uint8)
    for i, k in enumerate(labels):
        row = 2 + (k * (size - 6)) // 10 + rng.integers(0, 2)
        start = rng.integers(0, 4)
        images[i, row:row + 3, start:start + size // 2 + (k % 3) * 3] = 200 + rng.integers(0, 55)
    if channels:
        images = np.repeat(images[..., None], channels, axis=-1)
    return images


def write_dataset(directory, num_train=1200, num_test=300, num_classes=10, gz=True, seed=0):
    """Writes an MNIST-layout dataset of generated images; returns {role: path}."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for part, n in (("train", num_train), ("test", num_test)):
        labels = rng.integers(0, num_classes, n).astype(np.uint8)
        arrays[part + "_images"] = make_images(labels, seed=seed + n)
        arrays[part + "_labels"] = labels
    paths = {}
    for role, name in IDX_NAMES.items():
        paths[role] = os.path.join(directory, name + (".gz" if gz else ""))
        write_idx(paths[role], arrays[role])
    return paths


# Generated colour images for image_folder: class -> its images' dominant RGB channel.
COLOURS = {"bird": 0, "cat": 1, "dog": 2}


def colour_image(channel, seed, height=20, width=24):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    image[..., channel] = 200 + rng.integers(0, 40, (height, width), dtype=np.uint8)
    return image


def write_bmp(path, image):
    """A 24-bit BMP (TensorFlow has a BMP decoder but no encoder)."""
    height, width, _ = image.shape
    row = (width * 3 + 3) // 4 * 4
    pixels = b"".join(image[y, :, ::-1].tobytes().ljust(row, b"\0") for y in range(height - 1, -1, -1))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    with open(path, "wb") as f:
        f.write(header + info + pixels)


def write_image(path, image):
    ext = os.path.splitext(path)[1]
    if ext == ".bmp":
        return write_bmp(path, image)
    import tensorflow as tf

    data = tf.io.encode_png(image) if ext == ".png" else tf.io.encode_jpeg(image, quality=95)
    with open(path, "wb") as f:
        f.write(data.numpy())


def make_folder_layout(root, per_class=10, size=(20, 24)):
    """The pets layout: one sub-folder per class of PNG, JPEG and BMP images coloured by class."""
    for name, channel in COLOURS.items():
        os.makedirs(root / name)
        for i in range(per_class):
            ext = (".png", ".jpg", ".bmp", ".JPEG")[i % 4]
            write_image(str(root / name / f"{name}{i}{ext}"), colour_image(channel, channel * 100 + i, *size))
    (root / "cat" / "notes.txt").write_text("not an image, ignored")


def make_stripes_folder(root, per_class=100):
    """Two classes of photo-sized PNGs (80-120 px a side) that only shape tells apart: horizontal
    stripes ("cats") and vertical ones ("dogs"), of random colours, period and phase, with noise."""
    for k, name in enumerate(["cats", "dogs"]):
        os.makedirs(root / name)
        for i in range(per_class):
            rng = np.random.default_rng([k, i])
            height, width, period = rng.integers(80, 120), rng.integers(80, 120), rng.integers(8, 16)
            axis = np.arange(height if k == 0 else width)
            stripes = ((axis + rng.integers(0, period)) % period < period // 2).astype(np.float32)
            mask = np.broadcast_to(stripes[:, None] if k == 0 else stripes[None, :], (height, width))[..., None]
            image = mask * rng.integers(0, 256, 3) + (1 - mask) * rng.integers(0, 256, 3)
            image = np.clip(image + rng.normal(0, 25, image.shape), 0, 255).astype(np.uint8)
            write_image(str(root / name / f"{name}{i}.png"), image)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Tests (and the CLIs they start) never read or fill the user's real dataset cache."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("idx")
    write_dataset(str(directory))
    return str(directory)


def cli_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_cli(module, *args, env=None, timeout=600):
    """Runs `python -m cnn_tf.<module> ARGS`; returns the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, "-m", f"cnn_tf.{module}", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env or cli_env(), timeout=timeout)


# Flags that make a CLI training run on the generated data take seconds.
def small_run_flags(data_dir, train_dir, *extra):
    return ["--dataset=mnist", f"--data_dir={data_dir}", f"--train_dir={train_dir}", "--validation_size=200",
            "--batch_size=64", "--num_epochs=2", "--summary_every_n_steps=5", "--eval_batch_size=128",
            "--download_mirror=http://127.0.0.1:9/", *extra]


def read_events(directory):
    """{kind: {tag: [steps]}} for kind in scalar, histogram, image; plus 'graph' and 'session_log'."""
    import tensorflow as tf

    found = collections.defaultdict(lambda: collections.defaultdict(list))
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            if event.graph_def:
                found["graph"]["graph"].append(event.step)
            if event.HasField("session_log"):
                found["session_log"][str(event.session_log.status)].append(event.step)
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                kind = {"simple_value": "scalar", "histo": "histogram", "image": "image"}.get(kind, kind)
                found[kind][value.tag].append(event.step)
    return found


def scalar_values(directory, tag):
    import tensorflow as tf

    values = []
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            values += [(event.step, v.simple_value) for v in event.summary.value if v.tag == tag]
    return values


@pytest.fixture
def http_server(tmp_path):
    """Serves tmp_path/'www' on 127.0.0.1 at a free port; yields (base URL, directory)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", www
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def tree_snapshot(path):
    """{relative path: (size, mtime_ns)} of every file under `path`, to prove nothing changed."""
    snapshot = {}
    for directory, _, files in os.walk(path):
        for name in files:
            full = os.path.join(directory, name)
            st = os.stat(full)
            snapshot[os.path.relpath(full, path)] = (st.st_size, st.st_mtime_ns)
    return snapshot


def write_slim_shards(folder, images, labels, split, encoded=None):
    """What TF-Slim's download_and_convert_mnist.py writes, with plain TensorFlow code. `encoded`:
    files' bytes to store as they are, instead of `images` encoded as PNGs."""
    import tensorflow as tf

    def integer(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    encoded = encoded or [tf.io.encode_png(image).numpy() for image in images]
    with tf.io.TFRecordWriter(str(folder / f"mnist_{split}.tfrecord")) as writer:
        for k, (png, label) in enumerate(zip(encoded, labels)):
            feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                       "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"png"])),
                       "image/class/label": integer(label)}
            if images is not None:
                feature.update({"image/height": integer(images[k].shape[0]), "image/width": integer(images[k].shape[1])})
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
