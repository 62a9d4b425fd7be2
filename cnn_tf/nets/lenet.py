"""LeNet, fully convolutional (the TensorFlow-Course tutorial's net).

    layer     op                                          28x28x1 input ->
    conv1     conv 5x5, 32, SAME, ReLU (batch norm: flag)  28x28x32
    pool1     max-pool 2x2 / 2                             14x14x32
    conv2     conv 5x5, 64, SAME, ReLU (batch norm: flag)  14x14x64
    pool2     max-pool 2x2 / 2                             7x7x64
    fc3       conv over the whole 7x7 map, 1024, VALID     1x1x1024
    dropout3  keep_prob while training
    fc4       conv 1x1, num_classes, no activation         1x1xC -> logits [N, C]
"""
from cnn_tf.registry import register_model
from cnn_tf.nets.layers import (check_input_size, conv2d, conv_arg_scope, dropout, fully_connected,
                                max_pool2d, model_scope, squeeze_logits)


def lenet(images, num_classes=10, is_training=True, keep_prob=0.5, scope="lenet"):
    check_input_size(images, 4, "lenet")
    with model_scope(scope, "lenet", images, is_training) as (sc, end_points):
        net = conv2d(images, 32, 5, scope="conv1")
        net = max_pool2d(net, 2, 2, scope="pool1")
        net = conv2d(net, 64, 5, scope="conv2")
        net = max_pool2d(net, 2, 2, scope="pool2")
        # The tutorial normalizes the conv layers only, not the fully connected ones.
        net = fully_connected(net, 1024, use_batch_norm=False, scope="fc3")
        net = dropout(net, keep_prob, scope="dropout3")
        net = conv2d(net, num_classes, 1, activation_fn=None, use_batch_norm=False, scope="fc4")
        return squeeze_logits(net, sc, end_points, "fc4")


lenet.default_image_size = 28


# The tutorial's initializer is variance scaling (He), the flag's default.
lenet_arg_scope = conv_arg_scope

register_model("lenet", lenet, lenet_arg_scope)
