"""Checkpoints and validation within epochs (--checkpoint_every_steps, --validate_every_steps): where
they land, and that they change nothing of the training itself."""
import os

import numpy as np
import pytest
import tensorflow as tf

from cnn_tf import checkpoints
from conftest import run_cli, small_run_flags, tensorboard_steps


def weights(path):
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


@pytest.mark.slow
def test_checkpoints_and_validations_within_epochs_land_on_their_steps_and_change_no_weight(data_dir, tmp_path):
    runs = {}
    flags = ["--num_epochs=2", "--progress=false", "--deterministic", "--max_num_checkpoint=10", "--augment=crop"]
    for name, extra in (("plain", []), ("intervals", ["--checkpoint_every_steps=5", "--validate_every_steps=12"])):
        train_dir = str(tmp_path / name)
        result = run_cli("train", *small_run_flags(data_dir, train_dir, *flags, *extra))
        assert result.returncode == 0, result.stderr
        runs[name] = train_dir
    checkpoint_dir = os.path.join(runs["intervals"], "checkpoints")
    assert [checkpoints.step_of(p) for p in checkpoints.listed(checkpoint_dir)] == [5, 10, 15, 16, 20, 25, 30, 32]
    # A validation pass at 12 and 24 (within epochs) besides the epochs' own at 16 and 32.
    assert tensorboard_steps(os.path.join(runs["intervals"], "summaries", "validation"), "accuracy") == [12, 16, 24, 32]
    # The passes reused the input pipeline, and the epoch went on with the same batches: the same weights.
    got, expected = weights(os.path.join(checkpoint_dir, "model.ckpt-32")), weights(
        os.path.join(runs["plain"], "checkpoints", "model.ckpt-32"))
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    with open(os.path.join(runs["intervals"], "history.csv")) as f:
        assert [line.split(",")[1] for line in f.read().splitlines()[1:]] == ["16", "32"]
