"""Where the graph is built: input, model, loss, metrics, learning rate, train op, summaries.

Everything lives in one explicit tf.Graph, with the model built more than once on the same
variables: training towers (batch statistics, dropout; one, or --num_towers on as many devices, each
on its share of the batch) that the train op and train summaries use, and an inference tower (moving
averages, no dropout) for evaluation and prediction. Tensors a user may
look up by name after `import_meta_graph`: placeholders `image`, `label`, `keep_prob` (with
defaults: training pulls from the in-graph input pipeline, evaluation and prediction feed them),
and the inference tower's `logits`, `predictions`, `loss`, `accuracy`.
"""
import types

import tensorflow as tf

from cnn_tf import log
from cnn_tf.data.pipeline import InputPipeline
from cnn_tf.data.preprocess import normalize
from cnn_tf.errors import UserError
from cnn_tf.config import tower_devices
from cnn_tf.fine_tuning import variables_to_train
from cnn_tf.inference import averaged_over_mirrors
from cnn_tf.optimization import after_updates, optimizer_for, decay_weights, train_op_over_towers
from cnn_tf.nets import get_network_fn, model_options
from cnn_tf.nets.layers import PRE_ACTIVATIONS, InputSizeError
from cnn_tf.visuals import filter_grid

TRAIN, TEST, PER_EPOCH = "train", "test", "per_epoch_train"  # summary collections


def check_devices(cfg):
    """The towers' devices; with --device=gpu on a machine with fewer GPUs than towers, a warning naming
    where soft placement runs them (or, without soft placement, an error)."""
    devices = tower_devices(cfg)
    if cfg.device != "gpu":
        return devices
    gpus = len(tf.config.list_physical_devices("GPU"))
    if gpus >= cfg.num_towers:
        return devices
    if not cfg.allow_soft_placement:
        raise UserError(f"--device=gpu --num_towers={cfg.num_towers} needs {cfg.num_towers} GPU(s), this machine has "
                        f"{gpus}; pass --allow_soft_placement, fewer --num_towers or --device=cpu")
    missing = ", ".join(devices[gpus:])
    where = "/cpu:0" if gpus == 0 else "/gpu:0 or /cpu:0"
    log.warning(f"--device=gpu: this machine has {gpus} GPU(s); soft placement runs {missing} on {where}")
    return devices


def _scalar(tag, value, collection):
    # Raw summary ops take the tag as given; tf.summary.scalar would uniquify a second "loss"
    # into "loss_1", and TensorBoard could not lay train and test curves over each other.
    tf.compat.v1.add_to_collection(collection, tf.raw_ops.ScalarSummary(tags=tag, values=value))


COMPUTE_DTYPES = {"float32": tf.float32, "mixed_bfloat16": tf.bfloat16, "mixed_float16": tf.float16}


def cpu_has_bfloat16():
    """AVX512_BF16 or AMX: the CPU instructions that make bfloat16 faster than float32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def effective_precision(cfg):
    """--precision where the hardware runs it fast; else float32, with a warning saying why."""
    if cfg.precision == "float32":
        return "float32"
    has_gpu = cfg.device == "gpu" and bool(tf.config.list_physical_devices("GPU"))
    if has_gpu or (cfg.precision == "mixed_bfloat16" and cpu_has_bfloat16()):
        return cfg.precision
    need = "a GPU" if cfg.precision == "mixed_float16" else "a CPU with AVX512_BF16 or AMX, or a GPU"
    log.warning(f"--precision={cfg.precision} needs {need} (--device={cfg.device} here has none); "
                "computing in float32")
    return "float32"


def build_graph_for(cfg, record, pipeline=InputPipeline, cluster=None, tta="none"):
    """The graph under run configuration `cfg` for the data the run manifest `record` (a
    cnn_tf.manifest.RunManifest) describes, entering through the dataset's `pipeline`."""
    return build_graph(cfg, tuple(record.image_shape), record.num_classes, record.size("train"),
                       pixel_mean=record.mean_to_subtract(), precision=effective_precision(cfg), cluster=cluster,
                       pipeline=pipeline, tta=tta)


