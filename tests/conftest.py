"""Shared fixtures and helpers: small generated datasets and image folders, CLI runners, event-file
readers, checks several test modules make. The one module tests share code through."""
import atexit
import collections
import functools
import glob
import http.server
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

import cnn_tf  # noqa: F401  first: it loads TensorFlow with its C++ start-up lines muted
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnn_tf import config
from cnn_tf.data.idx import write_idx
from cnn_tf.data.pipeline import TrainFeed
from cnn_tf.graph import build_graph, hardware
from cnn_tf.loop import Trainer

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


# The test files by their time in `make test` (seconds of their tests summed, --durations=0, AMD EPYC, 2 cores,
# 2026-12-07, CLIs forked: cluster 423, reliability 380, models_cli 279, ...), heaviest first. `make test` hands
# whole files to its two workers in this order (--no-loadscope-reorder), so that no long file starts last while
# the other core has nothing left to do. Files not listed (each under 20 s) follow in their own order.
HEAVIEST_FIRST = ["test_cluster.py", "test_reliability.py", "test_models_cli.py", "test_fine_tuning.py",
                  "test_train_dir.py", "test_benchmark.py", "test_readme.py", "test_records.py", "test_real_data.py",
                  "test_faults.py", "test_best_checkpoints.py", "test_towers.py", "test_graph.py", "test_bad_input.py",
                  "test_tensorboard.py", "test_corruption.py", "test_cli.py", "test_intervals.py", "test_export.py",
                  "test_console.py", "test_oxford_pets.py", "test_schedules.py", "test_layout.py", "test_resnet.py",
                  "test_data.py"]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order


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


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory, data_dir):
    """The train dir of a one-epoch LeNet run on `data_dir`'s digits (16 steps: model.ckpt-16), trained
    once per test process for the modules that evaluate, export, predict or warm-start from it. A
    test that would change a run works on a copy."""
    train_dir = str(tmp_path_factory.mktemp("digits_run") / "run")
    result = run_cli("train", *small_run_flags(data_dir, train_dir, "--num_epochs=1", "--progress=false"))
    assert result.returncode == 0, result.stderr
    return train_dir


def cli_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_cli(module, *args, env=None, timeout=600, fresh=False):
    """Runs `python -m cnn_tf.<module> ARGS`; returns the CompletedProcess (text output). The process is
    forked from one that has imported TensorFlow already (tests/forkserver.py) unless `fresh`, `env`
    changes what that import saw, or CNN_TF_TEST_FORK=0: then it starts from nothing."""
    env = env or cli_env()
    if not fresh and os.environ.get("CNN_TF_TEST_FORK", "1") != "0":
        server = _fork_server()
        if server.serves(env):
            return server.run(f"cnn_tf.{module}", args, env, timeout)
    return subprocess.run([sys.executable, "-m", f"cnn_tf.{module}", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=timeout)


class ForkServer:
    """The caller's side of tests/forkserver.py (its protocol is there): one server per test process,
    started in `env`; `run` is thread-safe (tests start CLIs from a thread pool)."""

    def __init__(self, env, cwd, timeout=300):
        self.env, self.cwd = env, cwd
        self._log = tempfile.NamedTemporaryFile(prefix="forkserver-", suffix=".log", delete=False)
        self._process = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "forkserver.py")],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, cwd=cwd,
                                         env=env)
        self._lock = threading.Lock()
        self._replies = {}  # id -> {"pid": ..., "code": ...} as they come
        self._arrived = threading.Condition()
        self._next_id = 0
        ready = self._process.stdout.readline() if select.select([self._process.stdout], [], [], timeout)[0] else b""
        if not ready:
            self._process.kill()  # its log stays, for the message
            self._process.wait()
            raise RuntimeError(f"the test fork server did not start; its output: {self._log.name}")
        threading.Thread(target=self._read, daemon=True).start()
        atexit.register(self.close)

    def _read(self):
        for line in self._process.stdout:
            message = json.loads(line)
            with self._arrived:
                self._replies.setdefault(message.pop("id"), {}).update(message)
                self._arrived.notify_all()
        with self._arrived:
            self._replies = None  # the server is gone
            self._arrived.notify_all()

    def _wait_for(self, request_id, key, deadline):
        with self._arrived:
            while True:
                if self._replies is None:
                    raise RuntimeError(f"the test fork server exited; its output: {self._log.name}")
                if key in self._replies.get(request_id, {}):
                    return self._replies[request_id][key]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._arrived.wait(remaining)

    def serves(self, env):
        """Whether a child started with `env` is the process a fresh start would be: the environment
        the server imported TensorFlow in, but for what pytest sets per test."""
        return _static(env) == _static(self.env)

    def run(self, module, args, env, timeout):
        """`python -m MODULE ARGS` forked in `env`; a subprocess.CompletedProcess with text output, as
        subprocess.run(capture_output=True, text=True) gives, or subprocess.TimeoutExpired."""
        command = [sys.executable, "-m", module, *args]
        with tempfile.TemporaryDirectory(prefix="forked-") as tmp:
            out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
            open(out, "w").close()
            open(err, "w").close()
            with self._lock:
                request_id = self._next_id = self._next_id + 1
                self._process.stdin.write((json.dumps({
                    "id": request_id, "module": module, "args": list(args), "env": env, "cwd": self.cwd,
                    "stdout": out, "stderr": err}) + "\n").encode())
                self._process.stdin.flush()
            deadline = time.monotonic() + timeout
            pid = self._wait_for(request_id, "pid", time.monotonic() + 60)
            if pid is None:
                raise RuntimeError(f"the test fork server did not start {command}")
            code = self._wait_for(request_id, "code", deadline)
            if code is None:  # as subprocess.run: kill the child (by its PID, ours), then raise
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:  # it ended as the time ran out; the server has reaped it
                    pass
                self._wait_for(request_id, "code", time.monotonic() + 60)
            with open(out) as f_out, open(err) as f_err:
                stdout, stderr = f_out.read(), f_err.read()
            with self._arrived:
                if self._replies is not None:
                    self._replies.pop(request_id, None)
        if code is None:
            raise subprocess.TimeoutExpired(command, timeout, stdout, stderr)
        return subprocess.CompletedProcess(command, code, stdout, stderr)

    def exited(self):
        return self._process.poll() is not None

    def close(self):
        if self._process.poll() is None:
            self._process.stdin.close()
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.returncode == 0 and os.path.exists(self._log.name):  # kept when the server failed
            os.unlink(self._log.name)


