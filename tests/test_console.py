"""What a person sees: --help, a misspelled flag, the start-up summary, the progress bar at 80
columns, the confusion matrix's headers, make's message for a missing python3-venv."""
import io
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from cnn_tf.callbacks import Progress, TrainMeans
from cnn_tf.evaluation import format_report, per_class_metrics
from conftest import ROOT, run_cli, setup_trainer

GROUPS = {"train": ["data:", "model:", "optimization:", "output:", "runtime:"],
          "evaluate": ["evaluation:", "data:", "runtime:"]}


@pytest.mark.slow
def test_help_lists_the_projects_flags_grouped_and_exits_0():
    for cli, groups in GROUPS.items():
        result = run_cli(cli, "--help")
        assert result.returncode == 0, result.stderr
        head = result.stdout.splitlines()[:100]
        assert head[0].startswith(f"usage: python -m cnn_tf.{cli} ")
        assert [line for line in head if line in groups] == groups, head
        flag = "--num_epochs" if cli == "train" else "--checkpoint_dir"
        assert any(line.split()[0] == flag for line in head if line.startswith("  --")), head
        assert not re.search(r"--\w*(tpu|test_srcdir|pdb|logtostderr)", result.stdout)  # absl's and TF's stay out
    everything = run_cli("train", "--helpfull")  # --helpfull keeps everything
    assert everything.returncode == 0 and "--num_epochs:" in everything.stdout and "logtostderr" in everything.stdout


def test_a_misspelled_flag_suggests_the_nearest():
    for cli, typo, right in (("train", "--num_epoch=10", "--num_epochs"), ("evaluate", "--checkpoint_dri=x",
                                                                          "--checkpoint_dir")):
        result = run_cli(cli, typo, fresh=True)  # a new process: nothing TensorFlow prints at its import either
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"error: unknown flag {typo.split('=')[0]}; did you mean {right}? (--help lists the flags)"]


def test_progress_bar_keeps_loss_accuracy_and_speed_in_order_at_80_columns():
    out = io.StringIO()
    # every update drawn (tqdm otherwise draws at most every 0.1 s: a fast machine would show none)
    trainer = setup_trainer([TrainMeans(), Progress(file=out, ncols=80, mininterval=0)], num_epochs=20)  # "epoch 20/20": widest
    trainer.train()
    frames = [frame for frame in re.split(r"[\r\n]", out.getvalue()) if "loss " in frame and "%|" in frame]
    assert frames, out.getvalue()
    for frame in frames:
        frame = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", frame).rstrip()
        assert len(frame) <= 80, frame
        assert re.search(r", loss \d\.\d{4} acc \d\.\d{4} \d+ img/s\]$", frame), frame


def test_confusion_matrix_has_column_headers():
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    confusion = np.diag(np.full(10, 1000)) + 1
    lines = format_report(per_class_metrics(confusion, names), confusion).splitlines()
    header = lines[lines.index("confusion matrix (rows: true class, columns: predicted class)") + 1]
    assert header.split() == ["T-sh", "Trou", "Pull", "Dres", "Coat", "Sand", "Shir", "Snea", "Bag", "Ankl"]
    assert max(len(line) for line in lines) <= 80
    # names that cut to the same header become numbers, which the rows name
    confusion = np.ones((2, 2), int)
    lines = format_report(per_class_metrics(confusion, ["category_a", "category_b"]), confusion).splitlines()
    assert lines[-3].split() == ["0", "1"] and lines[-2].startswith("0 category_a") and lines[-1].startswith(
        "1 category_b")


def test_make_says_what_to_install_when_python3_venv_is_missing(tmp_path):
    fake = tmp_path / "python3"  # a Debian python3 without python3-venv: no ensurepip
    fake.write_text('#!/bin/sh\ncase "$*" in *ensurepip*) exit 1;; esac\nexec python3 "$@"\n')
    fake.chmod(0o755)
    result = subprocess.run(["bash", "scripts/make_venv.sh", str(fake), str(tmp_path / "venv")], cwd=ROOT,
                            capture_output=True, text=True, env=dict(os.environ, CNN_TF_APT="0"), timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(
        rf"error: {fake} -m venv needs Debian's python3\.\d+-venv package \(or python3-venv\): run 'sudo apt-get "
        r"install python3\.\d+-venv', then make again", lines[0]), lines
    assert not (tmp_path / "venv").exists()


def test_every_cli_module_imports_together_in_one_process():
    """Flags are defined when a CLI starts, not when it is imported (absl would refuse them twice)."""
    result = subprocess.run([sys.executable, "-c", "import cnn_tf.train, cnn_tf.evaluate, cnn_tf.export, "
                             "cnn_tf.predict, cnn_tf.data.fetch; print('ok')"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.slow
def test_a_cli_forked_by_the_tests_fork_server_answers_as_a_fresh_process_does(tmp_path):
    """run_cli forks CLIs from a process that imported TensorFlow once (tests/forkserver.py): what they
    print and return must be what `python -m` gives, and a timeout must still end the run."""
    for args in (["train", "--num_epochs=many"], ["evaluate", f"--checkpoint_dir={tmp_path / 'none'}"],
                 ["train", "--help"]):
        forked, fresh = run_cli(*args), run_cli(*args, fresh=True)
        assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
        assert forked.returncode == (0 if args[1] == "--help" else 2) and (forked.stdout if forked.returncode == 0
                                                                            else forked.stderr.startswith("error: "))
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):  # waits for a train dir that never comes
        run_cli("evaluate", f"--checkpoint_dir={tmp_path / 'later'}", "--watch", "--watch_timeout=300", timeout=3)
    assert time.monotonic() - started < 60
    assert run_cli("train", "--num_epochs=many").returncode == 2  # the server still serves
