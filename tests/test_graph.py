"""The graph builder: named tensors, loss with weight decay, schedule, train op, eval totals."""
import math
import types

import numpy as np
import pytest
import tensorflow as tf

from cnn_tf import config
from cnn_tf.evaluation import evaluate_split, per_class_metrics
from cnn_tf.data.pipeline import steps_per_epoch
from cnn_tf.graph import PER_EPOCH, TEST, TRAIN, build_graph, hardware, state
from cnn_tf.schedules import learning_rate as learning_rate_schedule
from conftest import make_images


def hparams(**overrides):
    return config.RunConfig(**overrides)


def session(g):
    sess = tf.compat.v1.Session(graph=g.graph)
    sess.run(g.saving.init_op)
    return sess


def batch(n=50, seed=0):
    labels = np.random.default_rng(seed).integers(0, 10, n)
    return make_images(labels, seed=seed)[..., None], labels


def summary_tags(serialized):
    summary = tf.compat.v1.Summary.FromString(serialized)
    return {v.tag: v.WhichOneof("value") for v in summary.value}


def test_named_tensors_can_be_looked_up():
    g = build_graph(hparams(), (28, 28, 1), 10, 1000)
    for name in ("image", "label", "keep_prob", "logits", "predictions", "loss", "accuracy"):
        assert g.graph.get_tensor_by_name(name + ":0") is not None
    assert g.graph.get_tensor_by_name("image:0").shape.as_list() == [None, 28, 28, 1]
    assert g.graph.get_tensor_by_name("label:0").dtype == tf.int64


def test_two_towers_share_the_variables_and_hold_no_control_flow():
    g = build_graph(hparams(), (28, 28, 1), 10, 1000)
    ops = g.graph.get_operations()
    towers = [op for op in ops if op.name.startswith(("training/", "inference/", "gradients/"))]
    assert len(towers) > 100
    assert not [op.name for op in towers if op.type in ("If", "StatelessIf", "Switch", "Merge")]
    names = [v.op.name for v in g.graph.get_collection("variables")]
    assert len(names) == len(set(names)) and not [n for n in names if n.startswith(("training/", "inference/"))]
    assert len([n for n in names if n.endswith("weights")]) == 4  # lenet: conv1, conv2, fc3, fc4
    assert g.train.end_points.keys() == g.inference.end_points.keys()  # the same summary tags from either tower
    # Only the training tower draws dropout masks and updates the batch norm averages.
    random = {op.name.split("/")[0] for op in ops if op.type.startswith("StatelessRandom")}
    assert random == {"training"}
    sess = session(g)
    images, labels = batch(64)
    feed = {g.inputs.image: images / 255.0, g.inputs.label: labels}
    first, second = sess.run(g.inference.logits, feed), sess.run(g.inference.logits, feed)
    np.testing.assert_array_equal(first, second)  # inference: no dropout, no batch statistics
    assert not np.array_equal(sess.run(g.train.logits, feed), first)


def test_weight_decay_reaches_the_loss():
    g = build_graph(hparams(weight_decay=0.01, batch_norm=False), (28, 28, 1), 10, 1000)
    sess = session(g)
    images, labels = batch()
    feed = {g.inputs.image: images / 255.0, g.inputs.label: labels}
    loss, logits = sess.run([g.inference.loss, g.inference.logits], feed)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    cross_entropy = -log_softmax[np.arange(len(labels)), labels].mean()
    weights = [sess.run(v) for v in g.graph.get_collection("trainable_variables") if v.op.name.endswith("weights")]
    decay = 0.01 * sum((w ** 2).sum() / 2 for w in weights)
    assert decay > 0.1
    assert loss == pytest.approx(cross_entropy + decay, rel=1e-4)


def test_learning_rate_decays_in_stairs_counting_all_replicas():
    assert steps_per_epoch(1000, 100) == 10 and steps_per_epoch(1001, 100) == 11
    assert steps_per_epoch(1000, 100, num_replicas=2) == 5
    hp = hparams(initial_learning_rate=0.1, learning_rate_decay_factor=0.5, num_epochs_per_decay=2, batch_size=100)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        step = tf.compat.v1.placeholder(tf.int64, [])
        rate = learning_rate_schedule(hp, step, 1000)
        rates = [sess.run(rate, {step: s}) for s in (0, 19, 20, 39, 40)]
        np.testing.assert_allclose(rates, [0.1, 0.1, 0.05, 0.05, 0.025], rtol=1e-6)
        rate = learning_rate_schedule(hp, step, 1000, num_replicas=2)
        assert sess.run(rate, {step: 10}) == pytest.approx(0.05)


def test_train_op_steps_updates_batch_norm_and_learns():
    g = build_graph(hparams(seed=3), (28, 28, 1), 10, 1000)
    sess = session(g)
    images, labels = batch(256, seed=1)
    moving_mean = [v for v in g.graph.get_collection("variables") if v.op.name == "lenet/conv1/BatchNorm/moving_mean"][0]
    g.inputs.pipeline.start(sess, images, labels, 64)
    first = sess.run(g.inference.loss, {g.inputs.image: images / 255.0, g.inputs.label: labels})
    for _ in range(4):
        sess.run(g.train_ops.train_op)
    assert sess.run(g.global_step) == 4
    assert np.abs(sess.run(moving_mean)).sum() > 0
    for _ in range(30):
        g.inputs.pipeline.start(sess, images, labels, 64)
        for _ in range(4):
            sess.run(g.train_ops.train_op)
    last = sess.run(g.inference.loss, {g.inputs.image: images / 255.0, g.inputs.label: labels})
    assert last < first * 0.5


