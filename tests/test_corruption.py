"""Every kind of file cnn_tf reads, damaged by seeded truncations and byte flips: each read either
works or is one UserError line (what the CLIs print, exit 2), never a traceback, never a hang (the
probe process is bounded by a timeout). tests/corruption_probe.py does the reading, every kind in one
process (TensorFlow's import is paid once)."""
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
# case -> must some damaged copy be refused? (a CSV or flags.cfg may stay readable however it is cut)
CASES = {"png": True, "jpg": True, "bmp": True, "gif": True, "labels_csv": False, "idx_raw": True, "idx_gz": True,
         "cifar": True, "shard_verified": True, "shard_unverified": True, "dataset_json": True,
         "checkpoint_index": True, "checkpoint_data": True, "flags_cfg": False}


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


def originals(root):
    """case -> (probe kind, context, the good file to damage, suffix of the damaged copies)."""
    cases = {}
    make_folder_layout(root / "pets", per_class=3)
    for suffix in (".png", ".jpg", ".bmp", ".gif"):
        good = root / f"good{suffix}"
        good.write_bytes(GIF) if suffix == ".gif" else write_image(str(good), colour_image(1, 7))
        cases[suffix[1:]] = ("image", {"folder": str(root / "pets")}, good, suffix)

    flat = root / "flat"
    flat.mkdir()
    for i in range(6):
        write_image(str(flat / f"{i}.png"), colour_image(i % 2, i))
    (root / "labels.csv").write_text("id,label\n" + "".join(f"{i},{'cat' if i % 2 else 'dog'}\n" for i in range(6)))
    cases["labels_csv"] = ("labels_csv", {"flat": str(flat)}, root / "labels.csv", ".csv")

    write_dataset(str(root / "raw"), num_train=60, num_test=20, gz=False)
    write_dataset(str(root / "gz"), num_train=60, num_test=20, gz=True)
    cases["idx_raw"] = ("idx", {"idx": str(root / "raw"), "name": "train-images-idx3-ubyte"},
                        root / "raw" / "train-images-idx3-ubyte", "")
    cases["idx_gz"] = ("idx", {"idx": str(root / "gz"), "name": "train-labels-idx1-ubyte.gz"},
                       root / "gz" / "train-labels-idx1-ubyte.gz", "")

    rng = np.random.default_rng(0)
    batch = np.concatenate([rng.integers(0, 10, (20, 1)), rng.integers(0, 256, (20, 3072))], axis=1).astype(np.uint8)
    (root / "data_batch_1.bin").write_bytes(batch.tobytes())
    cases["cifar"] = ("cifar", {}, root / "data_batch_1.bin", ".bin")

    from cnn_tf import config, flagfile
    from cnn_tf.data.convert import convert
    convert(config.RunConfig(dataset="mnist", data_dir=str(root / "gz"), validation_size=20), str(root / "records"),
            num_shards=2)
    shard = "train-00000-of-00002.tfrecord"
    for case, name, verify in (("shard_verified", shard, True), ("shard_unverified", shard, False),
                               ("dataset_json", "dataset.json", True)):
        cases[case] = ("shards", {"records": str(root / "records"), "name": name, "verify": verify},
                       root / "records" / name, "")

    import tensorflow as tf
    from cnn_tf.graph import build_graph
    g = build_graph(config.RunConfig(), (28, 28, 1), 10, 1000)
    with tf.compat.v1.Session(graph=g.graph) as sess, g.graph.as_default():
        sess.run(g.saving.init_op)
        prefix = g.saving.saver.save(sess, str(root / "model.ckpt"), global_step=16, write_meta_graph=False,
                                     write_state=False)
    for case, part in (("checkpoint_index", "index"), ("checkpoint_data", "data-00000-of-00001")):
        cases[case] = ("checkpoint", {"prefix": prefix, "part": part}, f"{prefix}.{part}", "")

    (root / "flags.cfg").write_text(flagfile.flagfile_text(config.RunConfig(model="vgg", batch_size=32)))
    cases["flags_cfg"] = ("flags_cfg", {}, root / "flags.cfg", ".cfg")
    return cases


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """case -> the outcome of reading each of its damaged copies, all read in one bounded process."""
    root = tmp_path_factory.mktemp("corruption")
    jobs, cases = [], originals(root)
    for seed, (case, (kind, context, good, suffix)) in enumerate(sorted(cases.items())):
        (root / case).mkdir()
        paths = []
        for i, data in enumerate(mutations(open(good, "rb").read(), seed)):
            path = root / case / f"damaged{i}{suffix}"
            path.write_bytes(data)
            paths.append(str(path))
        jobs.append([kind, context, paths])
    (root / "jobs.json").write_text(json.dumps(jobs))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "corruption_probe.py"), str(root / "jobs.json")],
                            capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=300)
    found = {json.loads(line)["path"]: json.loads(line)["outcome"] for line in result.stdout.splitlines()
             if line.startswith("{")}
    assert result.returncode == 0 and len(found) == len(cases) * MUTATIONS, result.stderr[-3000:]
    return {case: [found[os.path.join(str(root / case), f"damaged{i}{cases[case][3]}")] for i in range(MUTATIONS)]
            for case in cases}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_file_is_read_or_one_line_never_a_traceback(outcomes, case):
    crashes = [o for o in outcomes[case] if o.startswith("crash")]
    assert not crashes, crashes[0]
    assert all(o == "ok" or o.startswith("error: ") for o in outcomes[case])
    if CASES[case]:
        assert any(o.startswith("error: ") for o in outcomes[case]), outcomes[case]
    if case in ("png", "jpg", "bmp", "gif"):  # the damaged file is named
        assert all("damaged" in o for o in outcomes[case] if o.startswith("error: "))
