"""Fine-tuning: --warm_start_from, --checkpoint_exclude_scopes, --trainable_scopes, --ignore_missing_vars,
and image_folder's --channels (a digit model fine-tuned on grayscale files)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from cnn_tf import checkpoints, config
from cnn_tf.data import image_folder
from cnn_tf.data.preprocess import decode
from cnn_tf.errors import UserError
from cnn_tf.fine_tuning import WarmStart
from cnn_tf.graph import build_graph
from conftest import (ROOT, colour_image, export_and_compare, make_folder_layout, make_images, printed_accuracy,
                      run_cli, write_image)

NUM_CLASSES = 5


@pytest.fixture(scope="module")
def source(digits_run):
    """The shared one-epoch LeNet on the 10 generated digit classes: the checkpoint to start from."""
    return checkpoints.latest(os.path.join(digits_run, "checkpoints"))


@pytest.fixture(scope="module")
def grey_folder(tmp_path_factory):
    """Five classes of the generated digit-like images as grayscale 28x28 PNG files."""
    root = tmp_path_factory.mktemp("grey")
    labels = np.random.default_rng(5).integers(0, NUM_CLASSES, 400)
    for i, (image, k) in enumerate(zip(make_images(labels, seed=5), labels)):
        os.makedirs(root / f"class{k}", exist_ok=True)
        write_image(str(root / f"class{k}" / f"{i:04d}.png"), image[..., None])
    return str(root)


def folder_flags(folder, train_dir, *extra):
    return ["--dataset=image_folder", f"--data_dir={folder}", "--model=lenet", f"--train_dir={train_dir}",
            "--batch_size=64", "--num_epochs=1", "--progress=false", *extra]


def weights(path):
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


# --channels

def test_a_grayscale_folder_loads_with_one_channel_the_pixels_decode_channels_1_gives(grey_folder, tmp_path):
    auto = image_folder.load(grey_folder, image_size=28)
    assert auto.image_shape == (28, 28, 1)
    explicit = image_folder.load(grey_folder, image_size=28, channels=1)
    for split in auto.splits:
        np.testing.assert_array_equal(auto.split(split)[0], explicit.split(split)[0])
    assert image_folder.load(grey_folder, image_size=28, channels=3).image_shape == (28, 28, 3)

    colour = tmp_path / "colour"
    make_folder_layout(colour)
    assert image_folder.load(str(colour), image_size=16).image_shape == (16, 16, 3)
    grey = image_folder.load(str(colour), image_size=16, channels=1)
    assert grey.image_shape == (16, 16, 1)
    # Colour files become their luminance through the one preprocessing function.
    path = str(colour / "bird" / "bird0.png")
    expected = decode(tf.io.read_file(path), 16, 16, 1).numpy()
    assert any((image == expected).all() for name in grey.splits for image in grey.split(name)[0])


def test_channels_must_be_1_or_3(grey_folder, tmp_path):
    result = run_cli("train", *folder_flags(grey_folder, str(tmp_path / "run"), "--channels=2"))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --channels must be 1 (grayscale) or 3 (RGB) (got 2)"


# The warm start in one process: what comes from the source, what starts afresh.

@pytest.mark.slow
def test_warm_start_restores_the_model_variables_and_nothing_else(source):
    cfg = config.RunConfig(model="lenet", warm_start_from=source, checkpoint_exclude_scopes=("lenet/fc4",))
    g = build_graph(cfg, (28, 28, 1), 10, 1000)
    warm_start = WarmStart(cfg, g)
    fresh = build_graph(cfg, (28, 28, 1), 10, 1000)  # the same graph, for its initial values
    saved = weights(source)
    with tf.compat.v1.Session(graph=g.graph) as sess, tf.compat.v1.Session(graph=fresh.graph) as fresh_sess:
        warm_start(sess)
        fresh_sess.run(fresh.saving.init_op)
        with g.graph.as_default():
            values = dict(zip([v.op.name for v in tf.compat.v1.global_variables()],
                              sess.run(tf.compat.v1.global_variables())))
        with fresh.graph.as_default():
            initial = dict(zip([v.op.name for v in tf.compat.v1.global_variables()],
                               fresh_sess.run(tf.compat.v1.global_variables())))
    model = {v.op.name for v in g.model_variables}
    assert {"lenet/conv1/weights", "lenet/conv1/BatchNorm/moving_mean", "lenet/fc4/weights"} <= model
    for name in model:
        if name.startswith("lenet/fc4/"):  # excluded: its initializer's value, not the source's
            np.testing.assert_array_equal(values[name], initial[name])
            assert not np.array_equal(values[name], saved[name])
        else:
            np.testing.assert_array_equal(values[name], saved[name], err_msg=name)
    # The global step, Adam's slots and powers and the rollback state never come from the source.
    assert saved["global_step"] > 0 and values["global_step"] == 0
    assert np.abs(saved["lenet/conv1/weights/Adam"]).max() > 0
    for name in ("lenet/conv1/weights/Adam", "lenet/conv1/weights/Adam_1", "beta1_power", "nan_rollback/count"):
        np.testing.assert_array_equal(values[name], initial[name], err_msg=name)
    assert "12 of the model's 14 variables" in warm_start.summary() and "lenet/fc4" in warm_start.summary()


def test_a_missing_variable_is_an_error_or_with_ignore_missing_vars_a_warning(source, capsys):
    # Without batch norm the conv layers have biases the source (trained with batch norm) lacks.
    cfg = config.RunConfig(model="lenet", batch_norm=False, warm_start_from=source)
    g = build_graph(cfg, (28, 28, 1), 10, 1000)
    with pytest.raises(UserError, match=r"has no variable lenet/conv1/biases \(and 1 more\); pass "
                                        r"--ignore_missing_vars .* or --checkpoint_exclude_scopes=lenet/conv1,lenet/conv2"):
        WarmStart(cfg, g)
    warm_start = WarmStart(cfg.replace(ignore_missing_vars=True), g)
    assert "lacks 2 of the model's variables (in lenet/conv1, lenet/conv2)" in capsys.readouterr().err
    assert len(warm_start.restored) == 6 and "from their initializer: lenet/conv1, lenet/conv2" in warm_start.summary()


def test_an_output_layer_restored_over_other_classes_is_worth_a_warning(source, capsys):
    # The source's run.json says it learned the digits 0-9: ten other classes fit its shapes, not its meaning.
    cfg = config.RunConfig(model="lenet", warm_start_from=source)
    g = build_graph(cfg, (28, 28, 1), 10, 1000)
    WarmStart(cfg, g, [str(d) for d in range(10)])
    assert "warning" not in capsys.readouterr().err
    WarmStart(cfg, g, list("abcdefghij"))
    assert (f"warning: --warm_start_from: {source} was trained on the classes 0, 1, 2, 3, 4, ..., not this run's; its "
            "output layer lenet/fc4 is restored as it is (pass --checkpoint_exclude_scopes=lenet/fc4" in
            capsys.readouterr().err)
    WarmStart(cfg.replace(checkpoint_exclude_scopes=("lenet/fc4",)), g, list("abcdefghij"))
    assert "warning" not in capsys.readouterr().err


def test_slims_weights_fed_other_inputs_than_slim_trained_them_on_are_worth_a_warning(tmp_path, capsys):
    ckpt = str(tmp_path / "mobilenet_v1.ckpt")
    written = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "slim_checkpoints.py"), ckpt, "mobilenet_v1",
                              "0.25"], capture_output=True, text=True, timeout=300)
    assert written.returncode == 0, written.stderr
    cfg = config.RunConfig(model="mobilenet_v1", depth_multiplier=0.25, warm_start_from=ckpt,
                           checkpoint_exclude_scopes=("MobilenetV1/Logits",))
    g = build_graph(cfg, (32, 32, 3), 3, 100)
    WarmStart(cfg, g, ["a", "b", "c"])
    assert (f"warning: --warm_start_from: {ckpt} is not a cnn_tf run's, and slim trained its mobilenet_v1 weights on "
            "--normalization=inception inputs; this run feeds --normalization=scale" in capsys.readouterr().err)
    WarmStart(cfg.replace(normalization="inception"), build_graph(cfg.replace(normalization="inception"), (32, 32, 3),
                                                                  3, 100), ["a", "b", "c"])
    assert "warning" not in capsys.readouterr().err


# Through the CLI: a 10-class digit model fine-tuned on a 5-class grayscale folder.

@pytest.mark.slow
def test_fine_tuning_trains_only_the_trainable_scopes_and_resumes_instead_of_warm_starting(
        source, grey_folder, tmp_path):
    train_dir = str(tmp_path / "tuned")
    flags_ = folder_flags(grey_folder, train_dir, f"--warm_start_from={os.path.dirname(os.path.dirname(source))}",
                          "--checkpoint_exclude_scopes=lenet/fc4", "--trainable_scopes=lenet/fc3,lenet/fc4")
    result = run_cli("train", *flags_)
    assert result.returncode == 0, result.stderr
    assert (f"warm start: 12 of the model's 14 variables from {source} (a mnist run, 10 classes); from their "
            "initializer: lenet/fc4" in result.stdout), result.stdout
    assert "3,269,509 parameters, 3,217,413 trained (lenet/fc3,lenet/fc4)" in result.stdout, result.stdout
    assert printed_accuracy(result.stdout) > 0.6
    tuned, saved = weights(checkpoints.latest(os.path.join(train_dir, "checkpoints"))), weights(source)
    steps = tuned["global_step"]
    assert steps == 5  # 320 training images / 64: the step count starts at 0, not at the source's
    for name, value in tuned.items():
        if name.startswith(("lenet/conv1/", "lenet/conv2/")):  # frozen, batch-norm statistics too
            np.testing.assert_array_equal(value, saved[name], err_msg=name)
    assert not np.array_equal(tuned["lenet/fc3/weights"], saved["lenet/fc3/weights"])
    assert tuned["lenet/fc4/weights"].shape == (1, 1, 1024, NUM_CLASSES)
    assert "lenet/conv1/weights/Adam" not in tuned and "lenet/fc3/weights/Adam" in tuned  # no slots when frozen

    result = run_cli("train", *flags_, "--num_epochs=2")
    assert result.returncode == 0, result.stderr
    latest = checkpoints.latest(os.path.join(train_dir, "checkpoints"))
    assert (f"resuming from {train_dir}/checkpoints/model.ckpt-5 at global step 5 (epoch 2, step 0 of 5); not "
            f"warm-starting from {os.path.dirname(os.path.dirname(source))}: the train dir has its own checkpoint"
            in result.stdout), result.stdout
    assert "warm start:" not in result.stdout and latest.endswith("model.ckpt-10")
    resumed = weights(latest)
    np.testing.assert_array_equal(resumed["lenet/conv2/weights"], saved["lenet/conv2/weights"])

    # --trainable_scopes fixes the optimizer's slots: it must match on a resume.
    result = run_cli("train", *flags_, "--num_epochs=3", "--trainable_scopes=lenet/fc4")
    assert result.returncode == 2
    assert "was trained with --trainable_scopes=lenet/fc3,lenet/fc4 and this run asks for " \
           "--trainable_scopes=lenet/fc4" in result.stderr


@pytest.mark.slow
def test_a_rollback_before_the_first_checkpoint_goes_back_to_the_warm_started_weights(source, grey_folder, tmp_path):
    # A learning rate of 1e30 diverges at once; the rollback must restore the source's weights (the
    # frozen layers then stay the source's bit for bit), not fresh random ones. On two towers.
    train_dir = str(tmp_path / "diverged")
    result = run_cli("train", *folder_flags(
        grey_folder, train_dir, f"--warm_start_from={source}", "--checkpoint_exclude_scopes=lenet/fc4",
        "--trainable_scopes=lenet/fc4", "--initial_learning_rate=1e30", "--on_nan=rollback",
        "--nan_lr_factor=1e-33", "--num_towers=2"))
    assert result.returncode == 0, result.stderr
    assert f"rolled back to step 0 (the warm-started weights of {source})" in result.stdout, result.stdout
    tuned, saved = weights(checkpoints.latest(os.path.join(train_dir, "checkpoints"))), weights(source)
    for name in saved:
        if name.startswith(("lenet/conv1/", "lenet/conv2/", "lenet/fc3/")) and "/Adam" not in name:
            np.testing.assert_array_equal(tuned[name], saved[name], err_msg=name)


@pytest.mark.parametrize("extra, message", [
    (["--warm_start_from={missing}"],
     "error: --warm_start_from={missing}: no such checkpoint ({missing}.index does not exist); give a train dir or "
     "a checkpoint such as DIR/checkpoints/model.ckpt-N"),
    (["--warm_start_from={source}"],  # 10 classes there, 5 here
     "error: --warm_start_from: lenet/fc4/weights is float32 [1, 1, 1024, 10] in {source} and float32 "
     "[1, 1, 1024, 5] in this model (1 more differ); pass --checkpoint_exclude_scopes=lenet/fc4 to start them "
     "from the initializer"),
    (["--warm_start_from={source}", "--checkpoint_exclude_scopes=lenet/fc4,logits"],
     "error: --checkpoint_exclude_scopes: 'logits' matches no variable of the model; its scopes are lenet/conv1, "
     "lenet/conv2, lenet/fc3, lenet/fc4"),
    (["--warm_start_from={source}", "--checkpoint_exclude_scopes=lenet/fc4", "--trainable_scopes=fc4"],
     "error: --trainable_scopes: 'fc4' matches no variable of the model; its scopes are lenet/conv1, lenet/conv2, "
     "lenet/fc3, lenet/fc4"),
    (["--checkpoint_exclude_scopes=lenet/fc4"],
     "error: --checkpoint_exclude_scopes applies to a warm start: give --warm_start_from too, or leave it out"),
])
@pytest.mark.slow
def test_bad_fine_tuning_flags_are_one_line_and_leave_the_train_dir_as_it_was(
        source, grey_folder, tmp_path, extra, message):
    missing = str(tmp_path / "no" / "model.ckpt-7")
    extra = [e.format(source=source, missing=missing) for e in extra]
    for train_dir in (tmp_path / "new", tmp_path / "kept"):
        if train_dir.name == "kept":
            train_dir.mkdir()
            (train_dir / "notes.txt").write_text("mine")
        result = run_cli("train", *folder_flags(grey_folder, str(train_dir), *extra))
        assert result.returncode == 2, result.stderr
        *notes, error = result.stderr.strip().splitlines()  # the folder's decoding is a note on stderr
        assert error == message.format(source=source, missing=missing)
        assert all(note.startswith("decoding ") for note in notes), result.stderr
        assert (sorted(os.listdir(train_dir)) == ["notes.txt"]) if train_dir.name == "kept" else not train_dir.exists()


# Published weights: backbones with slim's names

# model, its flags, its normalization, the logits scope, the checkpoint's variables, a backbone weight's shape
BACKBONES = {
    "mobilenet_v1": (["--depth_multiplier=0.25"], "inception", "MobilenetV1/Logits", 137,
                     ("MobilenetV1/Conv2d_13_pointwise/weights", (1, 1, 256, 256))),
    "mobilenet_v2": ([], "inception", "MobilenetV2/Logits", 262,
                     ("MobilenetV2/expanded_conv_16/project/weights", (1, 1, 960, 320))),
    "resnet_v1_50": ([], "vgg", "resnet_v1_50/logits", 267,
                     ("resnet_v1_50/block4/unit_3/bottleneck_v1/conv3/weights", (1, 1, 512, 2048))),
}


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(BACKBONES))
def test_a_backbone_warm_starts_from_a_checkpoint_in_slims_naming_keeps_its_backbone_and_exports(model, tmp_path):
    """With slim's inputs for its weights (--normalization), which the SavedModel applies after image:0 too."""
    extra, normalization, logits, count, (name, shape) = BACKBONES[model]
    ckpt = str(tmp_path / "slim" / f"{model}.ckpt")
    written = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "slim_checkpoints.py"), ckpt, model,
                              *[f.split("=")[1] for f in extra]], capture_output=True, text=True, timeout=300)
    assert written.returncode == 0, written.stderr
    saved = {n: value for n, value in weights(ckpt).items() if n != "global_step"}
    assert len(saved) == count and saved[name].shape == shape
    make_folder_layout(tmp_path / "photos", per_class=20, size=(40, 48))
    train_dir = str(tmp_path / "tuned")
    result = run_cli("train", "--dataset=image_folder", f"--data_dir={tmp_path / 'photos'}", f"--model={model}",
                     *extra, "--image_size=32", f"--train_dir={train_dir}", "--batch_size=16", "--num_epochs=1",
                     "--progress=false", f"--warm_start_from={ckpt}", f"--checkpoint_exclude_scopes={logits}",
                     f"--trainable_scopes={logits}", f"--normalization={normalization}")
    assert result.returncode == 0, result.stderr
    assert (f"warm start: {count - 2} of the model's {count} variables" in result.stdout
            and f"from their initializer: {logits}" in result.stdout), result.stdout
    tuned = weights(checkpoints.latest(os.path.join(train_dir, "checkpoints")))
    assert {n for n in tuned if n.startswith(name.split("/")[0] + "/") and "/Adam" not in n} == set(saved)
    for n, value in saved.items():
        if not n.startswith(logits + "/"):  # frozen: weights and batch-norm statistics alike
            np.testing.assert_array_equal(tuned[n], value, err_msg=n)
    assert tuned[f"{logits}/weights" if model == "resnet_v1_50" else f"{logits}/Conv2d_1c_1x1/weights"].shape[-1] == 3
    images = np.stack([colour_image(k % 3, 900 + k, 32, 32) for k in range(6)])
    export_and_compare(train_dir, images, ["bird", "cat", "dog"], tmp_path)
