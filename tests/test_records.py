"""Converted datasets streamed from TFRecord shards (cnn_tf.data.convert, cnn_tf.data.records): every
dataset kind converts to the pixels and splits training in memory uses; training and evaluating from
the shards matches memory; TF-Slim's shards train too; a worker's and a resumed epoch's batches are
exactly their part of the epoch; a missing, changed or corrupt shard and an interrupted conversion are
one line each."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from cnn_tf import config
from cnn_tf.data import load_dataset_for, records
from cnn_tf.data.convert import convert
from cnn_tf.data.pipeline import AugmentSpec, EpochPlan, InputPipeline
from conftest import (ROOT, cli_env, make_batch, make_folder_layout, make_images, printed_accuracy, run_cli,
                      small_run_flags, tree_snapshot, write_slim_shards)


def mnist_cfg(data_dir, **kw):
    return config.RunConfig(dataset="mnist", data_dir=str(data_dir), validation_size=200, **kw)


@pytest.fixture(scope="module")
def mnist_records(data_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("records") / "mnist")
    convert(mnist_cfg(data_dir), out, num_shards=3)
    return out


def read_pass(data, name, batch_size=64):
    """Every (image, label) of split `name` through the dataset's own pipeline, in the order it gives."""
    graph = tf.Graph()
    with graph.as_default():
        pipeline = data.pipeline(data.image_shape)
        with tf.compat.v1.Session() as sess:
            pipeline.start_pass(sess, data.split(name), batch_size)
            return drain(sess, pipeline)


def drain(sess, pipeline):
    images, labels = [], []
    while True:
        try:
            x, y = sess.run([pipeline.images, pipeline.labels])
        except tf.errors.OutOfRangeError:
            return np.concatenate(images), np.concatenate(labels)
        images.append(x)
        labels.append(y)


def as_multiset(images, labels):
    """Rows sorted by content: compares two splits whatever their order."""
    keys = [bytes(np.round(x * 255).astype(np.uint8).tobytes()) + bytes([int(y)]) for x, y in zip(images, labels)]
    return sorted(keys)


def assert_same_splits(memory, streamed):
    assert streamed.class_names == list(memory.class_names)
    assert streamed.image_shape == memory.image_shape
    np.testing.assert_allclose(streamed.pixel_mean, memory.pixel_mean, rtol=1e-6)
    for name in ("train", "validation", "test"):
        assert streamed.size(name) == memory.size(name), name
        if memory.size(name):
            assert as_multiset(*read_pass(streamed, name)) == as_multiset(*read_pass(memory, name)), name


def test_array_datasets_convert_to_their_exact_pixels_and_splits(data_dir, tmp_path, mnist_records):
    # mnist and fashion_mnist share the loader (the generated IDX files serve for both); cifar10's own.
    memory = load_dataset_for(mnist_cfg(data_dir))
    streamed = records.load(mnist_records)
    assert_same_splits(memory, streamed)
    meta = json.loads(pathlib.Path(mnist_records, "dataset.json").read_text())
    assert meta["dataset"] == "mnist" and [len(s["shards"]) for s in meta["splits"].values()] == [3, 3, 3]
    assert pathlib.Path(mnist_records, "labels.txt").read_text().splitlines()[:2] == ["0:0", "1:1"]
    example = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(
        os.path.join(mnist_records, meta["splits"]["train"]["shards"][0]["file"])))).numpy())
    assert set(example.features.feature) == {"image/encoded", "image/format", "image/class/label", "image/height",
                                             "image/width", "image/filename"}
    assert example.features.feature["image/format"].bytes_list.value == [b"png"]

    fashion = convert(config.RunConfig(dataset="fashion_mnist", data_dir=str(data_dir), validation_size=100),
                      str(tmp_path / "fashion"), num_shards=2)
    assert fashion["class_names"][0] == "T-shirt/top" and fashion["splits"]["validation"]["size"] == 100

    cifar = tmp_path / "cifar" / "cifar-10-batches-bin"
    cifar.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        (cifar / name).write_bytes(make_batch(40, seed=i)[0])
    (cifar / "batches.meta.txt").write_text("\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                      "horse", "ship", "truck"]))
    cfg = config.RunConfig(dataset="cifar10", data_dir=str(tmp_path / "cifar"), validation_size=30)
    convert(cfg, str(tmp_path / "cifar_records"), num_shards=4)
    assert_same_splits(load_dataset_for(cfg), records.load(str(tmp_path / "cifar_records")))


def test_an_image_folder_converts_file_by_file_to_the_splits_and_pixels_of_memory(tmp_path):
    make_folder_layout(tmp_path / "pets", per_class=10)  # PNG, JPEG and BMP files, 20x24
    cfg = config.RunConfig(dataset="image_folder", data_dir=str(tmp_path / "pets"), image_size=16, seed=3)
    convert(cfg, str(tmp_path / "out"), num_shards=2)
    streamed = records.load(str(tmp_path / "out"))
    assert streamed.image_shape == (16, 16, 3)
    # The files are stored as found: decoded to the same size, they are the same pixels as in memory.
    assert_same_splits(load_dataset_for(cfg), streamed)
    # Another --image_size when training: resized from the stored bytes.
    assert records.load(str(tmp_path / "out"), image_size=12).image_shape == (12, 12, 3)
    formats = {tf.train.Example.FromString(r.numpy()).features.feature["image/format"].bytes_list.value[0]
               for r in tf.data.TFRecordDataset(list(streamed.split("train").files))}
    assert formats == {b"png", b"jpeg", b"bmp"}


def rng_labels(n):
    return np.random.default_rng(n).integers(0, 10, n)


@pytest.mark.slow
def test_tf_slim_shards_train_and_evaluate(tmp_path):
    slim = tmp_path / "slim"
    slim.mkdir()
    for split, n in (("train", 640), ("test", 200)):
        labels = rng_labels(n)
        write_slim_shards(slim, make_images(labels, seed=n)[..., None], labels, split)
    (slim / "labels.txt").write_text("".join(f"{k}:{name}\n" for k, name in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])))
    data = records.load(str(slim))
    assert (data.size("train"), data.size("validation"), data.size("test")) == (640, 0, 200)
    # No dataset.json: --normalization=mean's pixel mean is counted from the train shards when asked for.
    np.testing.assert_allclose(data.pixel_mean, [make_images(rng_labels(640), seed=640).mean() / 255], rtol=1e-6)
    assert data.class_names[2] == "two" and data.image_shape == (28, 28, 1)
    train_dir = str(tmp_path / "run")
    trained = run_cli("train", "--dataset=tfrecord", f"--data_dir={slim}", f"--train_dir={train_dir}",
                      "--batch_size=64", "--num_epochs=2", "--progress=false")
    assert trained.returncode == 0, trained.stderr
    assert "TF-Slim shards" in trained.stdout and "train 640 · validation 0 · test 200" in trained.stdout
    assert printed_accuracy(trained.stdout) > 0.9
    evaluated = run_cli("evaluate", f"--checkpoint_dir={train_dir}")
    assert evaluated.returncode == 0, evaluated.stderr
    assert printed_accuracy(evaluated.stdout) == printed_accuracy(trained.stdout)