def test_evaluation_counts_every_image_once_with_a_partial_batch():
    g = build_graph(hparams(), (28, 28, 1), 10, 1000)
    sess = session(g)
    images, labels = batch(103, seed=2)
    evaluation = evaluate_split(sess, g, (images, labels), 25)
    metrics = evaluation.metrics
    assert evaluation.details is None  # only when asked for
    predictions = sess.run(g.inference.predictions, {g.inputs.image: images / 255.0})
    assert metrics["count"] == 103
    assert metrics["confusion"].sum() == 103
    assert metrics["accuracy"] == pytest.approx((predictions == labels).mean(), abs=1e-6)
    np.testing.assert_array_equal(np.diag(metrics["confusion"]).sum(), (predictions == labels).sum())
    tags = summary_tags(evaluation.summary)
    assert {"loss", "accuracy", "sparsity/lenet/conv1"} <= set(tags)
    again = evaluate_split(sess, g, (images, labels), 1000).metrics  # totals are reset between passes
    assert again["count"] == 103 and again["accuracy"] == pytest.approx(metrics["accuracy"])


def test_summary_collections_hold_the_tutorial_tags():
    g = build_graph(hparams(), (28, 28, 1), 10, 1000)
    sess = session(g)
    images, labels = batch(64)
    g.inputs.pipeline.start(sess, images, labels, 64)
    train, epoch = sess.run([g.summaries[TRAIN], g.summaries[PER_EPOCH]])
    train_tags, epoch_tags = summary_tags(train), summary_tags(epoch)
    assert {"loss", "accuracy", "global_step", "learning_rate", "sparsity/lenet/fc3"} <= set(train_tags)
    assert epoch_tags["activations/lenet/conv1"] == "histo"
    assert [t for t, kind in epoch_tags.items() if kind == "image"]
    assert g.summaries[TEST] is not None


def test_per_class_metrics():
    confusion = np.array([[3, 1], [0, 4]])
    a, b = per_class_metrics(confusion, ["a", "b"])
    assert a == dict(name="a", precision=1.0, recall=0.75, f1=pytest.approx(6 / 7), support=4)
    assert b["precision"] == pytest.approx(0.8) and b["recall"] == 1.0


def test_device_gpu_pins_the_model_and_falls_back_with_soft_placement():
    hp = hparams(device="gpu")
    g = build_graph(hp, (28, 28, 1), 10, 1000)
    conv = g.graph.get_operation_by_name("training/lenet/conv1/Conv2D")
    assert conv.device.lower().endswith("gpu:0")
    sess = tf.compat.v1.Session(graph=g.graph, config=hardware.session_config(hp))
    sess.run(g.saving.init_op)
    images, labels = batch(32)
    g.inputs.pipeline.start(sess, images, labels, 32)
    sess.run(g.train_ops.train_op)
    assert sess.run(g.global_step) == 1


@pytest.mark.parametrize("precision, dtype", [("mixed_bfloat16", tf.bfloat16), ("mixed_float16", tf.float16)])
def test_mixed_precision_computes_low_keeps_float32_weights_and_loss_and_learns(precision, dtype):
    hp = hparams(batch_norm=True, precision=precision, keep_prob=0.9, weight_decay=0)
    g = build_graph(hp, (28, 28, 1), 10, 1000, precision=precision)
    with g.graph.as_default():
        conv = g.graph.get_operation_by_name("training/lenet/conv1/Conv2D")
        variables = tf.compat.v1.global_variables()
    assert conv.inputs[0].dtype == dtype  # the layers compute in the low precision
    assert all(v.dtype.base_dtype in (tf.float32, tf.int64) for v in variables)  # float32 master weights
    assert g.inference.logits.dtype == tf.float32 and g.inference.loss.dtype == tf.float32
    if precision == "mixed_float16":
        assert any("loss_scale" in v.op.name for v in variables)
    images, labels = batch(256)
    sess = session(g)
    g.inputs.pipeline.start(sess, images, labels, 64)
    losses = []
    for _ in range(12):
        try:
            losses.append(sess.run([g.train_ops.train_op, g.inference.loss])[1])
        except tf.errors.OutOfRangeError:
            g.inputs.pipeline.start(sess, images, labels, 64)
    assert np.isfinite(losses).all() and np.mean(losses[-3:]) < losses[0] * 0.7, losses


