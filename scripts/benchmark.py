"""Training speed of cnn_tf's own loop against keras.Model.fit and PyTorch, on the same layers,
batch, optimizer and precision, measured in one run on this machine (`make bench`).

    python scripts/benchmark.py [--models=lenet,three_conv,resnet_fast,resnet_best]
                                [--precisions=float32,mixed_bfloat16] [--steps=150] [--resnet_steps=50]
                                [--warmup=20] [--rounds=3] [--time_to_accuracy]
    python scripts/benchmark.py --models= --time_to_accuracy    (the time to accuracy alone)

For each model and precision, the frameworks take turns, `--rounds` times (so a slow spell of a
shared machine hits them all alike), each timing `--steps` training steps after `--warmup` (the
ResNets of the two recipe configs, `--resnet_steps`), without augmentation in any framework:
- cnn_tf: the real code path, `cnn_tf.loop.Trainer` with its per-step callbacks (NaN guard, train
  summaries, the epoch's train means, a live progress bar written to /dev/null) on the graph `build_graph` makes from the
  model's config; and the same graph's bare step (sess.run(train_op) alone), so the loop's own cost
  shows; and (`--towers=2`) the loop with --num_towers=2 on as many CPU devices;
- Keras: `keras.Model.fit` (verbose=0), timed from the end of the warm-up batches by a callback;
- PyTorch: the usual loop (zero_grad, forward, backward, step, loss.item()), if torch is installed.
The best round of each counts. It also reports cnn_tf's evaluation images/s, the forward FLOPs
per image (TensorFlow's profiler), the share of the machine's measured float32 matmul peak a
training step reaches, and what per-epoch validation costs in the model's default config.
`--time_to_accuracy` also trains the TIME_TO_ACCURACY configs on the real Fashion-MNIST from scratch
and reports the wall time until a checkpoint reaches each one's target test accuracy (three_conv
0.915, in both precisions; the fast ResNet recipe 0.93, in its own) and the whole command's. Writes
bench/results.json and bench/results.md (and, with --update_readme, the README's Performance tables:
a run without models leaves the speed table as it was; the time-to-accuracy table keeps one row per
config, precision and CPU).
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cnn_tf  # noqa: E402,F401  (first: it loads TensorFlow quietly)
import tensorflow as tf  # noqa: E402

from cnn_tf import config, flagfile  # noqa: E402
from cnn_tf.callbacks import EventWriters, NanGuard, Progress, TrainMeans, TrainSummaries  # noqa: E402
from cnn_tf.data.pipeline import TrainFeed  # noqa: E402
from cnn_tf.evaluation import evaluate_split  # noqa: E402
from cnn_tf.graph import build_graph, cpu_has_bfloat16, hardware  # noqa: E402
from cnn_tf.graph.memory import inference_batch_size  # noqa: E402
from cnn_tf.loop import Callback, Trainer  # noqa: E402
from cnn_tf.nets import get_network_fn, model_options  # noqa: E402
from cnn_tf.traindir import TrainDir  # noqa: E402
from results import cpu_flags, cpu_name  # noqa: E402  (scripts/ is this script's import path)
from bench_models import IMAGE_SHAPE, NUM_CLASSES, keras_model, keras_rate, torch_model, torch_rate  # noqa: E402

# --models: a name for each config timed (the model of its table row)
BENCH_CONFIGS = {"lenet": "configs/lenet_fashion_mnist.cfg", "three_conv": "configs/three_conv_fashion_mnist.cfg",
                 "resnet_fast": "configs/resnet_fashion_mnist_fast.cfg", "resnet_best": "configs/resnet_fashion_mnist.cfg"}
DEFAULT_SPLIT = {"train": 55000, "validation": 5000}  # Fashion-MNIST with the default --validation_size
# (config, target test accuracy, precisions: None for the config's own; float32@AVX2 is float32 with
# oneDNN's kernels held to AVX2 by ONEDNN_MAX_CPU_ISA, a laptop's vector width on this machine's cores)
TIME_TO_ACCURACY = [("configs/three_conv_fashion_mnist.cfg", 0.915, ("float32", "mixed_bfloat16")),
                    ("configs/resnet_fashion_mnist_fast.cfg", 0.93, ("float32", "mixed_bfloat16", "float32@AVX2"))]
AVX2_ONLY = "float32@AVX2"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(BENCH_CONFIGS), help=f"of {', '.join(BENCH_CONFIGS)}")
    p.add_argument("--precisions", default="float32,mixed_bfloat16")
    p.add_argument("--frameworks", default="cnn_tf,keras,torch")
    p.add_argument("--towers", default="2", help="also time cnn_tf's loop with these --num_towers (float32, "
                   "one CPU device each), against one tower; empty: no such row")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--resnet_steps", type=int, default=50, help="timed steps of the ResNet rows (a step is 4-15x "
                   "LeNet's work)")
    p.add_argument("--tower_models", default="lenet,three_conv", help="the models --towers times")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--eval_images", type=int, default=10000)
    p.add_argument("--time_to_accuracy", action="store_true")
    p.add_argument("--time_to_accuracy_configs", default="", help="comma-separated: only these of TIME_TO_ACCURACY "
                   "(the README keeps the others' rows)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench"))
    p.add_argument("--update_readme", action="store_true", help="put the table in README.md's Performance section")
    return p.parse_args(argv)


def model_flags(model, precision, batch_size, num_towers=1):
    """The model's Fashion-MNIST config: the layers and options the user trains (BENCH_CONFIGS), with
    no augmentation (Keras and PyTorch get none either)."""
    if model not in BENCH_CONFIGS:
        sys.exit(f"error: --models: {model} is not one of {', '.join(BENCH_CONFIGS)}")
    return flagfile.load_config(os.path.join(ROOT, BENCH_CONFIGS[model])).replace(
        precision=precision, batch_size=batch_size, num_towers=num_towers, augment="none")


def make_data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *IMAGE_SHAPE), dtype=np.uint8), rng.integers(0, NUM_CLASSES, n).astype(np.int64)


class Clock(Callback):
    """Times an epoch of the loop from the end of its `warmup` steps to its last step."""

    def __init__(self, warmup):
        self.warmup = warmup

    def before_epoch(self):
        self.steps, self.started = 0, time.perf_counter()

    def after_step(self, values):
        self.steps += 1
        if self.steps == self.warmup:
            self.started = time.perf_counter()
        self.stopped = time.perf_counter()


class CnnTf:
    """cnn_tf's own training loop on its own graph; one epoch of the data is warm-up + timed steps."""

    def __init__(self, hp, x, y, warmup):
        self.hp, self.x, self.y, self.warmup = hp, x, y, warmup
        self.g = build_graph(hp, IMAGE_SHAPE, NUM_CLASSES, len(x), precision=hp.precision)
        self.devnull = open(os.devnull, "w")
        self.clock = Clock(warmup)
        callbacks = [NanGuard(), TrainSummaries(hp.summary_every_n_steps),
                     EventWriters(TrainDir(tempfile.mkdtemp(prefix="cnn_tf_bench_"))),
                     TrainMeans(), Progress(file=self.devnull), self.clock]
        self.feed = TrainFeed(self.g.inputs.pipeline, (x, y), hp.batch_size)
        self.trainer = Trainer(self.g, self.feed, callbacks, num_epochs=1 << 30,
                               session_config=hardware.session_config(hp))
        self.trainer.open()

    def train_rate(self, warmup, steps):
        """One epoch of the loop (`warmup` + `steps` steps)."""
        assert warmup == self.warmup and self.feed.steps_per_epoch == warmup + steps
        self.trainer.run(self.trainer.global_step + self.feed.steps_per_epoch)
        return steps * self.hp.batch_size / (self.clock.stopped - self.clock.started)

    def bare_rate(self, warmup, steps):
        """The graph alone: sess.run(train_op) in a loop, no fetches, summaries or progress bar. What
        the loop adds to it is the framework's own cost."""
        sess = self.trainer.sess
        self.feed.start(sess, 0, 0)
        for i in range(warmup + steps):
            if i == warmup:
                started = time.perf_counter()
            sess.run(self.g.train_ops.train_op)
        rate = steps * self.hp.batch_size / (time.perf_counter() - started)
        self.trainer.global_step = int(sess.run(self.g.global_step))  # the loop goes on from there
        return rate

    def close(self):
        self.trainer.close()
        self.devnull.close()

    def eval_rate(self, images, labels):
        sess, batch = self.trainer.sess, inference_batch_size(self.g, self.hp.eval_batch_size)
        evaluate_split(sess, self.g, (images[:1000], labels[:1000]), batch)  # warm-up
        started = time.perf_counter()
        evaluate_split(sess, self.g, (images, labels), batch)
        return len(images) / (time.perf_counter() - started)


