"""RandAugment (Cubuk et al. 2019; TF Model Garden's augment.py, timm's rand_augment_transform) on
float32 batches [N, H, W, C] in [0, 1]: N layers, each applying to every image one operation drawn
uniformly from OPERATIONS at magnitude M of 10, the sign of a geometric or enhancing one drawn too.

Every image draws its own operation. The colour operations are computed for the whole batch and
each image takes its own with tf.where; the geometric ones are one projective transform per image
(the identity for an image that drew a colour operation). Equalize is left out: a per-image
histogram is a Python-sized loop in a graph, and timm's ablations put it among the weakest.
"""
import math

import tensorflow as tf

from cnn_tf.data.photo_augment import blend, grey, split_seed

COLOUR = ("identity", "auto_contrast", "invert", "posterize", "solarize", "solarize_add", "color", "contrast",
          "brightness", "sharpness")
GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
OPERATIONS = COLOUR + GEOMETRIC
MAX_ROTATE, MAX_SHEAR, MAX_TRANSLATE = 30.0, 0.3, 0.45  # degrees; shear factor; fraction of the side
FILL = 0.5  # grey where a geometric operation uncovers the image (Model Garden fills 128 of 255)


def _smoothed(images):
    """PIL's SMOOTH filter (the 3x3 kernel [1 1 1; 1 5 1; 1 1 1] / 13), per channel, reflected edges."""
    channels = images.shape[-1]
    kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")


def colour_operations(images, level, sign):
    """{name: the whole batch under that colour operation}; `level` in [0, 1], `sign` [N, 1, 1, 1] of +-1."""
    factor = 1.0 + sign * 0.9 * level  # the enhance operations' factor, timm's "increasing" levels
    low = tf.reduce_min(images, axis=[1, 2], keepdims=True)
    high = tf.reduce_max(images, axis=[1, 2], keepdims=True)
    stretched = (images - low) / tf.maximum(high - low, 1e-6)
    shift = 2.0 ** tf.round(4.0 * level)  # posterize keeps 8 - round(4 * level) bits
    return {
        "identity": images,
        "auto_contrast": tf.where(high > low, stretched, images),
        "invert": 1.0 - images,
        "posterize": tf.floor(tf.round(images * 255.0) / shift) * shift / 255.0,
        "solarize": tf.where(images > 1.0 - level, 1.0 - images, images),
        "solarize_add": tf.where(images < 0.5, tf.minimum(images + level * 110.0 / 255.0, 1.0), images),
        "color": blend(grey(images), images, factor),
        "contrast": blend(tf.reduce_mean(grey(images), axis=[1, 2, 3], keepdims=True), images, factor),
        "brightness": blend(tf.zeros_like(images), images, factor),
        "sharpness": blend(_smoothed(images), images, factor),
    }


def transforms(op, level, sign, height, width):
    """[N, 8] projective transforms (output pixel -> input pixel) of the geometric operations; the
    identity for every image whose `op` is a colour operation."""
    op = op - len(COLOUR)
    n = tf.shape(op)[0]
    one, zero = tf.ones([n]), tf.zeros([n])
    angle = sign * level * MAX_ROTATE * math.pi / 180.0
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    cos, sin = tf.cos(angle), tf.sin(angle)
    rotate = [cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy]
    shear = sign * level * MAX_SHEAR
    shift = sign * level * MAX_TRANSLATE
    rows = {
        0: rotate,
        1: [one, shear, zero, zero, one, zero],
        2: [one, zero, zero, shear, one, zero],
        3: [one, zero, shift * width, zero, one, zero],
        4: [one, zero, zero, zero, one, shift * height],
    }
    result = [one, zero, zero, zero, one, zero]
    for index, row in rows.items():
        result = [tf.where(tf.equal(op, index), r, v) for r, v in zip(row, result)]
    return tf.stack(result + [zero, zero], axis=1)


def layer(images, seed, magnitude):
    """One RandAugment layer: each image its own operation, at `magnitude` of 10."""
    n, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    op_seed, sign_seed = split_seed(seed, 2)
    op = tf.random.stateless_uniform([n], op_seed, 0, len(OPERATIONS), tf.int32)
    sign = tf.where(tf.random.stateless_uniform([n], sign_seed) < 0.5, -1.0, 1.0)
    level = tf.clip_by_value(tf.cast(magnitude, tf.float32) / 10.0, 0.0, 1.0)
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms(op, level, sign, height, width), output_shape=[height, width],
        fill_value=FILL, interpolation="BILINEAR", fill_mode="CONSTANT")
    result = tf.where((op >= len(COLOUR))[:, None, None, None], moved, images)
    for index, (name, changed) in enumerate(colour_operations(images, level, sign[:, None, None, None]).items()):
        if name != "identity":
            result = tf.where(tf.equal(op, index)[:, None, None, None], changed, result)
    return tf.reshape(result, tf.shape(images))


def randaugment(images, seed, layers, magnitude):
    """`layers` (a scalar tensor, N) RandAugment layers at `magnitude` (M), layer i from seed (seed, i)."""
    shape = images.shape

    def body(i, x):
        out = layer(x, tf.random.experimental.stateless_fold_in(seed, tf.cast(i, tf.int64)), magnitude)
        return i + 1, tf.ensure_shape(out, shape)

    layers = tf.cast(layers, tf.int32)
    _, images = tf.while_loop(lambda i, x: i < layers, body, [tf.constant(0), images])
    return images
