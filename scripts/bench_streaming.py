"""Streaming from TFRecord shards against training in memory, measured in one run (`make bench`).

    python scripts/bench_streaming.py [--sizes=5000,40000] [--cifar_size=50000] [--update_readme]

1. Generates image folders of `--sizes` 128x128 JPEGs (10 classes), converts each
   (`python -m cnn_tf.data.convert`, its images/s), and trains three_conv for one epoch at 32x32 from
   the shards: the training process's peak RSS for each size (goal: < 10% growth from the small
   folder to the large one) and its images/s; and the same epoch from the folder in memory. The
   shuffle buffer (`--shuffle_buffer` records) is what a streamed run holds of the data, and an
   evaluation batch's activations its largest other cost: both are set below the small folder's
   splits, so that both runs fill them.
2. CIFAR-10-sized data (`--cifar_size` 32x32x3 training images in CIFAR-10's binary layout, plus
   `--cifar_test_size` test images, 10,000 as CIFAR-10's), three_conv for one epoch in memory and
   streamed: images/s of each (goal: streaming >= 90% of memory).
Every training runs in its own process; its peak RSS comes from wait4. Writes bench/streaming.json
and bench/streaming.md (and, with --update_readme, the README's table).
"""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cnn_tf  # noqa: E402,F401  (first: it loads TensorFlow quietly)
import tensorflow as tf  # noqa: E402

BEGIN, END = "<!-- streaming:begin -->", "<!-- streaming:end -->"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="5000,40000", help="images in each generated JPEG folder")
    p.add_argument("--cifar_size", type=int, default=50000, help="training images of the CIFAR-10-sized data")
    p.add_argument("--cifar_test_size", type=int, default=10000, help="its test images (CIFAR-10 has 10,000)")
    p.add_argument("--shuffle_buffer", type=int, default=2000,
                   help="--shuffle_buffer of the folders' streamed runs: below the small folder's training split, "
                   "so both runs hold a full buffer (the one cost of streaming that grows, up to its size)")
    p.add_argument("--work_dir", default=None, help="where the data goes (default: a temporary folder)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench"))
    p.add_argument("--update_readme", action="store_true")
    return p.parse_args(argv)


def class_images(labels, size, rng):
    """Noisy images whose class is a bright square's position: learnable, and JPEGs of honest size."""
    images = rng.integers(0, 120, (len(labels), size, size, 3), dtype=np.uint8)
    cell = size // 4
    for i, k in enumerate(labels):
        row, col = divmod(int(k), 4)
        images[i, row * cell:(row + 1) * cell, col * cell:(col + 1) * cell] += 120
    return images


def write_jpeg_folder(folder, count, size=128, seed=0):
    graph = tf.Graph()
    with graph.as_default():
        batch = tf.compat.v1.placeholder(tf.uint8, [None, size, size, 3])
        encoded = tf.map_fn(lambda x: tf.io.encode_jpeg(x, quality=90), batch, fn_output_signature=tf.string)
    rng = np.random.default_rng(seed)
    for k in range(10):
        os.makedirs(os.path.join(folder, f"class{k}"))
    with tf.compat.v1.Session(graph=graph) as sess:
        for start in range(0, count, 500):
            labels = rng.integers(0, 10, min(500, count - start))
            for i, (label, jpeg) in enumerate(zip(labels, sess.run(encoded, {batch: class_images(labels, size, rng)}))):
                with open(os.path.join(folder, f"class{label}", f"{start + i:06d}.jpg"), "wb") as f:
                    f.write(jpeg)


def write_cifar_layout(folder, train, test=10000, seed=0):
    """Generated images in CIFAR-10's binary batches (5 train files, a test file, the class names)."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder)
    sizes = [train // 5 + (1 if k < train % 5 else 0) for k in range(5)]
    for name, n in [(f"data_batch_{k + 1}.bin", sizes[k]) for k in range(5)] + [("test_batch.bin", test)]:
        labels = rng.integers(0, 10, n)
        images = class_images(labels, 32, rng)
        records = np.concatenate([labels[:, None].astype(np.uint8), images.transpose(0, 3, 1, 2).reshape(n, -1)], 1)
        records.tofile(os.path.join(folder, name))
    with open(os.path.join(folder, "batches.meta.txt"), "w") as f:
        f.write("\n".join(f"class{k}" for k in range(10)))


def run_measured(args):
    """Runs `python -m <args>`; returns (stdout, its peak RSS in MiB, read by wait4, seconds)."""
    started = time.perf_counter()
    with open(os.devnull, "w") as devnull, tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        pid = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=out, stderr=err, stdin=devnull).pid
        _, status, usage = os.wait4(pid, 0)
        out.seek(0)
        err.seek(0)
        text, error = out.read(), err.read()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(args)} failed:\n{error}")
    return text, usage.ru_maxrss / 1024, time.perf_counter() - started


def train_rate(out):
    """The epoch line's training images/s."""
    return float(re.search(r"acc [0-9.]+\s+(\d+) img/s", out).group(1))


def train(data_flags, train_dir):
    out, rss, seconds = run_measured(["cnn_tf.train", "--model=three_conv", "--batch_size=128", "--num_epochs=1",
                                      "--progress=false", f"--train_dir={train_dir}", *data_flags])
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    return {"images_per_s": train_rate(out), "peak_rss_mib": round(rss), "seconds": round(seconds, 1),
            "test_accuracy": accuracy}


