"""ResNet-50 v1 (He et al., "Deep Residual Learning", 2015, table 1) with TF-Slim's variable names
and shapes, so that slim's published resnet_v1_50.ckpt (1,000 ImageNet classes) warm-starts it.

    layer                         op                                               224x224x3 ->
    conv1                         conv 7x7 / 2, 64 (padded as slim's conv2d_same)  112x112x64
    pool1                         max-pool 3x3 / 2, SAME                           56x56x64
    block1/unit_1..3              bottleneck [1x1 64, 3x3 64, 1x1 256]; unit_3 / 2 28x28x256
    block2/unit_1..4              [1x1 128, 3x3 128, 1x1 512]; unit_4 / 2          14x14x512
    block3/unit_1..6              [1x1 256, 3x3 256, 1x1 1024]; unit_6 / 2         7x7x1024
    block4/unit_1..3              [1x1 512, 3x3 512, 1x1 2048]                     7x7x2048
    pool5                         global average pool                              1x1x2048
    logits                        conv 1x1, num_classes, biases                    -> logits [N, C]

Each unit is resnet_v1_50/blockB/unit_U/bottleneck_v1/{conv1,conv2,conv3[,shortcut]}: ReLU after
conv1 and conv2, none after conv3, ReLU of the sum; the shortcut a 1x1 conv where the depth changes
(unit_1), else the input (subsampled by a strided 1x1 max-pool where the unit strides), as slim puts
the stride in a block's last unit. Batch norm as slim's resnet_arg_scope (a gamma, epsilon 1e-5);
He initialization; slim's inputs are vgg_preprocessing's (--normalization=vgg).
"""
import tensorflow as tf

from cnn_tf.registry import register_model
from cnn_tf.nets.layers import (check_input_size, conv2d, initializer, l2_regularizer, max_pool2d, model_scope,
                                squeeze_logits)
from cnn_tf.nets.scopes import arg_scope

# (block, bottleneck depth, units, stride of the last unit)
BLOCKS = [("block1", 64, 3, 2), ("block2", 128, 4, 2), ("block3", 256, 6, 2), ("block4", 512, 3, 1)]
SLIM_BATCH_NORM = dict(scale=True, debias=False, epsilon=1e-5)


def _conv2d_same(net, channels, kernel, stride, scope):
    """slim's conv2d_same: a strided conv padded by (k - 1) split evenly, whatever the input size."""
    if stride == 1:
        return conv2d(net, channels, kernel, scope=scope)
    begin = (kernel - 1) // 2
    net = tf.pad(net, [[0, 0], [begin, kernel - 1 - begin], [begin, kernel - 1 - begin], [0, 0]])
    return conv2d(net, channels, kernel, stride=stride, padding="VALID", scope=scope)


def _bottleneck(net, depth, bottleneck_depth, stride, scope):
    with tf.compat.v1.variable_scope(scope), tf.compat.v1.variable_scope("bottleneck_v1"):
        if net.shape[-1] == depth:
            shortcut = net if stride == 1 else max_pool2d(net, 1, stride, scope="shortcut")
        else:
            shortcut = conv2d(net, depth, 1, stride=stride, activation_fn=None, scope="shortcut")
        residual = conv2d(net, bottleneck_depth, 1, scope="conv1")
        residual = _conv2d_same(residual, bottleneck_depth, 3, stride, "conv2")
        residual = conv2d(residual, depth, 1, activation_fn=None, scope="conv3")
        return tf.nn.relu(shortcut + residual)


def resnet_v1_50(images, num_classes=1000, is_training=True, keep_prob=1.0, scope="resnet_v1_50"):
    check_input_size(images, 1, "resnet_v1_50")
    with model_scope(scope, "resnet_v1_50", images, is_training) as (sc, end_points):
        net = _conv2d_same(images, 64, 7, 2, "conv1")
        net = max_pool2d(net, 3, 2, padding="SAME", scope="pool1")
        for block, bottleneck_depth, units, last_stride in BLOCKS:
            with tf.compat.v1.variable_scope(block):
                for unit in range(1, units + 1):
                    net = _bottleneck(net, 4 * bottleneck_depth, bottleneck_depth,
                                      last_stride if unit == units else 1, f"unit_{unit}")
            end_points[f"{sc.name}/{block}"] = net
        net = tf.reduce_mean(net, [1, 2], keepdims=True, name="pool5")
        net = conv2d(net, num_classes, 1, activation_fn=None, use_batch_norm=False, scope="logits")
        return squeeze_logits(net, sc, end_points, "logits")


resnet_v1_50.default_image_size = 224
resnet_v1_50.published_normalization = "vgg"  # slim's vgg_preprocessing


def resnet_v1_arg_scope(weight_decay=1e-4, use_batch_norm=True, weights_initializer="variance_scaling",
                        init_stddev=0.1):
    """Slim's resnet_arg_scope: batch norm after every conv but the logits (always: the published
    weights have it), ReLU, weight decay on every conv."""
    with arg_scope([conv2d], weights_initializer=initializer(weights_initializer, init_stddev),
                   weights_regularizer=l2_regularizer(weight_decay), use_batch_norm=True,
                   batch_norm_params=SLIM_BATCH_NORM, activation_fn=tf.nn.relu, padding="SAME") as sc:
        return sc


register_model("resnet_v1_50", resnet_v1_50, resnet_v1_arg_scope)
