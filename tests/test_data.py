"""The data layer: IDX reading, locating files, downloading, splits, and the in-graph pipeline."""
import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf

from cnn_tf.data import load_dataset, mnist
from cnn_tf.data.download import download
from cnn_tf.data.idx import read_idx, write_idx
from cnn_tf.data.pipeline import InputPipeline, epoch_order
from cnn_tf.errors import UserError
from conftest import IDX_NAMES, write_dataset


@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"])
def test_idx_round_trip_gzipped_or_not(tmp_path, name):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, array)
    np.testing.assert_array_equal(read_idx(tmp_path / name), array)


def test_idx_gzip_is_detected_by_content_not_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    os.rename(tmp_path / "a.gz", tmp_path / "plain-name")
    np.testing.assert_array_equal(read_idx(tmp_path / "plain-name"), array)


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"abc", "truncated"),
    (b"\x12\x34\x08\x01" + (3).to_bytes(4, "big") + b"abc", "bad magic number"),
    (b"\x00\x00\x08\x03" + (3).to_bytes(4, "big"), "header"),
    (b"", "bad magic number"),
])
def test_idx_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_is_a_clear_error(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros((100, 28, 28), np.uint8))
    data = (tmp_path / "a.gz").read_bytes()
    (tmp_path / "a.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated"):
        read_idx(tmp_path / "a.gz")


def test_splits_follow_the_tutorial_and_pixels_stay_uint8(tmp_path):
    write_dataset(str(tmp_path), num_train=300, num_test=50)
    raw_train = read_idx(tmp_path / (IDX_NAMES["train_images"] + ".gz"))
    data = load_dataset("mnist", data_dir=str(tmp_path), validation_size=100)
    x, y = data.split("train")
    vx, vy = data.split("validation")
    tx, ty = data.split("test")
    assert (x.shape, vx.shape, tx.shape) == ((200, 28, 28, 1), (100, 28, 28, 1), (50, 28, 28, 1))
    assert x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x[..., 0], raw_train[:200])  # train = the first images
    np.testing.assert_array_equal(vx[..., 0], raw_train[200:])  # validation = the last ones
    assert data.num_classes == 10 and data.image_shape == (28, 28, 1)


def test_fashion_mnist_class_names():
    assert mnist.SPECS["fashion_mnist"]["class_names"][0] == "T-shirt/top"
    assert mnist.SPECS["fashion_mnist"]["class_names"][9] == "Ankle boot"


def test_label_count_mismatch_names_both_files(tmp_path):
    paths = write_dataset(str(tmp_path), num_train=100, num_test=20)
    write_idx(paths["train_labels"], np.zeros(99, np.uint8))
    with pytest.raises(UserError, match="has 99 labels but .* has 100 images"):
        load_dataset("mnist", data_dir=str(tmp_path), validation_size=10)


def test_label_out_of_range_is_named(tmp_path):
    paths = write_dataset(str(tmp_path), num_train=100, num_test=20)
    write_idx(paths["test_labels"], np.full(20, 12, np.uint8))
    with pytest.raises(UserError, match="label 12, outside the 10 classes"):
        load_dataset("mnist", data_dir=str(tmp_path), validation_size=10)


def test_validation_size_must_leave_training_images(tmp_path):
    write_dataset(str(tmp_path), num_train=100, num_test=20)
    with pytest.raises(UserError, match="--validation_size=100"):
        load_dataset("mnist", data_dir=str(tmp_path), validation_size=100)