def _static(env):
    return {k: v for k, v in env.items() if k != "PYTEST_CURRENT_TEST"}


_servers, _servers_lock = [], threading.Lock()


def _fork_server():
    """This test process's one fork server, started at its first CLI run in the environment of then."""
    with _servers_lock:
        if not _servers or _servers[0].exited():  # a server that died (out of memory) is replaced
            _servers[:] = [ForkServer(cli_env(), ROOT)]
        return _servers[0]


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


# Helpers several test modules share (a test module never imports another).
def startup_summary(output):
    """{key: value} of the start-up summary's aligned lines."""
    rows = {}
    for line in output.splitlines():
        match = re.match(r"^(dataset|splits|classes|images|model|devices|precision|train dir|run)\s{2,}(.*)$", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def lenet_parameters(checkpoint):
    """Trainable parameters of the model in a checkpoint: weights, biases, batch-norm betas."""
    return sum(int(np.prod(shape)) for name, shape in tf.train.list_variables(checkpoint)
               if name.startswith("lenet/") and name.rsplit("/", 1)[1] in ("weights", "biases", "beta"))


def check_startup_summary(result, train_dir, data_dir, run):
    rows = startup_summary(result.stdout)
    assert rows["dataset"] == f"mnist from {data_dir}"
    assert rows["splits"] == "train 1,000 · validation 200 · test 300"
    assert rows["classes"] == "10: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
    assert rows["images"] == "28×28×1" and rows["devices"] == "/cpu:0"
    # a float16 run on this GPU-less machine computes in float32, and its line says so
    fell_back = "--precision=mixed_float16" in result.args
    assert rows["precision"] == ("float32 (--precision=mixed_float16 fell back: no GPU here)" if fell_back else "float32")
    latest = tf.train.latest_checkpoint(os.path.join(train_dir, "checkpoints"))
    assert rows["model"] == f"lenet, {lenet_parameters(latest):,} parameters"
    assert rows["train dir"] == train_dir
    assert re.fullmatch(run, rows["run"]), rows["run"]
    # before the first step: the summary comes before any epoch line
    lines = result.stdout.splitlines()
    assert lines.index(next(line for line in lines if line.startswith("run "))) < min(
        [i for i, line in enumerate(lines) if line.startswith("epoch ")] or [len(lines)])


def printed_accuracy(output, label="test"):
    lines = [line for line in output.splitlines() if line.startswith(f"{label} accuracy: ")]
    assert len(lines) == 1, output
    return float(lines[0].split(": ")[1])


def setup_trainer(callbacks, num_epochs=2, is_chief=True):
    cfg = config.RunConfig(batch_size=32, summary_every_n_steps=1000)
    g = build_graph(cfg, (28, 28, 1), 10, 96)
    labels = np.random.default_rng(0).integers(0, 10, 96)
    feed = TrainFeed(g.inputs.pipeline, (make_images(labels)[..., None], labels), 32)  # 3 steps an epoch
    return Trainer(g, feed, callbacks, num_epochs, hardware.session_config(cfg), is_chief=is_chief)


LOAD = r"""
import json, sys
import numpy as np
import tensorflow as tf
assert "cnn_tf" not in sys.modules
model = tf.saved_model.load(sys.argv[1])
files = [open(p, "rb").read() for p in sys.argv[2:]]
out = model.signatures["serving_default"](images=tf.constant(files))
arrays = np.stack([tf.io.decode_png(f).numpy() for f in files])
out_arrays = model.signatures["predict_images"](images=tf.constant(arrays))
assert "cnn_tf" not in sys.modules
print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(), "classes": out["classes"].numpy().tolist(),
                  "class_names": [n.decode() for n in out["class_names"].numpy()],
                  "arrays_classes": out_arrays["classes"].numpy().tolist(),
                  "arrays_probabilities": out_arrays["probabilities"].numpy().tolist()}))
"""


def checkpoint_probabilities(train_dir, images):
    """Softmax of logits:0 restored by tensor name, fed [0, 1] pixels: the checkpoint's own answer."""
    latest = tf.train.latest_checkpoint(os.path.join(train_dir, "checkpoints"))
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as sess:
        tf.compat.v1.train.import_meta_graph(latest + ".meta").restore(sess, latest)
        logits = sess.run(graph.get_tensor_by_name("logits:0"), {graph.get_tensor_by_name("image:0"): images / 255.0})
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def export_and_compare(train_dir, images, class_names, tmp_path):
    export_dir = str(tmp_path / "export")
    result = run_cli("export", f"--checkpoint_dir={train_dir}", f"--export_dir={export_dir}")
    assert result.returncode == 0, result.stderr
    step = tf.train.latest_checkpoint(os.path.join(train_dir, "checkpoints")).rsplit("-", 1)[1]
    version = os.path.join(export_dir, step)
    assert "exported" in result.stdout and version in result.stdout
    assert sorted(os.listdir(os.path.join(version, "assets"))) == ["class_names.txt", "flags.cfg"]
    assert open(os.path.join(version, "assets", "class_names.txt")).read().splitlines() == list(class_names)
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / "png" / f"{i}.png"))
        os.makedirs(os.path.dirname(paths[-1]), exist_ok=True)
        write_image(paths[-1], image)
    loaded = subprocess.run([sys.executable, "-c", LOAD, version, *paths], capture_output=True, text=True,
                            timeout=600, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    out = json.loads(loaded.stdout.strip().splitlines()[-1])
    expected = checkpoint_probabilities(train_dir, images)
    assert out["classes"] == expected.argmax(axis=1).tolist() == out["arrays_classes"]
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(out["arrays_probabilities"], expected, atol=1e-5)
    assert out["class_names"] == [class_names[k] for k in out["classes"]]
    return export_dir, version, out


def start(module, *args):
    return subprocess.Popen([sys.executable, "-m", f"cnn_tf.{module}", *args], cwd=ROOT, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=600):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def tensorboard_steps(directory, tag):
    """The steps TensorBoard shows for `tag` (its loader applies restarts' SessionLog START)."""
    accumulator = EventAccumulator(directory, size_guidance={"scalars": 0})
    accumulator.Reload()
    return [event.step for event in accumulator.Scalars(tag)]


def make_batch(num, seed):
    labels = np.random.default_rng(seed).integers(0, 10, num).astype(np.uint8)
    images = make_images(labels, size=32, channels=3, seed=seed)
    images[..., 1] //= 2  # channels differ, so a channel-order bug shows
    records = np.concatenate([labels[:, None], images.transpose(0, 3, 1, 2).reshape(num, -1)], axis=1)
    return records.astype(np.uint8).tobytes(), images, labels


def accuracy_restored_by_tensor_name(train_dir, data_dir, data=None):
    """The README's recipe, in a plain Session (no soft placement): meta graph, restore, feed by name
    the test split's [0, 1] pixels."""
    latest = tf.train.latest_checkpoint(os.path.join(train_dir, "checkpoints"))
    if data is None:
        from cnn_tf.data import load_dataset

        data = load_dataset("mnist", data_dir=data_dir, validation_size=200)
    images, labels = data.split("test")
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as sess:
        saver = tf.compat.v1.train.import_meta_graph(latest + ".meta")
        saver.restore(sess, latest)
        image = graph.get_tensor_by_name("image:0")
        label = graph.get_tensor_by_name("label:0")
        accuracy = graph.get_tensor_by_name("accuracy:0")
        return sess.run(accuracy, {image: images / 255.0, label: labels})
