"""Where the training graph is built: input, towers, loss, metrics, learning rate, train op, state,
summaries, the weights' moving averages, all in one explicit tf.Graph, returned as a TrainGraph (cnn_tf.graph.contract).

The model is built more than once on the same variables: the training towers (batch statistics,
dropout; one, or --num_towers on as many devices, each on its share of the batch) that the train op
and train summaries use, and an inference tower (moving averages, no dropout) for evaluation and
prediction. Tensors a user may look up by name after `import_meta_graph`: placeholders `image`,
`label`, `keep_prob` (with defaults: training pulls from the in-graph input pipeline, evaluation and
prediction feed them; `mix_weight`, mixup's share of `label` in the training loss), and the
inference tower's `logits`, `predictions`, `loss`, `accuracy`.
"""
import tensorflow as tf

from cnn_tf.data.pipeline import InputPipeline
from cnn_tf.data.preprocess import normalize
from cnn_tf.fine_tuning import variables_to_train
from cnn_tf.graph import state, towers
from cnn_tf.graph.averages import moving_averages
from cnn_tf.graph.contract import Inputs, TrainGraph, TrainOps
from cnn_tf.graph.hardware import check_devices, effective_precision
from cnn_tf.graph.model import model_fn, model_rate_placeholders
from cnn_tf.graph.summaries import add_summaries
from cnn_tf.optimization import optimizer_for, scheduled_learning_rate, train_op_over_towers


def build_graph_for(cfg, record, pipeline=InputPipeline, cluster=None, tta="none", class_weights=None):
    """The graph under run configuration `cfg` for the data the run manifest `record` (a
    cnn_tf.manifest.RunManifest) describes, entering through the dataset's `pipeline`."""
    return build_graph(cfg, tuple(record.image_shape), record.num_classes, record.size("train"),
                       pixel_mean=record.mean_to_subtract(), precision=effective_precision(cfg), cluster=cluster,
                       pipeline=pipeline, tta=tta, class_weights=class_weights)


def build_graph(cfg, image_shape, num_classes, num_train_examples, pixel_mean=None, precision=None, cluster=None,
                pipeline=InputPipeline, tta="none", class_weights=None):
    """Returns the TrainGraph; see the module docstring.

    `cfg`: a `cnn_tf.config.RunConfig`. `pixel_mean`: per-channel mean subtracted from `image:0`'s
    [0, 1] pixels (--normalization=mean). `precision` (default cfg.precision): float32, or mixed_bfloat16 /
    mixed_float16: the layers compute in the low precision from float32 master weights (each layer
    casts its weights to its input's dtype); logits, loss and softmax stay float32; float16 gets
    dynamic loss scaling. The graph is not finalized: the training loop's callbacks may add ops first.
    `cluster` (a cnn_tf.distributed.Cluster): this worker's graph, its variables on the ps tasks.
    `pipeline(image_shape)`: where the data enters (the dataset's own: arrays, or TFRecord shards).
    `tta="flip"`: the inference tower averages the probabilities of each image and its mirror.
    `class_weights`: one per class, weighting the training loss (cnn_tf.class_weights); evaluation's
    loss is the plain cross-entropy.
    """
    precision = precision or cfg.precision
    devices = check_devices(cfg)
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.device(cluster.device_setter() if cluster else None):
        # Each worker its own dropout masks (the seed is in their stateless seeds); only the chief's
        # initializers ever run.
        tf.compat.v1.set_random_seed(cfg.seed if not cluster else cfg.seed + 7919 * cluster.task_index)
        global_step = tf.compat.v1.train.get_or_create_global_step()
        inputs = _inputs(cfg, pipeline(image_shape), image_shape, pixel_mean)
        model = model_fn(cfg, num_classes, keep_prob=inputs.keep_prob, rates=inputs.model_rates, precision=precision)
        before_model = {v.op.name for v in tf.compat.v1.global_variables()}
        devices = devices * cfg.gradient_accumulation_steps  # one device: its shares one after the other
        mixed = cfg.mixup_alpha > 0 or cfg.cutmix_alpha > 0
        tower_heads, train = towers.training_towers(inputs, model, devices, cfg.label_smoothing, class_weights, mixed)
        with tf.compat.v1.device(devices[0]):
            inference = towers.inference_tower(inputs, model, tta)
        model_variables = [v for v in tf.compat.v1.global_variables() if v.op.name not in before_model]
        trained = variables_to_train(cfg, model_variables)
        with tf.compat.v1.device("/cpu:0"):
            rollback = state.rollback_state()
            plateau = state.plateau_state() if cfg.learning_rate_schedule == "plateau" else None
            scale = rollback.learning_rate_scale * plateau.learning_rate_scale if plateau else rollback.learning_rate_scale
            learning_rate = scheduled_learning_rate(cfg, global_step, scale, num_train_examples, cluster)
            optimizer, sync_optimizer, loss_scale_variables = optimizer_for(cfg, learning_rate, precision, cluster)
        train_op, gradients = train_op_over_towers(tower_heads, optimizer, devices, cfg, global_step, learning_rate,
                                                   trained)
        with tf.compat.v1.device("/cpu:0"):
            train_op, averages = moving_averages(cfg.ema_decay, model_variables, global_step, train_op)
        evaluation = state.eval_totals(inputs.label, inference, num_classes)
        summaries = add_summaries(train, evaluation, global_step, learning_rate, inputs.image, model_variables)
        saving = state.saving(cfg.max_num_checkpoint, loss_scale_variables)
    return TrainGraph(
        graph=graph, global_step=global_step, precision=precision, num_towers=cfg.num_towers, inputs=inputs,
        train=train, inference=inference, evaluation=evaluation, rollback=rollback, saving=saving,
        summaries=summaries, model_variables=model_variables, averages=averages, plateau=plateau,
        train_ops=TrainOps(train_op=train_op, learning_rate=learning_rate, gradients=gradients,
                           variables_to_train=trained, trainable_scopes=cfg.trainable_scopes,
                           sync_optimizer=sync_optimizer, loss_scale_variables=loss_scale_variables))


def _inputs(cfg, pipeline, image_shape, pixel_mean):
    """The named placeholders, defaulting to the pipeline's batch; image:0 takes [0, 1] pixels, and
    the normalization the run trained with happens after it."""
    image = tf.compat.v1.placeholder_with_default(pipeline.images, [None, *image_shape], "image")
    model_input = normalize(image, pixel_mean, cfg.normalization)
    label = tf.compat.v1.placeholder_with_default(pipeline.labels, [None], "label")
    mix_weight = tf.compat.v1.placeholder_with_default(pipeline.mix_weight, [], "mix_weight")
    keep_prob = tf.compat.v1.placeholder_with_default(float(cfg.keep_prob), [], "keep_prob")
    return Inputs(pipeline=pipeline, image=image, label=label, mix_weight=mix_weight, keep_prob=keep_prob,
                  model_input=model_input, model_rates=model_rate_placeholders(cfg))
