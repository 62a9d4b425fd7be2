"""Every kind of bad input through the CLIs: one `error:` line naming the culprit, a non-zero exit,
no traceback, and the train dir exactly as it was."""
import concurrent.futures
import os
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from cnn_tf import checkpoints
from cnn_tf.data.idx import write_idx
from conftest import IDX_NAMES, ROOT, cli_env, make_folder_layout, run_cli, small_run_flags, tree_snapshot


@pytest.fixture(scope="module")
def lenet_and_folder_runs(tmp_path_factory, digits_run):
    """A one-epoch lenet run on the generated digits, and one of three_conv on 3 colour classes."""
    root = tmp_path_factory.mktemp("bad_input")
    lenet_dir = str(root / "lenet")
    shutil.copytree(digits_run, lenet_dir)
    pets = root / "pets"
    make_folder_layout(pets, per_class=6)
    folder_flags = ["--dataset=image_folder", f"--data_dir={pets}", "--image_size=8", "--model=three_conv",
                    "--num_epochs=1", f"--train_dir={root / 'three_conv'}", "--progress=false"]
    result = run_cli("train", *folder_flags)
    assert result.returncode == 0, result.stderr
    return root, lenet_dir, folder_flags


def broken_idx_dirs(root, data_dir):
    """Copies of the generated dataset, each with one thing wrong; name -> directory."""
    def variant(name, role, write):
        directory = root / "idx" / name
        shutil.copytree(data_dir, directory)
        write(str(directory / (IDX_NAMES[role] + ".gz")))
        return str(directory)

    return {
        "magic": variant("magic", "train_images", lambda p: open(p, "wb").write(b"\x12\x34\x08\x03\0\0\0\0")),
        "truncated": variant("truncated", "train_images", lambda p: open(p, "wb").write(
            b"\x00\x00\x08\x03" + (1200).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 100)),
        "count": variant("count", "train_labels", lambda p: write_idx(p, np.zeros(1199, np.uint8))),
        "label": variant("label", "test_labels", lambda p: write_idx(p, np.full(300, 12, np.uint8))),
    }


def train_cases(root, data_dir, lenet_dir):
    bad = broken_idx_dirs(root, data_dir)
    (root / "a_file").write_text("not a directory")
    (root / "unknown.cfg").write_text("--model=lenet\n--no_such_flag=3\n")
    run = lambda *extra: small_run_flags(data_dir, lenet_dir, "--progress=false", *extra)  # noqa: E731
    return {
        "unknown model": (run("--model=resnet9000"),
                          "flag --model=resnet9000: value should be one of <four_conv|lenet|"),
        "unknown dataset": (run("--dataset=imagenet"), "flag --dataset=imagenet: value should be one of"),
        "unknown optimizer": (run("--optimizer=adagrad"), "flag --optimizer=adagrad: value should be one of"),
        "missing data dir": (run(f"--data_dir={root}/missing"), f"--data_dir={root}/missing does not exist"),
        "data dir is a file": (run(f"--data_dir={root}/a_file"), f"--data_dir={root}/a_file is a file"),
        "IDX bad magic": (run(f"--data_dir={bad['magic']}"), "bad magic number"),
        "IDX truncated": (run(f"--data_dir={bad['truncated']}"), "truncated"),
        "IDX label count": (run(f"--data_dir={bad['count']}"), "has 1199 labels but"),
        "label >= num_classes": (run(f"--data_dir={bad['label']}"), "holds label 12, outside the 10 classes"),
        "batch_size 0": (run("--batch_size=0"), "--batch_size must be positive"),
        "num_epochs -1": (run("--num_epochs=-1"), "--num_epochs must be positive"),
        "learning rate 0": (run("--initial_learning_rate=0"), "--initial_learning_rate must be positive"),
        "keep_prob 1.5": (run("--keep_prob=1.5"), "--keep_prob must be in (0, 1]"),
        "keep_prob 0": (run("--keep_prob=0"), "--keep_prob must be in (0, 1]"),
        "missing flagfile": (run(f"--flagfile={root}/nope.cfg"), "Unable to open flagfile: "),
        "unknown flag in flagfile": (run(f"--flagfile={root}/unknown.cfg"),
                                     f"unknown flag --no_such_flag (on the command line or in {root}/unknown.cfg)"),
        "train dir not writable": (small_run_flags(data_dir, f"{root}/a_file/run"),
                                   f"cannot create train dir {root}/a_file/run"),
        "resume another dataset": (run("--dataset=fashion_mnist"), "was trained with --dataset=mnist"),
        "resume another model": (run("--model=three_conv"), "was trained with --model=lenet"),
        "resume another batch size": (run("--batch_size=32"), "was trained with --batch_size=64"),
    }


