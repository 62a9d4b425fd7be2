"""The train dir is the run's own, locked record: the state file lost or broken loses no checkpoint,
a user's files in it survive, a second trainer is refused, the class names and splits come from the
run manifest (run.json) and not from the data as it is today, changed data is refused on resume,
and predict's stdout is only its result. Real CLI processes on small generated data."""
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from cnn_tf import checkpoints, cli
from cnn_tf.errors import UserError
from cnn_tf.manifest import RunManifest
from cnn_tf.traindir import TrainDir
from conftest import ROOT, cli_env, make_folder_layout, run_cli, small_run_flags, tree_snapshot, write_dataset

STEPS_PER_EPOCH = 16  # 1000 training images in batches of 64


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, data_dir):
    """Two epochs of lenet on the generated digits: checkpoints at steps 16 and 32."""
    train_dir = str(tmp_path_factory.mktemp("digits") / "run")
    result = run_cli("train", *small_run_flags(data_dir, train_dir, "--progress=false"))
    assert result.returncode == 0, result.stderr
    return train_dir


def copy_of(train_dir, tmp_path, name="copy"):
    target = str(tmp_path / name)
    shutil.copytree(train_dir, target)
    return target


def checkpoint_steps(train_dir):
    names = os.listdir(os.path.join(train_dir, "checkpoints"))
    return sorted(int(n[len("model.ckpt-"):-len(".index")]) for n in names
                  if n.startswith("model.ckpt-") and n.endswith(".index") and n[len("model.ckpt-"):-len(".index")].isdigit())


@pytest.mark.slow
@pytest.mark.parametrize("state", ["deleted", "garbage", "empty"])
def test_a_lost_or_broken_state_file_loses_no_checkpoint_and_the_run_resumes_from_the_latest(
        digits_run, data_dir, tmp_path, state):
    train_dir = copy_of(digits_run, tmp_path)
    state_file = os.path.join(train_dir, "checkpoints", "checkpoint")
    if state == "deleted":
        os.remove(state_file)
    else:
        open(state_file, "w").write("" if state == "empty" else "\x00garbage {{{ not a text proto\n")
    if state == "empty":  # readers cope too (an empty one was a ValueError traceback in evaluate)
        result = run_cli("evaluate", f"--checkpoint_dir={train_dir}")
        assert result.returncode == 0, result.stderr
        assert f"model.ckpt-{2 * STEPS_PER_EPOCH} (global step {2 * STEPS_PER_EPOCH})" in result.stdout

    result = run_cli("train", *small_run_flags(data_dir, train_dir, "--progress=false", "--num_epochs=3"))
    assert result.returncode == 0, result.stderr
    assert f"resuming from {train_dir}/checkpoints/model.ckpt-{2 * STEPS_PER_EPOCH} at global step 32" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "rebuilt it from the 2 complete checkpoints on disk" in warnings[0], result.stderr
    assert f"checkpoint was {'missing' if state == 'deleted' else 'unreadable' if state == 'garbage' else 'empty'}" \
        in warnings[0]
    assert checkpoint_steps(train_dir) == [16, 32, 48]  # every complete checkpoint kept, one more written
    assert [checkpoints.step_of(p) for p in checkpoints.listed(os.path.join(train_dir, "checkpoints"))] == [16, 32, 48]


