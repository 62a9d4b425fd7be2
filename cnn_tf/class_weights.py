"""--class_weights: each training example's loss weighted by its class, for folders whose classes
are unbalanced (Keras' class_weight; "balanced" as scikit-learn computes it)."""
import math

import numpy as np

from cnn_tf.errors import UserError

UNBALANCED = 0.5  # a training split whose smallest class has less than half the largest's images


def train_label_counts(data):
    """Images per class in the training split (None for a split streamed from TFRecord shards)."""
    split = data.split("train")
    if not isinstance(split, tuple):
        return None
    return np.bincount(np.asarray(split[1], np.int64), minlength=data.num_classes)


def class_weights(cfg, data):
    """The weights of --class_weights for `data`'s classes, as a tuple of floats (None: unweighted).
    balanced: n / (classes * n_c) over the classes the training split has (scikit-learn's formula
    when it has them all; a class without training images gets 0), so every class adds as much to
    the loss as it would were the classes balanced, and the mean weight over the examples is 1."""
    if not cfg.class_weights:
        return None
    names = data.class_names
    if tuple(cfg.class_weights) == ("balanced",):
        counts = train_label_counts(data)
        if counts is None:
            raise UserError(f"--class_weights=balanced counts the training labels, which {cfg.dataset} streams from "
                            "shards; give one weight per class instead: --class_weights=w1,w2,...")
        present = int(np.count_nonzero(counts))  # a class without training images gets no weight
        return tuple(float(counts.sum() / (present * c)) if c else 0.0 for c in counts)
    try:
        weights = tuple(float(w) for w in cfg.class_weights)
    except ValueError as e:
        raise UserError(f"--class_weights={','.join(cfg.class_weights)}: give balanced, or one number per class "
                        f"({e})") from e
    if len(weights) != len(names) or not all(math.isfinite(w) and w >= 0 for w in weights) or not any(weights):
        raise UserError(f"--class_weights={','.join(cfg.class_weights)}: give {len(names)} weights >= 0, one per "
                        f"class in the order {', '.join(names)} (or balanced)")
    return weights


def unbalanced(data):
    """Whether the training split's classes are unbalanced enough for per-class recall in the history."""
    counts = train_label_counts(data)
    return counts is not None and counts.max() > 0 and counts.min() < UNBALANCED * counts.max()
