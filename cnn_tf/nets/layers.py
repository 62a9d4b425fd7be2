"""Layers from tf.nn ops and tf.compat.v1.get_variable, configurable through arg_scope.

Every layer opens a variable scope, so a model can be built again with `reuse=True` (towers on
several GPUs share one set of variables). Outputs can be collected as end points: pass a dict
as `outputs_collections` and each layer adds {its scope name: its output} to it.
"""
import contextlib
import zlib

import tensorflow as tf

from cnn_tf.registry import INITIALIZERS
from cnn_tf.nets.scopes import add_arg_scope, arg_scope

_INITIALIZERS = {
    # He et al.: the variance that keeps ReLU activations from shrinking or growing with depth.
    "variance_scaling": lambda stddev: tf.compat.v1.variance_scaling_initializer(2.0, "fan_in", "truncated_normal"),
    "xavier": lambda stddev: tf.compat.v1.glorot_uniform_initializer(),
    "truncated_normal": lambda stddev: tf.compat.v1.truncated_normal_initializer(stddev=stddev),
}
for _name, _make in _INITIALIZERS.items():  # --weights_initializer's choices
    INITIALIZERS.register(_name, _make)


def initializer(name, stddev=0.1):
    return INITIALIZERS[name](stddev)


PRE_ACTIVATIONS = "pre_activations"  # each conv2d's output before its activation (histograms)


def l2_regularizer(scale):
    """Returns None for scale 0, so no zero-valued loss is added for every weight."""
    if not scale:
        return None
    return lambda w: tf.multiply(scale, tf.nn.l2_loss(w), name="l2_loss")


def _collect(end_points, alias, tensor):
    # A plain dict, not a graph collection: (alias, tensor) pairs cannot go into a MetaGraphDef.
    if end_points is not None:
        end_points[alias] = tensor


def _smart_cond(pred, true_fn, false_fn):
    """tf.cond for a tensor predicate, a plain branch for a Python bool (no cond in the graph)."""
    if isinstance(pred, bool):
        return true_fn() if pred else false_fn()
    return tf.cond(pred, true_fn, false_fn)


def batch_norm(inputs, is_training=True, decay=0.99, epsilon=1e-3, scale=False, debias=True, scope="BatchNorm"):
    """Fused batch norm (no scale by default: a ReLU or another linear layer follows); the
    moving-average updates go to UPDATE_OPS, which the train op runs before each step.

    The moving averages start at zero and are bias-corrected by the number of updates, as Adam
    corrects its moments. Averages started at (0, 1) lag for hundreds of steps, and a net whose
    activations are far from unit variance (Xavier-initialized, say) evaluated at chance level
    after its first epoch. `scale=True, debias=False` is slim's batch norm, variable for variable
    (a gamma; averages from (0, 1), used as they are), so its published checkpoints restore.
    """
    channels = inputs.shape[-1]
    with tf.compat.v1.variable_scope(scope):
        beta = tf.compat.v1.get_variable("beta", [channels], initializer=tf.zeros_initializer())
        gamma = (tf.compat.v1.get_variable("gamma", [channels], initializer=tf.ones_initializer()) if scale
                 else tf.ones([channels], name="gamma"))

        def statistic(name, shape, start=tf.zeros_initializer()):
            return tf.compat.v1.get_variable(
                name, shape, initializer=start, trainable=False,
                collections=[tf.compat.v1.GraphKeys.GLOBAL_VARIABLES, tf.compat.v1.GraphKeys.MODEL_VARIABLES])

        moving_mean = statistic("moving_mean", [channels])
        moving_var = statistic("moving_variance", [channels],
                               tf.zeros_initializer() if debias else tf.ones_initializer())
        if debias:
            updates = statistic("num_updates", [])
            correction = 1.0 - tf.pow(decay, updates)
            seen = updates > 0
            mean = tf.where(seen, moving_mean / tf.maximum(correction, 1e-12), tf.zeros([channels]))
            variance = tf.where(seen, moving_var / tf.maximum(correction, 1e-12), tf.ones([channels]))
        else:
            updates, mean, variance = None, moving_mean, moving_var

        def training():
            return tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=moving_mean, variance=moving_var, epsilon=epsilon,
                is_training=True, exponential_avg_factor=1.0 - decay)

        def inference():
            outputs = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=mean, variance=variance, epsilon=epsilon, is_training=False)[0]
            return outputs, moving_mean.read_value(), moving_var.read_value()

        if is_training is False:  # an inference tower: nothing to update
            return inference()[0]
        outputs, new_mean, new_var = _smart_cond(is_training, training, inference)
        # In inference the branch hands back the stored averages, so these updates change nothing.
        counted = [] if updates is None else [updates.assign_add(tf.cast(is_training, tf.float32))]
        for op in (moving_mean.assign(new_mean), moving_var.assign(new_var), *counted):
            tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.UPDATE_OPS, op)
        return outputs