def test_data_dir_that_is_missing_or_a_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_dataset("mnist", data_dir=str(tmp_path / "nope"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        load_dataset("mnist", data_dir=str(tmp_path / "file"))


def test_files_are_looked_for_in_data_dir_then_system_then_cache(tmp_path, monkeypatch):
    system, cache, mine = tmp_path / "system", tmp_path / "cache", tmp_path / "mine"
    monkeypatch.setattr(mnist, "SYSTEM_DIR", str(system))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    write_dataset(str(cache / "cnn_tf" / "fashion_mnist"), num_train=30, num_test=10, seed=1)
    write_dataset(str(system / "fashion-mnist"), num_train=40, num_test=10, seed=2)  # Debian's name
    mine.mkdir()
    paths = mnist.locate_files("fashion_mnist", str(mine), download_mirror="http://127.0.0.1:9/")
    assert all(p.startswith(str(system)) for p in paths.values())
    write_dataset(str(mine), num_train=50, num_test=10, seed=3)
    paths = mnist.locate_files("fashion_mnist", str(mine))
    assert all(p.startswith(str(mine)) for p in paths.values())
    monkeypatch.setattr(mnist, "SYSTEM_DIR", str(tmp_path / "empty"))
    paths = mnist.locate_files("fashion_mnist", None)
    assert all(p.startswith(str(cache)) for p in paths.values())


def _serve_dataset(www, spec_name, monkeypatch, corrupt=None):
    """Writes a generated dataset into the server's folder and makes the spec's checksums match it."""
    write_dataset(str(www), num_train=60, num_test=20)
    files = {}
    for role, (name, _) in mnist.SPECS[spec_name]["files"].items():
        data = (www / name).read_bytes()
        files[role] = (name, hashlib.sha256(data).hexdigest())
        if role == corrupt:
            (www / name).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    monkeypatch.setitem(mnist.SPECS[spec_name], "files", files)


def test_download_from_a_mirror_with_checksums(tmp_path, http_server, monkeypatch):
    url, www = http_server
    _serve_dataset(www, "mnist", monkeypatch)
    monkeypatch.setattr(mnist, "SYSTEM_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = load_dataset("mnist", validation_size=10, download_mirror=url)
    cached = tmp_path / "cache" / "cnn_tf" / "mnist"
    assert sorted(os.listdir(cached)) == sorted(n + ".gz" for n in IDX_NAMES.values())
    assert data.split("test")[0].shape == (20, 28, 28, 1)
    np.testing.assert_array_equal(
        data.split("test")[0][..., 0], read_idx(www / "t10k-images-idx3-ubyte.gz"))


def test_checksum_mismatch_leaves_no_file(tmp_path, http_server, monkeypatch):
    url, www = http_server
    _serve_dataset(www, "mnist", monkeypatch, corrupt="train_labels")
    monkeypatch.setattr(mnist, "SYSTEM_DIR", str(tmp_path / "none"))
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(UserError, match="checksum mismatch .*train-labels"):
        load_dataset("mnist", data_dir=str(target), download_mirror=url)
    assert "train-labels-idx1-ubyte.gz" not in os.listdir(target)
    assert not [n for n in os.listdir(target) if n.endswith(".part")]


def test_failed_download_says_how_to_get_the_data(tmp_path, http_server, monkeypatch):
    url, www = http_server  # serves an empty folder: every file is a 404
    monkeypatch.setattr(mnist, "SYSTEM_DIR", str(tmp_path / "none"))
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion_mnist", data_dir=str(target), download_mirror=url)
    assert os.listdir(target) == []


def test_download_hashes_the_bytes_it_wrote(tmp_path, http_server):
    url, www = http_server
    payload = os.urandom(3 << 20)  # several read blocks
    (www / "blob").write_bytes(payload)
    download(url + "blob", str(tmp_path / "blob"), hashlib.sha256(payload).hexdigest())
    assert (tmp_path / "blob").read_bytes() == payload


def test_epoch_order_is_a_seeded_permutation():
    a, b, c = epoch_order(100, 1, 0), epoch_order(100, 1, 0), epoch_order(100, 1, 1)
    np.testing.assert_array_equal(a, b)
    assert sorted(a) == list(range(100)) and not np.array_equal(a, c)
    assert not np.array_equal(a, epoch_order(100, 2, 0))


def test_pipeline_scales_once_and_yields_every_image_once():
    images = np.arange(10 * 2 * 2, dtype=np.uint8).reshape(10, 2, 2, 1) * 6
    labels = np.arange(10, dtype=np.int64)
    graph = tf.Graph()
    with graph.as_default():
        pipeline = InputPipeline((2, 2, 1))
        with tf.compat.v1.Session() as sess:
            pipeline.start(sess, images, labels, 4)
            batches = []
            while True:
                try:
                    batches.append(sess.run([pipeline.images, pipeline.labels]))
                except tf.errors.OutOfRangeError:
                    break
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    got = np.concatenate([b[0] for b in batches])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, images / 255.0, rtol=1e-6)
    assert got.max() <= 1.0
    # The data is fed, not stored in the graph: no constant, in the graph or its tf.data functions, holds it.
    graph_def = graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    assert max(len(n.attr["value"].tensor.tensor_content) for n in nodes if n.op == "Const") < images.nbytes


def run_pipeline(images, labels, batch_size, augment_seed=None):
    """The pipeline's batches; `augment_seed` = (seed, epoch, first batch) of a flip_crop epoch."""
    from cnn_tf.data.pipeline import AugmentSpec, EpochPlan

    plan = EpochPlan(*augment_seed, augment=AugmentSpec("flip_crop")) if augment_seed else None
    graph = tf.Graph()
    with graph.as_default():
        pipeline = InputPipeline(images.shape[1:])
        with tf.compat.v1.Session() as sess:
            pipeline.start(sess, images, labels, batch_size, plan=plan)
            batches = []
            while True:
                try:
                    batches.append(sess.run(pipeline.images))
                except tf.errors.OutOfRangeError:
                    return np.concatenate(batches)


def test_the_graph_subtracts_the_pixel_mean_after_the_image_placeholder():
    from cnn_tf.config import RunConfig
    from cnn_tf.graph import build_graph

    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    g = build_graph(RunConfig(model="three_conv"), (8, 8, 3), 10, 6, pixel_mean=[0.5, 0.25, 0.0])
    with tf.compat.v1.Session(graph=g.graph) as sess:
        g.inputs.pipeline.start(sess, images, np.zeros(6, np.int64), 6)
        pixels, model_input = sess.run([g.inputs.image, g.inputs.model_input])
    np.testing.assert_allclose(pixels, images / 255.0, rtol=1e-6)  # image:0 holds [0, 1] pixels
    np.testing.assert_allclose(model_input, images / 255.0 - [0.5, 0.25, 0.0], rtol=1e-5, atol=1e-6)
    g = build_graph(RunConfig(model="three_conv", normalization="inception"), (8, 8, 3), 10, 6)
    with tf.compat.v1.Session(graph=g.graph) as sess:
        g.inputs.pipeline.start(sess, images, np.zeros(6, np.int64), 6)
        pixels, model_input = sess.run([g.inputs.image, g.inputs.model_input])
    np.testing.assert_allclose(pixels, images / 255.0, rtol=1e-6)
    np.testing.assert_allclose(model_input, images / 255.0 * 2 - 1, rtol=1e-5, atol=1e-6)  # slim's [-1, 1]
    g = build_graph(RunConfig(model="three_conv", normalization="vgg"), (8, 8, 3), 10, 6)
    with tf.compat.v1.Session(graph=g.graph) as sess:
        g.inputs.pipeline.start(sess, images, np.zeros(6, np.int64), 6)
        model_input = sess.run(g.inputs.model_input)
    np.testing.assert_allclose(model_input, images - np.array([123.68, 116.78, 103.94]), rtol=1e-5, atol=1e-3)


def test_augmentation_flips_and_crops_each_image_from_stateless_seeds():
    # Distinct pixel values, so each output image can be located inside its padded, maybe flipped input.
    images = (np.arange(40 * 16 * 16).reshape(40, 16, 16, 1) % 251 + 1).astype(np.uint8)
    labels = np.arange(40, dtype=np.int64)
    plain = run_pipeline(images, labels, 8)
    first = run_pipeline(images, labels, 8, augment_seed=(3, 0, 0))
    np.testing.assert_array_equal(first, run_pipeline(images, labels, 8, augment_seed=(3, 0, 0)))
    assert not np.array_equal(first, run_pipeline(images, labels, 8, augment_seed=(3, 1, 0)))
    # A resumed epoch (from batch 2) gets the augmentation of the uninterrupted one.
    np.testing.assert_array_equal(first[16:], run_pipeline(images[16:], labels[16:], 8, augment_seed=(3, 0, 2)))
    flips, shifts = 0, set()
    for source, out in zip(plain, first):
        padded = np.pad(source[..., 0], 2)  # 16 // 8 = 2 pixels each side
        found = [(flip, dy, dx) for flip in (False, True) for dy in range(5) for dx in range(5)
                 if np.array_equal((padded[:, ::-1] if flip else padded)[dy:dy + 16, dx:dx + 16], out[..., 0])]
        assert len(found) == 1, "every output is one crop of the padded (maybe flipped) input"
        flips += found[0][0]
        shifts.add(found[0][1:])
    assert 5 <= flips <= 35 and len(shifts) > 5  # drawn per image, not once per batch
