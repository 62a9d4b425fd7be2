"""Layers and models: shapes, variables, batch norm, weight decay, input sizes."""
import inspect

import numpy as np
import pytest
import tensorflow as tf

from cnn_tf.nets import arg_scopes_map, nets_map
from cnn_tf.nets.layers import conv2d, dropout, max_pool2d
from cnn_tf.nets.scopes import arg_scope


def build(fn):
    graph = tf.Graph()
    with graph.as_default():
        result = fn()
    return graph, result


def test_conv2d_shapes_variables_and_end_points():
    def fn():
        x = tf.compat.v1.placeholder(tf.float32, [None, 10, 12, 3])
        end_points = {}
        with arg_scope([conv2d], outputs_collections=end_points):
            y = conv2d(x, 8, 3, scope="c1")
            z = conv2d(y, 4, [3, 5], stride=2, padding="VALID", scope="c2")
            p = max_pool2d(z, 2, 2, scope="p")
        return y, z, p, end_points

    graph, (y, z, p, end_points) = build(fn)
    assert y.shape.as_list() == [None, 10, 12, 8]
    assert z.shape.as_list() == [None, 4, 4, 4]
    assert p.shape.as_list() == [None, 2, 2, 4]
    assert list(end_points) == ["c1", "c2"]
    names = sorted(v.op.name for v in graph.get_collection("trainable_variables"))
    assert names == ["c1/biases", "c1/weights", "c2/biases", "c2/weights"]


def test_conv2d_batch_norm_uses_update_ops_and_no_bias():
    def fn():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3])
        return conv2d(x, 6, 3, use_batch_norm=True, is_training=True, scope="c")

    graph, _ = build(fn)
    assert len(graph.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)) == 3
    names = sorted(v.op.name for v in graph.get_collection("variables"))
    assert names == ["c/BatchNorm/beta", "c/BatchNorm/moving_mean", "c/BatchNorm/moving_variance",
                     "c/BatchNorm/num_updates", "c/weights"]
    assert any(op.type == "FusedBatchNormV3" for op in graph.get_operations())


def test_batch_norm_moving_averages_move_only_in_training():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4, 4, 2])
        is_training = tf.compat.v1.placeholder_with_default(True, [])
        y = conv2d(x, 2, 1, use_batch_norm=True, is_training=is_training, batch_norm_decay=0.5,
                   activation_fn=None, scope="c")
        updates = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        mean = [v for v in tf.compat.v1.global_variables() if "moving_mean" in v.name][0]
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            batch = np.random.default_rng(0).normal(5.0, 1.0, (8, 4, 4, 2)).astype(np.float32)
            sess.run([y, updates], {x: batch, is_training: False})
            assert np.all(sess.run(mean) == 0)
            out = sess.run([y, updates], {x: batch})[0]
            assert np.all(sess.run(mean) != 0)
            # training normalizes with the batch statistics
            assert abs(out.mean()) < 1e-3


def test_dropout_only_while_training():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.ones([1000])
        is_training = tf.compat.v1.placeholder_with_default(True, [])
        y = dropout(x, 0.5, is_training=is_training)
        with tf.compat.v1.Session() as sess:
            train_out = sess.run(y)
            eval_out = sess.run(y, {is_training: False})
    assert 300 < (train_out == 0).sum() < 700 and set(np.unique(train_out)) == {0.0, 2.0}
    np.testing.assert_array_equal(eval_out, np.ones(1000))


def test_dropout_masks_are_a_function_of_the_global_step_and_layer():
    """So a resumed run drops the units an uninterrupted one would have."""
    def masks(global_step_value):
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.set_random_seed(0)
            step = tf.compat.v1.train.get_or_create_global_step()
            x = tf.ones([1000])
            a, b = dropout(x, 0.5, scope="a"), dropout(x, 0.5, scope="b")
            with tf.compat.v1.Session() as sess:
                sess.run(step.initializer)
                sess.run(step.assign(global_step_value))
                return sess.run([a, b]), sess.run([a, b])

    (a1, b1), (a1_again, _) = masks(7)
    (a2, _), _ = masks(7)
    (a3, _), _ = masks(8)
    np.testing.assert_array_equal(a1, a1_again)  # same step, same mask
    np.testing.assert_array_equal(a1, a2)  # in another session (a restarted process) too
    assert not np.array_equal(a1, a3) and not np.array_equal(a1, b1)


