"""--num_towers: in-graph replicas on several devices (here: CPU devices of one session), variables
once on /cpu:0, gradients summed to the global batch's, the checkpoint independent of the count."""
import os

import numpy as np
import pytest
import tensorflow as tf

from cnn_tf import config
from cnn_tf.graph import hardware
from cnn_tf.graph import build_graph
from conftest import make_images, printed_accuracy, run_cli, small_run_flags


def batch(n, seed=0):
    """uint8 images and labels, as the input pipeline takes them."""
    labels = np.random.default_rng(seed).integers(0, 10, n)
    return make_images(labels, seed=seed)[..., None], labels


def step(g, sess, images, labels):
    """One training step on exactly this batch, through the input pipeline as in training."""
    g.inputs.pipeline.start(sess, images, labels, len(images))
    return sess.run([g.train.loss, g.train_ops.train_op])[0]


def graph_and_session(**overrides):
    cfg = config.RunConfig(**overrides)
    g = build_graph(cfg, (28, 28, 1), 10, 1000)
    sess = tf.compat.v1.Session(graph=g.graph, config=hardware.session_config(cfg))
    sess.run(g.saving.init_op)
    return g, sess


def variables(g, sess):
    with g.graph.as_default():
        variables_ = tf.compat.v1.global_variables()
    return dict(zip([v.op.name for v in variables_], sess.run(variables_)))


def load(g, sess, values):
    with g.graph.as_default():
        for v in tf.compat.v1.global_variables():
            v.load(values[v.op.name], sess)


@pytest.mark.parametrize("batch_size", [64, 63, 1])  # even, uneven, and one tower left empty
def test_one_sgd_step_on_two_towers_equals_one_tower_on_the_global_batch(batch_size):
    options = dict(optimizer="sgd", initial_learning_rate=0.1, batch_norm=False, keep_prob=1.0, weight_decay=1e-3,
                   batch_size=64)
    one, one_sess = graph_and_session(**options)
    two, two_sess = graph_and_session(num_towers=2, **options)
    start = variables(one, one_sess)
    load(two, two_sess, start)
    images, labels = batch(batch_size)
    for g, sess in ((one, one_sess), (two, two_sess)):
        assert np.isfinite(step(g, sess, images, labels))
    after_one, after_two = variables(one, one_sess), variables(two, two_sess)
    assert after_one.keys() == after_two.keys()
    for name, value in after_one.items():
        np.testing.assert_allclose(after_two[name], value, atol=1e-5, rtol=0, err_msg=name)
    assert not np.allclose(after_one["lenet/fc3/weights"], start["lenet/fc3/weights"])  # it did step
    # the second tower computed on the second CPU device; the variables live once, on the first
    model_variables = [op for op in two.graph.get_operations() if op.type in ("VarHandleOp", "VariableV2")
                       and op.name.startswith("lenet/")]
    assert len(model_variables) == 8 and all(op.device == "/cpu:0" for op in model_variables)
    metadata = tf.compat.v1.RunMetadata()
    two.inputs.pipeline.start(two_sess, images, labels, len(images))
    trace = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    two_sess.run(two.train_ops.train_op, options=trace, run_metadata=metadata)
    ran_on = {stats.device.rsplit("/", 1)[-1]: {node.node_name for node in stats.node_stats}
              for stats in metadata.step_stats.dev_stats}
    # a tower's computations (reads of the variables run where they live, on CPU:0)
    tower_ops = lambda device, tower: {n for n in ran_on[device] if n.startswith(tower + "/lenet/")  # noqa: E731
                                       and "ReadVariableOp" not in n}
    assert tower_ops("device:CPU:1", "training_1") and not tower_ops("device:CPU:1", "training")
    assert tower_ops("device:CPU:0", "training") and not tower_ops("device:CPU:0", "training_1")


