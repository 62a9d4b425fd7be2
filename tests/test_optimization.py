"""The loss and the update against hand computations: label smoothing's cross-entropy, adamw's
decoupled weight decay beside Adam's step."""
import math

import numpy as np
import tensorflow as tf

from cnn_tf.config import RunConfig
from cnn_tf.graph import build_graph, cross_entropy
from cnn_tf.optimization import decay_weights


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