def test_precision_falls_back_to_float32_with_a_warning_where_the_hardware_lacks_it(capsys, monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_bfloat16", lambda: False)
    assert hardware.effective_precision(hparams(precision="mixed_bfloat16")) == "float32"
    assert "--precision=mixed_bfloat16 needs a CPU with AVX512_BF16" in capsys.readouterr().err
    assert hardware.effective_precision(hparams(precision="mixed_float16")) == "float32"  # no GPU here
    monkeypatch.setattr(hardware, "cpu_has_bfloat16", lambda: True)
    assert hardware.effective_precision(hparams(precision="mixed_bfloat16")) == "mixed_bfloat16"
    assert hardware.effective_precision(hparams(precision="float32")) == "float32"


def test_the_start_up_summary_prices_a_precision_that_fell_back():
    cost = hardware.fallback_cost(hparams(model="resnet", precision="mixed_bfloat16"), "float32")
    assert cost == ("--precision=mixed_bfloat16 fell back: this CPU has no AVX512_BF16 or AMX; a CPU with them "
                    "trains resnet 1.7-2.0x as fast in bfloat16 (make bench)")
    assert "trains the benchmark's models" in hardware.fallback_cost(hparams(model="vgg", precision="mixed_bfloat16"),
                                                                      "float32")
    assert hardware.fallback_cost(hparams(precision="mixed_float16"), "float32").endswith("fell back: no GPU here")
    assert hardware.fallback_cost(hparams(precision="mixed_bfloat16"), "mixed_bfloat16") is None
    assert hardware.fallback_cost(hparams(precision="float32"), "float32") is None


def test_checkpoints_move_between_float32_and_float16_runs(tmp_path):
    """A run trained where float16 fell back to float32 (a CPU) resumes as a float16 run on a GPU: its
    loss scale starts afresh, every other variable comes from the checkpoint; and back again."""
    from cnn_tf import checkpoints

    images, labels = batch(128)

    def values(g, sess):
        with g.graph.as_default():
            variables = tf.compat.v1.global_variables()
        return dict(zip([v.op.name for v in variables], sess.run(variables)))

    def trained(precision, path, restore_from=None):
        g = build_graph(hparams(precision=precision), (28, 28, 1), 10, 1000, precision=precision)
        sess = session(g)
        if restore_from:
            assert checkpoints.restore(sess, g, restore_from) == 3
        g.inputs.pipeline.start(sess, images, labels, 32)
        for _ in range(3):
            sess.run(g.train_ops.train_op)
        with g.graph.as_default():
            saved = g.saving.saver.save(sess, str(path), global_step=g.global_step)
        return saved, values(g, sess)

    float32_path, float32_values = trained("float32", tmp_path / "f32")
    g = build_graph(hparams(precision="mixed_float16"), (28, 28, 1), 10, 1000, precision="mixed_float16")
    sess = session(g)
    assert checkpoints.restore(sess, g, float32_path) == 3
    restored = values(g, sess)
    assert restored["current_loss_scale"] == 2.0 ** 15 and restored["good_steps"] == 0  # fresh
    for name, value in float32_values.items():
        np.testing.assert_array_equal(restored[name], value, err_msg=name)

    # trains on as float16 from there (a step whose scaled gradients overflow is skipped and does not
    # count), and its checkpoint, loss scale and all, restores in float32
    float16_path, float16_values = trained("mixed_float16", tmp_path / "f16", restore_from=float32_path)
    assert 4 <= float16_values["global_step"] <= 6 and float16_values["good_steps"] >= 1
    g = build_graph(hparams(), (28, 28, 1), 10, 1000, precision="float32")
    sess = session(g)
    assert checkpoints.restore(sess, g, float16_path) == float16_values["global_step"]
    restored = values(g, sess)
    assert "current_loss_scale" not in restored
    for name, value in restored.items():
        np.testing.assert_array_equal(value, float16_values[name], err_msg=name)


def test_evaluation_counts_the_top5_accuracy_of_more_than_5_classes():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(40, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 40)
    rank = (logits > logits[np.arange(40), labels][:, None]).sum(axis=1)  # classes scored above the label
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        label = tf.compat.v1.placeholder(tf.int64, [None])
        logit = tf.compat.v1.placeholder(tf.float32, [None, 10])
        predictions = tf.argmax(logit, 1)
        head = types.SimpleNamespace(logits=logit, loss=tf.constant(0.0), predictions=predictions,
                                     correct=tf.equal(predictions, label), end_points={})
        totals = state.eval_totals(label, head, 10)
        sess.run(tf.compat.v1.local_variables_initializer())
        for batch in (slice(0, 25), slice(25, 40)):  # counted over batches of any size
            sess.run(totals.update, {label: labels[batch], logit: logits[batch]})
        metrics = sess.run(totals.metrics)
    assert math.isclose(metrics["top5_accuracy"], float((rank < 5).mean()), rel_tol=1e-6)
    assert metrics["top5_accuracy"] > metrics["accuracy"] == np.float32((rank == 0).mean())
    with tf.Graph().as_default():  # of 5 classes or fewer it would always be 1: not counted
        head = types.SimpleNamespace(logits=tf.zeros([2, 3]), loss=tf.constant(0.0), predictions=tf.zeros([2], tf.int64),
                                     correct=tf.ones([2], tf.bool), end_points={})
        assert "top5_accuracy" not in state.eval_totals(tf.zeros([2], tf.int64), head, 3).metrics