def build_graph(cfg, image_shape, num_classes, num_train_examples, pixel_mean=None, precision=None, cluster=None,
                pipeline=InputPipeline, tta="none"):
    """Returns a namespace of the graph and its named tensors and ops; see the module docstring.

    `cfg`: a `cnn_tf.config.RunConfig`. `pixel_mean`: per-channel mean subtracted from `image:0`'s
    [0, 1] pixels (--normalization=mean). `precision` (default cfg.precision): float32, or mixed_bfloat16 /
    mixed_float16: the layers compute in the low precision from float32 master weights (each layer
    casts its weights to its input's dtype); logits, loss and softmax stay float32; float16 gets
    dynamic loss scaling. The graph is not finalized: the training loop's callbacks may add ops first.
    `cluster` (a cnn_tf.distributed.Cluster): this worker's graph, its variables on the ps tasks.
    `pipeline(image_shape)`: where the data enters (the dataset's own: arrays, or TFRecord shards).
    `tta="flip"`: the inference tower averages the probabilities of each image and its mirror.
    """
    precision = precision or cfg.precision
    devices = check_devices(cfg)
    graph = tf.Graph()
    g = types.SimpleNamespace(graph=graph, num_towers=cfg.num_towers, precision=precision, sync_optimizer=None)
    placement = cluster.device_setter() if cluster else None
    with graph.as_default(), tf.compat.v1.device(placement):
        # Each worker its own dropout masks (the seed is in their stateless seeds); only the chief's
        # initializers ever run.
        tf.compat.v1.set_random_seed(cfg.seed if not cluster else cfg.seed + 7919 * cluster.task_index)
        g.global_step = tf.compat.v1.train.get_or_create_global_step()
        g.pipeline = pipeline(image_shape)
        # image:0 takes [0, 1] pixels; the normalization the run trained with happens after it.
        g.image = tf.compat.v1.placeholder_with_default(g.pipeline.images, [None, *image_shape], "image")
        g.model_input = normalize(g.image, pixel_mean)
        g.label = tf.compat.v1.placeholder_with_default(g.pipeline.labels, [None], "label")
        g.keep_prob = tf.compat.v1.placeholder_with_default(float(cfg.keep_prob), [], "keep_prob")
        # A model's own options: a rate (four_conv's keep_prob_conv) is a placeholder evaluation can
        # change; a size (resnet's depth and width) fixes the variables.
        options = {name: getattr(cfg, name) if isinstance(getattr(cfg, name), int)
                   else tf.compat.v1.placeholder_with_default(float(getattr(cfg, name)), [], name)
                   for name in model_options(cfg.model)}
        # adamw decays the weights in the train op (decay_weights), not through the loss.
        network_fn = get_network_fn(cfg.model, num_classes, weight_decay=0.0 if cfg.optimizer == "adamw" else
                                    cfg.weight_decay,
                                    use_batch_norm=cfg.batch_norm, weights_initializer=cfg.weights_initializer,
                                    init_stddev=cfg.init_stddev, **options)

        before_model = {v.op.name for v in tf.compat.v1.global_variables()}

        def model(images, is_training):
            try:
                logits, end_points = network_fn(tf.cast(images, COMPUTE_DTYPES[precision]), is_training=is_training,
                                                keep_prob=g.keep_prob)
            except InputSizeError as e:
                raise UserError(f"--model={cfg.model}: {e}") from e
            return tf.cast(logits, tf.float32), end_points  # logits: float32 whatever the compute precision

        # The model twice on the same variables, as tensorpack builds it: training towers (batch
        # statistics, dropout) and an inference tower (moving averages, no dropout), each a plain graph
        # with Python booleans. A tf.cond on an is_training tensor in every layer kept Grappler from
        # fusing batch norm with its ReLU and put control flow into every step's gradients.
        if cfg.num_towers == 1:
            with tf.compat.v1.device(devices[0]):
                with tf.compat.v1.name_scope("training"):
                    g.train = _head(g.label, *model(g.model_input, is_training=True), smoothing=cfg.label_smoothing)
                g.inference = _inference_tower(g, model, tta)
                _choose_variables(g, cfg, before_model)
                _add_nan_rollback(g)
                optimizer, g.loss_scale_variables = optimizer_for(g, cfg, num_train_examples, precision, cluster)
                with tf.compat.v1.name_scope("optimizer"):
                    pairs = after_updates(optimizer.compute_gradients(g.train.loss, var_list=g.variables_to_train),
                                           g)
                    pairs = decay_weights(pairs, g, cfg)
                g.gradients = [grad for grad, _ in pairs if grad is not None]
                g.train_op = optimizer.apply_gradients(pairs, g.global_step, name="train_op")
        else:
            towers = _training_towers(g, model, devices, cfg.label_smoothing)
            with tf.compat.v1.device(devices[0]):
                g.inference = _inference_tower(g, model, tta)
            _choose_variables(g, cfg, before_model)
            with tf.compat.v1.device("/cpu:0"):
                _add_nan_rollback(g)
                optimizer, g.loss_scale_variables = optimizer_for(g, cfg, num_train_examples, precision, cluster)
            g.train_op = train_op_over_towers(g, towers, optimizer, devices, cfg)

        _add_eval_totals(g, g.inference.correct, num_classes)
        _add_summaries(g)
        # Checked before every save: a checkpoint of NaN weights must never become the latest.
        with tf.compat.v1.name_scope("nan_guard"):
            g.all_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in tf.compat.v1.global_variables()
                                          if v.dtype.base_dtype.is_floating], name="all_finite")
        g.saver = tf.compat.v1.train.Saver(max_to_keep=cfg.max_num_checkpoint, save_relative_paths=True)
        if g.loss_scale_variables:  # restores a checkpoint without them; they start afresh
            loss_scale = {v.op.name for v in g.loss_scale_variables}  # by name: `in` would compare tensors
            g.saver_without_loss_scale = tf.compat.v1.train.Saver(
                [v for v in tf.compat.v1.global_variables() if v.op.name not in loss_scale])
            g.init_loss_scale = tf.compat.v1.variables_initializer(g.loss_scale_variables)
        with tf.compat.v1.name_scope("initialization"):
            g.local_init_op = tf.compat.v1.local_variables_initializer()
            g.init_op = tf.group(tf.compat.v1.global_variables_initializer(), g.local_init_op, name="init")
    return g


