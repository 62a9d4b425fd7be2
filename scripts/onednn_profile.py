"""Where a training step's time goes in oneDNN's kernels, and the rate its convolutions reach.

    python scripts/onednn_profile.py [--config=configs/resnet_fashion_mnist_fast.cfg] [--precision=float32]
                                     [--batch_size=128] [--steps=5]

Runs --steps training steps of the config's graph (after 3 warm-up steps) in a child process with
ONEDNN_VERBOSE=1, reads oneDNN's line per primitive execution, and prints (stdout, markdown) the time
per step of each kind of primitive (convolution forward / backward data / backward weights, batch
norm, eltwise, reorder, ...), the kernel oneDNN chose, and for the convolutions their GFLOP/s by input
channels: small-channel convolutions are where a CPU loses most of its peak. Time outside oneDNN
(TensorFlow's own ops: the optimizer, summaries, the input pipeline) is the step's rest.
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP = 3

CHILD = """
import sys, time
sys.path.insert(0, {root!r})
import numpy as np
import cnn_tf, tensorflow as tf
from cnn_tf import flagfile
from cnn_tf.graph import build_graph, hardware
from cnn_tf.data.pipeline import TrainFeed
hp = flagfile.load_config({config!r}).replace(precision={precision!r}, batch_size={batch}, augment="none")
rng = np.random.default_rng(0)
n = {batch} * ({steps} + {warmup})
x, y = rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)
g = build_graph(hp, (28, 28, 1), 10, n, precision=hp.precision)
with g.graph.as_default(), tf.compat.v1.Session(config=hardware.session_config(hp)) as sess:
    sess.run(tf.compat.v1.global_variables_initializer())
    TrainFeed(g.inputs.pipeline, (x, y), {batch}).start(sess, 0, 0)
    for i in range({steps} + {warmup}):
        if i == {warmup}:
            print("PROFILE_START", flush=True)
            started = time.perf_counter()
        sess.run(g.train_ops.train_op)
    print(f"PROFILE_STEP_MS {{1000 * (time.perf_counter() - started) / {steps}}}", flush=True)
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/resnet_fashion_mnist_fast.cfg")
    p.add_argument("--precision", default="float32")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    return p.parse_args(argv)


def conv_flops(desc):
    """2 * MACs of a convolution from oneDNN's problem descriptor (mb..ic..oc..oh..ow..kh..kw, g)."""
    d = {k: int(v) for k, v in re.findall(r"([a-z]+)(\d+)", desc)}
    return 2 * d.get("mb", 1) * d["ic"] * d["oc"] * d.get("oh", 1) * d.get("ow", 1) * d.get("kh", 1) * \
        d.get("kw", 1) // d.get("g", 1)


def profile(lines):
    """Per (primitive, propagation, kernel): milliseconds in total; per conv direction and input channels: ms, FLOPs."""
    kinds, convs = collections.Counter(), collections.defaultdict(lambda: [0.0, 0])
    for line in lines:
        fields = line.split(",")
        if len(fields) < 10 or fields[0] != "onednn_verbose" or "exec" not in fields[1:4]:
            continue
        at = fields.index("exec")
        primitive, kernel, propagation = fields[at + 2], fields[at + 3], fields[at + 4]
        ms, desc = float(fields[-1]), fields[-2]
        kinds[(primitive, propagation, kernel)] += ms
        if primitive == "convolution":
            ic = re.search(r"ic(\d+)", desc).group(1)
            entry = convs[(propagation, int(ic), re.search(r"kh(\d+)", desc).group(1))]
            entry[0] += ms
            entry[1] += conv_flops(desc)
    return kinds, convs


def main(argv=None):
    args = parse_args(argv)
    if not os.path.isfile(os.path.join(ROOT, args.config)):
        sys.exit(f"error: {args.config}: no such config file (give paths like configs/X.cfg, from {ROOT})")
    code = CHILD.format(root=ROOT, config=os.path.join(ROOT, args.config), precision=args.precision,
                        batch=args.batch_size, steps=args.steps, warmup=WARMUP)
    env = dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="2")
    started = time.time()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode:
        last = (out.stderr.strip().splitlines() or ["no message"])[-1]
        sys.exit(f"error: the profiled run of {args.config} failed: {last}")
    lines = out.stdout.splitlines()
    measured = lines[lines.index("PROFILE_START") + 1:]
    step_ms = float(next(l for l in measured if l.startswith("PROFILE_STEP_MS")).split()[1])
    kinds, convs = profile(measured)
    steps = args.steps
    total = sum(kinds.values()) / steps
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
    print(f"{args.config}, {args.precision}, batch {args.batch_size}{f', ONEDNN_MAX_CPU_ISA={isa}' if isa else ''}: "
          f"a step takes {step_ms:.1f} ms with verbose logging on; its oneDNN primitives sum to {total:.1f} ms "
          f"(independent ops run at once, so the sum can pass the step; {time.time() - started:.0f} s to profile)\n")
    print("| primitive | propagation | kernel | ms per step | share of the primitives |\n|---|---|---|---|---|")
    for (primitive, propagation, kernel), ms in kinds.most_common():
        if ms / steps >= 0.05:
            print(f"| {primitive} | {propagation} | {kernel} | {ms / steps:.2f} | {100 * ms / steps / total:.1f}% |")
    print("\n| convolution | input channels | kernel size | ms per step | GFLOP/s |\n|---|---|---|---|---|")
    for (propagation, ic, kh), (ms, flops) in sorted(convs.items()):
        print(f"| {propagation} | {ic} | {kh}x{kh} | {ms / steps:.2f} | {flops / ms / 1e6:.0f} |")


if __name__ == "__main__":
    main()