def test_full_map_conv_equals_real_convolution():
    """The matmul fast path for a kernel covering the whole map computes the same as conv2d."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4, 6)).astype(np.float32)
    w = rng.normal(size=(5, 4, 6, 7)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        fast = conv2d(tf.constant(x), 7, [5, 4], padding="VALID", activation_fn=None, scope="f",
                      weights_initializer=tf.constant_initializer(w))
        slow = tf.nn.conv2d(x, w, 1, "VALID")
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            a, b = sess.run([fast, slow])
    assert a.shape == (3, 1, 1, 7)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


SIZES = [(28, 28, 1), (32, 32, 3), (40, 24, 2), (13, 17, 4)]
CASES = [(m, *size) for m in sorted(nets_map) if m != "vgg16" for size in SIZES] + [
    ("vgg16", 32, 32, 3), ("vgg16", 64, 48, 1)]


@pytest.mark.parametrize("model, height, width, channels", CASES)
def test_models_output_logits_for_several_input_sizes(model, height, width, channels):
    def fn():
        images = tf.compat.v1.placeholder(tf.float32, [None, height, width, channels])
        with arg_scope(arg_scopes_map[model](weight_decay=1e-4, use_batch_norm=True)):
            return nets_map[model](images, num_classes=7, is_training=False, keep_prob=1.0)

    graph, (logits, end_points) = build(fn)
    assert logits.shape.as_list() == [None, 7]
    scope = inspect.signature(nets_map[model]).parameters["scope"].default  # MobilenetV1: slim's name
    assert end_points and all(name.startswith(scope + "/") for name in end_points)
    assert graph.get_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES)


@pytest.mark.parametrize("model", sorted(nets_map))
def test_models_have_a_default_image_size(model):
    assert nets_map[model].default_image_size > 0


def test_lenet_layers_follow_the_tutorial_table():
    def fn():
        images = tf.compat.v1.placeholder(tf.float32, [None, 28, 28, 1])
        with arg_scope(arg_scopes_map["lenet"]()):
            return nets_map["lenet"](images, num_classes=10)

    graph, (logits, end_points) = build(fn)
    shapes = {name: t.shape.as_list()[1:] for name, t in end_points.items()}
    assert shapes == {
        "lenet/conv1": [28, 28, 32], "lenet/pool1": [14, 14, 32], "lenet/conv2": [14, 14, 64],
        "lenet/pool2": [7, 7, 64], "lenet/fc3": [1, 1, 1024], "lenet/dropout3": [1, 1, 1024],
        "lenet/fc4": [1, 1, 10], "lenet/logits": [10],
    }
    weights = {v.op.name: v.shape.as_list() for v in graph.get_collection("trainable_variables")
               if v.op.name.endswith("weights")}
    assert weights["lenet/fc3/weights"] == [7, 7, 64, 1024]  # a conv over the whole 7x7 map
    assert weights["lenet/fc4/weights"] == [1, 1, 1024, 10]


def test_too_small_input_is_a_clear_error():
    def fn():
        images = tf.compat.v1.placeholder(tf.float32, [None, 3, 3, 1])
        return nets_map["lenet"](images, num_classes=10)

    with pytest.raises(ValueError, match="lenet needs images of at least 4x4 pixels, got 3x3"):
        build(fn)


def test_vgg16_has_the_parameter_count_of_the_vgg16_table():
    def fn():
        images = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3])
        with arg_scope(arg_scopes_map["vgg16"]()):
            return nets_map["vgg16"](images, num_classes=1000)

    graph, (logits, end_points) = build(fn)
    count = sum(np.prod(v.shape.as_list()) for v in graph.get_collection("trainable_variables"))
    assert count == 138_357_544
    assert end_points["vgg16/conv5/conv5_3"].shape.as_list() == [None, 14, 14, 512]
    assert end_points["vgg16/pool5"].shape.as_list() == [None, 7, 7, 512]


def test_vgg_pads_digits_to_a_multiple_of_16():
    def fn():
        images = tf.compat.v1.placeholder(tf.float32, [None, 28, 28, 1])
        return nets_map["vgg"](images, num_classes=10)

    _, (_, end_points) = build(fn)
    assert end_points["vgg/conv1/conv1_2"].shape.as_list() == [None, 32, 32, 64]
    assert end_points["vgg/pool4"].shape.as_list() == [None, 2, 2, 512]


@pytest.mark.parametrize("model, initializer", [("lenet", "TruncatedNormal"), ("three_conv", "RandomUniform"),
                                                ("four_conv", "TruncatedNormal")])
def test_each_model_has_its_tutorials_initializer(model, initializer):
    def fn():
        images = tf.compat.v1.placeholder(tf.float32, [None, 28, 28, 1])
        with arg_scope(arg_scopes_map[model]()):
            return nets_map[model](images, num_classes=10)

    graph, _ = build(fn)
    ops = {op.type for op in graph.get_operations() if op.name.startswith(f"{model}/conv1/weights/Initializer")}
    assert initializer in ops


def test_network_factory_enters_the_arg_scope_and_passes_model_options():
    from cnn_tf.nets import get_network_fn, model_options

    assert model_options("four_conv") == ("keep_prob_conv",) and model_options("lenet") == ()

    def fn():
        network_fn = get_network_fn("four_conv", 3, weight_decay=1e-3, use_batch_norm=True,
                                    weights_initializer="xavier", keep_prob_conv=0.25)
        assert network_fn.default_image_size == 224
        return network_fn(tf.compat.v1.placeholder(tf.float32, [None, 16, 16, 3]), is_training=True)

    graph, (logits, end_points) = build(fn)
    assert logits.shape.as_list() == [None, 3]
    names = {v.op.name for v in graph.get_collection("variables")}
    assert "four_conv/conv1/BatchNorm/moving_mean" in names  # the scope's batch norm
    assert len(graph.get_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES)) == 6  # its weight decay
    ops = {op.type for op in graph.get_operations() if op.name.startswith("four_conv/conv1/weights/Initializer")}
    assert "RandomUniform" in ops  # xavier overrides the model's truncated normal
    rates = [op for op in graph.get_operations() if op.name.startswith("four_conv/dropout2/")
             and op.type == "Const" and op.get_attr("value").float_val == [0.75]]
    assert rates  # keep_prob_conv=0.25 reached the conv dropout (rate 0.75)
    with pytest.raises(ValueError, match="model lenet takes no option.* keep_prob_conv"):
        get_network_fn("lenet", 10, keep_prob_conv=0.5)
    with pytest.raises(ValueError, match="unknown model 'resnet9'"):
        get_network_fn("resnet9", 10)


def test_slims_batch_norm_in_inference_uses_the_restored_statistics_as_they_are():
    """scale=True, debias=False: what slim's checkpoints hold (gamma; averages not bias-corrected)
    gives slim's output, gamma * (x - mean) / sqrt(variance + eps) + beta."""
    from cnn_tf.nets.layers import batch_norm

    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    stats = {name: (rng.uniform(0.5, 2, 4) if name in ("gamma", "moving_variance") else rng.normal(size=4))
             .astype(np.float32) for name in ("beta", "gamma", "moving_mean", "moving_variance")}
    graph = tf.Graph()
    with graph.as_default():
        y = batch_norm(tf.constant(x), is_training=False, scale=True, debias=False, scope="bn")
        names = {v.op.name for v in tf.compat.v1.global_variables()}
        assert names == {f"bn/{n}" for n in stats}  # no num_updates: nothing slim's checkpoint lacks
        with tf.compat.v1.Session() as sess:
            sess.run([v.assign(stats[v.op.name[3:]]) for v in tf.compat.v1.global_variables()])
            out = sess.run(y)
    expected = stats["gamma"] * (x - stats["moving_mean"]) / np.sqrt(stats["moving_variance"] + 1e-3) + stats["beta"]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
