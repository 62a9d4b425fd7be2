"""export: a SavedModel that TensorFlow 2 loads without cnn_tf, classifying image files and arrays
as the checkpoint does; saved_model_cli lists both signatures; versions never overwritten."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cnn_tf.data import load_dataset
from conftest import checkpoint_probabilities, export_and_compare, run_cli, write_image

# Runs in a fresh interpreter that never imports cnn_tf: what a user of the SavedModel has.


@pytest.mark.slow
def test_export_loads_without_cnn_tf_and_answers_as_the_checkpoint(digits_run, data_dir, tmp_path):
    train_dir = digits_run  # export and predict only read a train dir
    data = load_dataset("mnist", data_dir=data_dir, validation_size=200)
    images, labels = data.split("test")
    export_dir, version, out = export_and_compare(train_dir, images[:100], data.class_names, tmp_path)
    assert np.mean(np.array(out["classes"]) == labels[:100]) > 0.8

    shown = subprocess.run([os.path.join(os.path.dirname(sys.executable), "saved_model_cli"), "show", "--dir",
                            version, "--all"], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    for signature in ("serving_default", "predict_images"):
        assert f"signature_def['{signature}']" in shown.stdout
    assert "dtype: DT_STRING" in shown.stdout and "dtype: DT_UINT8" in shown.stdout

    # a version is never overwritten: one line, and the export dir as it was
    again = run_cli("export", f"--checkpoint_dir={train_dir}", f"--export_dir={export_dir}")
    assert again.returncode == 2 and again.stderr.strip().splitlines() == [
        f"error: {version} already exists: a version is never overwritten; delete it or pass another --export_dir"]
    assert os.listdir(export_dir) == [os.path.basename(version)]


@pytest.mark.slow
def test_predict_gives_the_same_classes_from_the_checkpoint_and_the_saved_model(digits_run, data_dir, tmp_path):
    train_dir, export_dir = digits_run, str(tmp_path / "export")
    assert run_cli("export", f"--checkpoint_dir={train_dir}", f"--export_dir={export_dir}").returncode == 0
    data = load_dataset("mnist", data_dir=data_dir, validation_size=200)
    images, labels = data.split("test")
    folder = tmp_path / "photos"
    os.makedirs(folder / "sub")
    for i in range(40):  # PNG and JPEG, some in a sub-folder
        write_image(str(folder / ("sub" if i % 3 == 0 else "") / f"{i:02d}.{'png' if i % 2 else 'jpg'}"), images[i])
    answers = {}
    for source in (f"--checkpoint_dir={train_dir}", f"--saved_model={export_dir}"):
        result = run_cli("predict", source, "--format=json", "--top_k=2", str(folder))
        assert result.returncode == 0, result.stderr
        answers[source] = json.loads(result.stdout)
        assert len(answers[source]) == 40 and all(len(a["predictions"]) == 2 for a in answers[source])
    checkpoint, saved = answers.values()
    assert [a["path"] for a in checkpoint] == [a["path"] for a in saved]
    assert [a["predictions"][0]["class"] for a in checkpoint] == [a["predictions"][0]["class"] for a in saved]
    for a, b in zip(checkpoint, saved):
        assert abs(a["predictions"][0]["probability"] - b["predictions"][0]["probability"]) < 1e-5
    truth = {f"{i:02d}": str(labels[i]) for i in range(40)}
    correct = [a["predictions"][0]["class"] == truth[os.path.basename(a["path"])[:2]] for a in saved]
    assert np.mean(correct) > 0.8

    # the table, and an unreadable file among them: the others classified, one error line, exit 2 (as
    # `ls` with a missing name); with --skip_bad_images a warning and exit 0
    (folder / "broken.png").write_bytes(b"not a png")
    table = run_cli("predict", f"--saved_model={export_dir}", str(folder))
    assert table.returncode == 2 and table.stderr.strip().splitlines() == [
        f"error: {folder / 'broken.png'}: not a readable PNG/JPEG/BMP/GIF image; fix it, or pass --skip_bad_images "
        "to leave such files out"]
    assert len(table.stdout.strip().splitlines()) == 40
    table = run_cli("predict", f"--saved_model={export_dir}", "--skip_bad_images", str(folder))
    assert table.returncode == 0, table.stderr
    assert "warning: skipped 1 unreadable files" in table.stderr
    assert len(table.stdout.strip().splitlines()) == 40
    fifo = folder / "pipe.png"  # a FIFO named like an image: reading it would block forever
    os.mkfifo(fifo)
    table = run_cli("predict", f"--saved_model={export_dir}", str(folder), timeout=120)
    assert table.returncode == 2 and f"error: {fifo}: not a regular file" in table.stderr
    assert len(table.stdout.strip().splitlines()) == 40


@pytest.mark.slow
def test_flip_tta_in_predict_and_the_export_averages_each_image_with_its_mirror(digits_run, data_dir, tmp_path):
    train_dir, export_dir = digits_run, str(tmp_path / "export")
    exported = run_cli("export", f"--checkpoint_dir={train_dir}", f"--export_dir={export_dir}", "--tta=flip")
    assert exported.returncode == 0 and "test-time augmentation: flip" in exported.stdout, exported.stderr
    data = load_dataset("mnist", data_dir=data_dir, validation_size=200)
    images = data.split("test")[0][:12]
    os.makedirs(tmp_path / "png")
    for i, image in enumerate(images):
        write_image(str(tmp_path / "png" / f"{i:02d}.png"), image)
    # The checkpoint's own answers for the images and their mirrors, by tensor name, without TTA.
    mirrors = images[:, :, ::-1]
    expected = (checkpoint_probabilities(train_dir, images) + checkpoint_probabilities(train_dir, mirrors)) / 2
    assert not np.allclose(expected, checkpoint_probabilities(train_dir, images), atol=1e-3)  # digits are lopsided
    for source in (f"--checkpoint_dir={train_dir}", f"--saved_model={export_dir}"):
        result = run_cli("predict", source, "--format=json", "--top_k=10", str(tmp_path / "png"),
                         *(["--tta=flip"] if source.startswith("--checkpoint") else []))
        assert result.returncode == 0, result.stderr
        answers = [{p["class"]: p["probability"] for p in answer["predictions"]} for answer in json.loads(result.stdout)]
        got = np.array([[answer[name] for name in data.class_names] for answer in answers])
        np.testing.assert_allclose(got, expected, atol=1e-5)
    refused = run_cli("predict", f"--saved_model={export_dir}", "--tta=flip", str(tmp_path / "png"))
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        "error: --tta=flip applies to --checkpoint_dir; a SavedModel classifies as it was exported (export "
        "--tta=flip builds the flip into it)"]