@pytest.mark.slow
def test_training_and_evaluating_from_shards_matches_memory(data_dir, tmp_path, mnist_records):
    accuracies = {}
    for source, extra in (("memory", []), ("tfrecord", ["--dataset=tfrecord", f"--data_dir={mnist_records}",
                                                         "--num_towers=2"])):
        train_dir = str(tmp_path / source)
        trained = run_cli("train", *small_run_flags(data_dir, train_dir, "--progress=false", *extra))
        assert trained.returncode == 0, trained.stderr
        accuracies[source] = printed_accuracy(trained.stdout)
        evaluated = run_cli("evaluate", f"--checkpoint_dir={train_dir}")
        assert evaluated.returncode == 0, evaluated.stderr
        assert printed_accuracy(evaluated.stdout) == accuracies[source]
    assert accuracies["tfrecord"] > 0.9 and abs(accuracies["tfrecord"] - accuracies["memory"]) < 0.05, accuracies
    # predict reads the run's classes and image shape from dataset.json, never a split.
    image = tmp_path / "seven.png"
    image.write_bytes(tf.io.encode_png(make_images(np.array([7]))[0][..., None]).numpy())
    predicted = run_cli("predict", f"--checkpoint_dir={tmp_path / 'tfrecord'}", "--format=json", str(image))
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)[0]["predictions"][0]["class"] == "7"


def epoch_batches(data, plan, batch_size=64):
    """The batches `plan` gives from the train split, as uint8 images and labels."""
    graph = tf.Graph()
    with graph.as_default():
        pipeline = data.pipeline(data.image_shape)
        with tf.compat.v1.Session() as sess:
            pipeline.start_epoch(sess, data.split("train"), batch_size, plan)
            batches = []
            while True:
                try:
                    x, y = sess.run([pipeline.images, pipeline.labels])
                except tf.errors.OutOfRangeError:
                    return batches
                batches.append((np.round(x * 255).astype(np.uint8), y))


def test_an_epoch_streams_in_a_seeded_order_resumes_at_any_batch_and_shares_out_disjointly(mnist_records):
    data = records.load(mnist_records, shuffle_buffer=300)
    whole = epoch_batches(data, EpochPlan(seed=5, epoch=2, first_step=0, augment=AugmentSpec("flip_crop")))
    assert len(whole) == 16 and sum(len(y) for _, y in whole) == 1000
    again = epoch_batches(data, EpochPlan(seed=5, epoch=2, first_step=0, augment=AugmentSpec("flip_crop")))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(whole, again))
    other = epoch_batches(data, EpochPlan(seed=5, epoch=3, first_step=0, augment=AugmentSpec("flip_crop")))
    assert not np.array_equal(whole[0][1], other[0][1])  # each epoch its own order
    # A resume at batch 11: exactly the rest of the epoch, augmentation included.
    rest = epoch_batches(data, EpochPlan(seed=5, epoch=2, first_step=11, augment=AugmentSpec("flip_crop")))
    assert len(rest) == 5
    for (x, y), (rx, ry) in zip(whole[11:], rest):
        np.testing.assert_array_equal(x, rx)
        np.testing.assert_array_equal(y, ry)
    # Two workers: batches 0, 2, 4, ... and 1, 3, 5, ... of the same order (unaugmented: each worker
    # draws its own augmentation).
    plain = epoch_batches(data, EpochPlan(seed=5, epoch=2, first_step=0))
    for worker in (0, 1):
        share = epoch_batches(data, EpochPlan(seed=5, epoch=2, first_step=0, worker=worker, num_workers=2))
        assert len(share) == 8
        for (x, y), (wx, wy) in zip(plain[worker::2], share):
            np.testing.assert_array_equal(x, wx)
            np.testing.assert_array_equal(y, wy)


