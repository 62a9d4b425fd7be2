"""The model's towers, as tensorpack builds them: the training towers (batch statistics, dropout),
one per device, each on its share of the batch, and the inference tower (moving averages, no
dropout), all on the same variables. Each tower is a plain graph with a Python is_training: a
tf.cond on an is_training tensor in every layer kept Grappler from fusing batch norm with its ReLU
and put control flow into every step's gradients."""
import collections

import tensorflow as tf

from cnn_tf.graph.contract import TRAINING_SCOPE, Head
from cnn_tf.graph.model import averaged_over_mirrors


def cross_entropy(labels, logits, smoothing=0.0):
    """Per example: the cross-entropy against the targets (1 - smoothing) on the label plus smoothing
    spread evenly over the K classes, i.e. (1 - s) * CE + s * mean_k(-log p_k)."""
    # Softmax and log in one op: stable where the tutorial's log(softmax) went to inf.
    plain = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if not smoothing:
        return plain
    uniform = -tf.reduce_mean(tf.nn.log_softmax(logits), axis=1)
    return (1.0 - smoothing) * plain + smoothing * uniform


def weighted(losses, labels, class_weights=None):
    """Each example's loss times its class's weight (--class_weights; None: as it is)."""
    if class_weights is None:
        return losses
    return losses * tf.gather(tf.constant(class_weights, tf.float32), labels)


def training_losses(labels, logits, smoothing, class_weights, mix=None):
    """Per example: the weighted, smoothed cross-entropy; with `mix` = (weight w, the partners'
    labels), mixup's w * that of the label + (1 - w) * that of the partner's (cnn_tf.data.mixing)."""
    own = weighted(cross_entropy(labels, logits, smoothing), labels, class_weights)
    if mix is None:
        return own
    weight, partners = mix
    return weight * own + (1.0 - weight) * weighted(cross_entropy(partners, logits, smoothing), partners,
                                                    class_weights)


def regularization():
    losses = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES)
    return tf.add_n(losses) if losses else 0.0


def head(labels, logits, end_points, loss, images=None):
    predictions = tf.argmax(logits, 1)
    correct = tf.equal(predictions, labels)
    return Head(logits=logits, predictions=predictions, loss=loss, correct=correct,
                accuracy=tf.reduce_mean(tf.cast(correct, tf.float32)), end_points=end_points, images=images)


Share = collections.namedtuple("Share", "positions weight size")  # a tower's part of the batch


def _shares(labels, count):
    """Each tower's Share of the batch (None: the whole batch, unweighted, for one tower): the first towers take one image more when
    the tower count does not divide the batch (an epoch's last batch may be partial). An empty share
    (a batch smaller than the tower count) computes on one copied image weighted 0: TensorFlow's fused
    CPU convolution refuses an empty batch."""
    if count == 1:
        return [None]
    shares = []
    with tf.compat.v1.name_scope("tower_shares"):
        n = tf.shape(labels)[0]
        sizes = n // count + tf.cast(tf.range(count) < n % count, tf.int32)
        starts = tf.cumsum(sizes, exclusive=True)
        for i in range(count):
            positions = tf.range(tf.maximum(sizes[i], 1))
            weight = tf.cast(positions < sizes[i], tf.float32)
            shares.append(Share(tf.minimum(starts[i] + positions, n - 1), weight, sizes[i]))
    return shares


def training_towers(inputs, model, devices, smoothing=0.0, class_weights=None, mixed=False):
    """Tower i on devices[i] (a device named more than once runs one share of the batch after the
    other: --gradient_accumulation_steps); the variables live once, on /cpu:0. A tower's loss is its sum of
    cross-entropies over the *global* batch size, so the towers' gradients add up to exactly the
    gradient of the global batch's mean loss (each example's weighted by its class under
    `class_weights`); the weight decay is added once, to the first tower's
    loss, as slim's model_deploy does. `mixed`: the batch may be mixup's or cutmix's, each image
    with the reversed batch's (the loss weighs both labels by `inputs.mix_weight`). Returns the towers' Heads and their Head over the whole batch
    (the first tower's layers for the summaries)."""
    towers = []
    partners = tf.reverse(inputs.label, [0]) if mixed else None  # of the whole batch, before it is shared out
    for i, (device, share) in enumerate(zip(devices, _shares(inputs.label, len(devices)))):
        def placement(op, device=device):  # variables on the CPU, computations on the tower's device
            return "/cpu:0" if op.type in ("VariableV2", "VarHandleOp") else device

        with tf.compat.v1.device(placement), \
                tf.compat.v1.name_scope(TRAINING_SCOPE if i == 0 else f"{TRAINING_SCOPE}_{i}"), \
                tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(), reuse=i > 0):
            if share is None:  # the whole batch
                labels, images = inputs.label, inputs.model_input
                logits, end_points = model(images, is_training=True)
                mix = (inputs.mix_weight, partners) if mixed else None
                loss = tf.reduce_mean(training_losses(labels, logits, smoothing, class_weights, mix))
            else:
                total = tf.cast(tf.shape(inputs.label)[0], tf.float32)
                labels, images = tf.gather(inputs.label, share.positions), tf.gather(inputs.model_input, share.positions)
                logits, end_points = model(images, is_training=True)
                mix = (inputs.mix_weight, tf.gather(partners, share.positions)) if mixed else None
                losses = training_losses(labels, logits, smoothing, class_weights, mix)
                loss = tf.reduce_sum(losses * share.weight) / total
                logits, labels = logits[:share.size], labels[:share.size]
            if i == 0:
                loss = tf.add(loss, regularization())
            towers.append(head(labels, logits, end_points, loss, images))
    if len(towers) == 1:
        return towers, towers[0]
    with tf.compat.v1.device("/cpu:0"), tf.compat.v1.name_scope(f"{TRAINING_SCOPE}_all_towers"):
        correct = tf.concat([t.correct for t in towers], 0)
        whole = Head(logits=tf.concat([t.logits for t in towers], 0),
                     predictions=tf.concat([t.predictions for t in towers], 0),
                     loss=tf.add_n([t.loss for t in towers]), correct=correct,
                     accuracy=tf.reduce_mean(tf.cast(correct, tf.float32)), end_points=towers[0].end_points)
    return towers, whole


def inference_tower(inputs, model, tta="none"):
    """The tower evaluation and prediction use; its tensors get the names a user looks up (`logits`,
    `predictions`, `loss`, `accuracy`). With `tta="flip"` its logits are the log of the mean of the
    image's and its mirror's probabilities."""
    with tf.compat.v1.name_scope("inference"), \
            tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(), reuse=True):
        logits, end_points = model(inputs.model_input, is_training=False)
        if tta == "flip":
            mean = averaged_over_mirrors(tf.nn.softmax(logits), lambda x: model(x, is_training=False)[0],
                                         inputs.model_input, tta)
            logits = tf.math.log(tf.maximum(mean, 1e-30))
        tower = head(inputs.label, logits, end_points,
                     tf.add(tf.reduce_mean(cross_entropy(inputs.label, logits)), regularization()))
    return Head(logits=tf.identity(tower.logits, name="logits"),
                predictions=tf.identity(tower.predictions, name="predictions"),
                loss=tf.identity(tower.loss, name="loss"), correct=tower.correct,
                accuracy=tf.identity(tower.accuracy, name="accuracy"), end_points=end_points)
