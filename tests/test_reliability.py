"""Training survives SIGKILL at any moment, stops cleanly on SIGTERM/SIGINT, handles NaN, and
`evaluate --watch` follows a running training. Real processes, really killed."""
import csv
import json
import os
import random
import shutil
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from cnn_tf import checkpoints
from conftest import finish, printed_accuracy, run_cli, small_run_flags, start, tensorboard_steps

STEPS_PER_EPOCH = 16  # 1000 training images in batches of 64


def weights(path):
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def unlisted_files(checkpoint_dir):
    """Files of no checkpoint the state file lists: a write under way, or left over."""
    listed = {os.path.basename(p) for p in checkpoints.listed(checkpoint_dir)}
    return [n for n in os.listdir(checkpoint_dir) if n not in ("checkpoint", "best") and n.rsplit(".", 1)[0] not in listed
            and n.split(".data-")[0] not in listed]


def history(train_dir):
    """history.csv's rows without the columns that time a run."""
    with open(os.path.join(train_dir, "history.csv")) as f:
        return [{k: v for k, v in row.items() if k not in ("wall_time", "images_per_sec")} for row in csv.DictReader(f)]


def kill_during_checkpoint_write(process, checkpoint_dir):
    """SIGKILLs `process` the moment a checkpoint write is seen under way (files not yet listed in
    the state file). Returns True if it caught one."""
    while process.poll() is None:
        if os.path.isdir(checkpoint_dir) and unlisted_files(checkpoint_dir):
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.001)
    return False