def forward_flops_per_image(hp):
    """Float operations of one image's forward pass, from TensorFlow's profiler."""
    graph = tf.Graph()
    with graph.as_default():
        options = {name: getattr(hp, name) for name in model_options(hp.model)}
        network_fn = get_network_fn(hp.model, NUM_CLASSES, use_batch_norm=hp.batch_norm, init_stddev=hp.init_stddev,
                                    **options)
        network_fn(tf.zeros([1, *IMAGE_SHAPE]), is_training=False, keep_prob=1.0)
        profile = tf.compat.v1.profiler.profile(
            graph, options=tf.compat.v1.profiler.ProfileOptionBuilder(
                tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()).with_empty_output().build())
    return int(profile.total_float_ops)


def matmul_peak_flops(n=2048, reps=20):
    """The machine's float32 matmul rate, measured: the yardstick for 'fraction of peak'."""
    graph = tf.Graph()
    with graph.as_default():
        a = tf.Variable(tf.random.uniform([n, n]))
        b = tf.Variable(tf.random.uniform([n, n]))
        product = tf.reduce_sum(tf.matmul(a, b))
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(product)
            best = 0.0
            for _ in range(3):
                started = time.perf_counter()
                for _ in range(reps):
                    sess.run(product)
                best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - started))
    return best


