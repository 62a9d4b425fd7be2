"""A run started by an earlier commit, SIGKILLed, and resumed by this checkout ends bit for bit like
the earlier commit's uninterrupted run: a refactoring may not change what a train dir means.

    .venv/bin/python scripts/resume_across_versions.py --before=COMMIT [--work_dir=DIR] [FLAG ...]

COMMIT's cnn_tf (taken with `git archive`, so no worktree is touched) trains a small generated
dataset twice: once to the end (the reference) and once killed with SIGKILL a moment after its
first checkpoint; this checkout's cnn_tf then resumes the killed run. Every variable of the two
final checkpoints (weights, Adam slots, batch-norm statistics, the step) must be equal, and so must
the printed test accuracy. Extra FLAGs go to every training, e.g. `--num_towers=2`. Prints one JSON
line on stdout; exits 1 when anything differs.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ["--dataset=mnist", "--validation_size=200", "--batch_size=64", "--num_epochs=4", "--deterministic",
         "--max_num_checkpoint=2", "--summary_every_n_steps=3", "--eval_batch_size=128", "--progress=false",
         "--download_mirror=http://127.0.0.1:9/"]


def unpack(commit, directory):
    """COMMIT's files under `directory`, from `git archive` (no checkout or worktree changes)."""
    archive = os.path.join(directory, "source.tar")
    subprocess.run(["git", "-C", ROOT, "archive", "-o", archive, commit], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(os.path.join(directory, "before"), filter="data")
    return os.path.join(directory, "before")


def write_data(directory):
    from cnn_tf.data.idx import write_idx

    rng = np.random.default_rng(0)
    for part, n, prefix in (("train", 1200, "train"), ("test", 300, "t10k")):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 90, (n, 28, 28), dtype=np.uint8)
        for i, k in enumerate(labels):  # class k: a bright bar on row 2 + 2k
            images[i, 2 + 2 * k:5 + 2 * k, 2:16 + k] = 230
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), images)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), labels)


def train(source, train_dir, flags, kill_after_first_checkpoint=False, timeout=900):
    """`python -m cnn_tf.train` with `source`'s cnn_tf first on the path; returns its stdout."""
    env = dict(os.environ, PYTHONPATH=source, PYTHONHASHSEED="0")
    process = subprocess.Popen([sys.executable, "-m", "cnn_tf.train", f"--train_dir={train_dir}", *flags],
                               cwd=source, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after_first_checkpoint:
        state = os.path.join(train_dir, "checkpoints", "checkpoint")
        deadline = time.monotonic() + timeout
        while not os.path.exists(state) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # into the next epoch's steps
        process.send_signal(signal.SIGKILL)
    out, err = process.communicate(timeout=timeout)
    if not kill_after_first_checkpoint and process.returncode != 0:
        sys.exit(f"error: training in {source} exited {process.returncode}:\n{err}")
    return process.returncode, out


def variables(train_dir):
    import tensorflow as tf

    path = tf.train.latest_checkpoint(os.path.join(train_dir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    return os.path.basename(path), {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the commit that starts the runs")
    parser.add_argument("--work_dir", help="where the runs go (default: a new temporary directory)")
    args, extra = parser.parse_known_args()
    work = args.work_dir or tempfile.mkdtemp(prefix="resume_across_versions.")
    os.makedirs(work, exist_ok=True)
    before = unpack(args.before, work)
    data_dir = os.path.join(work, "data")
    os.makedirs(data_dir, exist_ok=True)
    write_data(data_dir)
    flags = FLAGS + [f"--data_dir={data_dir}"] + extra
    _, reference_out = train(before, os.path.join(work, "reference"), flags)
    killed = os.path.join(work, "killed")
    code, _ = train(before, killed, flags, kill_after_first_checkpoint=True)
    killed_at = os.path.basename(variables(killed)[0])
    _, resumed_out = train(ROOT, killed, flags)
    (name, got), (expected_name, expected) = variables(killed), variables(os.path.join(work, "reference"))
    differ = sorted(n for n in expected if n not in got or not np.array_equal(got[n], expected[n]))
    differ += sorted(set(got) - set(expected))
    accuracy = [[line for line in out.splitlines() if line.startswith("test accuracy")]
                for out in (reference_out, resumed_out)]
    result = {"before": args.before, "flags": extra, "work_dir": work, "killed_with": code, "killed_at": killed_at,
              "final": name, "reference_final": expected_name, "variables": len(expected), "differ": differ,
              "test_accuracy": accuracy, "bit_exact": not differ and name == expected_name
              and accuracy[0] == accuracy[1] and bool(accuracy[0])}
    print(json.dumps(result))
    sys.exit(0 if result["bit_exact"] else 1)


if __name__ == "__main__":
    main()