def test_a_users_files_in_checkpoints_survive_and_only_provably_incomplete_checkpoints_go(
        digits_run, data_dir, tmp_path):
    train_dir = copy_of(digits_run, tmp_path)
    ckpt = os.path.join(train_dir, "checkpoints")
    mine = {"my_weights.h5": b"HDF", "model.ckpt-32.notes": b"what I changed", "sub/inner.txt": b"kept",
            "model.ckpt-best.index": b"not a step of ours"}
    for name, content in mine.items():
        os.makedirs(os.path.dirname(os.path.join(ckpt, name)), exist_ok=True)
        open(os.path.join(ckpt, name), "wb").write(content)
    # A save cut short: data without an index; an index whose data shard is gone; a temporary file.
    broken = ["model.ckpt-40.data-00000-of-00001", "model.ckpt-41.index", "model.ckpt-41.data-00001-of-00002",
              "model.ckpt-42.meta.a1b2c3d4.tmp", "model.ckpt-43.index.tempstate123456"]
    for name in broken:
        open(os.path.join(ckpt, name), "wb").write(b"partial")
    result = run_cli("train", *small_run_flags(data_dir, train_dir, "--progress=false", "--num_epochs=3",
                                               "--max_num_checkpoint=2"))
    assert result.returncode == 0, result.stderr
    assert f"resuming from {ckpt}/model.ckpt-32" in result.stdout
    assert "removed the files of a checkpoint save that did not finish" in result.stderr
    for name, content in mine.items():
        assert open(os.path.join(ckpt, name), "rb").read() == content, name
    for name in broken:
        assert not os.path.exists(os.path.join(ckpt, name)), name
    assert checkpoint_steps(train_dir) == [32, 48]  # --max_num_checkpoint rotates only checkpoints


