"""Runs that keep their best: checkpoints/best/ and best.json, history.csv, early stopping, and the
readers' --checkpoint=best|latest|<step>."""
import csv
import json
import os
import shutil
import signal
import time
import types

import numpy as np
import pytest

from cnn_tf import checkpoints
from cnn_tf.best_checkpoints import BestDir, Entry
from cnn_tf.callbacks import EarlyStopping
from conftest import finish, run_cli, small_run_flags, start, write_image


def history(train_dir):
    with open(os.path.join(train_dir, "history.csv")) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def best_run(data_dir, tmp_path_factory):
    """Three epochs ranked by validation loss, the two best kept; validated with the weights' moving averages."""
    train_dir = str(tmp_path_factory.mktemp("best") / "run")
    result = run_cli("train", *small_run_flags(data_dir, train_dir, "--num_epochs=3", "--progress=false",
                                               "--keep_best=2", "--best_metric=validation_loss", "--ema_decay=0.9"))
    assert result.returncode == 0, result.stderr
    return train_dir, result


@pytest.mark.slow
def test_the_best_checkpoint_is_the_best_row_of_the_history_and_evaluate_reproduces_it(best_run):
    train_dir, result = best_run
    rows = history(train_dir)
    assert [(int(r["epoch"]), int(r["global_step"])) for r in rows] == [(1, 16), (2, 32), (3, 48)]
    assert all(float(r["learning_rate"]) > 0 and float(r["images_per_sec"]) > 0 and r["train_loss"] for r in rows)
    best_row = min(rows, key=lambda r: float(r["validation_loss"]))
    best = json.load(open(os.path.join(train_dir, "checkpoints", "best", "best.json")))
    best_path = os.path.join(train_dir, "checkpoints", "best", best["best"]["checkpoint"])
    assert best["metric"] == "validation_loss" and best["mode"] == "min"
    assert best["best"]["step"] == int(best_row["global_step"]) and best["best"]["epoch"] == int(best_row["epoch"])
    assert abs(best["best"]["value"] - float(best_row["validation_loss"])) < 1e-6
    second = sorted(rows, key=lambda r: float(r["validation_loss"]))[1]
    assert [e["step"] for e in best["kept"]] == [int(best_row["global_step"]), int(second["global_step"])]
    kept = sorted(p for p in os.listdir(os.path.join(train_dir, "checkpoints", "best")) if p.endswith(".index"))
    assert kept == sorted(f"model.ckpt-{e['step']}.index" for e in best["kept"])
    # The best checkpoint's test accuracy is reported beside the last one's.
    assert f"best checkpoint: {best_path} (epoch {best['best']['epoch']}, validation_loss" in result.stdout

    evaluated = run_cli("evaluate", f"--checkpoint_dir={train_dir}", "--checkpoint=best", "--split=validation")
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"the best checkpoint: {best_path}" in evaluated.stderr
    metrics = json.load(open(os.path.join(train_dir, "eval", "metrics.json")))
    assert metrics["checkpoint_path"] == best_path
    assert abs(metrics["loss"] - best["best"]["value"]) < 1e-5 and metrics["weights"] == "moving averages"
    assert "weights: their moving averages (--ema_decay=0.9;" in evaluated.stdout
    raw = run_cli("evaluate", f"--checkpoint_dir={train_dir}", "--checkpoint=best", "--split=validation", "--noema")
    assert raw.returncode == 0 and "weights:" not in raw.stdout, raw.stderr
    assert abs(json.load(open(os.path.join(train_dir, "eval", "metrics.json")))["loss"] - metrics["loss"]) > 1e-4
    by_step = run_cli("evaluate", f"--checkpoint_dir={train_dir}", f"--checkpoint={second['global_step']}")
    assert by_step.returncode == 0 and f"model.ckpt-{second['global_step']} (global step" in by_step.stdout


