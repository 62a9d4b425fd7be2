"""Every kind of file cnn_tf reads, damaged by seeded truncations and byte flips: each read either
works or is one UserError line (what the CLIs print, exit 2), never a traceback, never a hang (the
probe process is bounded by a timeout). tests/corruption_probe.py does the reading."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, cli_env, colour_image, make_folder_layout, write_dataset, write_image

MUTATIONS = 12  # per file: half truncations, half flips of 1 to 8 bytes
# A 1x1 GIF (TensorFlow decodes GIF but does not encode it).
GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00"
       b"\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def mutations(data, seed):
    """Seeded damaged copies of `data`: truncated anywhere (to nothing included), or bytes flipped."""
    rng = np.random.default_rng(seed)
    out = [data[:int(n)] for n in sorted(rng.integers(0, len(data), MUTATIONS // 2 - 1))] + [b""]
    for _ in range(MUTATIONS // 2):
        damaged = bytearray(data)
        for position in rng.integers(0, len(data), rng.integers(1, 9)):
            damaged[position] ^= int(rng.integers(1, 256))
        out.append(bytes(damaged))
    return out


def probe(kind, context, original, tmp_path, suffix=""):
    paths = []
    for i, data in enumerate(mutations(open(original, "rb").read(), seed=len(paths) + hash(kind) % 1000)):
        path = tmp_path / f"damaged{i}{suffix}"
        path.write_bytes(data)
        paths.append(str(path))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "corruption_probe.py"), kind,
                             json.dumps(context), *paths], capture_output=True, text=True, cwd=ROOT, env=cli_env(),
                            timeout=120)
    outcomes = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0 and len(outcomes) == len(paths), result.stderr[-3000:]
    crashes = [o for o in outcomes if o["outcome"].startswith("crash")]
    assert not crashes, crashes[0]["outcome"]
    return [o["outcome"] for o in outcomes]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("corrupt_images")
    make_folder_layout(root / "pets", per_class=3)
    return root / "pets"


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".gif"])
def test_damaged_images(folder, tmp_path, suffix):
    original = tmp_path / f"good{suffix}"
    if suffix == ".gif":
        original.write_bytes(GIF)
    else:
        write_image(str(original), colour_image(1, 7))
    outcomes = probe("image", {"folder": str(folder)}, original, tmp_path, suffix)
    assert any(o.startswith("error: ") and "damaged" in o for o in outcomes)  # the file is named


def test_damaged_labels_csv(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    rows = []
    for i in range(6):
        write_image(str(flat / f"{i}.png"), colour_image(i % 2, i))
        rows.append(f"{i},{'cat' if i % 2 else 'dog'}")
    original = tmp_path / "labels.csv"
    original.write_text("id,label\n" + "\n".join(rows) + "\n")
    probe("labels_csv", {"flat": str(flat)}, original, tmp_path, ".csv")


@pytest.mark.parametrize("name", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte.gz"])
def test_damaged_idx_files(tmp_path, name):
    raw, gz = tmp_path / "raw", tmp_path / "gz"
    write_dataset(str(raw), num_train=60, num_test=20, gz=False)
    write_dataset(str(gz), num_train=60, num_test=20, gz=True)
    source = raw if not name.endswith(".gz") else gz
    outcomes = probe("idx", {"idx": str(source), "name": name}, source / name, tmp_path)
    assert any(o.startswith("error: ") for o in outcomes)


def test_damaged_cifar_batch(tmp_path):
    rng = np.random.default_rng(0)
    batch = np.concatenate([rng.integers(0, 10, (20, 1)), rng.integers(0, 256, (20, 3072))], axis=1).astype(np.uint8)
    original = tmp_path / "data_batch_1.bin"
    original.write_bytes(batch.tobytes())
    outcomes = probe("cifar", {}, original, tmp_path, ".bin")
    assert any(o.startswith("error: ") for o in outcomes)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from cnn_tf import config
    from cnn_tf.data.convert import convert

    root = tmp_path_factory.mktemp("corrupt_records")
    write_dataset(str(root / "idx"), num_train=80, num_test=20)
    convert(config.RunConfig(dataset="mnist", data_dir=str(root / "idx"), validation_size=20), str(root / "records"),
            num_shards=2)
    return root / "records"


@pytest.mark.parametrize("name, verify", [("train-00000-of-00002.tfrecord", True),
                                          ("train-00000-of-00002.tfrecord", False), ("dataset.json", True)])
def test_damaged_tfrecord_shard_and_dataset_json(converted, tmp_path, name, verify):
    outcomes = probe("shards", {"records": str(converted), "name": name, "verify": verify}, converted / name, tmp_path)
    assert any(o.startswith("error: ") for o in outcomes)


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
    import tensorflow as tf
    from cnn_tf import config
    from cnn_tf.graph import build_graph

    prefix = str(tmp_path_factory.mktemp("corrupt_checkpoint") / "model.ckpt")
    g = build_graph(config.RunConfig(), (28, 28, 1), 10, 1000)
    with tf.compat.v1.Session(graph=g.graph) as sess, g.graph.as_default():
        sess.run(g.init_op)
        return g.saver.save(sess, prefix, global_step=16, write_meta_graph=False, write_state=False)


@pytest.mark.parametrize("part", ["index", "data-00000-of-00001"])
def test_damaged_checkpoint_index_and_data(saved_checkpoint, tmp_path, part):
    outcomes = probe("checkpoint", {"prefix": saved_checkpoint, "part": part}, f"{saved_checkpoint}.{part}", tmp_path)
    assert any(o.startswith("error: ") for o in outcomes)


def test_damaged_flags_cfg(tmp_path):
    from cnn_tf import config

    original = tmp_path / "flags.cfg"
    original.write_text(config.flagfile_text(config.RunConfig(model="vgg", batch_size=32)))
    probe("flags_cfg", {}, original, tmp_path, ".cfg")