def time_to_accuracy(config_path, target, precision=None):
    """Trains `config_path` on the real Fashion-MNIST, keeping every checkpoint, then evaluates each on
    the test split: seconds from the start to the first checkpoint >= target, and of the command."""
    env = dict(os.environ)
    if precision == AVX2_ONLY:
        precision, env["ONEDNN_MAX_CPU_ISA"] = "float32", "AVX2"
    with tempfile.TemporaryDirectory() as train_dir:
        started = time.time()
        train = subprocess.run([sys.executable, "-m", "cnn_tf.train", f"--flagfile={config_path}",
                                f"--train_dir={train_dir}", "--max_num_checkpoint=100", "--noprogress",
                                *([f"--precision={precision}"] if precision else [])],
                               cwd=ROOT, capture_output=True, text=True, env=env)
        run_seconds = round(time.time() - started, 1)
        if train.returncode:
            return {"error": train.stderr.strip().splitlines()[-1]}
        checkpoint_dir = os.path.join(train_dir, "checkpoints")
        paths = sorted((p[:-len(".index")] for p in os.listdir(checkpoint_dir) if p.endswith(".index")),
                       key=lambda p: int(p.rsplit("-", 1)[1]))
        accuracies = []
        for epoch, name in enumerate(paths, start=1):
            path = os.path.join(checkpoint_dir, name)
            result = subprocess.run([sys.executable, "-m", "cnn_tf.evaluate", f"--checkpoint_dir={train_dir}",
                                     f"--checkpoint_path={path}"], cwd=ROOT, capture_output=True, text=True)
            printed = re.search(r"^test accuracy: (\S+)", result.stdout, re.M)
            if result.returncode or not printed:  # the run's figures would be lost to a traceback
                return {"error": f"evaluate {name}: " + (result.stderr.strip().splitlines() or ["no test accuracy"])[-1],
                        "accuracies": accuracies, "run_seconds": run_seconds}
            accuracies.append(float(printed.group(1)))
            if accuracies[-1] >= target:
                seconds = os.path.getmtime(path + ".index") - started
                return {"seconds": round(seconds, 1), "epochs": epoch, "test_accuracy": accuracies[-1],
                        "accuracies": accuracies, "run_seconds": run_seconds, "run_epochs": len(paths)}
        return {"seconds": None, "epochs": len(paths), "test_accuracy": accuracies[-1], "accuracies": accuracies,
                "run_seconds": run_seconds, "run_epochs": len(paths), "note": "target not reached"}


