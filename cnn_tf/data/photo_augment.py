"""Per-image photo augmentation on float32 batches [N, H, W, C] in [0, 1], from stateless seeds:
random-resized crop (slim's inception_preprocessing distorted_bounding_box_crop, timm's
RandomResizedCrop), colour jitter (torchvision's ColorJitter) and random erasing (timm's
RandomErasing). Every draw is a tensor of the batch, never a Python loop over its images."""
import math

import tensorflow as tf

ATTEMPTS = 10  # as timm and torchvision: draws of (area, aspect) before falling back


def split_seed(seed, count):
    """`count` independent stateless seeds from one."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, count))


def _first_fit(fits, values):
    """Per row, the value of the first attempt that fits ([N, A] each), and whether one did."""
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
    return tf.gather(values, first, axis=1, batch_dims=1), tf.reduce_any(fits, axis=1)


def resized_crop_boxes(n, seed, scale, ratio, aspect=1.0, attempts=ATTEMPTS):
    """[n, 4] boxes (y1, x1, y2, x2, fractions of the image) and [n] whether one was found: per image,
    the first of `attempts` draws of an area uniform in `scale` (fractions of the image's) and an
    aspect ratio (width / height) log-uniform in `ratio` that fits in the image (`aspect`: its
    width / height), placed uniformly. A miss keeps the whole image, as timm's fallback does for
    ratios inside the range."""
    area_seed, ratio_seed, y_seed, x_seed = split_seed(seed, 4)
    scale, ratio = tf.cast(scale, tf.float32), tf.cast(ratio, tf.float32)
    area = tf.random.stateless_uniform([n, attempts], area_seed, scale[0], scale[1])
    log_ratio = tf.random.stateless_uniform([n, attempts], ratio_seed, tf.math.log(ratio[0]), tf.math.log(ratio[1]))
    r = tf.exp(log_ratio)
    width = tf.sqrt(area * r / aspect)  # fractions of the image's width and height
    height = tf.sqrt(area / r * aspect)
    fits = (width <= 1.0) & (height <= 1.0)
    (width, found), (height, _) = _first_fit(fits, width), _first_fit(fits, height)
    width, height = tf.where(found, width, 1.0), tf.where(found, height, 1.0)
    top = tf.random.stateless_uniform([n], y_seed) * (1.0 - height)
    left = tf.random.stateless_uniform([n], x_seed) * (1.0 - width)
    return tf.stack([top, left, top + height, left + width], axis=1), found


def random_resized_crop(images, seed, scale, ratio):
    """Each image cropped to a box of resized_crop_boxes, resized back to its H x W (bilinear), and
    flipped left-right with probability 1/2."""
    n, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    box_seed, flip_seed = split_seed(seed, 2)
    boxes, _ = resized_crop_boxes(n, box_seed, scale, ratio, aspect=width / height)
    # crop_and_resize's boxes are in pixel centres: y1 * (H - 1) is the first row sampled.
    crops = tf.image.crop_and_resize(images, boxes, tf.range(n), [height, width])
    flipped = tf.random.stateless_uniform([n], flip_seed) < 0.5
    return tf.clip_by_value(tf.where(flipped[:, None, None, None], tf.reverse(crops, [2]), crops), 0.0, 1.0)


def grey(images):
    """Luma (ITU-R 601), [N, H, W, 1]; a grey image as it is."""
    if images.shape[-1] == 1:
        return images
    return tf.reduce_sum(images * [0.299, 0.587, 0.114], axis=-1, keepdims=True)


def blend(base, images, factor):
    return tf.clip_by_value(base + factor * (images - base), 0.0, 1.0)


def color_jitter(images, seed, strength):
    """Per image, in this order: brightness (times a factor uniform in [1 - S, 1 + S]), contrast
    (blended with the image's mean grey by such a factor), saturation (with its own grey) and hue
    (shifted by up to S / 4 of the colour circle); the last two only for colour images."""
    n = tf.shape(images)[0]
    seeds = split_seed(seed, 4)
    strength = tf.cast(strength, tf.float32)

    def factor(s):
        return tf.random.stateless_uniform([n, 1, 1, 1], s, 1.0 - strength, 1.0 + strength)

    images = tf.clip_by_value(images * factor(seeds[0]), 0.0, 1.0)
    images = blend(tf.reduce_mean(grey(images), axis=[1, 2, 3], keepdims=True), images, factor(seeds[1]))
    if images.shape[-1] != 3:
        return images
    images = blend(grey(images), images, factor(seeds[2]))
    hsv = tf.image.rgb_to_hsv(images)
    delta = tf.random.stateless_uniform([n, 1, 1], seeds[3], -strength / 4, strength / 4)
    hue = tf.math.floormod(hsv[..., 0] + delta, 1.0)
    return tf.clip_by_value(tf.image.hsv_to_rgb(tf.stack([hue, hsv[..., 1], hsv[..., 2]], -1)), 0.0, 1.0)


def erasing_boxes(n, seed, height, width, area=(0.02, 1 / 3), ratio=(0.3, 3.3), attempts=ATTEMPTS):
    """[n] top, left, box height, box width in pixels and whether a box was found: per image the
    first of `attempts` (area, aspect) draws that fits, as timm's RandomErasing."""
    area_seed, ratio_seed, y_seed, x_seed = split_seed(seed, 4)
    target = tf.random.stateless_uniform([n, attempts], area_seed, area[0], area[1]) * float(height * width)
    r = tf.exp(tf.random.stateless_uniform([n, attempts], ratio_seed, math.log(ratio[0]), math.log(ratio[1])))
    box_h, box_w = tf.round(tf.sqrt(target * r)), tf.round(tf.sqrt(target / r))
    fits = (box_h < height) & (box_w < width) & (box_h > 0) & (box_w > 0)
    (box_h, found), (box_w, _) = _first_fit(fits, box_h), _first_fit(fits, box_w)
    top = tf.floor(tf.random.stateless_uniform([n], y_seed) * (height - box_h + 1))
    left = tf.floor(tf.random.stateless_uniform([n], x_seed) * (width - box_w + 1))
    return [tf.cast(v, tf.int32) for v in (top, left, box_h, box_w)] + [found]


def box_mask(top, left, box_h, box_w, height, width):
    """[N, H, W, 1] True inside each image's box."""
    rows, cols = tf.range(height)[None, :], tf.range(width)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + box_h)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + box_w)[:, None])
    return (in_rows[:, :, None] & in_cols[:, None, :])[..., None]


def random_erasing(images, seed, probability):
    """With `probability` per image, a box of 2% to 33% of it (aspect 0.3 to 3.3) replaced by uniform
    noise in [0, 1], each pixel its own (timm's mode "pixel", before normalization)."""
    n, height, width, channels = tf.shape(images)[0], images.shape[1], images.shape[2], images.shape[3]
    box_seed, apply_seed, noise_seed = split_seed(seed, 3)
    top, left, box_h, box_w, found = erasing_boxes(n, box_seed, height, width)
    erase = found & (tf.random.stateless_uniform([n], apply_seed) < probability)
    mask = box_mask(top, left, box_h, box_w, height, width) & erase[:, None, None, None]
    noise = tf.random.stateless_uniform([n, height, width, channels], noise_seed)
    return tf.where(mask, noise, images)
