"""Reruns the real-data configs and rewrites the README's results table with what it measured.

    python scripts/results.py [configs/X.cfg ...]     (default: the configs in REAL_DATA_CONFIGS)

Each config trains from scratch in a temporary train dir; its row of the table gets the model,
dataset, epochs, the printed test accuracy, the wall time of the training command and this
machine's CPU and core count. A config that augments with flips (--augment=flip_crop) is then also
evaluated with `evaluate --tta=flip`, its own column. Rows of the other configs are kept.
"""
import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_DATA_CONFIGS = ["configs/lenet_fashion_mnist.cfg", "configs/three_conv_fashion_mnist.cfg",
                     "configs/resnet_fashion_mnist_fast.cfg", "configs/resnet_fashion_mnist.cfg"]
HEADER = ["| model | dataset | epochs | test accuracy | with `--tta=flip` | wall time | machine | config |",
          "|---|---|---|---|---|---|---|---|"]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def flag(config_text, name):
    match = re.search(rf"^--{name}=(\S+)", config_text, re.M)
    return match.group(1) if match else "?"


def cpu_name():
    """The CPU's model name (the benchmarks' too: scripts/ is on their import path)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def cpu_flags():
    """What decides the speed of a figure here: the vector instructions (AVX2, AVX-512) and whether
    bfloat16 is real (AVX512_BF16 or AMX) or emulated."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        flags = set()
    named = [("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512_BF16"), ("amx_bf16", "AMX")]
    return ", ".join(name for flag, name in named if flag in flags) or "no AVX2"


def machine():
    return f"{cpu_name()} ({cpu_flags()}), {os.cpu_count()} cores"


def model_cell(config_text):
    cell = f"`{flag(config_text, 'model')}`"
    if flag(config_text, "model") == "resnet":
        cell += f" depth {flag(config_text, 'resnet_depth')}, width {flag(config_text, 'resnet_width')}"
    if flag(config_text, "precision") not in ("?", "float32"):
        cell += f", {flag(config_text, 'precision')}"
    return cell


def test_accuracy(command, config):
    result = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{config}: {' '.join(command[:2])} failed:\n{result.stderr[-2000:]}")
    return re.search(r"^test accuracy: (\S+)", result.stdout, re.M).group(1)


def run(config):
    text = open(os.path.join(ROOT, config)).read()
    with tempfile.TemporaryDirectory() as train_dir:
        started = time.perf_counter()
        accuracy = test_accuracy(["cnn_tf.train", f"--flagfile={config}", f"--train_dir={train_dir}", "--noprogress"],
                                 config)
        seconds = time.perf_counter() - started
        tta = (test_accuracy(["cnn_tf.evaluate", f"--checkpoint_dir={train_dir}", "--tta=flip"], config)
               if flag(text, "augment") == "flip_crop" else "–")
    return (f"| {model_cell(text)} | {flag(text, 'dataset')} | {flag(text, 'num_epochs')} | {accuracy} | {tta} | "
            f"{seconds / 60:.1f} min | {machine()} | `{config}` |")


def with_tta_cell(row):
    """A row from before the TTA column (7 cells) gets an empty one."""
    cells = row.strip().strip("|").split("|")
    return row if len(cells) == 8 else "|" + "|".join(cells[:4] + [" – "] + cells[4:]) + "|"  # no | in cells


def main(configs):
    new_rows = {config: run(config) for config in configs}
    readme = os.path.join(ROOT, "README.md")
    text = open(readme).read()  # read after the runs: the README may have changed meanwhile
    # Rows of configs not rerun stay; a rerun config's row is replaced where it stood.
    old = re.search(re.escape(BEGIN) + "(.*?)" + re.escape(END), text, re.S).group(1)
    rows = {row.rsplit("`", 2)[-2]: with_tta_cell(row) for row in old.splitlines() if row.startswith("| `")}
    rows.update(new_rows)
    table = "\n".join([BEGIN, *HEADER, *rows.values(), END])
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: table, text, flags=re.S)
    with open(readme, "w") as f:
        f.write(text)
    print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", help="default: the configs in REAL_DATA_CONFIGS")
    configs = parser.parse_args().configs
    missing = [c for c in configs if not os.path.isfile(os.path.join(ROOT, c))]
    if missing:  # before any training: a typo last in the list must not cost the others' runs
        sys.exit(f"error: {missing[0]}: no such config file (give paths like configs/X.cfg, from {ROOT})")
    main(configs or REAL_DATA_CONFIGS)
