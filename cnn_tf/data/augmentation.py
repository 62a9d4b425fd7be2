"""How a training batch is augmented, in the input pipeline's tf.data map, from stateless seeds
(seed, stream, batch index), so a resumed run sees exactly the batches an uninterrupted one would.

    uint8 batch --padded crop, flip (--augment=crop, flip_crop)--> scale_pixels --> [0, 1] pixels
      --random-resized crop and flip--> RandAugment --> colour jitter --> random erasing
      --mixup or cutmix--> (pixels, mix weight)

Each step sits behind its own placeholder (off by default, so evaluation passes through none of
them) and draws from its own split of the batch's seed. The mix weight w is the batch's share of
its own labels: the training loss is w * CE(label) + (1 - w) * CE(label of the reversed batch).
The ops themselves are in cnn_tf.data.photo_augment, randaugment and mixing.
"""
import dataclasses

import tensorflow as tf

from cnn_tf.augment_options import CROP_RATIO, CROP_SCALE
from cnn_tf.data import mixing, photo_augment, randaugment
from cnn_tf.data.preprocess import scale_pixels
from cnn_tf.registry import AUGMENTATIONS

AUGMENTATIONS.register("none", "none")
AUGMENTATIONS.register("crop", "a random crop after zero-padding")
AUGMENTATIONS.register("flip_crop", "a random horizontal flip and a random crop after zero-padding")
AUGMENTATIONS.register("random_resized_crop", "a crop of random area and aspect, resized, and a random flip")


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
    """How training batches are augmented, as one value: the kind (--augment), the zero-padding of
    its crop (--augment_padding; -1: 1/8 of the image's size), and the photo augmentation's
    settings (cnn_tf.augment_options: the crop's ranges, jitter, RandAugment's (N, M), erasing,
    mixup and cutmix, the epoch mixing stops at; 0: never)."""
    kind: str = "none"
    padding: int = -1
    crop_scale: tuple = CROP_SCALE
    crop_ratio: tuple = CROP_RATIO
    color_jitter: float = 0.0
    randaugment: tuple = (0, 0.0)
    random_erasing: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    switch_prob: float = 0.5
    mix_off_epoch: int = 0

    @classmethod
    def of(cls, cfg):
        return cls(cfg.augment or "none", -1 if cfg.augment_padding is None else cfg.augment_padding,
                   cfg.crop_scale_range, cfg.crop_ratio_range, cfg.color_jitter, cfg.randaugment_layers,
                   cfg.random_erasing, cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mixup_switch_prob, cfg.mixup_off_epoch)

    @property
    def on(self):
        return (self.kind != "none" or self.color_jitter > 0 or self.randaugment[0] > 0 or self.random_erasing > 0
                or self.mixes)

    @property
    def padded_crop(self):
        return self.kind in ("crop", "flip_crop")

    @property
    def flip(self):
        return self.kind == "flip_crop"

    @property
    def mixes(self):
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def describe(self):
        """For people: what each training batch goes through, in order; "none"."""
        steps = [self.kind] if self.kind != "none" else []
        if self.padded_crop and self.padding >= 0:
            steps[0] += f" (padding {self.padding})"
        if self.kind == "random_resized_crop":
            steps[0] += f" (area {self.crop_scale[0]:g}-{self.crop_scale[1]:g}, ratio {self.crop_ratio[0]:.3g}-" \
                        f"{self.crop_ratio[1]:.3g})"
        if self.randaugment[0]:
            steps.append(f"randaugment {self.randaugment[0]},{self.randaugment[1]:g}")
        if self.color_jitter:
            steps.append(f"color jitter {self.color_jitter:g}")
        if self.random_erasing:
            steps.append(f"random erasing {self.random_erasing:g}")
        mixes = [f"{name} {alpha:g}" for name, alpha in (("mixup", self.mixup_alpha), ("cutmix", self.cutmix_alpha))
                 if alpha > 0]
        if mixes:
            until = f" until epoch {self.mix_off_epoch}" if self.mix_off_epoch else ""
            switch = f" (cutmix in {self.switch_prob:.0%} of batches)" if len(mixes) == 2 else ""
            steps.append(" or ".join(mixes) + switch + until)
        return ", ".join(steps) or "none"

    def mixes_at(self, epoch):
        """Whether mixup / cutmix apply in `epoch` (0-based): until --mixup_off_epoch."""
        return self.mixes and (not self.mix_off_epoch or epoch < self.mix_off_epoch)