def _inference_tower(g, model, tta="none"):
    """The tower evaluation and prediction use; its tensors get the names a user looks up. With
    `tta="flip"` its logits are the log of the mean of the image's and its mirror's probabilities."""
    with tf.compat.v1.name_scope("inference"), \
            tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(), reuse=True):
        logits, end_points = model(g.model_input, is_training=False)
        if tta == "flip":
            mean = averaged_over_mirrors(tf.nn.softmax(logits), lambda x: model(x, is_training=False)[0],
                                         g.model_input, tta)
            logits = tf.math.log(tf.maximum(mean, 1e-30))
        inference = _head(g.label, logits, end_points)
    g.logits, g.predictions, g.loss, g.accuracy, g.end_points = (
        tf.identity(inference.logits, name="logits"), tf.identity(inference.predictions, name="predictions"),
        tf.identity(inference.loss, name="loss"), tf.identity(inference.accuracy, name="accuracy"),
        inference.end_points)
    return inference


def _choose_variables(g, cfg, before_model):
    """g.model_variables: those the model created (what a warm start may restore); g.variables_to_train:
    the trainable ones under --trainable_scopes (all by default)."""
    g.model_variables = [v for v in tf.compat.v1.global_variables() if v.op.name not in before_model]
    g.trainable_scopes = cfg.trainable_scopes
    g.variables_to_train = variables_to_train(cfg, g.model_variables)


def _training_towers(g, model, devices, smoothing=0.0):
    """Tower i on devices[i] takes its share of the global batch (the first ones one more image when
    it does not divide: the last batch of an epoch may be partial); the variables live once, on
    /cpu:0. A tower's loss is its sum of cross-entropies over the *global* batch size, so the towers'
    gradients add up to exactly the gradient of the global batch's mean loss; the weight decay is
    added once, to the first tower's loss, as slim's model_deploy does. A tower whose share is empty
    (a last batch smaller than the tower count) computes on one copied image weighted 0: TensorFlow's
    fused CPU convolution refuses an empty batch."""
    count = len(devices)
    with tf.compat.v1.name_scope("tower_shares"):
        n = tf.shape(g.label)[0]
        sizes = n // count + tf.cast(tf.range(count) < n % count, tf.int32)
        starts = tf.cumsum(sizes, exclusive=True)
        total = tf.cast(n, tf.float32)
    towers = []
    for i, device in enumerate(devices):
        def placement(op, device=device):  # variables on the CPU, computations on the tower's device
            return "/cpu:0" if op.type in ("VariableV2", "VarHandleOp") else device

        with tf.compat.v1.device(placement), tf.compat.v1.name_scope("training" if i == 0 else f"training_{i}"), \
                tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(), reuse=i > 0):
            positions = tf.range(tf.maximum(sizes[i], 1))
            share = tf.minimum(starts[i] + positions, n - 1)
            weight = tf.cast(positions < sizes[i], tf.float32)
            labels = tf.gather(g.label, share)
            logits, end_points = model(tf.gather(g.model_input, share), is_training=True)
            loss = tf.reduce_sum(cross_entropy(labels, logits, smoothing) * weight) / total
            if i == 0:
                loss += _regularization()
            correct = tf.equal(tf.argmax(logits, 1), labels)[:sizes[i]]
            towers.append(types.SimpleNamespace(loss=loss, logits=logits[:sizes[i]], correct=correct,
                                                end_points=end_points))
    with tf.compat.v1.device("/cpu:0"), tf.compat.v1.name_scope("training_all_towers"):
        correct = tf.concat([t.correct for t in towers], 0)
        g.train = types.SimpleNamespace(
            loss=tf.add_n([t.loss for t in towers]), logits=tf.concat([t.logits for t in towers], 0),
            correct=correct, accuracy=tf.reduce_mean(tf.cast(correct, tf.float32)),
            end_points=towers[0].end_points)  # summaries of the first tower's layers
    return towers