@pytest.mark.slow
def test_export_and_predict_use_the_best_checkpoint_and_say_so(best_run, tmp_path):
    train_dir, _ = best_run
    best = json.load(open(os.path.join(train_dir, "checkpoints", "best", "best.json")))["best"]
    best["path"] = os.path.join(train_dir, "checkpoints", "best", best["checkpoint"])
    exported = run_cli("export", f"--checkpoint_dir={train_dir}", f"--export_dir={tmp_path / 'export'}")
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith(f"exported {best['path']} to {tmp_path / 'export' / str(best['step'])}")
    assert f"the best checkpoint: {best['path']} (epoch {best['epoch']}, validation_loss" in exported.stderr
    latest = run_cli("export", f"--checkpoint_dir={train_dir}", f"--export_dir={tmp_path / 'latest'}",
                     "--checkpoint=latest")
    assert latest.returncode == 0 and "model.ckpt-48 to" in latest.stdout and "best" not in latest.stderr


@pytest.mark.slow
def test_reader_checkpoint_choices_that_cannot_be_met_say_so(digits_run, best_run, tmp_path):
    train_dir, _ = best_run
    for args, message in (
            ([f"--checkpoint_dir={train_dir}", "--checkpoint=7"],
             f"error: --checkpoint=7: {train_dir} has no checkpoint at global step 7 (it has 16, 32, 48)"),
            ([f"--checkpoint_dir={train_dir}", "--checkpoint=bset"],
             "error: --checkpoint=bset: give latest, best or a global step such as 860"),
            ([f"--checkpoint_dir={train_dir}", "--checkpoint=best", f"--checkpoint_path={train_dir}/x-1"],
             f"error: give --checkpoint=best or --checkpoint_path={train_dir}/x-1, not both")):
        result = run_cli("evaluate", *args)
        assert (result.returncode, result.stderr.strip().splitlines()[-1]) == (2, message), result.stderr
    # A run without a best (--keep_best=0, or trained before there were any).
    run = str(tmp_path / "run")
    shutil.copytree(digits_run, run)
    shutil.rmtree(os.path.join(run, "checkpoints", "best"))
    result = run_cli("evaluate", f"--checkpoint_dir={run}", "--checkpoint=best")
    assert result.returncode == 2 and "kept no best checkpoint" in result.stderr
    assert "use --checkpoint=latest" in result.stderr and "Traceback" not in result.stderr
    image = str(tmp_path / "digit.png")
    write_image(image, np.zeros((28, 28, 1), np.uint8))
    result = run_cli("predict", f"--checkpoint_dir={run}", "--format=json", image)
    assert result.returncode == 0 and "best" not in result.stderr, result.stderr  # falls back to the latest