def test_in_memory_an_epoch_is_an_order_of_indices_over_the_arrays_never_a_copy(monkeypatch):
    images, labels = make_images(np.arange(100) % 10)[..., None], np.arange(100) % 10
    graph = tf.Graph()
    with graph.as_default():
        pipeline = InputPipeline((28, 28, 1))
    fed = {}
    monkeypatch.setattr(pipeline, "start", lambda sess, x, y, batch_size, order, plan:
                        fed.update(images=x, labels=y, order=order))
    pipeline.start_epoch(None, (images, labels), 32, EpochPlan(seed=1, epoch=0, first_step=2, worker=1, num_workers=2))
    assert fed["images"] is images and fed["labels"] is labels  # the arrays themselves
    # Worker 1 of 2 trains on batches 1 and 3 of the epoch's order: resumed at its step 2, nothing is left.
    whole = np.random.default_rng([1, 0]).permutation(100)
    assert fed["order"].tolist() == []
    pipeline.start_epoch(None, (images, labels), 32, EpochPlan(seed=1, epoch=0, first_step=1, worker=1, num_workers=2))
    assert fed["order"].tolist() == whole[96:].tolist()  # worker 1's batches 1 and 3; step 1 is batch 3


@pytest.mark.slow
def test_a_missing_changed_or_corrupt_shard_is_one_line_naming_it(mnist_records, tmp_path, data_dir):
    import shutil

    def train(folder, *extra):
        run_dir = tmp_path / "run"
        before = tree_snapshot(run_dir) if run_dir.exists() else None
        result = run_cli("train", "--dataset=tfrecord", f"--data_dir={folder}", f"--train_dir={run_dir}",
                         "--num_epochs=1", "--progress=false", "--batch_size=100", *extra)
        assert (tree_snapshot(run_dir) if run_dir.exists() else None) == before  # nothing written
        return result

    folder = tmp_path / "copy"
    shutil.copytree(mnist_records, folder)
    shard = folder / "train-00001-of-00003.tfrecord"
    contents = bytearray(shard.read_bytes())
    contents[len(contents) // 2] ^= 0xFF  # same size, one byte changed
    shard.write_bytes(bytes(contents))
    result = train(folder)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert f"{shard} is not the file" in result.stderr and "SHA-256 differs" in result.stderr
    # Unverified, the record's own checksum catches it when read: still one line.
    run = tmp_path / "run"
    result = run_cli("train", "--dataset=tfrecord", f"--data_dir={folder}", f"--train_dir={run}", "--num_epochs=1",
                     "--progress=false", "--batch_size=100", "--noverify_shards")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert "corrupt data" in result.stderr and "convert the dataset again" in result.stderr
    shutil.rmtree(run)
    shard.write_bytes(bytes(contents[:1000]))
    result = train(folder)
    assert "1000 bytes, not" in result.stderr and result.returncode == 2
    shard.unlink()
    result = train(folder)
    assert result.returncode == 2 and f"{shard} is missing" in result.stderr
    result = train(tmp_path / "nowhere")
    assert result.returncode == 2 and "is not a directory" in result.stderr


@pytest.mark.slow
def test_an_interrupted_conversion_leaves_nothing_that_looks_complete(tmp_path):
    make_folder_layout(tmp_path / "pets", per_class=300)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "cnn_tf.data.convert", "--dataset=image_folder", f"--data_dir={tmp_path / 'pets'}",
               f"--output_dir={out}", "--num_shards=8"]
    process = subprocess.Popen(command, cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = pathlib.Path(str(out) + ".partial")
    deadline = time.monotonic() + 120
    try:
        while not list(staging.glob("*.tfrecord")):  # killed while it writes its shards
            assert process.poll() is None and time.monotonic() < deadline, "the conversion ended too soon"
            time.sleep(0.01)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert not out.exists() and not (staging / "dataset.json").exists()
    for folder, words in ((out, "is a conversion that did not finish"), (staging, "did not finish")):
        result = run_cli("train", "--dataset=tfrecord", f"--data_dir={folder}", f"--train_dir={tmp_path / 'run'}")
        assert result.returncode == 2 and words in result.stderr and "\n" not in result.stderr.strip(), result.stderr
    again = subprocess.run(command, cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "left by a conversion that did not finish" in again.stderr
    assert (out / "dataset.json").exists() and not staging.exists()
    refused = subprocess.run(command, cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "exists; remove it or choose another" in refused.stderr
