"""The loss and the update against hand computations: label smoothing's cross-entropy, adamw's
decoupled weight decay beside Adam's step, gradient clipping, class weights."""
import math
import types

import numpy as np
import pytest
import tensorflow as tf

from cnn_tf.class_weights import class_weights
from cnn_tf.config import RunConfig
from cnn_tf.errors import UserError
from cnn_tf.graph import build_graph, cross_entropy
from cnn_tf.optimization import clip_by_global_norm, decay_weights


def test_label_smoothing_loss_against_a_hand_computation():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 6)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    targets = np.full((6, 5), 0.1 / 5)
    targets[np.arange(6), labels] += 0.9
    expected = -(targets * log_p).sum(axis=1)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        got = sess.run(cross_entropy(tf.constant(labels), tf.constant(logits), 0.1))
        plain = sess.run(cross_entropy(tf.constant(labels), tf.constant(logits)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(plain, -log_p[np.arange(6), labels], rtol=1e-5)


def test_adamw_decays_the_weights_apart_from_adams_step():
    """One step of --optimizer=adamw against its hand computation (TensorFlow's Adam, epsilon 1e-8)."""
    lr, decay = 0.01, 0.1
    w0, b0 = np.array([1.0, -2.0, 3.0], np.float32), np.array([0.5], np.float32)
    x = np.array([0.3, -1.0, 2.0], np.float32)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        w = tf.compat.v1.get_variable("layer/weights", initializer=w0)
        b = tf.compat.v1.get_variable("layer/biases", initializer=b0)
        loss = tf.reduce_sum(w * x) + 2.0 * tf.reduce_sum(b)
        optimizer = tf.compat.v1.train.AdamOptimizer(lr)
        pairs = decay_weights(optimizer.compute_gradients(loss), tf.constant(lr),
                              RunConfig(optimizer="adamw", weight_decay=decay))
        train_op = optimizer.apply_gradients(pairs)
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(train_op)
        w1, b1 = sess.run([w, b])

    def adam_step(grad):
        m, v = 0.1 * grad, 0.001 * grad ** 2
        lr_t = lr * math.sqrt(1 - 0.999) / (1 - 0.9)
        return lr_t * m / (np.sqrt(v) + 1e-8)

    np.testing.assert_allclose(w1, w0 - lr * decay * w0 - adam_step(x), rtol=1e-5)
    np.testing.assert_allclose(b1, b0 - adam_step(np.array([2.0])), rtol=1e-5)  # biases are not decayed
    # adamw's decay is not also in the loss.
    graph = build_graph(RunConfig(model="lenet", optimizer="adamw", weight_decay=0.05), (28, 28, 1), 10, 100)
    assert not graph.graph.get_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES)


def test_clipping_bounds_the_global_norm_and_keeps_the_direction():
    grads = [np.array([3.0, 4.0], np.float32), np.array([[12.0]], np.float32)]  # global norm 13
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        variables = [tf.compat.v1.get_variable(f"v{i}", initializer=np.zeros_like(g)) for i, g in enumerate(grads)]
        frozen = tf.compat.v1.get_variable("frozen", initializer=np.zeros(1, np.float32))
        pairs = [(tf.constant(g), v) for g, v in zip(grads, variables)] + [(None, frozen)]
        clipped = clip_by_global_norm(pairs, 6.5)
        assert [v for _, v in clipped] == variables + [frozen] and clipped[2][0] is None
        got = sess.run([g for g, _ in clipped[:2]])
        small = sess.run([g for g, _ in clip_by_global_norm(pairs, 100.0)[:2]])
    assert math.isclose(math.sqrt(sum(float((g ** 2).sum()) for g in got)), 6.5, rel_tol=1e-6)
    for g, expected in zip(got, grads):
        np.testing.assert_allclose(g, expected / 2, rtol=1e-6)  # scaled together, by 6.5 / 13
    for g, expected in zip(small, grads):  # under the bound: as they were
        np.testing.assert_array_equal(g, expected)
    assert clip_by_global_norm(pairs, 0) is pairs
    # The train op clips the tower-summed gradients it applies.
    graph = build_graph(RunConfig(model="lenet", clip_gradient_norm=1.0), (28, 28, 1), 10, 100)
    names = [op.name for op in graph.graph.get_operations()]
    assert any(name.startswith("optimizer/clip_gradient_norm/") for name in names)


def test_balanced_class_weights_change_the_loss_as_computed_by_hand():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2])
    data = types.SimpleNamespace(class_names=["a", "b", "c"], num_classes=3, split=lambda name: (None, labels))
    weights = class_weights(RunConfig(class_weights=("balanced",)), data)
    assert weights == pytest.approx((1.0, 2.0, 2 / 3))  # 12 / (3 * 4), 12 / (3 * 2), 12 / (3 * 6)
    assert class_weights(RunConfig(class_weights=("1", "0.5", "2")), data) == (1.0, 0.5, 2.0)
    for bad in (("1", "2"), ("1", "x", "2"), ("-1", "1", "1")):
        with pytest.raises(UserError, match="--class_weights="):
            class_weights(RunConfig(class_weights=bad), data)
    images = np.random.default_rng(1).random((12, 28, 28, 1)).astype(np.float32)
    losses = {}
    for weighted in (None, weights):
        cfg = RunConfig(model="lenet", weight_decay=0.0, batch_norm=False, keep_prob=1.0)
        g = build_graph(cfg, (28, 28, 1), 3, 12, class_weights=weighted)
        with tf.compat.v1.Session(graph=g.graph) as sess:
            sess.run(g.saving.init_op)
            loss, logits = sess.run([g.train.loss, g.train.logits], {g.inputs.image: images, g.inputs.label: labels})
        top = logits.max(1, keepdims=True)
        log_p = logits - top - np.log(np.exp(logits - top).sum(1, keepdims=True))
        cross_entropy = -log_p[np.arange(12), labels]
        expected = np.mean(cross_entropy * (np.take(weighted, labels) if weighted else 1.0))
        losses[weighted is None] = loss
        np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert abs(losses[True] - losses[False]) > 1e-4


