"""Mixup (Zhang et al. 2018) and cutmix (Yun et al. 2019) per batch, as timm's Mixup in its batch
mode: one weight per batch, every image mixed with its partner in the reversed batch (so no second
batch is read, and a resumed run mixes the same pairs). The loss takes the weight:
w * CE(label) + (1 - w) * CE(partner's label) (cnn_tf.graph.towers)."""
import tensorflow as tf

from cnn_tf.data.photo_augment import box_mask, split_seed


def beta(seed, alpha):
    """One draw of Beta(alpha, alpha), as two gamma draws; alpha > 0."""
    a, b = split_seed(seed, 2)
    alpha = tf.cast(alpha, tf.float32)
    x = tf.random.stateless_gamma([], a, alpha)
    y = tf.random.stateless_gamma([], b, alpha)
    return tf.where(x + y > 0, x / tf.maximum(x + y, 1e-30), 0.5)


def mixup(pixels, lam):
    return lam * pixels + (1.0 - lam) * tf.reverse(pixels, [0])


def cutmix(pixels, seed, lam):
    """The partner's pixels in a box of side sqrt(1 - lam) of the image's, centred uniformly and
    clipped to the image; returns them and the weight corrected to the box's true area."""
    height, width = pixels.shape[1], pixels.shape[2]
    y_seed, x_seed = split_seed(seed, 2)
    cut = tf.sqrt(1.0 - lam)
    cut_h, cut_w = tf.cast(cut * height, tf.int32), tf.cast(cut * width, tf.int32)
    cy = tf.random.stateless_uniform([], y_seed, 0, height, tf.int32)
    cx = tf.random.stateless_uniform([], x_seed, 0, width, tf.int32)
    top, bottom = tf.clip_by_value(cy - cut_h // 2, 0, height), tf.clip_by_value(cy + cut_h // 2, 0, height)
    left, right = tf.clip_by_value(cx - cut_w // 2, 0, width), tf.clip_by_value(cx + cut_w // 2, 0, width)
    mask = box_mask(top[None], left[None], (bottom - top)[None], (right - left)[None], height, width)
    area = tf.cast((bottom - top) * (right - left), tf.float32)
    return tf.where(mask, tf.reverse(pixels, [0]), pixels), 1.0 - area / float(height * width)


def mix_batch(pixels, seed, mixup_alpha, cutmix_alpha, switch_prob):
    """(mixed pixels, weight of the batch's own labels): cutmix with probability `switch_prob` when
    both alphas are positive, else whichever is; weight 1 (the batch as it is) when neither."""
    switch_seed, lam_seed, box_seed = split_seed(seed, 3)
    mixup_alpha, cutmix_alpha = tf.cast(mixup_alpha, tf.float32), tf.cast(cutmix_alpha, tf.float32)
    use_cutmix = (cutmix_alpha > 0) & ((mixup_alpha <= 0) | (tf.random.stateless_uniform([], switch_seed) < switch_prob))
    alpha = tf.where(use_cutmix, cutmix_alpha, mixup_alpha)
    lam = beta(lam_seed, tf.maximum(alpha, 1e-6))
    return tf.cond(
        alpha <= 0, lambda: (pixels, tf.constant(1.0)),
        lambda: tf.cond(use_cutmix, lambda: cutmix(pixels, box_seed, lam), lambda: (mixup(pixels, lam), lam)))
