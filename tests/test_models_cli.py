"""Every model trains and evaluates through the CLIs on small generated data; every config parses."""
import glob
import os

import pytest

from cnn_tf import flagfile
from cnn_tf.data import DATASETS, load_dataset
from cnn_tf.nets import nets_map
from conftest import (ROOT, accuracy_restored_by_tensor_name, make_folder_layout, make_stripes_folder, run_cli,
                      small_run_flags)


@pytest.fixture(scope="module")
def pets_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pets") / "pets"
    make_folder_layout(root, per_class=40, size=(36, 40))
    return str(root)


def printed(output, key):
    lines = [line for line in output.splitlines() if line.startswith(key + ": ")]
    assert len(lines) == 1, output
    return float(lines[0].split(": ")[1])


def image_folder_flags(pets_dir, train_dir, *extra):
    return ["--dataset=image_folder", f"--data_dir={pets_dir}", "--image_size=32", "--validation_fraction=0.1",
            "--test_fraction=0.2", f"--train_dir={train_dir}", "--batch_size=16", "--num_epochs=2", *extra]


# (model, flags) covering the models the other CLI tests do not train (lenet: test_cli, three_conv:
# test_cifar10), on both kinds of data, with augmentation and mean subtraction.
CASES = {
    "four_conv": lambda d, pets, run: image_folder_flags(pets, run, "--model=four_conv", "--augment",
                                                         "--normalization=mean", "--num_epochs=3"),
    "vgg": lambda d, pets, run: small_run_flags(d, run, "--model=vgg", "--num_epochs=1", "--weight_decay=0",
                                                "--initial_learning_rate=5e-4"),
    "vgg16": lambda d, pets, run: image_folder_flags(pets, run, "--model=vgg16", "--weight_decay=0",
                                                     "--initial_learning_rate=5e-4"),
}


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(CASES))
def test_model_trains_and_evaluates_through_the_clis(model, data_dir, pets_dir, tmp_path):
    train_dir = str(tmp_path / "run")
    result = run_cli("train", *CASES[model](data_dir, pets_dir, train_dir), "--progress=false")
    assert result.returncode == 0, result.stderr
    accuracy = printed(result.stdout, "test accuracy")
    assert accuracy > 0.6, result.stdout  # chance: 0.33 (3 colours) and 0.1 (10 digits)
    assert f"--model={model}" in open(os.path.join(train_dir, "flags.cfg")).read().splitlines()
    evaluated = run_cli("evaluate", f"--checkpoint_dir={train_dir}")
    assert evaluated.returncode == 0, evaluated.stderr
    assert printed(evaluated.stdout, "test accuracy") == pytest.approx(accuracy, abs=1e-4)
    if model == "four_conv":  # --normalization=mean: image:0 still takes [0, 1] pixels, the graph subtracts

        data = load_dataset("image_folder", data_dir=pets_dir, image_size=32, validation_fraction=0.1,
                            test_fraction=0.2)
        assert accuracy_restored_by_tensor_name(train_dir, None, data) == pytest.approx(accuracy, abs=1e-4)


@pytest.mark.slow
def test_four_conv_pets_config_learns_a_small_two_class_folder(tmp_path):
    """The pets config as shipped, on 200 generated photos that only shape tells apart (three_conv
    learned such a folder while the tutorial's initializer and dropout kept four_conv at chance)."""
    make_stripes_folder(tmp_path / "pets")
    result = run_cli("train", "--flagfile=configs/four_conv_pets.cfg", f"--data_dir={tmp_path / 'pets'}",
                     f"--train_dir={tmp_path / 'run'}", "--noprogress")
    assert result.returncode == 0, result.stderr
    assert printed(result.stdout, "test accuracy") >= 0.9, result.stdout
    first = next(line for line in result.stdout.splitlines() if line.startswith("epoch 1/"))
    assert float(first.split("train loss ")[1].split()[0]) < 15, first  # not the 20-36 of logits at +-30


@pytest.mark.slow
def test_photos_config_learns_a_small_folder_and_keeps_its_best_averaged_checkpoint(tmp_path):
    """configs/photos.cfg but for its epochs and image size (at 32 px the thinnest stripes blur away),
    on 200 generated photos that only shape tells apart: chance is 0.5, the test split 20 images."""
    make_stripes_folder(tmp_path / "photos")
    result = run_cli("train", "--flagfile=configs/photos.cfg", f"--data_dir={tmp_path / 'photos'}",
                     f"--train_dir={tmp_path / 'run'}", "--image_size=64", "--num_epochs=15", "--noprogress")
    assert result.returncode == 0, result.stderr
    assert printed(result.stdout, "test accuracy") >= 0.9, result.stdout
    assert "--ema_decay=0.995" in (tmp_path / "run" / "flags.cfg").read_text().splitlines()
    assert glob.glob(str(tmp_path / "run" / "checkpoints" / "best" / "model.ckpt-*.index")), result.stdout


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.cfg"))),
                         ids=os.path.basename)
def test_every_config_parses_and_names_a_model_and_dataset(path):
    fv = flagfile.load_config(path)
    assert fv.model in nets_map and fv.dataset in DATASETS
    assert fv.train_dir == f"runs/{os.path.basename(path)[:-4]}"
