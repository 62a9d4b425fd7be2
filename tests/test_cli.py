"""The CLIs end to end on generated data: train, evaluate, summaries, checkpoints, resume, errors."""
import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from conftest import (accuracy_restored_by_tensor_name, check_startup_summary, printed_accuracy, read_events, run_cli,
                      scalar_values, small_run_flags)

STEPS_PER_EPOCH = 16  # 1000 training images (1200 - 200 validation) in batches of 64


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """One 2-epoch training run on the generated data, shared by the tests that read its output."""
    train_dir = str(tmp_path_factory.mktemp("run") / "train")
    result = run_cli("train", *small_run_flags(data_dir, train_dir))
    assert result.returncode == 0, result.stderr
    return train_dir, result


@pytest.mark.slow
def test_train_learns_and_prints_test_accuracy(trained, data_dir):

    train_dir, result = trained
    assert printed_accuracy(result.stdout) > 0.9
    assert "epoch 2/2" in result.stdout and "validation loss" in result.stdout
    assert "Traceback" not in result.stderr
    check_startup_summary(result, train_dir, data_dir, r"starting: 2 epochs of 16 steps of 64 images")


def test_train_dir_layout_and_flags_cfg(trained):
    train_dir, _ = trained
    assert sorted(os.listdir(train_dir)) == ["checkpoints", "flags.cfg", "history.csv", "run.json", "status.json",
                                            "summaries"]
    flags_cfg = open(os.path.join(train_dir, "flags.cfg")).read().splitlines()
    assert "--model=lenet" in flags_cfg and "--batch_size=64" in flags_cfg
    assert f"--train_dir={train_dir}" in flags_cfg
    record = json.load(open(os.path.join(train_dir, "run.json")))  # the run manifest (cnn_tf.manifest)
    assert record["dataset"] == "mnist" and record["class_names"] == [str(d) for d in range(10)]
    assert record["image_shape"] == [28, 28, 1] and record["files"] is None
    assert {name: split["size"] for name, split in record["splits"].items()} == {"train": 1000, "validation": 200,
                                                                                 "test": 300}
    assert all(len(split["sha256"]) == 64 for split in record["splits"].values())


def test_checkpoints_every_epoch_with_meta_graph_and_all_state(trained):
    train_dir, _ = trained
    ckpt_dir = os.path.join(train_dir, "checkpoints")
    state = tf.train.get_checkpoint_state(ckpt_dir)
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
        f"model.ckpt-{STEPS_PER_EPOCH}", f"model.ckpt-{2 * STEPS_PER_EPOCH}"]
    latest = tf.train.latest_checkpoint(ckpt_dir)
    assert os.path.exists(latest + ".meta")
    variables = dict(tf.train.list_variables(latest))
    assert variables["global_step"] == []
    assert variables["lenet/fc3/weights"] == [7, 7, 64, 1024]
    assert "lenet/conv1/BatchNorm/moving_mean" in variables
    assert "lenet/fc3/weights/Adam" in variables  # optimizer slots, so a resume continues exactly
    reader = tf.train.load_checkpoint(latest)
    assert reader.get_tensor("global_step") == 2 * STEPS_PER_EPOCH


def test_summaries_hold_the_tutorial_tags(trained):
    train_dir, _ = trained
    train = read_events(os.path.join(train_dir, "summaries", "train"))
    validation = read_events(os.path.join(train_dir, "summaries", "validation"))
    test = read_events(os.path.join(train_dir, "summaries", "test"))
    for tag in ("loss", "accuracy", "global_step", "learning_rate", "sparsity/lenet/conv1", "sparsity/lenet/fc3"):
        assert train["scalar"][tag], tag
    assert train["scalar"]["loss"] == list(range(5, 2 * STEPS_PER_EPOCH + 1, 5))  # every 5 steps
    # histograms and images once per epoch, at the epoch's last step
    assert train["histogram"]["activations/lenet/conv1"] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    image_tags = [t for t in train["image"] if t.startswith("images")]
    assert image_tags and train["image"][image_tags[0]] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert train["graph"]["graph"]
    for tag in ("loss", "accuracy", "sparsity/lenet/conv2"):
        assert validation["scalar"][tag] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH], tag
        assert test["scalar"][tag] == [2 * STEPS_PER_EPOCH], tag  # the test split, once, at the end


