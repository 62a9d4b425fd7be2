"""The 4-conv network of the pets / TensorBoard tutorial.

    layer     op                                        224x224x3 input ->
    conv1     conv 3x3, 32, SAME, ReLU                  224x224x32
    conv2     conv 3x3, 32                              224x224x32
    pool2     max-pool 2x2 / 2                          112x112x32
    dropout2  keep_prob_conv while training (the tutorial's keepRate1)
    conv3     conv 3x3, 64                              112x112x64
    conv4     conv 3x3, 64                              112x112x64
    pool4     max-pool 2x2 / 2                          56x56x64
    dropout4  keep_prob_conv while training
    fc5       conv over the whole map, 512, VALID, ReLU 1x1x512
    dropout5  keep_prob while training (keepRate2)
    fc6       conv 1x1, num_classes, no activation      -> logits [N, C]

Truncated-normal initializer (stddev --init_stddev, 0.1) by default, as in the tutorial.
"""
import functools

from cnn_tf.options import model_option, unit_interval
from cnn_tf.registry import register_model
from cnn_tf.nets.layers import (check_input_size, conv2d, conv_arg_scope, dropout, fully_connected,
                                max_pool2d, model_scope, squeeze_logits)


def four_conv(images, num_classes=2, is_training=True, keep_prob=0.5, scope="four_conv",
              keep_prob_conv=0.8):
    check_input_size(images, 4, "four_conv")
    with model_scope(scope, "four_conv", images, is_training) as (sc, end_points):
        net = conv2d(images, 32, 3, scope="conv1")
        net = conv2d(net, 32, 3, scope="conv2")
        net = max_pool2d(net, 2, 2, scope="pool2")
        net = dropout(net, keep_prob_conv, scope="dropout2")
        net = conv2d(net, 64, 3, scope="conv3")
        net = conv2d(net, 64, 3, scope="conv4")
        net = max_pool2d(net, 2, 2, scope="pool4")
        net = dropout(net, keep_prob_conv, scope="dropout4")
        net = fully_connected(net, 512, use_batch_norm=False, scope="fc5")
        net = dropout(net, keep_prob, scope="dropout5")
        net = conv2d(net, num_classes, 1, activation_fn=None, use_batch_norm=False, scope="fc6")
        return squeeze_logits(net, sc, end_points, "fc6")


four_conv.default_image_size = 224
four_conv_arg_scope = functools.partial(conv_arg_scope, weights_initializer="truncated_normal")

register_model("four_conv", four_conv, four_conv_arg_scope, options=[
    model_option("keep_prob_conv", float, 0.8, "Dropout keep probability after the conv blocks of four_conv, in "
                 "(0, 1].", check=unit_interval),
])
