"""MobileNet v2 (Sandler et al., 2018, table 2) with TF-Slim's variable names and shapes, so that
slim's published mobilenet_v2_<d>_224.ckpt (1001 classes) warm-starts it.

    layer                       op (t: expansion; c: channels; s: stride of the first)   224x224x3 ->
    Conv                        conv 3x3 / 2, 32                                         112x112x32
    expanded_conv               t 1: depthwise 3x3, project 1x1 to 16                    112x112x16
    expanded_conv_1, _2         t 6, c 24, s 2                                           56x56x24
    expanded_conv_3 .. _5       t 6, c 32, s 2                                           28x28x32
    expanded_conv_6 .. _9       t 6, c 64, s 2                                           14x14x64
    expanded_conv_10 .. _12     t 6, c 96, s 1                                           14x14x96
    expanded_conv_13 .. _15     t 6, c 160, s 2                                          7x7x160
    expanded_conv_16            t 6, c 320, s 1                                          7x7x320
    Conv_1                      conv 1x1, 1280                                           7x7x1280
    Logits/AvgPool, Dropout     global average pool, keep_prob while training            1x1x1280
    Logits/Conv2d_1c_1x1        conv 1x1, num_classes, biases                            -> logits [N, C]

Each expanded_conv_N is expand (1x1 to t x its input, ReLU6), depthwise (3x3, ReLU6), project (1x1,
linear), plus its input where the stride is 1 and the channels stay. Every channel count is times
--depth_multiplier, rounded as slim's _make_divisible (to a multiple of 8, never under 90%). Batch
norm and initialization as mobilenet_v1's (slim's); --checkpoint_exclude_scopes=MobilenetV2/Logits.
"""
import tensorflow as tf

from cnn_tf.registry import register_model
from cnn_tf.nets.layers import check_input_size, conv2d, depthwise_conv2d, model_scope
from cnn_tf.nets.mobilenet_v1 import logits_head, mobilenet_v1_arg_scope

# (expansion, channels, repeats, stride of the first) of the bottleneck sequences after Conv
BOTTLENECKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1)]


def make_divisible(value, divisor=8, min_value=8):
    """slim's rounding of a channel count: the nearest multiple of `divisor`, at least `min_value`,
    and never under 90% of `value`."""
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _expanded_conv(net, expansion, channels, stride, scope):
    with tf.compat.v1.variable_scope(scope):
        inputs, inner = net, make_divisible(net.shape[-1] * expansion)
        if inner > net.shape[-1]:
            net = conv2d(net, inner, 1, scope="expand")
        net = depthwise_conv2d(net, 3, stride=stride, scope="depthwise")
        net = conv2d(net, channels, 1, activation_fn=None, scope="project")
        if stride == 1 and inputs.shape[-1] == channels:
            net = tf.add(net, inputs, name="residual")
        return net


def mobilenet_v2(images, num_classes=1001, is_training=True, keep_prob=0.8, scope="MobilenetV2",
                 depth_multiplier=1.0):
    check_input_size(images, 1, "mobilenet_v2")
    with model_scope(scope, "MobilenetV2", images, is_training) as (sc, end_points):
        net = conv2d(images, make_divisible(32 * depth_multiplier), 3, stride=2, scope="Conv")
        index = 0
        for expansion, channels, repeats, first_stride in BOTTLENECKS:
            for i in range(repeats):
                name = f"expanded_conv_{index}" if index else "expanded_conv"  # slim's: the first has no number
                net = _expanded_conv(net, expansion, make_divisible(channels * depth_multiplier),
                                     first_stride if i == 0 else 1, name)
                index += 1
        net = conv2d(net, make_divisible(1280 * depth_multiplier), 1, scope="Conv_1")
        return logits_head(net, num_classes, keep_prob, sc, end_points, "AvgPool", "Dropout")


mobilenet_v2.default_image_size = 224
mobilenet_v2.published_normalization = "inception"

# --depth_multiplier is declared with mobilenet_v1 (cnn_tf.nets imports the model files in name order).
register_model("mobilenet_v2", mobilenet_v2, mobilenet_v1_arg_scope)
