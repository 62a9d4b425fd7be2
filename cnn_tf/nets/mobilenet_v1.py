"""MobileNet v1 (Howard et al., 2017, table 1) with TF-Slim's variable names and shapes, so that
slim's published ImageNet checkpoints (mobilenet_v1_<d>_<size>.ckpt) warm-start it.

    layer                       op (d = --depth_multiplier, channels max(d * c, 8))   224x224x3 ->
    Conv2d_0                    conv 3x3 / 2, 32                                     112x112x32
    Conv2d_1_depthwise/_pointwise  depthwise 3x3 / 1, then conv 1x1, 64              112x112x64
    Conv2d_2 ...                / 2, 128                                             56x56x128
    Conv2d_3                    / 1, 128                                             56x56x128
    Conv2d_4                    / 2, 256                                             28x28x256
    Conv2d_5                    / 1, 256                                             28x28x256
    Conv2d_6                    / 2, 512                                             14x14x512
    Conv2d_7 .. Conv2d_11       / 1, 512                                             14x14x512
    Conv2d_12                   / 2, 1024                                            7x7x1024
    Conv2d_13                   / 1, 1024                                            7x7x1024
    Logits/AvgPool_1a           global average pool                                  1x1x1024
    Logits/Dropout_1b           keep_prob while training
    Logits/Conv2d_1c_1x1        conv 1x1, num_classes, biases                        -> logits [N, C]

Every conv but the logits: batch norm as slim's (a gamma; decay as --batch_norm_decay of conv2d,
epsilon 1e-3) and ReLU6; truncated-normal initialization. Slim averages 7x7 VALID, which is the
global average at 224 px and below. Variables are MobilenetV1/Conv2d_0/weights,
MobilenetV1/Conv2d_1_depthwise/depthwise_weights, .../BatchNorm/{beta,gamma,moving_mean,moving_variance},
MobilenetV1/Logits/Conv2d_1c_1x1/{weights,biases} (--checkpoint_exclude_scopes=MobilenetV1/Logits).
"""
import tensorflow as tf

from cnn_tf.options import model_option, positive
from cnn_tf.registry import register_model
from cnn_tf.nets.layers import (check_input_size, conv2d, depthwise_conv2d, dropout, initializer, l2_regularizer,
                                model_scope, squeeze_logits)
from cnn_tf.nets.scopes import arg_scope

# (stride, channels) of the depthwise-separable layers Conv2d_1 .. Conv2d_13 (Conv2d_0: a full conv, /2, 32)
SEPARABLE = [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512), (1, 512), (1, 512),
             (1, 512), (2, 1024), (1, 1024)]
SLIM_BATCH_NORM = dict(scale=True, debias=False)


def mobilenet_v1(images, num_classes=1001, is_training=True, keep_prob=0.999, scope="MobilenetV1",
                 depth_multiplier=1.0):
    check_input_size(images, 1, "mobilenet_v1")

    def depth(channels):
        return max(int(channels * depth_multiplier), 8)

    with model_scope(scope, "MobilenetV1", images, is_training) as (sc, end_points):
        net = conv2d(images, depth(32), 3, stride=2, scope="Conv2d_0")
        for i, (stride, channels) in enumerate(SEPARABLE, 1):
            net = depthwise_conv2d(net, 3, stride=stride, scope=f"Conv2d_{i}_depthwise")
            net = conv2d(net, depth(channels), 1, scope=f"Conv2d_{i}_pointwise")
        return logits_head(net, num_classes, keep_prob, sc, end_points, "AvgPool_1a", "Dropout_1b")


mobilenet_v1.default_image_size = 224
mobilenet_v1.published_normalization = "inception"  # slim's inputs for its checkpoints: [-1, 1]


def logits_head(net, num_classes, keep_prob, sc, end_points, pool, drop):
    """Slim's MobileNet head: Logits/`pool` (global average), Logits/`drop`, Logits/Conv2d_1c_1x1."""
    with tf.compat.v1.variable_scope("Logits"):
        net = tf.reduce_mean(net, [1, 2], keepdims=True, name=pool)
        net = dropout(net, keep_prob, scope=drop)
        net = conv2d(net, num_classes, 1, activation_fn=None, use_batch_norm=False, scope="Conv2d_1c_1x1")
    return squeeze_logits(net, sc, end_points, "Logits/Conv2d_1c_1x1")


def mobilenet_v1_arg_scope(weight_decay=4e-5, use_batch_norm=True, weights_initializer="truncated_normal",
                           init_stddev=0.09):
    """Slim's: batch norm after every conv (the published weights have one; --nobatch_norm is ignored
    here), ReLU6, weight decay on the full convolutions only."""
    common = dict(weights_initializer=initializer(weights_initializer, init_stddev), use_batch_norm=True,
                  batch_norm_params=SLIM_BATCH_NORM, activation_fn=tf.nn.relu6, padding="SAME")
    with arg_scope([conv2d, depthwise_conv2d], **common), \
            arg_scope([conv2d], weights_regularizer=l2_regularizer(weight_decay)) as sc:
        return sc


register_model("mobilenet_v1", mobilenet_v1, mobilenet_v1_arg_scope, options=[
    model_option("depth_multiplier", float, 1.0, "mobilenet_v1, mobilenet_v2: channels of every layer times this "
                 "(slim's published 0.25, 0.5, 0.75, 1.0).", check=positive, must_match=True),
])