def times_to_accuracy(only=()):
    """Every TIME_TO_ACCURACY config (or those in `only`), at each of its precisions."""
    only = [os.path.relpath(os.path.abspath(c), ROOT) for c in only]
    unknown = sorted(set(only) - {c for c, _, _ in TIME_TO_ACCURACY})
    if unknown:
        sys.exit(f"error: --time_to_accuracy_configs: {', '.join(unknown)} not in TIME_TO_ACCURACY "
                 f"({', '.join(c for c, _, _ in TIME_TO_ACCURACY)})")
    measured = []
    for config_path, target, precisions in TIME_TO_ACCURACY:
        if only and config_path not in only:
            continue
        cfg = flagfile.load_config(os.path.join(ROOT, config_path))
        for precision in precisions:
            shown = precision or cfg.precision
            row = {"config": config_path, "model": cfg.model, "target": target, "precision": shown}
            if shown == "mixed_bfloat16" and not cpu_has_bfloat16():  # train would fall back to float32
                row["result"] = "not measured: this CPU has no bfloat16 instructions"
            elif shown == AVX2_ONLY and "AVX-512" not in cpu_flags():
                row["result"] = "not measured: this CPU is AVX2 already (its float32 row)"
            else:
                row["result"] = time_to_accuracy(config_path, target, precision)
            print(json.dumps(row), flush=True)
            measured.append(row)
    return measured


def machine():
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "bfloat16_instructions": cpu_has_bfloat16(),
            "flags": cpu_flags(),
            "tensorflow": tf.__version__, "python": platform.python_version()}


def torch_version():
    try:
        import torch
        return torch.__version__
    except ImportError:
        return None


