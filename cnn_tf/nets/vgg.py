"""VGG: the "Deeper ConvNets" tutorial's net for small digits (`vgg`) and VGG-16 (`vgg16`).

vgg, for 28x28 digits (zero-padded to the next multiple of 16, 28 -> 32):
    conv1  [conv 3x3, 64] x2, max-pool 2x2/2        16x16x64
    conv2  [conv 3x3, 128] x2, max-pool             8x8x128
    conv3  [conv 3x3, 256] x3, max-pool             4x4x256
    conv4  [conv 3x3, 512] x3, max-pool             2x2x512
    fc5    conv over the whole map, 4096, ReLU; dropout
    fc6    conv 1x1, num_classes                    -> logits

vgg16 (configuration D of Simonyan & Zisserman), for 224x224x3:
    conv1  [conv 3x3, 64] x2, max-pool              112x112x64
    conv2  [conv 3x3, 128] x2, max-pool             56x56x128
    conv3  [conv 3x3, 256] x3, max-pool             28x28x256
    conv4  [conv 3x3, 512] x3, max-pool             14x14x512
    conv5  [conv 3x3, 512] x3, max-pool             7x7x512
    fc6    conv 7x7 (the whole map), 4096, VALID; dropout
    fc7    conv 1x1, 4096; dropout
    fc8    conv 1x1, num_classes                    -> logits (138M parameters with 1000 classes)
"""
import tensorflow as tf

from cnn_tf.registry import register_model
from cnn_tf.nets.layers import (check_input_size, conv2d, conv_arg_scope, dropout, fully_connected,
                                max_pool2d, model_scope, repeat, squeeze_logits)


def _pad_to_multiple(images, multiple):
    height, width = images.shape[1], images.shape[2]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not pad_h and not pad_w:
        return images
    return tf.pad(images, [[0, 0], [pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]])


def _vgg(images, blocks, fc_layers, num_classes, is_training, keep_prob, scope):
    """blocks: [(repetitions, filters)], each followed by a 2x2 max-pool; fc_layers: widths of
    the fully connected layers (the first covers the whole remaining map)."""
    with model_scope(scope, "vgg", images, is_training) as (sc, end_points):
        net = images
        for i, (repetitions, filters) in enumerate(blocks, start=1):
            net = repeat(net, repetitions, conv2d, filters, 3, scope=f"conv{i}")
            net = max_pool2d(net, 2, 2, scope=f"pool{i}")
        layer = len(blocks) + 1
        for i, width in enumerate(fc_layers):
            make = fully_connected if i == 0 else (lambda x, n, **kw: conv2d(x, n, 1, **kw))
            net = make(net, width, use_batch_norm=False, scope=f"fc{layer}")
            net = dropout(net, keep_prob, scope=f"dropout{layer}")
            layer += 1
        net = conv2d(net, num_classes, 1, activation_fn=None, use_batch_norm=False, scope=f"fc{layer}")
        return squeeze_logits(net, sc, end_points, f"fc{layer}")


def vgg(images, num_classes=10, is_training=True, keep_prob=0.5, scope="vgg"):
    check_input_size(images, 1, "vgg")
    images = _pad_to_multiple(images, 16)
    return _vgg(images, [(2, 64), (2, 128), (3, 256), (3, 512)], [4096], num_classes, is_training,
                keep_prob, scope)


def vgg16(images, num_classes=1000, is_training=True, keep_prob=0.5, scope="vgg16"):
    check_input_size(images, 32, "vgg16")
    return _vgg(images, [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], [4096, 4096], num_classes,
                is_training, keep_prob, scope)


vgg.default_image_size = 28
vgg16.default_image_size = 224
vgg_arg_scope = conv_arg_scope  # variance scaling

register_model("vgg", vgg, vgg_arg_scope)
register_model("vgg16", vgg16, vgg_arg_scope)