def test_gradient_accumulation_over_k_batches_equals_one_k_times_batch():
    rng = np.random.default_rng(2)
    images, labels = rng.integers(0, 256, (32, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, 32)
    results = {}
    for k, batch in ((4, 8), (1, 32)):
        cfg = RunConfig(model="lenet", batch_norm=False, keep_prob=1.0, optimizer="sgd", initial_learning_rate=0.1,
                        batch_size=batch, gradient_accumulation_steps=k)
        g = build_graph(cfg, (28, 28, 1), 10, 320)
        if k > 1:  # each batch's forward pass waits for the gradients of the one before
            heads = [op for op in g.graph.get_operations() if op.type == "GatherV2" and op.outputs[0].shape.rank == 4]
            assert len(heads) == k and [bool(op.control_inputs) for op in heads] == [False] + [True] * (k - 1)
        with tf.compat.v1.Session(graph=g.graph) as sess:
            sess.run(g.saving.init_op)
            variables = g.train_ops.variables_to_train
            if "weights" in results:  # the same starting weights in both graphs
                for var, value in zip(variables, results["weights"]):
                    var.load(value, sess)
            else:
                results["weights"] = sess.run(variables)
            g.inputs.pipeline.start(sess, images, labels, 32)  # one update's 32 images, through the input pipeline
            results[k] = sess.run(g.train_ops.gradients)
            g.inputs.pipeline.start(sess, images, labels, 32)
            sess.run(g.train_ops.train_op)
            results[k, "after"] = sess.run(variables + [g.global_step])
    for accumulated, whole in zip(results[4], results[1]):
        np.testing.assert_allclose(accumulated, whole, rtol=1e-5, atol=1e-6)
    for accumulated, whole in zip(results[4, "after"], results[1, "after"]):
        np.testing.assert_allclose(accumulated, whole, rtol=1e-5, atol=1e-6)
    assert results[4, "after"][-1] == 1  # one update: the schedule counts updates
    assert RunConfig(batch_size=8, gradient_accumulation_steps=4).update_batch_size == 32
    with pytest.raises(UserError, match="--gradient_accumulation_steps runs its batches one after the other"):
        RunConfig(batch_size=8, gradient_accumulation_steps=4, num_towers=2)