def benchmark(args):
    frameworks = args.frameworks.split(",")
    if "torch" in frameworks and not torch_version():
        print("PyTorch is not installed: its column stays empty (make bench installs it)", file=sys.stderr)
        frameworks.remove("torch")
    n = (args.warmup + args.steps) * args.batch_size
    x, y = make_data(n)
    eval_x, eval_y = make_data(args.eval_images, seed=1)
    results = {"machine": machine(), "torch": torch_version(), "batch_size": args.batch_size,
               "steps": args.steps, "resnet_steps": args.resnet_steps, "warmup": args.warmup, "rounds": args.rounds,
               "runs": []}
    peak = matmul_peak_flops()
    results["matmul_peak_gflops"] = round(peak / 1e9, 1)
    for model in filter(None, args.models.split(",")):
        for precision in args.precisions.split(","):
            hp = model_flags(model, precision, args.batch_size)
            emulated = precision == "mixed_bfloat16" and not cpu_has_bfloat16()
            # Without bfloat16 instructions every framework emulates it ~10x slower: a short look.
            full = args.resnet_steps if hp.model == "resnet" else args.steps
            steps, rounds = (max(5, full // 10), 1) if emulated else (full, args.rounds)
            runners = {}
            epoch = (args.warmup + steps) * args.batch_size  # one epoch of the loop per round
            if "cnn_tf" in frameworks:
                runners["cnn_tf"] = CnnTf(hp, x[:epoch], y[:epoch], args.warmup)
                if precision == "float32" and model in args.tower_models.split(","):  # on as many CPU devices
                    for towers in filter(None, args.towers.split(",")):
                        runners[f"towers{towers}"] = CnnTf(model_flags(model, precision, args.batch_size,
                                                                       int(towers)), x[:epoch], y[:epoch], args.warmup)
            rates = {name: [] for name in frameworks}
            bare = []
            tower_rates = {name: ([], []) for name in runners if name.startswith("towers")}
            for _ in range(rounds):  # alternate, so a noisy spell hits every framework
                for name in frameworks:
                    if name == "cnn_tf":
                        rates[name].append(runners["cnn_tf"].train_rate(args.warmup, steps))
                        bare.append(runners["cnn_tf"].bare_rate(args.warmup, steps))
                        for key, (loop_rates, bare_rates) in tower_rates.items():
                            loop_rates.append(runners[key].train_rate(args.warmup, steps))
                            bare_rates.append(runners[key].bare_rate(args.warmup, steps))
                    elif name == "keras":
                        rates[name].append(keras_rate(keras_model(hp, precision), x, y, args.batch_size,
                                                      args.warmup, steps))
                    else:
                        rates[name].append(torch_rate(torch_model(hp), hp, precision, x, y,
                                                      args.batch_size, args.warmup, steps))
            best = {name: max(r) for name, r in rates.items()}
            run = {"model": model, "precision": precision, "bfloat16_emulated": emulated, "steps": steps,
                   **({"layers": f"ResNet-{hp.resnet_depth}, width {hp.resnet_width}"} if hp.model == "resnet" else {}),
                   "images_per_s": {k: round(v, 1) for k, v in best.items()},
                   "all_rounds": {k: [round(v, 1) for v in r] for k, r in rates.items()}}
            if "cnn_tf" in best:
                flops = forward_flops_per_image(hp)
                eval_rate = runners["cnn_tf"].eval_rate(eval_x, eval_y)
                train_seconds = DEFAULT_SPLIT["train"] / best["cnn_tf"]
                eval_seconds = DEFAULT_SPLIT["validation"] / eval_rate
                run.update({
                    "bare_step_images_per_s": round(max(bare), 1),
                    "loop_share_of_bare_step": round(best["cnn_tf"] / max(bare), 3),
                    "eval_images_per_s": round(eval_rate, 1),
                    "forward_mflops_per_image": round(flops / 1e6, 2),
                    # a training step: forward, and backward at about twice the forward's work
                    "train_fraction_of_matmul_peak": round(3 * flops * best["cnn_tf"] / peak, 3),
                    "validation_share_of_epoch": round(eval_seconds / (train_seconds + eval_seconds), 4),
                })
                for other in ("keras", "torch"):
                    if other in best:
                        run[f"ratio_vs_{other}"] = round(best["cnn_tf"] / best[other], 2)
            for runner in runners.values():
                runner.close()
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
            for key, (loop_rates, bare_rates) in tower_rates.items():
                tower_run = {"model": model, "precision": precision, "num_towers": int(key[len("towers"):]),
                             "bfloat16_emulated": False, "steps": steps,
                             "images_per_s": {"cnn_tf": round(max(loop_rates), 1)},
                             "all_rounds": {"cnn_tf": [round(v, 1) for v in loop_rates]},
                             "bare_step_images_per_s": round(max(bare_rates), 1),
                             "loop_share_of_bare_step": round(max(loop_rates) / max(bare_rates), 3),
                             "ratio_vs_one_tower": round(max(loop_rates) / best["cnn_tf"], 2)}
                results["runs"].append(tower_run)
                print(json.dumps(tower_run), flush=True)
    if args.time_to_accuracy:
        results["time_to_accuracy"] = times_to_accuracy(list(filter(None, args.time_to_accuracy_configs.split(","))))
    return results


def markdown(results):
    m = results["machine"]
    lines = [f"Machine: {m['cpu']} ({m['flags']}), {m['cores']} cores, bfloat16 instructions: "
             f"{'yes' if m['bfloat16_instructions'] else 'no'}; TensorFlow {m['tensorflow']}, "
             f"PyTorch {results['torch'] or 'not installed'}; batch {results['batch_size']}, "
             f"best of {results['rounds']} alternating rounds of {results['steps']} steps (ResNets: "
             f"{results['resnet_steps']}) after "
             f"{results['warmup']} warm-up; float32 matmul peak measured {results['matmul_peak_gflops']} GFLOP/s.",
             "",
             "| model | precision | cnn_tf img/s | Keras fit img/s | PyTorch img/s | vs Keras | vs PyTorch | "
             "bare graph step img/s | loop / bare | eval img/s | fwd MFLOP/img | % of peak | "
             "validation share of epoch |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        rate = r["images_per_s"]
        precision = r["precision"] + (f" (emulated: no bf16 instructions; {r['steps']} steps, 1 round)"
                                      if r["bfloat16_emulated"] else "")
        if r.get("num_towers"):
            precision += (f", --num_towers={r['num_towers']} on {r['num_towers']} CPU devices "
                          f"({r['ratio_vs_one_tower']}× one tower)")
        name = f"`{r['model']}`" + (f" ({r['layers']})" if "layers" in r else "")
        cells = [name, precision, rate.get("cnn_tf", "–"), rate.get("keras", "–"), rate.get("torch", "–"),
                 f"{r['ratio_vs_keras']}×" if "ratio_vs_keras" in r else "–",
                 f"{r['ratio_vs_torch']}×" if "ratio_vs_torch" in r else "–",
                 r.get("bare_step_images_per_s", "–"),
                 f"{100 * r['loop_share_of_bare_step']:.0f}%" if "loop_share_of_bare_step" in r else "–",
                 r.get("eval_images_per_s", "–"), r.get("forward_mflops_per_image", "–"),
                 f"{100 * r['train_fraction_of_matmul_peak']:.1f}%" if "train_fraction_of_matmul_peak" in r else "–",
                 f"{100 * r['validation_share_of_epoch']:.1f}%" if "validation_share_of_epoch" in r else "–"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def time_to_accuracy_markdown(results):
    m = results["machine"]
    where = f"{m['cpu']} ({m.get('flags', '?')}), {m['cores']} cores"
    lines = ["Each config trained from scratch on the real Fashion-MNIST, every epoch's checkpoint evaluated on the "
             "test split (no TTA); float32@AVX2: float32 with oneDNN's kernels held to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2).",
             "", "| config | precision | target | time to target | epochs to target | test accuracy then | "
             "whole run | epochs | machine |", "|---|---|---|---|---|---|---|---|---|"]
    for row in results["time_to_accuracy"]:
        t = row["result"]
        if not isinstance(t, dict) or "error" in t:
            cells = [t if isinstance(t, str) else f"failed: {t['error']}"] + ["–"] * 4
        else:
            cells = [f"{t['seconds'] / 60:.1f} min" if t["seconds"] else "not reached",
                     t["epochs"] if t["seconds"] else "–", f"{t['test_accuracy']:.4f}",
                     f"{t['run_seconds'] / 60:.1f} min", t["run_epochs"]]
        lines.append("| " + " | ".join(str(c) for c in [f"`{row['config']}`", row["precision"], row["target"],
                                                             *cells, where]) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    results = benchmark(args)
    report(results, args.out, args.update_readme)


def merged_rows(old, new):
    """`new`'s table, plus the rows of `old` that this run did not measure again: a row is its (config,
    precision, machine), so each CPU class keeps its own figures. A new row that could not be measured
    here ("not measured: ...", a CPU without bfloat16) does not push out another machine's figures."""
    def cells(row):
        return [c.strip() for c in row.strip().strip("|").split("|")]

    def key(row):
        c = cells(row)
        return c[0], c[1], c[-1]

    def measured(row):
        c = cells(row)
        return len(c) < 4 or not c[3].startswith("not measured")

    old_rows = [r for r in old.splitlines() if r.startswith("| `")]
    old_pairs = {key(r)[:2] for r in old_rows}  # (config, precision)
    new_rows = [r for r in new.splitlines() if r.startswith("| `") and (measured(r) or key(r)[:2] not in old_pairs)]
    new_keys, remeasured = {key(r) for r in new_rows}, {key(r)[:2] for r in new_rows if measured(r)}
    kept = [r for r in old_rows if key(r) not in new_keys and (measured(r) or key(r)[:2] not in remeasured)]
    lines = [line for line in new.splitlines() if not line.startswith("| `")]
    order = {c[0]: i for i, c in enumerate(TIME_TO_ACCURACY)}
    rows = sorted(kept + new_rows, key=lambda r: (order.get(key(r)[0].strip("`"), len(order)), key(r)[1], key(r)[2]))
    return "\n".join(lines + rows) + "\n"


def report(results, out, update_readme):
    """bench/results.{json,md}; with update_readme, the README's tables of what this run measured."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    tables = {}
    if results["runs"]:
        tables["bench"] = markdown(results)
    if results.get("time_to_accuracy"):
        tables["time_to_accuracy"] = time_to_accuracy_markdown(results)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(tables.values()))
    if update_readme:
        readme = os.path.join(ROOT, "README.md")
        text = open(readme).read()
        for name, table in tables.items():
            begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
            old = re.search(re.escape(begin) + "(.*?)" + re.escape(end), text, re.S)
            if not old:
                sys.exit(f"error: README.md has no {begin} ... {end} block to update")
            if name == "time_to_accuracy":
                table = merged_rows(old.group(1), table)
            text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: f"{begin}\n{table}{end}", text,
                          flags=re.S)
        with open(readme, "w") as f:
            f.write(text)
    print("\n".join(tables.values()))


if __name__ == "__main__":
    main()
