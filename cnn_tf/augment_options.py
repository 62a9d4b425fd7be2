"""The photo augmentation flags of `train` (timm's and Model Garden's names where they have one), as
a mixin of cnn_tf.config.RunFlags: random-resized crop's ranges, colour jitter, RandAugment, random
erasing, mixup and cutmix. What they do to a batch is cnn_tf.data.augmentation's; here they are
checked, so a bad value stops the run before anything is built."""
import dataclasses
import math
import typing

from cnn_tf.errors import UserError
from cnn_tf.options import DATA, Options, fraction, non_negative, option, probability

CROP_SCALE, CROP_RATIO = (0.08, 1.0), (3 / 4, 4 / 3)  # slim's inception_preprocessing and timm's defaults
MAX_RANDAUGMENT_LAYERS, MAX_RANDAUGMENT_MAGNITUDE = 10, 10.0


@dataclasses.dataclass(frozen=True)
class AugmentFlags(Options):
    crop_scale: typing.Optional[tuple] = option(None, "--augment=random_resized_crop: the range of the crop's area, "
                                                "as fractions of the image's, e.g. 0.08,1 (the default).", DATA)
    crop_ratio: typing.Optional[tuple] = option(None, "--augment=random_resized_crop: the range of the crop's aspect "
                                                "ratio (width / height), e.g. 0.75,1.333 (the default).", DATA)
    color_jitter: float = option(0.0, "Per training image, brightness, contrast and saturation scaled by a factor "
                                 "in [1 - S, 1 + S] and the hue shifted by up to S / 4 of the circle (0: off).",
                                 DATA, check=fraction)
    randaugment: typing.Optional[tuple] = option(None, "RandAugment: N,M applies N operations to each training "
                                                 "image, each drawn from 14 (colour, rotation, shear, translation) "
                                                 "at magnitude M of 10, e.g. 2,9.", DATA)
    random_erasing: float = option(0.0, "Probability that a training image has a random rectangle (2% to 33% of it) "
                                   "replaced by noise (0: off).", DATA, check=probability)
    mixup_alpha: float = option(0.0, "Mixup: each training batch is blended with its own reverse by a weight drawn "
                                "from Beta(alpha, alpha), the labels' losses too (0: off; 0.2 is usual).", DATA,
                                check=non_negative)
    cutmix_alpha: float = option(0.0, "Cutmix: a box of each training image comes from its partner in the reversed "
                                 "batch, its size from Beta(alpha, alpha) (0: off; 1 is usual).", DATA,
                                 check=non_negative)
    mixup_switch_prob: float = option(0.5, "With both --mixup_alpha and --cutmix_alpha, the probability that a batch "
                                      "uses cutmix.", DATA, check=probability)
    mixup_off_epoch: int = option(0, "Mixup and cutmix stop from this epoch on, so the last epochs train on plain "
                                  "images (0: never).", DATA, check=non_negative)

    def __post_init__(self):
        super().__post_init__()
        for name in ("crop_scale", "crop_ratio"):
            if getattr(self, name) and self.augment != "random_resized_crop":
                raise UserError(f"--{name} sets --augment=random_resized_crop's crop; give that too, or leave it out")
        self.crop_scale_range, self.crop_ratio_range, self.randaugment_layers  # parsed: a bad value stops here

    @property
    def crop_scale_range(self):
        low, high = _pair("crop_scale", self.crop_scale, CROP_SCALE, float)
        if not 0 < low <= high <= 1:
            raise UserError(f"--crop_scale={low:g},{high:g}: give 0 < low <= high <= 1, fractions of the image's area")
        return low, high

    @property
    def crop_ratio_range(self):
        low, high = _pair("crop_ratio", self.crop_ratio, CROP_RATIO, float)
        if not 0 < low <= high or not math.isfinite(high):
            raise UserError(f"--crop_ratio={low:g},{high:g}: give 0 < low <= high, aspect ratios width / height")
        return low, high

    @property
    def randaugment_layers(self):
        """(N, M) of --randaugment; (0, 0) when off."""
        if not self.randaugment:
            return 0, 0.0
        n, m = _pair("randaugment", self.randaugment, None, float, "N,M, e.g. 2,9")
        if n != int(n) or not 1 <= n <= MAX_RANDAUGMENT_LAYERS or not 0 <= m <= MAX_RANDAUGMENT_MAGNITUDE:
            raise UserError(f"--randaugment={','.join(self.randaugment)}: give N,M with N operations in "
                            f"1..{MAX_RANDAUGMENT_LAYERS} and a magnitude M in 0..{MAX_RANDAUGMENT_MAGNITUDE:g}, "
                            "e.g. 2,9")
        return int(n), m


def _pair(name, values, default, kind, form="low,high"):
    if not values:
        return default
    try:
        low, high = (kind(v) for v in values)
    except ValueError:
        raise UserError(f"--{name}={','.join(values)}: give two numbers, {form}") from None
    return low, high
