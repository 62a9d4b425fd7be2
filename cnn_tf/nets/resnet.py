"""A pre-activation ResNet for small images (He et al., "Identity Mappings in Deep Residual
Networks", 2016; the CIFAR layout of "Deep Residual Learning", section 4.2), any input size.

    layer                 op                                             28x28x1 input, depth 20, width 16 ->
    conv1                 conv 3x3, w                                    28x28x16
    stage1/block1..n      n blocks of [BN, ReLU, conv 3x3 w, BN, ReLU,   28x28x16
                          conv 3x3 w] + identity
    stage2/block1..n      the same at 2w; the first block strides 2,     14x14x32
                          its shortcut a 1x1 conv of the pre-activation
    stage3/block1..n      the same at 4w                                 7x7x64
    postnorm              BN, ReLU                                       7x7x64
    pool                  global average pool                            1x1x64
    logits                conv 1x1, num_classes, no activation           -> logits [N, C]

depth = 6n + 2 (20, 32, 44, 56, 110: --resnet_depth), w = --resnet_width (16 in the paper). He
initialization; batch norm inside every block (--batch_norm, on by default); no dropout; no biases
but the logits' (a batch norm follows every other conv).
"""
import functools

import tensorflow as tf

from cnn_tf.options import model_option, positive
from cnn_tf.registry import register_model
from cnn_tf.nets.layers import batch_norm, check_input_size, conv2d, conv_arg_scope, model_scope, squeeze_logits


def _pre_activation(net, is_training, scope):
    with tf.compat.v1.variable_scope(scope):
        return tf.nn.relu(batch_norm(net, is_training))


def _block(net, channels, stride, is_training, scope):
    """One pre-activation residual block; a projection shortcut where the shape changes."""
    with tf.compat.v1.variable_scope(scope):
        pre = _pre_activation(net, is_training, "preact")
        if stride == 1 and net.shape[-1] == channels:
            shortcut = net
        else:
            shortcut = conv2d(pre, channels, 1, stride=stride, activation_fn=None, use_batch_norm=False,
                              use_bias=False, scope="shortcut")
        residual = conv2d(pre, channels, 3, stride=stride, scope="conv1")  # conv, BN, ReLU
        residual = conv2d(residual, channels, 3, activation_fn=None, use_batch_norm=False, use_bias=False,
                          scope="conv2")
        return shortcut + residual


def resnet(images, num_classes=10, is_training=True, keep_prob=1.0, scope="resnet", resnet_depth=20,
           resnet_width=16):
    check_input_size(images, 4, "resnet")
    blocks, remainder = divmod(resnet_depth - 2, 6)
    if remainder or blocks < 1:
        raise ValueError(f"--resnet_depth={resnet_depth} is not 6n+2 (20, 32, 44, 56, 110)")
    with model_scope(scope, "resnet", images, is_training) as (sc, end_points):
        # Every conv but the logits feeds a batch norm: no biases (see conv2d).
        net = conv2d(images, resnet_width, 3, activation_fn=None, use_batch_norm=False, use_bias=False,
                     scope="conv1")
        for stage, channels in enumerate((resnet_width, 2 * resnet_width, 4 * resnet_width), 1):
            for block in range(1, blocks + 1):
                stride = 2 if stage > 1 and block == 1 else 1
                net = _block(net, channels, stride, is_training, f"stage{stage}/block{block}")
            end_points[f"{sc.name}/stage{stage}"] = net
        net = _pre_activation(net, is_training, "postnorm")
        net = tf.reduce_mean(net, [1, 2], keepdims=True, name="pool")
        net = conv2d(net, num_classes, 1, activation_fn=None, use_batch_norm=False, scope="logits")
        return squeeze_logits(net, sc, end_points, "logits")


resnet.default_image_size = 28
resnet_arg_scope = functools.partial(conv_arg_scope, weights_initializer="variance_scaling")

def six_n_plus_2(depth):
    return depth >= 8 and (depth - 2) % 6 == 0


six_n_plus_2.words = "is not 6n+2 (20, 32, 44, 56, 110)"

register_model("resnet", resnet, resnet_arg_scope, options=[
    model_option("resnet_depth", int, 20, "Layers of resnet: 6n+2 (20, 32, 44, 56, 110).", check=six_n_plus_2,
                 must_match=True),
    model_option("resnet_width", int, 16, "Channels of resnet's first stage (the second has twice, the third four "
                 "times).", check=positive, must_match=True),
])
