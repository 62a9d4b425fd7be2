"""The 3-conv network of the Fashion-MNIST tutorial, fully convolutional.

    layer     op                                        28x28x1 input ->
    conv1     conv 3x3, 32, SAME, ReLU                  28x28x32
    pool1     max-pool 2x2 / 2, SAME                    14x14x32
    conv2     conv 3x3, 64                              14x14x64
    pool2     max-pool 2x2 / 2, SAME                    7x7x64
    conv3     conv 3x3, 128                             7x7x128
    pool3     max-pool 2x2 / 2, SAME                    4x4x128
    fc4       conv over the whole map, 128, VALID, ReLU 1x1x128
    dropout4  keep_prob while training
    fc5       conv 1x1, num_classes, no activation      -> logits [N, C]

Xavier/Glorot initializer by default, as in the tutorial; batch norm on the convs by flag.
"""
import functools

from cnn_tf.registry import register_model
from cnn_tf.nets.layers import (check_input_size, conv2d, conv_arg_scope, dropout, fully_connected,
                                max_pool2d, model_scope, squeeze_logits)
from cnn_tf.nets.scopes import arg_scope


def three_conv(images, num_classes=10, is_training=True, keep_prob=1.0, scope="three_conv"):
    check_input_size(images, 1, "three_conv")
    with model_scope(scope, "three_conv", images, is_training) as (sc, end_points), \
        arg_scope([max_pool2d], padding="SAME"):
        net = conv2d(images, 32, 3, scope="conv1")
        net = max_pool2d(net, 2, 2, scope="pool1")
        net = conv2d(net, 64, 3, scope="conv2")
        net = max_pool2d(net, 2, 2, scope="pool2")
        net = conv2d(net, 128, 3, scope="conv3")
        net = max_pool2d(net, 2, 2, scope="pool3")
        net = fully_connected(net, 128, use_batch_norm=False, scope="fc4")
        net = dropout(net, keep_prob, scope="dropout4")
        net = conv2d(net, num_classes, 1, activation_fn=None, use_batch_norm=False, scope="fc5")
        return squeeze_logits(net, sc, end_points, "fc5")


three_conv.default_image_size = 28
three_conv_arg_scope = functools.partial(conv_arg_scope, weights_initializer="xavier")

register_model("three_conv", three_conv, three_conv_arg_scope)