def _conv(inputs, weights, stride, padding):
    kh, kw, cin, cout = weights.shape
    if padding == "VALID" and tuple(inputs.shape[1:3]) == (kh, kw):
        # A kernel covering the whole map is a matmul over the flattened map (NHWC flattens in the
        # kernel's HWC order). TF's CPU Conv2DBackpropInput is ~20x slower for such kernels.
        flat = tf.reshape(inputs, [-1, kh * kw * cin])
        return tf.reshape(tf.matmul(flat, tf.reshape(weights, [kh * kw * cin, cout])), [-1, 1, 1, cout])
    return tf.nn.conv2d(inputs, weights, stride, padding)


@add_arg_scope
def conv2d(inputs, num_outputs, kernel_size, stride=1, padding="SAME", activation_fn=tf.nn.relu,
           weights_initializer=None, weights_regularizer=None, use_batch_norm=False, is_training=True,
           batch_norm_decay=0.99, batch_norm_params=None, use_bias=True, outputs_collections=None, scope=None):
    """conv -> bias_add (or batch norm) -> activation, in the order Grappler fuses. `use_bias=False`
    for a conv whose output a batch norm normalizes later (a pre-activation ResNet's): such a bias
    has no use, and in bfloat16 its gradient, summed over the batch and the map in bfloat16, made it
    drift faster than the batch norm's moving averages follow (chance accuracy in evaluation)."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    with tf.compat.v1.variable_scope(scope, "Conv", [inputs]) as sc:
        in_channels = inputs.shape[-1]
        weights = tf.compat.v1.get_variable(
            "weights", [kh, kw, in_channels, num_outputs], dtype=tf.float32,
            initializer=weights_initializer or initializer("variance_scaling"))
        if weights_regularizer is not None and not sc.reuse:
            # Here rather than get_variable's regularizer=, which puts it at the graph's top level.
            tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES, weights_regularizer(weights))
        outputs = _conv(inputs, tf.cast(weights, inputs.dtype), stride, padding)
        return _normalize_and_activate(outputs, sc, num_outputs, activation_fn, use_batch_norm, is_training,
                                       batch_norm_decay, batch_norm_params, use_bias, outputs_collections)


def _normalize_and_activate(outputs, sc, channels, activation_fn, use_batch_norm, is_training, batch_norm_decay,
                            batch_norm_params, use_bias, outputs_collections):
    """What follows every convolution: batch norm (`batch_norm_params`: its scale, debias) or a bias,
    then the activation; the output collected as an end point named by the layer's scope."""
    if use_batch_norm:
        outputs = batch_norm(outputs, is_training, batch_norm_decay, **(batch_norm_params or {}))
    elif use_bias:
        biases = tf.compat.v1.get_variable("biases", [channels], initializer=tf.zeros_initializer())
        outputs = tf.nn.bias_add(outputs, tf.cast(biases, outputs.dtype))
    tf.compat.v1.add_to_collection(PRE_ACTIVATIONS, outputs)
    if activation_fn is not None:
        outputs = activation_fn(outputs)
    _collect(outputs_collections, sc.name, outputs)
    return outputs


