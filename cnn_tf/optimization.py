"""Where the graph learns: the learning rate (cnn_tf.schedules), the optimizer, and the train op's
gradients: after the batch-norm updates, summed over towers, clipped, with adamw's decoupled weight decay.
Built by cnn_tf.graph.builder."""
import tensorflow as tf

from cnn_tf import schedules
from cnn_tf.fine_tuning import under
from cnn_tf.graph.contract import TRAINING_SCOPE

UPDATE_OPS = tf.compat.v1.GraphKeys.UPDATE_OPS


def make_optimizer(cfg, learning_rate):
    if cfg.optimizer == "adam":
        return tf.compat.v1.train.AdamOptimizer(learning_rate)
    if cfg.optimizer == "adamw":  # the decoupled weight decay is applied by the train op (decay_weights)
        return tf.compat.v1.train.AdamOptimizer(learning_rate)
    if cfg.optimizer in ("momentum", "nesterov"):
        return tf.compat.v1.train.MomentumOptimizer(learning_rate, cfg.momentum,
                                                    use_nesterov=cfg.optimizer == "nesterov")
    if cfg.optimizer == "rmsprop":
        return tf.compat.v1.train.RMSPropOptimizer(learning_rate, momentum=cfg.momentum)
    if cfg.optimizer == "sgd":
        return tf.compat.v1.train.GradientDescentOptimizer(learning_rate)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def after_updates(pairs, trainable_scopes):
    """(gradient, variable) pairs whose gradients come after the batch-norm updates, so the train op
    runs them; not a control dependency around apply_gradients, which would also hold the ops a
    SyncReplicasOptimizer creates there for the chief's start (they must not need an input batch)."""
    updates = update_ops(trainable_scopes, TRAINING_SCOPE + "/")
    if not updates:
        return pairs
    with tf.control_dependencies(updates):
        return [(tf.identity(grad) if grad is not None else None, var) for grad, var in pairs]


def update_ops(trainable_scopes, scope):
    """The batch-norm updates of the first training tower (name scope `scope`), of the moving averages
    under --trainable_scopes: a frozen layer's statistics stay as they started, with its weights."""
    def trained(update):
        variable = update.op.inputs[0].op.name  # AssignVariableOp(handle, value)
        return not trainable_scopes or any(under(variable, s) for s in trainable_scopes)

    return [u for u in tf.compat.v1.get_collection(UPDATE_OPS, scope=scope) if trained(u)]


def scheduled_learning_rate(cfg, global_step, scale, num_train_examples, cluster=None):
    """The schedule's rate times the NaN rollback's `scale`. In a cluster with --sync_replicas, one
    update aggregates a step of every worker, so the schedule counts the cluster's global batches."""
    replicas = cluster.num_workers if cluster is not None and cluster.sync else 1
    return tf.multiply(schedules.learning_rate(cfg, global_step, num_train_examples, replicas), scale,
                       name="scaled_learning_rate")


def optimizer_for(cfg, learning_rate, precision, cluster=None):
    """Returns (optimizer, the SyncReplicasOptimizer under --sync_replicas or None, the variables it
    added: float16's dynamic loss scale)."""
    optimizer = make_optimizer(cfg, learning_rate)
    before = {v.op.name for v in tf.compat.v1.global_variables()}
    if precision == "mixed_float16":  # float16 gradients underflow without a loss scale
        optimizer = tf.compat.v1.mixed_precision.MixedPrecisionLossScaleOptimizer(optimizer, "dynamic")
    sync = None
    if cluster is not None and cluster.sync:
        optimizer = sync = tf.compat.v1.train.SyncReplicasOptimizer(
            optimizer, replicas_to_aggregate=cluster.num_workers, total_num_replicas=cluster.num_workers)
    # The dynamic loss scale's state: a checkpoint written in float32 (on a CPU, say, where
    # float16 falls back) lacks it, and a fresh scale is right for a run moving to a GPU.
    return optimizer, sync, tuple(v for v in tf.compat.v1.global_variables() if v.op.name not in before)


def decay_weights(pairs, learning_rate, cfg):
    """--optimizer=adamw's decoupled weight decay (Loshchilov & Hutter; PyTorch's AdamW convention):
    each weight (conv and fully connected kernels; not biases or batch norm) becomes
    w - learning_rate * weight_decay * w, from the weights the gradients were computed at, before Adam's
    own update, which the returned gradients wait for."""
    if cfg.optimizer != "adamw" or not cfg.weight_decay:
        return pairs
    grads = [grad for grad, _ in pairs if grad is not None]
    with tf.compat.v1.name_scope("decoupled_weight_decay"), tf.control_dependencies(grads):
        decays = [var.assign_sub(tf.cast(learning_rate * cfg.weight_decay, var.dtype.base_dtype) * var)
                  for grad, var in pairs if grad is not None and var.op.name.endswith("/weights")]
    if not decays:
        return pairs
    with tf.control_dependencies(decays):
        return [(tf.identity(grad) if grad is not None else None, var) for grad, var in pairs]


def clip_by_global_norm(pairs, clip_norm):
    """--clip_gradient_norm: the summed gradients scaled together so that their global norm is at most
    `clip_norm` (0: as they are)."""
    if not clip_norm:
        return pairs
    present = [(grad, var) for grad, var in pairs if grad is not None]
    with tf.compat.v1.name_scope("clip_gradient_norm"):
        clipped, _ = tf.clip_by_global_norm([grad for grad, _ in present], clip_norm)
    by_var = {var.op.name: grad for (_, var), grad in zip(present, clipped)}
    return [(by_var.get(var.op.name), var) for _, var in pairs]


def train_op_over_towers(towers, optimizer, devices, cfg, global_step, learning_rate, variables_to_train):
    """Each tower's gradients on its device, summed on /cpu:0 (one tower: its own), applied once;
    batch-norm moving averages are updated from the first tower's statistics only. Towers on the same
    device (--gradient_accumulation_steps) run one after the other: a share's forward pass waits for
    the gradients of the one before, so only one share's activations are held at a time. Returns the
    train op and the gradients it applies."""
    tower_grads = []
    with tf.compat.v1.name_scope("optimizer"):
        for i, (tower, device) in enumerate(zip(towers, devices)):
            if i and device == devices[i - 1]:
                # The gradient ops are built after every share's forward pass, so the order is added to the
                # share's first op now (a graph still open takes control inputs).
                tower.images.op._add_control_inputs([g.op for g, _ in tower_grads[-1] if g is not None])
            with tf.compat.v1.device(device):
                tower_grads.append(optimizer.compute_gradients(tower.loss, var_list=variables_to_train,
                                                               colocate_gradients_with_ops=True))
        with tf.compat.v1.device("/cpu:0"):
            with tf.compat.v1.name_scope("sum_tower_gradients"):
                summed = []
                for pairs in zip(*tower_grads):
                    grads = [grad for grad, _ in pairs if grad is not None]
                    summed.append((tf.add_n(grads) if grads else None, pairs[0][1]))  # one: itself
            summed = clip_by_global_norm(summed, cfg.clip_gradient_norm)
            summed = decay_weights(after_updates(summed, cfg.trainable_scopes), learning_rate, cfg)
    with tf.compat.v1.device("/cpu:0"):
        # Outside any name scope: Adam names its beta powers after the scope, and a checkpoint must
        # not depend on the tower count.
        train_op = optimizer.apply_gradients(summed, global_step, name="train_op")
    return train_op, [grad for grad, _ in summed if grad is not None]
