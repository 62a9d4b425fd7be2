"""--ema_decay: the moving averages of the weights against a hand computation, and the swap that
validation makes (the weights come back bit for bit)."""
import numpy as np
import tensorflow as tf

from cnn_tf.config import RunConfig
from cnn_tf.data.pipeline import TrainFeed
from cnn_tf.evaluation import averaged_weights
from cnn_tf.graph import build_graph
from conftest import make_images


def test_moving_averages_follow_the_warmed_up_decay_and_swap_back_exactly():
    decay = 0.9
    cfg = RunConfig(batch_size=32, ema_decay=decay, summary_every_n_steps=1000)
    g = build_graph(cfg, (28, 28, 1), 10, 96)
    labels = np.random.default_rng(0).integers(0, 10, 96)
    feed = TrainFeed(g.inputs.pipeline, (make_images(labels)[..., None], labels), 32)
    names = ["lenet/conv1/weights", "lenet/fc4/biases", "lenet/conv2/BatchNorm/moving_mean"]
    variables = {v.op.name: v for v in g.model_variables}
    with tf.compat.v1.Session(graph=g.graph) as sess:
        sess.run(g.saving.init_op)
        feed.start(sess, 0, 0)
        expected = sess.run({name: variables[name] for name in names})  # the shadows start at the initial values
        assert all(np.array_equal(v, sess.run(g.averages.shadows[n])) for n, v in expected.items())
        for step in range(1, 4):
            sess.run(g.train_ops.train_op)
            weights = sess.run({name: variables[name] for name in names})
            d = min(decay, (1 + step) / (10 + step))  # the warm-up: 0.18, 0.25, 0.31 at steps 1, 2, 3
            expected = {n: d * expected[n] + (1 - d) * weights[n] for n in names}
            for name in names:
                np.testing.assert_allclose(sess.run(g.averages.shadows[name]), expected[name], rtol=1e-5, atol=1e-7,
                                           err_msg=name)
        assert any(not np.allclose(weights[n], expected[n]) for n in names)  # an average, not the weights
        with averaged_weights(sess, g):
            inside = sess.run({name: variables[name] for name in names})
        after = sess.run({name: variables[name] for name in names})
    for name in names:
        np.testing.assert_allclose(inside[name], expected[name], rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(after[name], weights[name])
    # Off, the graph is the one without averages (a resume across versions stays bit-exact).
    plain = build_graph(RunConfig(batch_size=32), (28, 28, 1), 10, 96)
    assert plain.averages is None
    assert not [v for v in plain.graph.get_collection("variables") if "ExponentialMovingAverage" in v.op.name]