@add_arg_scope
def depthwise_conv2d(inputs, kernel_size, stride=1, padding="SAME", activation_fn=tf.nn.relu, weights_initializer=None,
                     weights_regularizer=None, use_batch_norm=False, is_training=True, batch_norm_decay=0.99,
                     batch_norm_params=None, use_bias=True, outputs_collections=None, scope=None):
    """One 3x3 (or k x k) filter per input channel, slim's separable_conv2d without its pointwise
    part: variable `depthwise_weights` [k, k, channels, 1]. No weight decay unless given (slim's
    regularize_depthwise=False: a few weights per channel need none)."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    with tf.compat.v1.variable_scope(scope, "DepthwiseConv", [inputs]) as sc:
        channels = inputs.shape[-1]
        weights = tf.compat.v1.get_variable("depthwise_weights", [kh, kw, channels, 1], dtype=tf.float32,
                                            initializer=weights_initializer or initializer("variance_scaling"))
        if weights_regularizer is not None and not sc.reuse:
            tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES, weights_regularizer(weights))
        outputs = tf.nn.depthwise_conv2d(inputs, tf.cast(weights, inputs.dtype), [1, stride, stride, 1], padding)
        return _normalize_and_activate(outputs, sc, channels, activation_fn, use_batch_norm, is_training,
                                       batch_norm_decay, batch_norm_params, use_bias, outputs_collections)


@add_arg_scope
def max_pool2d(inputs, kernel_size=2, stride=2, padding="VALID", outputs_collections=None, scope=None):
    with tf.compat.v1.name_scope(scope, "MaxPool", [inputs]) as name:
        outputs = tf.nn.max_pool2d(inputs, kernel_size, stride, padding)
        _collect(outputs_collections, name.rstrip("/"), outputs)
        return outputs


def _dropout_seed(name):
    """A stateless seed (layer, global step): the masks of a step are the same whether or not the run
    was interrupted and resumed before it (a stateful op's stream restarts with each process)."""
    global_step = tf.compat.v1.train.get_global_step()
    if global_step is None:
        return None
    graph_seed = tf.compat.v1.get_default_graph().seed or 0
    layer = zlib.crc32(f"{graph_seed}/{name}".encode())
    return tf.stack([tf.constant(layer, tf.int64), tf.cast(global_step, tf.int64)])


@add_arg_scope
def dropout(inputs, keep_prob=0.5, is_training=True, outputs_collections=None, scope=None):
    """Drops units only while training; evaluation graphs get the inputs unchanged (no random op)."""
    with tf.compat.v1.name_scope(scope, "Dropout", [inputs]) as name:
        def drop():
            seed = _dropout_seed(name)
            rate = tf.cast(1.0 - keep_prob, inputs.dtype)  # keep_prob is float32, inputs maybe not
            if seed is None:  # a net built outside build_graph, without a global step
                return tf.nn.dropout(inputs, rate=rate)
            return tf.nn.experimental.stateless_dropout(inputs, rate=rate, seed=seed)

        outputs = _smart_cond(is_training, drop, lambda: inputs)
        _collect(outputs_collections, name.rstrip("/"), outputs)
        return outputs


def fully_connected(inputs, num_outputs, **kwargs):
    """A fully connected layer written as a convolution whose kernel covers the whole remaining
    feature map (VALID), so the net stays fully convolutional; takes conv2d's arguments."""
    return conv2d(inputs, num_outputs, tuple(inputs.shape[1:3]), padding="VALID", **kwargs)


class InputSizeError(ValueError):
    """An image too small (or of unknown size) for a model."""


def check_input_size(images, min_size, model):
    """Models need static spatial sizes; a too-small image is a clear error, not a shape trace."""
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None:
        raise InputSizeError(f"{model} needs images of known height and width, got shape {images.shape}")
    if height < min_size or width < min_size:
        raise InputSizeError(f"{model} needs images of at least {min_size}x{min_size} pixels, "
                         f"got {height}x{width}")


def repeat(inputs, repetitions, layer, *args, scope, **kwargs):
    """Applies `layer` `repetitions` times, as scope/scope_1, scope/scope_2, ... (slim's naming)."""
    outputs = inputs
    with tf.compat.v1.variable_scope(scope):
        for i in range(1, repetitions + 1):
            outputs = layer(outputs, *args, scope=f"{scope}_{i}", **kwargs)
    return outputs


def conv_arg_scope(weight_decay=0.0, use_batch_norm=False, weights_initializer="variance_scaling",
                   init_stddev=0.1):
    """The defaults every model here gives its conv layers; models differ in the initializer."""
    with arg_scope([conv2d], weights_initializer=initializer(weights_initializer, init_stddev),
                   weights_regularizer=l2_regularizer(weight_decay), use_batch_norm=use_batch_norm,
                   activation_fn=tf.nn.relu, padding="SAME") as sc:
        return sc


@contextlib.contextmanager
def model_scope(scope, default_name, images, is_training):
    """A model's variable scope, in which conv2d, max_pool2d and dropout add their outputs to the
    yielded end points dict and know `is_training`. Yields (variable scope, end points)."""
    tower = tf.compat.v1.get_default_graph().get_name_scope()
    with tf.compat.v1.variable_scope(scope, default_name, [images]) as sc:
        end_points = {}
        with arg_scope([conv2d, depthwise_conv2d, max_pool2d, dropout], outputs_collections=end_points), \
                arg_scope([conv2d, depthwise_conv2d, dropout], is_training=is_training):
            yield sc, end_points
    if tower:  # built in a tower's name scope (training/, inference/): the same keys in every tower
        for key in list(end_points):
            end_points[key.removeprefix(tower + "/")] = end_points.pop(key)


def squeeze_logits(net, sc, end_points, layer):
    """[N, 1, 1, C] -> logits [N, C], added to the end points as <scope>/logits."""
    logits = tf.squeeze(net, [1, 2], name=f"{layer}/squeezed")
    end_points[sc.name + "/logits"] = logits
    return logits, end_points