@pytest.mark.slow
def test_early_stopping_stops_at_its_patience_and_its_count_survives_sigkill(data_dir, tmp_path):
    train_dir = str(tmp_path / "run")
    # A rate too small to move the validation loss by 0.05 (and no batch-norm statistics to move it): epoch 1
    # is the best, epochs 2 and 3 do not count.
    args = small_run_flags(data_dir, train_dir, "--num_epochs=10", "--progress=false", "--initial_learning_rate=1e-7", "--nobatch_norm",
                           "--early_stopping_patience=2", "--early_stopping_min_delta=0.05",
                           "--best_metric=validation_loss")
    process = start("train", *args)
    checkpoint_dir = os.path.join(train_dir, "checkpoints")
    deadline = time.monotonic() + 300
    while not (os.path.isdir(checkpoint_dir) and (checkpoints.latest(checkpoint_dir) or "").endswith("-32")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # the count is 1 (epoch 2 did not improve)
    process.wait()
    code, out, err = finish(start("train", *args))
    assert code == 0, err
    first = [r for r in history(train_dir) if r["epoch"] == "1"][0]
    assert (f"finished early: early stopping: validation_loss did not improve by more than 0.05 for 2 epochs "
            f"(best {float(first['validation_loss']):.4f} at epoch 1)") in out.splitlines()
    assert [r["epoch"] for r in history(train_dir)] == ["1", "2", "3"]
    assert checkpoints.latest(checkpoint_dir).endswith("model.ckpt-48")
    assert json.load(open(os.path.join(train_dir, "status.json")))["state"] == "finished"
    # The best checkpoint is ranked without --early_stopping_min_delta: any epoch whose loss was lowest.
    assert "test accuracy: " in out and f"best checkpoint: {checkpoint_dir}/best/model.ckpt-" in out
    # Run again: still finished, nothing trained.
    code, out, err = finish(start("train", *args))
    assert code == 0 and "finished early: early stopping" in out and "epoch 4/10" not in out, err
    assert checkpoints.latest(checkpoint_dir).endswith("model.ckpt-48")


def test_early_stopping_counts_from_its_start_epoch_and_needs_more_than_min_delta():
    stops = []
    trainer = types.SimpleNamespace(logs=types.SimpleNamespace(epoch={}), epoch=0,
                                    request_stop=lambda reason, finished: stops.append((trainer.epoch + 1, finished)))
    callback = EarlyStopping(patience=2, metric="validation_accuracy", min_delta=0.01, start_epoch=1)
    callback.trainer = trainer
    for epoch, accuracy in enumerate([0.99, 0.50, 0.60, 0.605, 0.609]):  # the first is a warm-up
        trainer.epoch, trainer.logs.epoch = epoch, {"validation": {"accuracy": accuracy}}
        callback.after_epoch()
    assert stops == [(5, True)]  # 0.605 and 0.609 do not beat 0.60 by more than 0.01
    assert callback.state() == {"best": 0.60, "best_epoch": 3, "wait": 2}
    restored = EarlyStopping(patience=2, metric="validation_accuracy")
    restored.trainer = trainer
    restored.load_state(callback.state())
    restored.before_train()  # a finished run stays finished
    assert stops == [(5, True), (5, True)]
    restored = EarlyStopping(patience=3, metric="validation_accuracy")  # ... until given more patience
    restored.trainer = trainer
    restored.load_state(callback.state())
    restored.before_train()
    assert len(stops) == 2


def _checkpoint(directory, step):
    os.makedirs(directory, exist_ok=True)
    for part in ("index", "data-00000-of-00001", "json"):
        with open(os.path.join(directory, f"model.ckpt-{step}.{part}"), "w") as f:
            f.write(f"{step} {part}")


def test_best_dir_is_brought_in_line_with_the_ranking_a_checkpoint_saved(tmp_path):
    checkpoint_dir = str(tmp_path / "checkpoints")
    _checkpoint(checkpoint_dir, 32)  # the checkpoint a run resumes from
    best = os.path.join(checkpoint_dir, "best")
    _checkpoint(best, 16)
    _checkpoint(best, 48)  # copied by a killed run after its last checkpoint: a ranking never saved
    with open(os.path.join(best, "model.ckpt-32.data-00000-of-00001"), "w") as f:
        f.write("a copy cut short")  # no index: incomplete
    user_file = os.path.join(best, "notes.txt")
    open(user_file, "w").write("mine")
    kept, notes = BestDir(checkpoint_dir, "validation_accuracy").sync(
        [Entry(32, 2, 0.9), Entry(16, 1, 0.8)], source=os.path.join(checkpoint_dir, "model.ckpt-32"))
    assert kept == [Entry(32, 2, 0.9), Entry(16, 1, 0.8)]
    assert any("model.ckpt-32.data-00000-of-00001" in note for note in notes)
    assert sorted(os.listdir(best)) == ["best.json", "checkpoint", "model.ckpt-16.data-00000-of-00001",
                                        "model.ckpt-16.index", "model.ckpt-16.json", "model.ckpt-32.data-00000-of-00001",
                                        "model.ckpt-32.index", "model.ckpt-32.json", "notes.txt"]
    assert open(os.path.join(best, "model.ckpt-32.json")).read() == "32 json"  # copied from the resumed checkpoint
    record = json.load(open(os.path.join(best, "best.json")))
    assert record["best"] == {"step": 32, "epoch": 2, "value": 0.9, "checkpoint": "model.ckpt-32"}
    assert checkpoints.latest(best) == os.path.join(best, "model.ckpt-32")  # the state file names the best last
    # An entry whose files were deleted by hand is left out, with a note.
    for name in os.listdir(best):
        if name.startswith("model.ckpt-16."):
            os.remove(os.path.join(best, name))
    kept, notes = BestDir(checkpoint_dir, "validation_accuracy").sync([Entry(32, 2, 0.9), Entry(16, 1, 0.8)])
    assert kept == [Entry(32, 2, 0.9)] and any("model.ckpt-16 is gone" in note for note in notes)