@pytest.mark.slow
# Data from memory (the default) is the photo_augmentation case's source; tfrecord streams from shards.
@pytest.mark.parametrize("source", ["tfrecord", "photo_augmentation"])
def test_sigkill_at_random_moments_then_resume_ends_like_an_uninterrupted_run(data_dir, tmp_path, source):
    flags = ["--num_epochs=4", "--deterministic", "--max_num_checkpoint=2", "--summary_every_n_steps=3",
             "--progress=false", "--keep_best=2", "--best_metric=validation_loss", "--ema_decay=0.99"]
    if source == "photo_augmentation":  # every augmentation at once, mixing switched off for the last epoch
        flags += ["--augment=random_resized_crop", "--crop_scale=0.3,1", "--color_jitter=0.4", "--randaugment=2,9",
                  "--random_erasing=0.25", "--mixup_alpha=0.2", "--cutmix_alpha=1", "--mixup_off_epoch=3"]
    if source == "tfrecord":  # streamed from shards: a resume skips to the same batch of the same order
        from cnn_tf import config
        from cnn_tf.data.convert import convert

        convert(config.RunConfig(dataset="mnist", data_dir=str(data_dir), validation_size=200),
                str(tmp_path / "records"), num_shards=3)
        flags += ["--dataset=tfrecord", f"--data_dir={tmp_path / 'records'}", "--shuffle_buffer=300", "--augment"]
    reference_dir, killed_dir = str(tmp_path / "reference"), str(tmp_path / "killed")
    code, out, err = finish(start("train", *small_run_flags(data_dir, reference_dir, *flags)))
    assert code == 0, err
    reference_accuracy = [line for line in out.splitlines() if line.startswith("test accuracy")]

    rng = random.Random(1)
    caught_in_checkpoint_write = 0
    for moment in ("checkpoint", "random", "checkpoint", "random", "random"):
        process = start("train", *small_run_flags(data_dir, killed_dir, *flags))
        if moment == "checkpoint":
            caught_in_checkpoint_write += kill_during_checkpoint_write(
                process, os.path.join(killed_dir, "checkpoints"))
        else:
            time.sleep(rng.uniform(4, 12))  # start-up takes ~5 s: before, during and after steps
            process.send_signal(signal.SIGKILL)
            process.wait()
    assert caught_in_checkpoint_write >= 1, "no kill landed inside a checkpoint write"
    code, out, err = finish(start("train", *small_run_flags(data_dir, killed_dir, *flags)))
    assert code == 0, err

    checkpoint_dir = os.path.join(killed_dir, "checkpoints")
    final = f"model.ckpt-{4 * STEPS_PER_EPOCH}"
    assert checkpoints.latest(checkpoint_dir).endswith(final)
    assert json.load(open(os.path.join(killed_dir, "status.json")))["state"] == "finished"
    assert len(checkpoints.listed(checkpoint_dir)) <= 2  # --max_num_checkpoint across restarts
    assert unlisted_files(checkpoint_dir) == [], "temporary or orphaned checkpoint files were left"
    assert not [n for n in os.listdir(killed_dir) if n.endswith(".tmp")]

    for kind, tag, period in (("train", "loss", 3), ("validation", "accuracy", STEPS_PER_EPOCH)):
        steps = tensorboard_steps(os.path.join(killed_dir, "summaries", kind), tag)
        assert steps == list(range(period, 4 * STEPS_PER_EPOCH + 1, period)), (kind, steps)

    # Bit for bit the uninterrupted run: weights, their moving averages, Adam slots, batch-norm statistics, accuracy.
    got = weights(os.path.join(checkpoint_dir, final))
    expected = weights(os.path.join(reference_dir, "checkpoints", final))
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    assert [line for line in out.splitlines() if line.startswith("test accuracy")] == reference_accuracy

    # One history row per epoch, as the uninterrupted run's; the same best checkpoints, bit for bit.
    rows = history(killed_dir)
    assert [int(row["global_step"]) for row in rows] == [16, 32, 48, 64]
    assert rows == history(reference_dir)
    best = json.load(open(os.path.join(checkpoint_dir, "best", "best.json")))
    reference_best = json.load(open(os.path.join(reference_dir, "checkpoints", "best", "best.json")))
    assert [(e["step"], e["value"]) for e in best["kept"]] == [(e["step"], e["value"]) for e in reference_best["kept"]]
    assert sorted(os.listdir(os.path.join(checkpoint_dir, "best"))) == sorted(
        os.listdir(os.path.join(reference_dir, "checkpoints", "best")))
    for entry, reference_entry in zip(best["kept"], reference_best["kept"]):
        got = weights(os.path.join(checkpoint_dir, "best", entry["checkpoint"]))
        expected = weights(os.path.join(reference_dir, "checkpoints", "best", reference_entry["checkpoint"]))
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_save_where_they_stopped_and_say_how_to_continue(data_dir, tmp_path, signum):
    train_dir = str(tmp_path / "run")
    args = small_run_flags(data_dir, train_dir, "--num_epochs=6", "--progress=false")
    process = start("train", *args)
    checkpoint_dir = os.path.join(train_dir, "checkpoints")
    while not (os.path.isdir(checkpoint_dir) and checkpoints.latest(checkpoint_dir)):  # mid-training
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signum)
    code, out, err = finish(process)
    name = signal.Signals(signum).name
    assert code == 128 + signum, err
    assert "Traceback" not in err
    stop_line = [line for line in out.splitlines() if line.startswith(f"stopped by {name} at global step ")]
    assert len(stop_line) == 1, out
    step = int(stop_line[0].split("global step ")[1].split()[0])
    assert STEPS_PER_EPOCH <= step < 6 * STEPS_PER_EPOCH
    assert "Run the same command to continue" in stop_line[0]
    assert checkpoints.latest(checkpoint_dir).endswith(f"model.ckpt-{step}")
    status = json.load(open(os.path.join(train_dir, "status.json")))
    assert status["state"] == "stopped" and status["global_step"] == step
    # Summaries were flushed up to the stop.
    assert tensorboard_steps(os.path.join(train_dir, "summaries", "validation"), "accuracy")[-1] <= step

    result = run_cli("train", *args)
    assert result.returncode == 0, result.stderr
    assert f"resuming from {checkpoint_dir}/model.ckpt-{step} at global step {step}" in result.stdout
    # The epoch the stop cut in two is one epoch: its means cover all of its steps (they were saved with the
    # stop's checkpoint), and the history has each epoch once.
    first = next(line for line in result.stdout.splitlines() if line.startswith("epoch "))
    assert "steps, from step" not in first, first
    assert [row["epoch"] for row in history(train_dir)] == [str(e) for e in range(1, 7)]
    assert checkpoints.latest(checkpoint_dir).endswith(f"model.ckpt-{6 * STEPS_PER_EPOCH}")


