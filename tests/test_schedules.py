"""Every learning-rate schedule at chosen steps, its bad flags as one line, and a stopped and resumed
run that continues its schedule exactly."""
import math
import types

import numpy as np
import pytest
import tensorflow as tf

from cnn_tf import schedules
from cnn_tf.callbacks import ReduceOnPlateau
from cnn_tf.config import RunConfig
from cnn_tf.resume import check_resume
from cnn_tf.graph import build_graph
from cnn_tf.errors import UserError
from conftest import finish, run_cli, small_run_flags, start


def rates(cfg, steps, num_examples=1000, num_replicas=1):
    graph = tf.Graph()
    with graph.as_default():
        step = tf.compat.v1.placeholder(tf.int64, [])
        rate = schedules.learning_rate(cfg, step, num_examples, num_replicas)
        with tf.compat.v1.Session() as sess:
            return [float(sess.run(rate, {step: s})) for s in steps]


def schedule(kind, **kw):
    # 1,000 examples in batches of 100: 10 steps an epoch, 100 in the 10 epochs.
    return RunConfig(learning_rate_schedule=kind, initial_learning_rate=0.1, batch_size=100, num_epochs=10, **kw)


def test_cosine_warms_up_then_follows_half_a_cosine_to_the_end_rate():
    cfg = schedule("cosine", warmup_epochs=1, end_learning_rate=0.001)
    got = rates(cfg, [0, 5, 10, 55, 100, 150])
    expected = [0.01, 0.01 + 0.09 * 0.5, 0.1, 0.001 + 0.099 * 0.5 * (1 + math.cos(math.pi * 0.5)), 0.001, 0.001]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_one_cycle_rises_from_a_25th_over_30_percent_then_falls():
    got = rates(schedule("one_cycle"), [0, 15, 30, 65, 100])
    np.testing.assert_allclose(got, [0.004, 0.004 + 0.096 * 0.5, 0.1, 0.05, 0.0], rtol=1e-6, atol=1e-9)


def test_piecewise_changes_at_its_boundaries_and_counts_the_replicas_batches():
    cfg = schedule("piecewise", boundaries_epochs=("2", "5"), values=("0.1", "0.01", "0.001"))
    np.testing.assert_allclose(rates(cfg, [0, 19, 20, 49, 50, 99]), [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)
    # Two workers stepping the global step together: 5 global steps an epoch.
    np.testing.assert_allclose(rates(cfg, [9, 10, 25], num_replicas=2), [0.1, 0.01, 0.001], rtol=1e-6)


def test_constant_exponential_and_warm_up():
    np.testing.assert_allclose(rates(schedule("constant"), [0, 50, 100]), [0.1] * 3, rtol=1e-6)
    cfg = schedule("exponential", learning_rate_decay_factor=0.5, num_epochs_per_decay=2)
    np.testing.assert_allclose(rates(cfg, [0, 19, 20, 45]), [0.1, 0.1, 0.05, 0.025], rtol=1e-6)
    warm = schedule("constant", warmup_epochs=2)  # 20 steps from 0.1/20 to 0.1
    np.testing.assert_allclose(rates(warm, [0, 10, 20]), [0.005, 0.005 + 0.095 * 0.5, 0.1], rtol=1e-6)


@pytest.mark.parametrize("flags, words", [
    (dict(learning_rate_schedule="piecewise", values=("0.1",)), "needs --boundaries_epochs and one more --values"),
    (dict(learning_rate_schedule="piecewise", boundaries_epochs=("5", "2"), values=("1", "2", "3")), "increasing"),
    (dict(learning_rate_schedule="piecewise", boundaries_epochs=("x",), values=("1", "2")), "take numbers"),
    (dict(model="resnet", resnet_depth=21), r"is not 6n\+2"),
])
def test_bad_recipe_flags_are_one_line(flags, words):
    with pytest.raises(UserError, match=words):
        RunConfig(**flags)


@pytest.mark.slow
def test_a_stopped_and_resumed_run_continues_the_schedule_exactly(tmp_path, data_dir):
    import signal

    from conftest import scalar_values

    train_dir = tmp_path / "run"
    flags = small_run_flags(str(data_dir), str(train_dir), "--learning_rate_schedule=cosine", "--warmup_epochs=0.5",
                            "--num_epochs=3", "--progress=false", "--summary_every_n_steps=1")
    process = start("train", *flags)
    for line in process.stdout:  # stopped after its first epoch, mid-schedule
        if line.startswith("epoch 1/3"):
            process.send_signal(signal.SIGTERM)
            break
    code, out, _ = finish(process)
    assert code == 128 + signal.SIGTERM and "stopped by SIGTERM" in out
    resumed = run_cli("train", *flags)
    assert resumed.returncode == 0, resumed.stderr
    logged = dict(scalar_values(str(train_dir / "summaries" / "train"), "learning_rate"))
    steps = sorted(logged)
    assert steps == list(range(1, 3 * 16 + 1))
    # A summary's step is the global step after the update its rate was used in.
    cfg = RunConfig(learning_rate_schedule="cosine", warmup_epochs=0.5, batch_size=64, num_epochs=3)
    np.testing.assert_allclose([logged[s] for s in steps], rates(cfg, [s - 1 for s in steps]), rtol=1e-6)


def test_plateau_lowers_the_rate_after_its_patience_and_never_below_the_minimum():
    cfg = RunConfig(learning_rate_schedule="plateau", initial_learning_rate=0.1, min_learning_rate=0.002)
    g = build_graph(cfg, (28, 28, 1), 10, 100)
    with tf.compat.v1.Session(graph=g.graph) as sess:
        sess.run(g.saving.init_op)
        trainer = types.SimpleNamespace(sess=sess, g=g, global_step=0, logs=types.SimpleNamespace(epoch={}))
        callback = ReduceOnPlateau("validation_loss", factor=0.1, patience=2, initial_rate=0.1, min_rate=0.002)
        callback.trainer = trainer
        seen = []
        for loss in (1.0, 0.9, 0.95, 0.91, 0.89, 0.9, 0.9, 0.9, 0.9):
            trainer.logs.epoch = {"validation": {"loss": loss}}
            callback.after_epoch()
            seen.append(round(float(sess.run(g.train_ops.learning_rate)), 6))
    # 0.95 and 0.91 do not beat 0.9: lowered after the second; 0.89 is a new best; then twice more, to the floor.
    assert seen == [0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.002, 0.002, 0.002]
    assert callback.state() == {"best": 0.89, "wait": 0}
    # The factor is a variable of the checkpoint; a resume cannot switch to or from plateau.
    assert "plateau/learning_rate_scale" in {v.op.name for v in g.graph.get_collection("variables")}
    with pytest.raises(UserError, match="cannot switch to or from it on a resume"):
        check_resume(RunConfig(learning_rate_schedule="plateau"), RunConfig(learning_rate_schedule="cosine"))