def test_each_tower_draws_its_own_dropout_masks_and_batch_norm_follows_the_first():
    g, sess = graph_and_session(num_towers=2, keep_prob=0.5, batch_norm=True, batch_size=64)
    images, labels = batch(32)
    twice = np.concatenate([images, images])  # both towers get the same images
    logits = sess.run(g.train.logits, {g.inputs.image: twice / 255.0, g.inputs.label: np.concatenate([labels, labels])})
    assert not np.allclose(logits[:32], logits[32:])  # only the dropout masks differ

    # The moving averages take the first tower's batch statistics: a second tower fed other images
    # leaves them as one tower fed the first half alone would.
    one, one_sess = graph_and_session(keep_prob=0.5, batch_norm=True, batch_size=64)
    load(g, sess, variables(one, one_sess))
    other, _ = batch(32, seed=5)
    step(g, sess, np.concatenate([images, other // 10]), np.concatenate([labels, labels]))
    step(one, one_sess, images, labels)
    name = "lenet/conv1/BatchNorm/moving_mean"
    np.testing.assert_allclose(variables(g, sess)[name], variables(one, one_sess)[name], atol=1e-5)


def test_the_learning_rate_counts_global_batches_whatever_the_tower_count():
    rates = []
    for towers in (1, 2):
        g, sess = graph_and_session(num_towers=towers, batch_size=100, num_epochs_per_decay=1,
                                    learning_rate_decay_factor=0.5)
        rates.append([])
        for global_step in (9, 10, 20):
            with g.graph.as_default():
                g.global_step.load(global_step, sess)
            rates[-1].append(sess.run(g.train_ops.learning_rate))
    np.testing.assert_allclose(rates[0], [1e-3, 5e-4, 2.5e-4], rtol=1e-6)  # 1000 images / 100 = 10 steps
    assert rates[0] == rates[1]


@pytest.mark.parametrize("precision", ["float32", "mixed_float16"])
def test_checkpoints_hold_the_same_variables_whatever_the_tower_count(precision):
    names = []
    for towers in (1, 2):
        g = build_graph(config.RunConfig(num_towers=towers), (28, 28, 1), 10, 1000, precision=precision)
        with g.graph.as_default():
            names.append(sorted((v.op.name, v.shape.as_list()) for v in tf.compat.v1.global_variables()))
    assert names[0] == names[1] and ("beta1_power", []) in names[0]
    assert (("current_loss_scale", []) in names[0]) == (precision == "mixed_float16")


def test_batch_size_must_split_evenly_over_the_towers():
    with pytest.raises(Exception, match="--batch_size=10 does not split evenly over --num_towers=3"):
        config.RunConfig(batch_size=10, num_towers=3)


def test_gpu_towers_on_a_machine_without_gpus_run_with_one_warning(capsys):
    g, sess = graph_and_session(device="gpu", num_towers=2, batch_size=64)
    warning = capsys.readouterr().err.strip().splitlines()
    assert warning == ["warning: --device=gpu: this machine has 0 GPU(s); soft placement runs /gpu:0, /gpu:1 on "
                       "/cpu:0"]
    step(g, sess, *batch(64))
    assert sess.run(g.global_step) == 1


@pytest.mark.slow
def test_cli_trains_on_two_towers_evaluates_and_resumes_on_one(data_dir, tmp_path):
    train_dir = str(tmp_path / "towers")
    result = run_cli("train", *small_run_flags(data_dir, train_dir, "--num_towers=2", "--progress=false"))
    assert result.returncode == 0, result.stderr
    accuracy = printed_accuracy(result.stdout)
    assert accuracy > 0.8
    evaluated = run_cli("evaluate", f"--checkpoint_dir={train_dir}")
    assert evaluated.returncode == 0, evaluated.stderr
    assert printed_accuracy(evaluated.stdout) == accuracy
    resumed = run_cli("train", *small_run_flags(data_dir, train_dir, "--num_towers=1", "--num_epochs=3",
                                                "--progress=false"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout and "at global step 32" in resumed.stdout
    assert printed_accuracy(resumed.stdout) > 0.8
    assert "--num_towers=1" in open(os.path.join(train_dir, "flags.cfg")).read().splitlines()
