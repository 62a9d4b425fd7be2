"""Peak memory of the photo configs, measured (not a timed test): each training and evaluation in
its own process, its peak RSS read by wait4.

    python scripts/photo_memory.py [--count=1000] [--epochs=1] [--config=configs/four_conv_pets.cfg]
                                   [--flags=--image_size=224] [--data_dir=DIR] [--work_dir=DIR]

Writes a folder of `--count` generated photos (scripts/make_photos.py, seed 11), or takes `--data_dir`'s,
trains `--config` with `--flags` on it for `--epochs` (0: as many as the config says), then evaluates
the run's test split; prints one JSON line on stdout: the peak RSS of each process in MiB, the whole
training command's seconds, the checkpoint's size on disk and the test accuracy (of a one-epoch run:
a check that it ran, not a result; of the config's own epochs: its result on that folder).
"""
import argparse
import glob
import json
import os
import platform
import re
import shutil
import sys
import tempfile

from bench_streaming import run_measured
from make_photos import write


def checkpoint_bytes(train_dir):
    """Bytes of the latest checkpoint's files (index and data shards)."""
    with open(os.path.join(train_dir, "checkpoints", "checkpoint")) as f:
        latest = re.search(r'model_checkpoint_path: "([^"]+)"', f.read()).group(1)
    prefix = latest if os.path.isabs(latest) else os.path.join(train_dir, "checkpoints", latest)
    return sum(os.path.getsize(p) for p in glob.glob(prefix + ".*"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--config", default="configs/four_conv_pets.cfg")
    parser.add_argument("--flags", default="--image_size=224", help="extra train flags, space-separated")
    parser.add_argument("--data_dir", default=None, help="a folder of photos to use instead of generating one")
    parser.add_argument("--work_dir", default=None, help="default: a temporary directory, removed after")
    args = parser.parse_args(argv)
    if args.data_dir and not os.path.isdir(args.data_dir):
        sys.exit(f"error: --data_dir={args.data_dir} is not a folder; give a folder of photos, or leave it out")
    work = args.work_dir or tempfile.mkdtemp(prefix="photo_memory_")
    try:
        photos, train_dir = args.data_dir or os.path.join(work, "photos"), os.path.join(work, "run")
        if not os.path.isdir(photos):
            write(photos, args.count, 11)
        common = ["--progress=false", f"--data_dir={photos}", f"--train_dir={train_dir}"]
        epochs = [f"--num_epochs={args.epochs}"] if args.epochs else []
        out, train_rss, train_seconds = run_measured(["cnn_tf.train", f"--flagfile={args.config}", *common,
                                                      *epochs, *args.flags.split()])
        eval_out, eval_rss, _ = run_measured(["cnn_tf.evaluate", f"--checkpoint_dir={train_dir}", "--split=test"])
        result = {"config": args.config, "flags": args.flags, "photos": args.data_dir or args.count,
                  "epochs": args.epochs or "the config's",
                  "train_peak_rss_mib": round(train_rss), "evaluate_peak_rss_mib": round(eval_rss),
                  "train_seconds": round(train_seconds), "checkpoint_mb": round(checkpoint_bytes(train_dir) / 1e6, 1),
                  "test_accuracy": float(re.search(r"test accuracy: ([0-9.]+)", out).group(1)),
                  "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
        print(json.dumps(result))
        print(out.strip() + "\n" + eval_out.strip(), file=sys.stderr)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
