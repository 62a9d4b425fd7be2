"""The one model function training, evaluation, export and predict build the net with."""
import tensorflow as tf

from cnn_tf.errors import UserError
from cnn_tf.graph.hardware import COMPUTE_DTYPES
from cnn_tf.nets import get_network_fn, model_options
from cnn_tf.nets.layers import InputSizeError
from cnn_tf.registry import MODEL_OPTIONS


def model_rate_placeholders(cfg):
    """A model's own rates (four_conv's keep_prob_conv) as placeholders evaluation may change, named
    after the flag; its sizes (resnet's depth and width, mobilenet's depth multiplier) are not here:
    they fix the variables, so a resumed run must match them."""
    return {name: tf.compat.v1.placeholder_with_default(float(getattr(cfg, name)), [], name)
            for name in model_options(cfg.model) if not MODEL_OPTIONS[name][1].metadata["must_match"]}


def model_fn(cfg, num_classes, keep_prob=1.0, rates=None, precision="float32", weight_decay=None):
    """`model(images, is_training) -> (float32 logits, end_points)`: --model in its arg scope with the
    run's options, computing in `precision` from float32 weights. `rates`: placeholders that replace
    the model's rate options (else the flags' values); `weight_decay` defaults to the flag's, and
    adamw decays the weights in the train op instead of through the loss."""
    if weight_decay is None:
        weight_decay = 0.0 if cfg.optimizer == "adamw" else cfg.weight_decay
    options = {name: getattr(cfg, name) for name in model_options(cfg.model)}
    options.update(rates or {})
    network_fn = get_network_fn(cfg.model, num_classes, weight_decay=weight_decay, use_batch_norm=cfg.batch_norm,
                                weights_initializer=cfg.weights_initializer, init_stddev=cfg.init_stddev, **options)

    def model(images, is_training):
        try:
            logits, end_points = network_fn(tf.cast(images, COMPUTE_DTYPES[precision]), is_training=is_training,
                                            keep_prob=keep_prob)
        except InputSizeError as e:
            raise UserError(f"--model={cfg.model}: {e}") from e
        return tf.cast(logits, tf.float32), end_points  # float32 whatever the compute precision

    return model


def averaged_over_mirrors(probabilities, logits_of, images, tta="none"):
    """`tta="flip"`: the mean of `probabilities` (of `images`, NHWC) and of the mirrored images'
    (`logits_of(mirrored)`, on the same variables); else `probabilities` as they are. One place for
    evaluate's inference tower and for export / predict."""
    if tta != "flip":
        return probabilities
    with tf.compat.v1.name_scope("mirrored"):
        return (probabilities + tf.nn.softmax(logits_of(tf.reverse(images, [2])))) / 2.0