def _regularization():
    regularization = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.REGULARIZATION_LOSSES)
    return tf.add_n(regularization) if regularization else 0.0


def cross_entropy(labels, logits, smoothing=0.0):
    """Per example: the cross-entropy against the targets (1 - smoothing) on the label plus smoothing
    spread evenly over the K classes, i.e. (1 - s) * CE + s * mean_k(-log p_k)."""
    # Softmax and log in one op: stable where the tutorial's log(softmax) went to inf.
    plain = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if not smoothing:
        return plain
    uniform = -tf.reduce_mean(tf.nn.log_softmax(logits), axis=1)
    return (1.0 - smoothing) * plain + smoothing * uniform


def _head(labels, logits, end_points, smoothing=0.0):
    """A tower's predictions, loss (mean cross-entropy, smoothed for training, plus weight decay)
    and accuracy."""
    predictions = tf.argmax(logits, 1)
    loss = tf.add(tf.reduce_mean(cross_entropy(labels, logits, smoothing)), _regularization())
    correct = tf.equal(predictions, labels)
    accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))
    return types.SimpleNamespace(logits=logits, predictions=predictions, loss=loss, correct=correct,
                                 accuracy=accuracy, end_points=end_points)


def _add_nan_rollback(g):
    """--on_nan=rollback's state, saved with the checkpoints so a restart keeps it: a factor on the
    learning rate, and how many rollbacks were made."""
    def state(name, dtype, initial):
        return tf.compat.v1.get_variable(name, [], dtype, tf.constant_initializer(initial), trainable=False)

    with tf.compat.v1.variable_scope("nan_rollback"):
        g.learning_rate_scale = state("learning_rate_scale", tf.float32, 1.0)
        g.nan_rollbacks = state("count", tf.int64, 0)
        g.new_learning_rate_scale = tf.compat.v1.placeholder(tf.float32, [], "new_learning_rate_scale")
        g.new_nan_rollbacks = tf.compat.v1.placeholder(tf.int64, [], "new_count")
        g.set_rollback_state = tf.group(g.learning_rate_scale.assign(g.new_learning_rate_scale),
                                        g.nan_rollbacks.assign(g.new_nan_rollbacks), name="set")