def test_evaluate_prints_the_same_accuracy_and_writes_metrics(trained):
    train_dir, train_result = trained
    result = run_cli("evaluate", f"--checkpoint_dir={train_dir}")
    assert result.returncode == 0, result.stderr
    assert printed_accuracy(result.stdout) == printed_accuracy(train_result.stdout)
    assert "precision" in result.stdout and "confusion matrix" in result.stdout
    lines = result.stdout.splitlines()  # the accuracy first, the matrix (with its header row) last
    assert lines.index(next(line for line in lines if line.startswith("test accuracy: "))) < lines.index(
        "confusion matrix (rows: true class, columns: predicted class)")
    header = lines[lines.index("confusion matrix (rows: true class, columns: predicted class)") + 1]
    assert header.split() == [str(k) for k in range(10)]
    metrics = json.load(open(os.path.join(train_dir, "eval", "metrics.json")))
    assert metrics["global_step"] == 2 * STEPS_PER_EPOCH
    assert metrics["num_examples"] == 300 and metrics["split"] == "test"
    assert abs(metrics["accuracy"] - printed_accuracy(result.stdout)) < 5e-5
    assert len(metrics["per_class"]) == 10 and metrics["per_class"][3]["name"] == "3"
    assert np.array(metrics["confusion_matrix"]).sum() == 300
    assert metrics["checkpoint_path"].endswith(f"model.ckpt-{2 * STEPS_PER_EPOCH}")
    events = read_events(os.path.join(train_dir, "summaries", "eval_test"))
    assert events["scalar"]["accuracy"] == [2 * STEPS_PER_EPOCH]


def test_evaluate_a_chosen_checkpoint_and_split_from_checkpoints_dir(trained):
    train_dir, _ = trained
    ckpt = os.path.join(train_dir, "checkpoints", f"model.ckpt-{STEPS_PER_EPOCH}")
    result = run_cli("evaluate", f"--checkpoint_dir={train_dir}/checkpoints", f"--checkpoint_path={ckpt}",
                     "--split=validation")
    assert result.returncode == 0, result.stderr
    assert "validation images: 200" in result.stdout
    metrics = json.load(open(os.path.join(train_dir, "eval", "metrics.json")))
    assert metrics["global_step"] == STEPS_PER_EPOCH and metrics["split"] == "validation"


def test_restore_from_meta_graph_by_tensor_name(trained, data_dir):
    train_dir, train_result = trained
    value = accuracy_restored_by_tensor_name(train_dir, data_dir)
    assert abs(value - printed_accuracy(train_result.stdout)) < 5e-4


@pytest.mark.slow
def test_second_train_resumes_from_the_last_global_step(trained, tmp_path, data_dir):

    train_dir = str(tmp_path / "resumed")
    shutil.copytree(trained[0], train_dir)
    # --precision may change on a resume (on a GPU, float16 would start a fresh loss scale)
    result = run_cli("train", *small_run_flags(data_dir, train_dir, "--num_epochs=3", "--precision=mixed_float16"))
    assert result.returncode == 0, result.stderr
    assert f"resuming from {train_dir}/checkpoints/model.ckpt-{2 * STEPS_PER_EPOCH} at global step " \
           f"{2 * STEPS_PER_EPOCH}" in result.stdout
    assert "epoch 3/3" in result.stdout and "epoch 1/3" not in result.stdout
    check_startup_summary(result, train_dir, data_dir, re.escape(
        f"resuming from {train_dir}/checkpoints/model.ckpt-32 at global step 32 (epoch 3, step 0 of 16)"))
    assert tf.train.latest_checkpoint(os.path.join(train_dir, "checkpoints")).endswith(
        f"model.ckpt-{3 * STEPS_PER_EPOCH}")
    steps = [s for s, _ in scalar_values(os.path.join(train_dir, "summaries", "train"), "global_step")]
    assert steps == sorted(steps) and steps[-1] == 45  # every 5 steps, up to 48
    # the learning rate continues from the restored step, it does not restart
    rates = dict(scalar_values(os.path.join(train_dir, "summaries", "train"), "learning_rate"))
    assert rates[45] < rates[5]


def test_device_gpu_trains_on_a_machine_without_one(tmp_path, data_dir):
    """A GPU user's flags, float16 included, on this GPU-less machine: both fall back, the run finishes."""
    train_dir = str(tmp_path / "gpu")
    result = run_cli("train", *small_run_flags(data_dir, train_dir, "--device=gpu", "--num_epochs=1",
                                               "--precision=mixed_float16"))
    assert result.returncode == 0, result.stderr
    assert printed_accuracy(result.stdout) > 0.3
    assert "warning: --precision=mixed_float16 needs a GPU (--device=gpu here has none); computing in float32" \
        in result.stderr
    assert "precision  float32 (--precision=mixed_float16 fell back: no GPU here)\n" in result.stdout + result.stderr
    flags_cfg = open(os.path.join(train_dir, "flags.cfg")).read()
    assert "--device=gpu" in flags_cfg and "--precision=mixed_float16" in flags_cfg  # as asked, for a GPU resume
    assert "Traceback" not in result.stderr
    # trained for a GPU, predicted on a laptop: the meta graph pins no device
    value = accuracy_restored_by_tensor_name(train_dir, data_dir)
    assert abs(value - printed_accuracy(result.stdout)) < 5e-4


def test_verbosity_debug_shows_the_traceback(tmp_path):
    result = run_cli("evaluate", f"--checkpoint_dir={tmp_path}/missing", "--verbosity=1")
    assert result.returncode != 0 and "Traceback" in result.stderr