def augment_batch(images, seed, flip=True, padding=-1):
    """Per image: a random horizontal flip (when `flip`: right for clothes and photos, wrong for
    digits), and a random crop of the image zero-padded by `padding` pixels (-1: 1/8 of its size, the
    CIFAR recipe), on a uint8 batch [N, H, W, C]. `seed`: int64 [2], stateless."""
    n, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    padding = tf.convert_to_tensor(padding, tf.int32)
    pad_h = tf.where(padding >= 0, padding, max(1, height // 8))
    pad_w = tf.where(padding >= 0, padding, max(1, width // 8))
    flip_seed, row_seed, col_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    flipped = (tf.random.stateless_uniform([n], flip_seed) < 0.5) & tf.convert_to_tensor(flip)
    images = tf.where(flipped[:, None, None, None], tf.reverse(images, [2]), images)
    padded = tf.pad(images, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
    top = tf.random.stateless_uniform([n], row_seed, 0, 2 * pad_h + 1, tf.int32)
    left = tf.random.stateless_uniform([n], col_seed, 0, 2 * pad_w + 1, tf.int32)
    # Gathers of per-image row and column windows crop every image at its own offset, batched.
    rows = top[:, None] + tf.range(height)[None, :]
    cols = left[:, None] + tf.range(width)[None, :]
    return tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)


def _setting(default, shape, name):
    return tf.compat.v1.placeholder_with_default(tf.constant(default, shape=shape), shape, name=name)


class Augmentation:
    """Placeholders that turn augmentation on for a training pass, with its stateless seeds (seed,
    stream, batch index) and the AugmentSpec's settings; `prepare` augments a uint8 batch (when on),
    scales it and mixes it, in a tf.data map. Every setting defaults to off (evaluation)."""

    def __init__(self):
        self.on = tf.compat.v1.placeholder_with_default(False, [], name="augment")
        self.seed = tf.compat.v1.placeholder_with_default(tf.zeros([2], tf.int64), [2], name="seed")
        self.first_batch = tf.compat.v1.placeholder_with_default(tf.constant(0, tf.int64), [], name="first_batch")
        self.flip = tf.compat.v1.placeholder_with_default(True, [], name="augment_flip")
        self.padding = tf.compat.v1.placeholder_with_default(-1, [], name="augment_padding")
        self.padded_crop = _setting(True, [], "padded_crop")
        self.resized_crop = _setting(False, [], "resized_crop")
        self.crop_scale = _setting(list(CROP_SCALE), [2], "crop_scale")
        self.crop_ratio = _setting(list(CROP_RATIO), [2], "crop_ratio")
        self.jitter = _setting(0.0, [], "color_jitter")
        self.randaugment = _setting([0.0, 0.0], [2], "randaugment")
        self.erasing = _setting(0.0, [], "random_erasing")
        self.mixup_alpha = _setting(0.0, [], "mixup_alpha")
        self.cutmix_alpha = _setting(0.0, [], "cutmix_alpha")
        self.switch_prob = _setting(0.5, [], "mixup_switch_prob")
        self.mix = _setting(False, [], "mix")

    def prepare(self, index, images):
        """(pixels in [0, 1], the mix weight) of a uint8 batch, the `index`th of the pass."""
        seed = tf.random.experimental.stateless_fold_in(self.seed, index)
        # The padded crop first, on exactly the seed it always had: runs from before resume bit-exact.
        pixels = scale_pixels(tf.cond(self.on & self.padded_crop,
                                      lambda: augment_batch(images, seed, self.flip, self.padding), lambda: images))
        seeds = photo_augment.split_seed(tf.random.experimental.stateless_fold_in(seed, 1), 5)
        steps = [
            (self.resized_crop, lambda x: photo_augment.random_resized_crop(x, seeds[0], self.crop_scale,
                                                                            self.crop_ratio)),
            (self.randaugment[0] > 0, lambda x: randaugment.randaugment(x, seeds[1], self.randaugment[0],
                                                                        self.randaugment[1])),
            (self.jitter > 0, lambda x: photo_augment.color_jitter(x, seeds[2], self.jitter)),
            (self.erasing > 0, lambda x: photo_augment.random_erasing(x, seeds[3], self.erasing)),
        ]
        for wanted, step in steps:
            pixels = tf.cond(self.on & wanted, lambda step=step, x=pixels: step(x), lambda x=pixels: x)
        pixels, weight = tf.cond(
            self.on & self.mix,
            lambda: mixing.mix_batch(pixels, seeds[4], self.mixup_alpha, self.cutmix_alpha, self.switch_prob),
            lambda: (pixels, tf.constant(1.0)))
        return pixels, weight

    def feed(self, plan):
        """The feed that turns the training pass of `plan` (an EpochPlan; None: evaluation) on."""
        if plan is None or plan.augment_seed is None:
            return {}
        seed, stream, first_batch = plan.augment_seed
        spec = plan.augment
        return {self.on: True, self.seed: [seed, stream], self.first_batch: first_batch,
                self.flip: spec.flip, self.padding: spec.padding, self.padded_crop: spec.padded_crop,
                self.resized_crop: spec.kind == "random_resized_crop", self.crop_scale: spec.crop_scale,
                self.crop_ratio: spec.crop_ratio, self.jitter: spec.color_jitter,
                self.randaugment: [float(v) for v in spec.randaugment], self.erasing: spec.random_erasing,
                self.mixup_alpha: spec.mixup_alpha, self.cutmix_alpha: spec.cutmix_alpha,
                self.switch_prob: spec.switch_prob, self.mix: spec.mixes_at(plan.epoch)}