def convert(data_flags, output_dir):
    out, rss, seconds = run_measured(["cnn_tf.data.convert", f"--output_dir={output_dir}", "--num_shards=8",
                                      *data_flags])
    return {"images_per_s": float(re.search(r"\((\d+) img/s\)", out).group(1)), "seconds": round(seconds, 1),
            "peak_rss_mib": round(rss)}


def main(args):
    work = args.work_dir or tempfile.mkdtemp(prefix="cnn_tf_streaming_")
    from results import machine  # scripts/ is this script's import path

    results = {"machine": machine(),
               "tensorflow": tf.__version__, "folders": {}, "cifar": {}}
    try:
        for count in [int(n) for n in args.sizes.split(",")]:
            folder = os.path.join(work, f"jpeg{count}")
            print(f"generating {count:,} 128x128 JPEGs ...", flush=True)
            write_jpeg_folder(folder, count)
            entry = results["folders"][count] = {}
            entry["convert"] = convert(["--dataset=image_folder", f"--data_dir={folder}"], folder + ".records")
            print(f"  converted: {entry['convert']}", flush=True)
            # Evaluation batches below the small folder's splits too: a batch's activations are the
            # run's largest memory after the buffer, and grow with the split up to the batch size.
            bounded = ["--image_size=32", "--eval_batch_size=250"]
            entry["stream"] = train(["--dataset=tfrecord", f"--data_dir={folder}.records", *bounded,
                                     f"--shuffle_buffer={args.shuffle_buffer}"],
                                    os.path.join(work, f"run_stream{count}"))
            print(f"  streamed:  {entry['stream']}", flush=True)
            entry["memory"] = train(["--dataset=image_folder", f"--data_dir={folder}", *bounded],
                                    os.path.join(work, f"run_memory{count}"))
            print(f"  memory:    {entry['memory']}", flush=True)
            shutil.rmtree(folder)
            shutil.rmtree(folder + ".records")
        cifar = os.path.join(work, "cifar")
        print(f"generating CIFAR-10-sized data ({args.cifar_size:,} training images) ...", flush=True)
        write_cifar_layout(os.path.join(cifar, "cifar-10-batches-bin"), args.cifar_size, args.cifar_test_size)
        data = ["--dataset=cifar10", f"--data_dir={cifar}", f"--validation_size={min(5000, args.cifar_size // 10)}"]
        results["cifar"]["convert"] = convert(data, cifar + ".records")
        results["cifar"]["memory"] = train(data, os.path.join(work, "run_cifar_memory"))
        print(f"  memory:    {results['cifar']['memory']}", flush=True)
        results["cifar"]["stream"] = train(["--dataset=tfrecord", f"--data_dir={cifar}.records"],
                                           os.path.join(work, "run_cifar_stream"))
        print(f"  streamed:  {results['cifar']['stream']}", flush=True)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    results["shuffle_buffer"] = args.shuffle_buffer
    report(results, args.out, args.update_readme)


def report(results, out, update_readme):
    sizes = sorted(results["folders"], key=int)
    small, large = results["folders"][sizes[0]], results["folders"][sizes[-1]]
    growth = large["stream"]["peak_rss_mib"] / small["stream"]["peak_rss_mib"] - 1
    cifar = results["cifar"]
    share = cifar["stream"]["images_per_s"] / cifar["memory"]["images_per_s"]
    results["stream_rss_growth"] = round(growth, 3)
    results["cifar_stream_share_of_memory"] = round(share, 3)
    lines = [f"Measured by `scripts/bench_streaming.py` on {results['machine']} (TensorFlow {results['tensorflow']}); "
             f"three_conv, batch 128, one epoch, each run its own process. The folders' runs use "
             f"--shuffle_buffer={results['shuffle_buffer']} and --eval_batch_size=250, below the small folder's "
             "splits, so that both sizes fill them; CIFAR-10-sized data runs with the defaults.", "",
             "| data | convert img/s | streamed: peak RSS | streamed img/s | in memory: peak RSS | in memory img/s |",
             "|---|---|---|---|---|---|"]
    for count in sizes:
        r = results["folders"][count]
        lines.append(f"| {int(count):,} JPEGs 128×128, trained at 32×32 | {r['convert']['images_per_s']:,.0f} | "
                     f"{r['stream']['peak_rss_mib']:,} MiB | {r['stream']['images_per_s']:,.0f} | "
                     f"{r['memory']['peak_rss_mib']:,} MiB | {r['memory']['images_per_s']:,.0f} |")
    lines.append(f"| CIFAR-10-sized, 32×32×3 PNGs | {cifar['convert']['images_per_s']:,.0f} | "
                 f"{cifar['stream']['peak_rss_mib']:,} MiB | {cifar['stream']['images_per_s']:,.0f} | "
                 f"{cifar['memory']['peak_rss_mib']:,} MiB | {cifar['memory']['images_per_s']:,.0f} |")
    lines += ["", f"Streaming's peak RSS grows by **{100 * growth:+.1f}%** from {int(sizes[0]):,} to "
                  f"{int(sizes[-1]):,} images (goal: < 10%); streaming trains at **{100 * share:.0f}%** of the "
                  "in-memory images/s on CIFAR-10-sized data (goal: >= 90%)."]
    table = "\n".join(lines)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "streaming.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(out, "streaming.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    if update_readme:
        path = os.path.join(ROOT, "README.md")
        text = open(path).read()
        if BEGIN not in text:
            raise SystemExit(f"README.md has no {BEGIN} ... {END} section to fill")
        head, rest = text.split(BEGIN, 1)
        with open(path, "w") as f:
            f.write(head + BEGIN + "\n" + table + "\n" + END + rest.split(END, 1)[1])


if __name__ == "__main__":
    main(parse_args())