def check_one_clear_line(result, message, case):
    assert result.returncode != 0, case
    assert "Traceback" not in result.stderr, (case, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (case, result.stderr)
    assert message in lines[0], (case, message, lines[0])


@pytest.mark.slow
def test_train_bad_input_table(lenet_and_folder_runs, data_dir):
    root, lenet_dir, _ = lenet_and_folder_runs
    cases = train_cases(root, data_dir, lenet_dir)
    # Each case its own copy of the train dir (hard links: a file replaced or written shows in its
    # snapshot): two trainers never share one, the lock would refuse the second.
    copies = {}
    for i, (case, (args, _)) in enumerate(cases.items()):
        if f"--train_dir={lenet_dir}" in args:
            copies[case] = str(root / f"case{i}")
            shutil.copytree(lenet_dir, copies[case], copy_function=os.link)
            args.append(f"--train_dir={copies[case]}")
    before = {case: tree_snapshot(copy) for case, copy in copies.items()}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two short CLI runs at a time
        results = dict(zip(cases, pool.map(lambda case: run_cli("train", *case[0]), cases.values())))
    for case, (_, message) in cases.items():
        check_one_clear_line(results[case], message, case)
        if case in copies:
            assert tree_snapshot(copies[case]) == before[case], case
    assert not os.path.exists(f"{root}/a_file/run")


def corrupt_copy(lenet_dir, target):
    shutil.copytree(lenet_dir, target)
    latest = checkpoints.latest(os.path.join(target, "checkpoints"))
    data = latest + ".data-00000-of-00001"
    size = os.path.getsize(data)
    with open(data, "r+b") as f:
        f.truncate(size // 2)
    return latest


@pytest.mark.slow
def test_checkpoint_problems_on_resume_and_evaluate(lenet_and_folder_runs, data_dir):
    root, lenet_dir, folder_flags = lenet_and_folder_runs
    corrupt_dir = str(root / "corrupt")
    corrupt = corrupt_copy(lenet_dir, corrupt_dir)
    cases = {
        "train on a corrupt checkpoint": (
            "train", small_run_flags(data_dir, corrupt_dir, "--num_epochs=2"), corrupt_dir,
            f"checkpoint {corrupt}"),
        "evaluate a corrupt checkpoint": (
            "evaluate", [f"--checkpoint_dir={corrupt_dir}"], corrupt_dir, f"checkpoint {corrupt}"),
        "evaluate a missing dir": (
            "evaluate", [f"--checkpoint_dir={root}/missing"], lenet_dir, f"--checkpoint_dir={root}/missing does "
                                                                         "not exist"),
        "evaluate an empty dir": (
            "evaluate", [f"--checkpoint_dir={root}/idx"], lenet_dir, "is not a train dir"),
        "evaluate another model's checkpoint": (
            "evaluate", [f"--checkpoint_dir={lenet_dir}", "--checkpoint_path=" + checkpoints.latest(
                f"{root}/three_conv/checkpoints")], lenet_dir, "has no variable lenet/"),
    }
    # The image folder gains a class: resuming (or evaluating) its run meets a 3-class checkpoint.
    pets = folder_flags[1].split("=", 1)[1]
    extra_class = os.path.join(pets, "zebra")
    shutil.copytree(os.path.join(pets, "cat"), extra_class)
    three_conv_dir = str(root / "three_conv")
    cases["resume with another class count"] = (
        "train", folder_flags + ["--num_epochs=2"], three_conv_dir, f"{pets} changed since the run in "
        f"{three_conv_dir} started: classes added: zebra")
    try:
        for case, (cli, args, watched_dir, message) in cases.items():
            before = tree_snapshot(watched_dir)
            result = run_cli(cli, *args)
            check_one_clear_line(result, message, case)
            assert tree_snapshot(watched_dir) == before, case
        # evaluate reads the run's classes and test split from its run.json: the new folder is no matter
        result = run_cli("evaluate", f"--checkpoint_dir={three_conv_dir}")
        assert result.returncode == 0, result.stderr
        assert "zebra" not in result.stdout and "bird" in result.stdout
    finally:
        shutil.rmtree(extra_class)
    (root / "no_checkpoint").mkdir()
    shutil.copy(os.path.join(lenet_dir, "flags.cfg"), root / "no_checkpoint")
    check_one_clear_line(run_cli("evaluate", f"--checkpoint_dir={root}/no_checkpoint"),
                         "no checkpoint in", "evaluate without a checkpoint")


@pytest.mark.slow
def test_a_disk_that_fills_while_saving_keeps_the_previous_checkpoint(lenet_and_folder_runs, data_dir):
    root, lenet_dir, _ = lenet_and_folder_runs
    train_dir = str(root / "full_disk")
    shutil.copytree(lenet_dir, train_dir)
    checkpoint_dir = os.path.join(train_dir, "checkpoints")
    previous = checkpoints.latest(checkpoint_dir)

    def contents():  # every file of checkpoints/ and checkpoints/best/
        return {os.path.relpath(os.path.join(folder, name), checkpoint_dir): open(os.path.join(folder, name), "rb").read()
                for folder, _, names in os.walk(checkpoint_dir) for name in names}

    saved = contents()

    def small_disk():  # files may not grow past 4 MB: the 40 MB checkpoint cannot be written
        resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, 4 << 20))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    result = subprocess.run(
        [sys.executable, "-m", "cnn_tf.train", *small_run_flags(data_dir, train_dir, "--num_epochs=2",
                                                                 "--progress=false")],
        capture_output=True, text=True, cwd=ROOT, env=cli_env(), preexec_fn=small_disk, timeout=600)
    check_one_clear_line(result, "could not write checkpoint", "disk full")
    assert f"the previous checkpoint {previous} is intact" in result.stderr
    assert checkpoints.latest(checkpoint_dir) == previous
    assert contents() == saved  # byte for byte, and nothing half-written left
