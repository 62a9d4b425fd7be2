"""What a built graph holds, by role: frozen records, so a reader sees every tensor and op the loop,
the callbacks, evaluation and checkpoints may use, and nothing is written onto a graph afterwards
(slim's model_deploy names its `Clone` and `DeployedModel` the same way).

    TrainGraph              build_graph's result
      inputs   Inputs       where the data enters: the pipeline and the named placeholders
      train    Head         the training towers' outputs (batch statistics, dropout), over the batch
      inference Head        the inference tower's (moving averages, no dropout): `logits:0`, ...
      train_ops TrainOps    the learning rate, the gradients and the train op
      evaluation EvalOps    whole-split totals, accumulated batch by batch
      rollback Rollback     --on_nan=rollback's state, saved with the checkpoints
      saving   Saving       savers, initializers, the all-finite check before a save
      summaries             {collection: merged summary op} for TRAIN, TEST, PER_EPOCH
      cluster  ClusterOps   what a ps/worker run adds (None in one process; see with_cluster)
"""
import dataclasses
import typing

TRAINING_SCOPE = "training"  # the first training tower's name scope: its batch-norm updates and summaries
TRAIN, TEST, PER_EPOCH = "train", "test", "per_epoch_train"  # summary collections

_record = dataclasses.dataclass(frozen=True)


@_record
class Inputs:
    pipeline: typing.Any  # the dataset's cnn_tf.data pipeline: in-graph batches for training
    image: typing.Any  # `image:0`, [N, H, W, C] float32 pixels in [0, 1]; the pipeline's by default
    label: typing.Any  # `label:0`, [N] int64
    mix_weight: typing.Any  # `mix_weight:0`, []: the training loss's weight of `label`; the reversed batch's
    # labels take the rest (mixup, cutmix: cnn_tf.data.mixing); 1 by default
    keep_prob: typing.Any  # `keep_prob:0`, dropout's keep probability (1 in evaluation)
    model_input: typing.Any  # the image after the run's normalization: what the model sees
    model_rates: dict  # a model's own rates as placeholders ({"keep_prob_conv": tensor}) evaluation may set


@_record
class Head:
    """What a tower computes for a batch: float32 logits, argmax predictions, the mean loss (smoothed
    for training, plus weight decay), the per-example `correct` and their mean, the layers' outputs."""
    logits: typing.Any
    predictions: typing.Any
    loss: typing.Any
    correct: typing.Any
    accuracy: typing.Any
    end_points: dict
    images: typing.Any = None  # a training tower's share of the batch, as its model takes it


@_record
class TrainOps:
    train_op: typing.Any  # one update: the towers' gradients summed and applied, the step advanced
    learning_rate: typing.Any  # the schedule's rate times the NaN rollback's scale
    gradients: list  # the summed gradients the train op applies (a cluster's heartbeat waits for them)
    variables_to_train: list  # under --trainable_scopes (all trainable ones by default)
    trainable_scopes: tuple
    sync_optimizer: typing.Any = None  # the SyncReplicasOptimizer under --sync_replicas
    loss_scale_variables: tuple = ()  # mixed_float16's dynamic loss scale (a checkpoint may lack them)


@_record
class EvalOps:
    update: typing.Any  # adds a batch to the totals
    reset: typing.Any  # zeroes them, before a pass
    metrics: dict  # count, loss, accuracy, confusion over the batches since the reset
    sparsity: dict  # each layer's mean fraction of zeros over those batches
    probabilities: typing.Any  # softmax of the inference logits


@_record
class Rollback:
    learning_rate_scale: typing.Any  # a factor on the learning rate, halved at each rollback
    count: typing.Any  # rollbacks made so far
    new_learning_rate_scale: typing.Any  # placeholders `set` assigns from
    new_count: typing.Any
    set: typing.Any


@_record
class Saving:
    saver: typing.Any  # every global variable, by name
    all_finite: typing.Any  # checked before every save: NaN weights must never become the latest
    init_op: typing.Any  # fresh weights (global and local variables)
    local_init_op: typing.Any  # after a restore: the local variables (evaluation totals)
    saver_without_loss_scale: typing.Any = None  # restores a float32 checkpoint into a float16 run
    init_loss_scale: typing.Any = None  # then starts its loss scale afresh


@_record
class ClusterOps:
    """The ops a ps/worker run adds (cnn_tf.distributed.ops): the run's state and heartbeats on the
    ps, this worker's beat, done tokens and --sync_replicas' queues."""
    state: typing.Any
    heartbeat: typing.Any
    init: typing.Any
    new_state: typing.Any
    set_state: typing.Any
    ready: typing.Any
    beat: typing.Any
    step_after_train: typing.Any
    done_index: typing.Any
    done: list
    local_init: typing.Any
    init_tokens: typing.Any
    sync_ops: typing.Any


@_record
class Averages:
    """--ema_decay's moving averages of the model's variables (cnn_tf.graph.averages)."""
    decay: float
    shadows: dict  # {variable name: its shadow variable}
    swap_in: typing.Any  # the averages into the model's variables, the weights kept aside (local variables)
    swap_out: typing.Any  # the weights back, bit for bit
    load: typing.Any  # the averages into the model's variables (a reader's graph, after a restore)


@_record
class Plateau:
    """--learning_rate_schedule=plateau's factor on the rate (cnn_tf.graph.state.plateau_state)."""
    learning_rate_scale: typing.Any
    new_learning_rate_scale: typing.Any  # the placeholder `set` assigns from
    set: typing.Any


@_record
class TrainGraph:
    graph: typing.Any  # the tf.Graph, not finalized: callbacks may still add ops
    global_step: typing.Any
    precision: str  # what the layers compute in (float32 where the hardware has no fast low precision)
    num_towers: int
    inputs: Inputs
    train: Head
    inference: Head
    train_ops: TrainOps
    evaluation: EvalOps
    rollback: Rollback
    saving: Saving
    summaries: dict
    model_variables: list  # the variables the model created: what a warm start may restore
    cluster: typing.Optional[ClusterOps] = None
    averages: typing.Optional[Averages] = None  # --ema_decay's; None when off
    plateau: typing.Optional[Plateau] = None  # --learning_rate_schedule=plateau's; None for the others

    def with_cluster(self, cluster_ops):
        return dataclasses.replace(self, cluster=cluster_ops)


@_record
class InferenceGraph:
    """The model for inference (cnn_tf.inference): from encoded files or uint8 arrays to classes."""
    graph: typing.Any
    class_names: list
    image_shape: tuple
    encoded: typing.Any  # tf.string [N] placeholder: PNG/JPEG/BMP/GIF bytes
    images: typing.Any  # uint8 [N, H, W, C] placeholder
    from_files: dict  # {probabilities, classes, class_names} of `encoded`
    from_arrays: dict  # the same of `images`
    variables: list
    saver: typing.Any
    averaged_saver: typing.Any  # restores each variable from its moving average (--ema_decay)
