"""Run by tests/test_corruption.py in a process of its own (bounded by a timeout there): reads each
damaged file of one kind the way cnn_tf reads it and prints one JSON line per file, "ok", "error: ..."
(a UserError: the one line a CLI would print) or "crash: ..." (anything else: a traceback a user would see).

    python tests/corruption_probe.py JOBS_JSON      (a list of [kind, context, [path, ...]])
"""
import json
import os
import shutil
import sys
import tempfile
import traceback

import tensorflow as tf

from cnn_tf import checkpoints, config, flagfile
from cnn_tf.data import cifar10, image_folder, mnist, records
from cnn_tf.errors import UserError


def image(path, context):
    """The damaged image among good ones in a class folder: image_folder decodes them all."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(context["folder"], folder, dirs_exist_ok=True)
        shutil.copy(path, os.path.join(folder, "cat", "damaged" + os.path.splitext(path)[1]))
        image_folder.load(folder, image_size=8)


def labels_csv(path, context):
    image_folder.load(context["flat"], labels_csv=path, image_size=8, validation_fraction=0, test_fraction=0)


def idx(path, context):
    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(context["idx"], folder, dirs_exist_ok=True)
        shutil.copy(path, os.path.join(folder, context["name"]))
        mnist.load("mnist", data_dir=folder, validation_size=10)


def cifar(path, context):
    cifar10.read_batches([path])


def shards(path, context):
    """A damaged shard or dataset.json in a converted folder: loaded (SHA-256s checked) and read through."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(context["records"], folder, dirs_exist_ok=True)
        shutil.copy(path, os.path.join(folder, context["name"]))
        data = records.load(folder, verify=context.get("verify", True))
        for split in data.splits.values():
            for file in split.files:
                for _ in tf.compat.v1.io.tf_record_iterator(file):
                    pass


def checkpoint(path, context):
    """A damaged index or data file of a checkpoint: checked and restored into the run's graph."""
    from cnn_tf.graph import build_graph
    if "graph" not in _built:  # one graph and session for every damaged checkpoint
        _built["graph"] = g = build_graph(config.RunConfig(), (28, 28, 1), 10, 1000)
        _built["session"] = tf.compat.v1.Session(graph=g.graph)
    with tempfile.TemporaryDirectory() as folder:
        prefix = os.path.join(folder, "model.ckpt-16")
        for part in ("index", "data-00000-of-00001"):
            shutil.copy(f"{context['prefix']}.{part}", f"{prefix}.{part}")
        shutil.copy(path, f"{prefix}.{context['part']}")
        checkpoints.restore(_built["session"], _built["graph"], prefix)


_built = {}


def flags_cfg(path, context):
    flagfile.load_config(path)


def main():
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    for kind, context, paths in jobs:  # one process for every kind: TensorFlow's import is paid once
        probe(kind, context, paths)


def probe(kind, context, paths):
    read = {"image": image, "labels_csv": labels_csv, "idx": idx, "cifar": cifar, "shards": shards,
            "checkpoint": checkpoint, "flags_cfg": flags_cfg}[kind]
    for path in paths:
        try:
            read(path, context)
            outcome = "ok"
        except (UserError, tf.errors.DataLossError) as e:  # what the CLIs print as one line (cnn_tf.cli)
            outcome = f"error: {str(getattr(e, 'message', e)).splitlines()[0]}"
        except Exception:  # noqa: BLE001 - the point: anything else is a traceback a user would see
            outcome = "crash: " + traceback.format_exc()
        print(json.dumps({"path": path, "outcome": outcome}), flush=True)


if __name__ == "__main__":
    main()