@pytest.mark.slow
def test_a_second_trainer_on_a_running_train_dir_is_refused_and_the_first_finishes(data_dir, tmp_path):
    train_dir = str(tmp_path / "run")
    flags = small_run_flags(data_dir, train_dir, "--progress=false", "--num_epochs=6")
    first = subprocess.Popen([sys.executable, "-m", "cnn_tf.train", *flags], cwd=ROOT, env=cli_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = os.path.join(train_dir, "lock")
        deadline = time.monotonic() + 120
        while not (os.path.exists(lock) and os.path.getsize(lock)) and first.poll() is None:
            assert time.monotonic() < deadline, "the first trainer never took the lock"
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()
        holder = json.load(open(lock))
        assert holder["pid"] == first.pid
        second = run_cli("train", *flags)
        line = one_error_line(second)
        assert f"train dir {train_dir} is in use by another training process (pid {first.pid} on" in line, line
        assert "resuming" not in second.stdout
        out, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    assert "test accuracy" in out
    assert not os.path.exists(lock)  # released: the next run may start
    again = run_cli("train", *flags)
    assert again.returncode == 0 and "already done" in again.stdout, again.stderr


@pytest.fixture(scope="module")
def pets_run(tmp_path_factory):
    """three_conv on three colour classes (bird, cat, dog) in a folder."""
    root = tmp_path_factory.mktemp("pets")
    folder = root / "pets"
    make_folder_layout(folder, per_class=10)
    flags = ["--dataset=image_folder", f"--data_dir={folder}", "--image_size=8", "--model=three_conv",
             "--num_epochs=3", "--batch_size=8", f"--train_dir={root / 'run'}", "--progress=false"]
    result = run_cli("train", *flags)
    assert result.returncode == 0, result.stderr
    return root, str(folder), str(root / "run"), flags


def predict_json(train_dir, *paths):
    result = run_cli("predict", f"--checkpoint_dir={train_dir}", "--format=json", "--top_k=3", *paths)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # stdout is the JSON alone


def test_the_manifest_records_classes_shape_mean_and_split_membership(pets_run):
    _, folder, train_dir, _ = pets_run
    record = RunManifest.read(os.path.join(train_dir, "run.json"))
    assert record.class_names == ["bird", "cat", "dog"] and record.image_shape == (8, 8, 3)
    assert len(record.pixel_mean) == 3 and record.dataset == "image_folder" and record.source == folder
    assert len(record.files) == 30 and {f["split"] for f in record.files.values()} == {"train", "validation", "test"}
    assert sum(f["split"] == "test" for f in record.files.values()) == record.splits["test"]["size"] == 3
    assert record.files["cat/cat0.png"]["label"] == "cat" and record.files["cat/cat0.png"]["size"] > 0


@pytest.mark.slow
def test_renamed_and_moved_class_folders_keep_the_trained_class_names(tmp_path):
    folder = str(tmp_path / "pets")
    make_folder_layout(tmp_path / "pets", per_class=10)
    train_dir = str(tmp_path / "run")
    result = run_cli("train", "--dataset=image_folder", f"--data_dir={folder}", "--image_size=8", "--model=three_conv",
                     "--num_epochs=3", "--batch_size=8", f"--train_dir={train_dir}", "--progress=false")
    assert result.returncode == 0, result.stderr
    probe = [shutil.copy(os.path.join(folder, *p), str(tmp_path / p[1])) for p in (("bird", "bird0.png"),
                                                                                   ("cat", "cat1.jpg"))]
    before = predict_json(train_dir, *probe)
    assert {p["class"] for entry in before for p in entry["predictions"]} == {"bird", "cat", "dog"}

    os.rename(os.path.join(folder, "bird"), os.path.join(folder, "zebra"))
    assert predict_json(train_dir, *probe) == before  # the trained names, never the folder's of today
    line = one_error_line(run_cli("evaluate", f"--checkpoint_dir={train_dir}"))
    assert "of the test split's 3 images are not in" in line and "bird/" in line and "--data_dir" in line, line
    os.rename(os.path.join(folder, "zebra"), os.path.join(folder, "bird"))

    moved = str(tmp_path / "elsewhere")
    shutil.move(folder, moved)  # moved away: export and predict never read it
    assert predict_json(train_dir, *probe) == before
    export = run_cli("export", f"--checkpoint_dir={train_dir}", f"--export_dir={tmp_path / 'export'}")
    assert export.returncode == 0, export.stderr
    (version,) = os.listdir(tmp_path / "export")  # the best checkpoint's step
    assert open(os.path.join(str(tmp_path / "export"), version, "assets", "class_names.txt")).read() == "bird\ncat\ndog\n"
    saved = run_cli("predict", f"--saved_model={tmp_path / 'export'}", "--format=json", "--top_k=3", *probe)
    assert saved.returncode == 0, saved.stderr
    assert [[p["class"] for p in e["predictions"]] for e in json.loads(saved.stdout)] == \
        [[p["class"] for p in e["predictions"]] for e in before]
    line = one_error_line(run_cli("evaluate", f"--checkpoint_dir={train_dir}"))
    assert f"the run's image folder {folder} is not there" in line, line
    result = run_cli("evaluate", f"--checkpoint_dir={train_dir}", f"--data_dir={moved}")  # where it is now
    assert result.returncode == 0, result.stderr
    assert "test accuracy:" in result.stdout and "bird" in result.stdout


@pytest.mark.parametrize("change", ["added and removed", "modified", "class added"])
def test_changed_data_is_refused_on_resume_in_one_line_and_the_train_dir_is_untouched(pets_run, tmp_path, change):
    _, folder, run, flags = pets_run
    train_dir = copy_of(run, tmp_path, "run")
    data = str(tmp_path / "data")
    shutil.copytree(folder, data)
    if change == "added and removed":
        shutil.copy(os.path.join(data, "cat", "cat0.png"), os.path.join(data, "cat", "new0.png"))
        shutil.copy(os.path.join(data, "cat", "cat1.jpg"), os.path.join(data, "cat", "new1.jpg"))
        os.remove(os.path.join(data, "cat", "cat2.bmp"))
        expected = f"2 images added to {data}/cat, 1 removed"
    elif change == "modified":
        shutil.copy(os.path.join(data, "dog", "dog0.png"), os.path.join(data, "dog", "dog4.png"))
        expected = f"1 image changed in {data}/dog"
    else:
        shutil.copytree(os.path.join(data, "dog"), os.path.join(data, "emu"))
        expected = "classes added: emu"
    before = tree_snapshot(train_dir)
    result = run_cli("train", *flags, f"--data_dir={data}", f"--train_dir={train_dir}", "--num_epochs=4")
    line = one_error_line(result)
    assert expected in line and f"changed since the run in {train_dir} started" in line, line
    assert f"--warm_start_from={train_dir}" in line and "--train_dir" in line
    assert tree_snapshot(train_dir) == before


@pytest.mark.slow
def test_predict_json_and_csv_stdout_parse_with_notes_on_stderr(pets_run, tmp_path):
    _, folder, run, _ = pets_run
    train_dir = copy_of(run, tmp_path, "run")
    os.remove(os.path.join(train_dir, "run.json"))  # an older train dir: its record is derived, with a note
    for output in ("json", "csv"):
        result = run_cli("predict", f"--checkpoint_dir={train_dir}", f"--format={output}", "--batch_size=4", folder)
        assert result.returncode == 0, result.stderr
        if output == "json":
            rows = json.loads(result.stdout)
            assert len(rows) == 30 and all(r["predictions"][0]["class"] in ("bird", "cat", "dog") for r in rows)
        else:
            rows = list(csv.DictReader(io.StringIO(result.stdout)))
            assert len(rows) == 30 * 3 and set(rows[0]) == {"path", "rank", "class", "probability"}
        assert "has no run.json" in result.stderr and "decoding" in result.stderr
    assert not os.path.exists(os.path.join(train_dir, "run.json"))  # readers write nothing


def test_an_old_train_dir_gets_its_manifest_on_resume_saying_so(pets_run, tmp_path):
    _, folder, run, flags = pets_run
    train_dir = copy_of(run, tmp_path, "run")
    recorded = json.load(open(os.path.join(train_dir, "run.json")))
    os.remove(os.path.join(train_dir, "run.json"))
    result = run_cli("train", *flags, f"--train_dir={train_dir}", "--num_epochs=4")
    assert result.returncode == 0, result.stderr
    assert "had no run.json (it was written before run manifests): recorded its data" in result.stderr
    derived = json.load(open(os.path.join(train_dir, "run.json")))
    assert derived["files"] == recorded["files"] and derived["class_names"] == recorded["class_names"]


def test_a_class_name_with_a_line_break_is_refused_naming_the_folder(tmp_path):
    folder = tmp_path / "pets"
    make_folder_layout(folder, per_class=4)
    os.rename(folder / "dog", folder / "do\ng")
    result = run_cli("train", "--dataset=image_folder", f"--data_dir={folder}", "--image_size=8",
                     "--model=three_conv", f"--train_dir={tmp_path / 'run'}")
    line = one_error_line(result)
    assert f"{folder}: class folder 'do\\ng' is not a usable class name" in line, line
    assert not os.path.exists(tmp_path / "run")
    result = run_cli("train", "--dataset=image_folder", f"--data_dir={folder}", "--class_names=bird,cat,bird",
                     f"--train_dir={tmp_path / 'run'}")
    assert "--class_names 'bird' is named twice" in one_error_line(result)


@pytest.mark.slow
def test_a_run_remembers_its_data_choices_on_resume(tmp_path):
    folder = tmp_path / "photos"
    make_folder_layout(folder, per_class=6)
    (folder / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    flags = ["--dataset=image_folder", f"--data_dir={folder}", "--image_size=8", "--model=three_conv",
             "--batch_size=8", f"--train_dir={tmp_path / 'run'}", "--progress=false"]
    result = run_cli("train", *flags, "--num_epochs=1", "--skip_bad_images", "--augment=flip_crop")
    assert result.returncode == 0, result.stderr
    result = run_cli("train", *flags, "--num_epochs=2")  # the same command without the data choices
    assert result.returncode == 0, result.stderr
    saved = open(tmp_path / "run" / "flags.cfg").read()
    assert "--skip_bad_images\n" in saved and "--augment=flip_crop\n" in saved


def test_changed_idx_data_is_refused_on_resume(digits_run, tmp_path):
    train_dir = copy_of(digits_run, tmp_path)
    other = str(tmp_path / "other_digits")
    write_dataset(other, seed=5)
    before = tree_snapshot(train_dir)
    line = one_error_line(run_cli("train", *small_run_flags(other, train_dir, "--num_epochs=3")))
    assert "the train split's images or labels differ" in line and "--warm_start_from" in line, line
    assert tree_snapshot(train_dir) == before


def test_a_run_without_a_validation_split_trains_records_it_and_resumes(data_dir, tmp_path):
    # configs/resnet_fashion_mnist.cfg trains on every training image; its empty split once crashed the manifest
    train_dir = str(tmp_path / "run")
    flags = small_run_flags(data_dir, train_dir, "--validation_size=0", "--progress=false")
    result = run_cli("train", *flags, "--num_epochs=1")
    assert result.returncode == 0, result.stderr
    assert "test accuracy: " in result.stdout, result.stdout
    splits = json.load(open(os.path.join(train_dir, "run.json")))["splits"]
    assert splits["validation"]["size"] == 0 and splits["train"]["size"] == 1200, splits
    result = run_cli("train", *flags, "--num_epochs=2")
    assert result.returncode == 0, result.stderr
    assert checkpoint_steps(train_dir)[-1] == 2 * -(-1200 // 64), checkpoint_steps(train_dir)  # partial last batch


def test_a_reader_retries_on_the_new_latest_when_the_latest_vanishes_while_read(digits_run, tmp_path):
    train_dir = copy_of(digits_run, tmp_path)
    run_dir = TrainDir(train_dir)
    ckpt = run_dir.checkpoints
    read = []

    def use(path):
        read.append(os.path.basename(path))
        if len(read) == 1:  # training rotates it away mid-read: its files go, the state file names the other
            for name in os.listdir(ckpt):
                if name.startswith("model.ckpt-32."):
                    os.remove(os.path.join(ckpt, name))
            open(os.path.join(ckpt, "checkpoint"), "w").write('model_checkpoint_path: "model.ckpt-16"\n')
            raise UserError("cannot read checkpoint: not found")
        return "ok"

    assert cli.with_checkpoint(run_dir, cli.CheckpointOptions(), use) == ("ok", os.path.join(ckpt, "model.ckpt-16"))
    assert read == ["model.ckpt-32", "model.ckpt-16"]
    with pytest.raises(UserError):  # a checkpoint that is there but unreadable is an error, not retried
        cli.with_checkpoint(run_dir, cli.CheckpointOptions(), lambda path: (_ for _ in ()).throw(UserError("corrupt")))


def test_repair_removes_only_provably_incomplete_parts_of_our_checkpoints(tmp_path):
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    names = {
        "model.ckpt-5.index": True, "model.ckpt-5.data-00000-of-00001": True, "model.ckpt-5.meta": True,  # complete
        "model.ckpt-7.index": True, "model.ckpt-7.data-00000-of-00002": True,  # missing shard 1 of 2
        "model.ckpt-8.data-00000-of-00001": True,  # no index
        "model.ckpt-9_temp": False,  # a save's temporary folder (made below)
        "checkpoint.ab12cd34.tmp": True, "model.ckpt-5.meta.zz99yy88.tmp": True,
        "model.ckpt-x-3.data-00000-of-00001": True, "mine-4.data-00000-of-00001": True, "notes.tmp": True,
    }
    for name, is_file in names.items():
        (ckpt / name).write_bytes(b"x") if is_file else (ckpt / name).mkdir()
    notes = checkpoints.repair(str(ckpt))
    left = sorted(os.listdir(ckpt))
    assert left == ["checkpoint", "mine-4.data-00000-of-00001", "model.ckpt-5.data-00000-of-00001", "model.ckpt-5.index",
                    "model.ckpt-5.meta", "model.ckpt-x-3.data-00000-of-00001", "notes.tmp"], left
    assert "rebuilt it from the 1 complete checkpoints on disk (the latest: model.ckpt-5)" in notes[-1]
    assert checkpoints.listed(str(ckpt)) == [str(ckpt / "model.ckpt-5")]