def all_finite(path):
    return all(np.isfinite(v).all() for v in weights(path).values() if np.issubdtype(v.dtype, np.floating))


@pytest.mark.slow
def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint_finite_or_rolls_back(digits_run, data_dir,
                                                                                         tmp_path):
    train_dir = str(tmp_path / "run")
    checkpoint_dir = os.path.join(train_dir, "checkpoints")
    shutil.copytree(digits_run, train_dir)  # a good first epoch: model.ckpt-16

    # A learning rate of 1e30 sends the weights to infinity within a step or two.
    diverging = small_run_flags(data_dir, train_dir, "--num_epochs=2", "--initial_learning_rate=1e30",
                                "--progress=false")
    result = run_cli("train", *diverging)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "error: loss is nan at global step 1" in result.stderr or "error: loss is inf at global step 1" in \
        result.stderr, result.stderr
    assert f"the latest checkpoint {checkpoint_dir}/model.ckpt-16 is finite" in result.stderr
    assert "--on_nan=rollback" in result.stderr
    assert checkpoints.latest(checkpoint_dir).endswith("model.ckpt-16") and all_finite(
        checkpoints.latest(checkpoint_dir))
    assert json.load(open(os.path.join(train_dir, "status.json")))["state"] == "failed"

    # Rollback: back to step 16 with the rate scaled to 1e30 * 1e-33 = 1e-3, then on to the end.
    result = run_cli("train", *diverging, "--on_nan=rollback", "--nan_lr_factor=1e-33")
    assert result.returncode == 0, result.stderr
    assert "rolled back to step 16" in result.stdout and "(rollback 1 of at most 3)" in result.stdout
    latest = checkpoints.latest(checkpoint_dir)
    assert latest.endswith("model.ckpt-32") and all_finite(latest)
    assert printed_accuracy(result.stdout) > 0.8
    # TensorBoard shows no trace of the diverged steps: each train step once, in order.
    steps = tensorboard_steps(os.path.join(train_dir, "summaries", "train"), "loss")
    assert steps == sorted(set(steps)) and steps[-1] == 30

    # A rate that diverges whatever the factor gives up after --max_nan_rollbacks.
    result = run_cli("train", *small_run_flags(data_dir, str(tmp_path / "hopeless"), "--num_epochs=1",
                                               "--initial_learning_rate=1e30", "--on_nan=rollback",
                                               "--nan_lr_factor=0.5", "--max_nan_rollbacks=2", "--progress=false"))
    assert result.returncode == 3
    assert "after 2 rollbacks: training diverged; no checkpoint was written" in result.stderr, result.stderr


@pytest.mark.slow
def test_evaluate_watch_evaluates_each_checkpoint_once_beside_training(data_dir, tmp_path):
    train_dir = str(tmp_path / "run")
    watcher = start("evaluate", f"--checkpoint_dir={train_dir}", "--watch", "--watch_timeout=120",
                    "--watch_interval=0.2", "--split=validation")
    trainer = start("train", *small_run_flags(data_dir, train_dir, "--num_epochs=3", "--progress=false",
                                              "--max_num_checkpoint=10"))
    code, _, err = finish(trainer)
    assert code == 0, err
    code, out, err = finish(watcher, timeout=300)
    assert code == 0, err
    evaluated = [int(line.split()[2].rstrip(":")) for line in out.splitlines() if line.startswith("global step")]
    assert evaluated == [16, 32, 48], out
    assert "training finished at global step 48; evaluated 3 checkpoints" in out
    assert tensorboard_steps(os.path.join(train_dir, "summaries", "eval_validation"), "accuracy") == [16, 32, 48]


def test_evaluate_watch_times_out_without_new_checkpoints(tmp_path):
    result = run_cli("evaluate", f"--checkpoint_dir={tmp_path}/never", "--watch", "--watch_timeout=1",
                     "--watch_interval=0.1")
    assert result.returncode == 2 and "got no flags.cfg in 1 s" in result.stderr