def _add_eval_totals(g, correct, num_classes):
    """Totals over a whole split, accumulated batch by batch in local variables, so an evaluation
    counts every image exactly once whatever the batch size."""

    def total(name, shape=(), dtype=tf.float64):
        return tf.compat.v1.get_variable(name, shape, dtype, tf.zeros_initializer(), trainable=False,
                                         collections=[tf.compat.v1.GraphKeys.LOCAL_VARIABLES])

    with tf.compat.v1.variable_scope("evaluation"):
        g.probabilities = tf.nn.softmax(g.logits, name="probabilities")
        n = tf.cast(tf.shape(g.label)[0], tf.float64)
        count, loss_sum, correct_sum = total("count"), total("loss_sum"), total("correct_sum")
        confusion = total("confusion", (num_classes, num_classes), tf.int64)
        sparsity = {name: total("sparsity/" + name) for name in g.end_points}
        updates = [
            count.assign_add(n),
            loss_sum.assign_add(tf.cast(g.loss, tf.float64) * n),
            correct_sum.assign_add(tf.reduce_sum(tf.cast(correct, tf.float64))),
            confusion.assign_add(tf.math.confusion_matrix(g.label, g.predictions, num_classes, dtype=tf.int64)),
        ] + [sparsity[name].assign_add(tf.cast(tf.nn.zero_fraction(x), tf.float64) * n)
             for name, x in g.end_points.items()]
        g.eval_update = tf.group(*updates, name="update")
        g.eval_reset = tf.compat.v1.variables_initializer(
            [count, loss_sum, correct_sum, confusion, *sparsity.values()], name="reset")
        safe_count = tf.maximum(count, 1.0)
        g.eval_metrics = {
            "count": count,
            "loss": tf.cast(loss_sum / safe_count, tf.float32),
            "accuracy": tf.cast(correct_sum / safe_count, tf.float32),
            "confusion": confusion,
        }
        g.eval_sparsity = {name: tf.cast(s / safe_count, tf.float32) for name, s in sparsity.items()}


HISTOGRAM_SAMPLE = 1 << 16  # values a histogram summarizes at most


def _histogram(tag, x):
    """A histogram of `x`, or of HISTOGRAM_SAMPLE of its values evenly strided: a distribution needs
    no more, and the summary op, run in the epoch's last training step, costs in proportion (a
    first conv layer's activations over a batch are millions of values)."""
    flat = tf.reshape(tf.cast(x, tf.float32), [-1])
    if x.shape.num_elements() is None or x.shape.num_elements() > HISTOGRAM_SAMPLE:
        stride = tf.maximum(1, tf.size(flat) // HISTOGRAM_SAMPLE)
        flat = flat[::stride]
    return tf.raw_ops.HistogramSummary(tag=tag, values=flat)


def _add_summaries(g):
    """Three collections, as in the tutorial: `train` every few steps, `test` after each
    evaluation pass (from the totals), `per_epoch_train` (histograms, images) once an epoch."""
    with tf.compat.v1.name_scope("summaries"):
        for tag, value in (("loss", g.train.loss), ("accuracy", g.train.accuracy),
                           ("global_step", tf.cast(g.global_step, tf.float32)),
                           ("learning_rate", g.learning_rate)):
            _scalar(tag, value, TRAIN)
        _scalar("loss", g.eval_metrics["loss"], TEST)
        _scalar("accuracy", g.eval_metrics["accuracy"], TEST)
        for name, x in g.train.end_points.items():  # the training tower's: they ride on a train step
            _scalar("sparsity/" + name, tf.nn.zero_fraction(x), TRAIN)
            _scalar("sparsity/" + name, g.eval_sparsity[name], TEST)
            tf.compat.v1.add_to_collection(
                PER_EPOCH, _histogram("activations/" + name, x))
        # The training batch as the model sees it (after augmentation), and the views the tutorials
        # drew by hand: the first conv layer's filters, each layer's weights, biases and
        # pre-activations, and the logits.
        per_epoch = [tf.raw_ops.ImageSummary(tag="images", tensor=g.image[:3], max_images=3)]
        filters = [v for v in g.model_variables if v.shape.rank == 4 and v.op.name.endswith("/weights")]
        if filters:
            per_epoch.append(tf.raw_ops.ImageSummary(tag="filters/" + filters[0].op.name,
                                                     tensor=filter_grid(filters[0]), max_images=1))
        for v in g.model_variables:
            if v in tf.compat.v1.trainable_variables():
                per_epoch.append(_histogram("parameters/" + v.op.name, v))
        for x in tf.compat.v1.get_collection(PRE_ACTIVATIONS):
            if x.op.name.startswith("training/"):  # the first tower's, as the other views
                # The layer's scope: training/<net>/<layer>[/<repeated layer>][/BatchNorm]/<op>.
                layer = x.op.name.split("/")[1:-1]
                layer = layer[:-1] if layer[-1] == "BatchNorm" else layer
                per_epoch.append(_histogram("pre_activations/" + "/".join(layer), x))
        per_epoch.append(_histogram("logits", g.train.logits))
        for summary in per_epoch:
            tf.compat.v1.add_to_collection(PER_EPOCH, summary)
        g.summaries = {key: tf.compat.v1.summary.merge(tf.compat.v1.get_collection(key), name=key)
                       for key in (TRAIN, TEST, PER_EPOCH)}
