"""The ops a cluster run adds to the graph: the run's state, heartbeats, done queues, sync tokens."""
import tensorflow as tf

from cnn_tf.distributed.runtime import _done_queue
from cnn_tf.graph.contract import ClusterOps

RUNNING, FINISHED, STOPPED = 0, 1, 2  # the run's state (cluster/state), as the chief sets it


def add_cluster_ops(g, cluster):
    """The TrainGraph `g` with the ops a cluster run needs on top of build_graph's (added before the
    graph is finalized) as its `cluster`."""
    with g.graph.as_default(), tf.compat.v1.device("/job:ps/task:0"):
        # Not global variables: never saved, never restored; the chief sets them at every start.
        state = tf.compat.v1.Variable(RUNNING, name="cluster/state", collections=[], trainable=False)
        heartbeat = tf.compat.v1.Variable(tf.fill([cluster.num_workers], tf.constant(-1, tf.int64)),
                                          name="cluster/heartbeat", collections=[], trainable=False)
        init = tf.group(state.initializer, heartbeat.initializer, name="cluster/init")
        new_state = tf.compat.v1.placeholder(tf.int32, [], "cluster/new_state")
        set_state = state.assign(new_state)
        # Empty once the chief has initialized or restored the variables (what the others wait for).
        ready = tf.compat.v1.report_uninitialized_variables(
            tf.compat.v1.global_variables() + [state, heartbeat], name="cluster/ready")
        getattr(ready, "mark_used", lambda: None)()  # a run that never starts must not log a page about it
    with g.graph.as_default(), tf.compat.v1.device(f"/job:worker/task:{cluster.task_index}"):
        # The worker computed this step's gradients at this global step: a worker that is gone
        # stops beating, one waiting for its sync token has beaten.
        with tf.control_dependencies(g.train_ops.gradients):
            step = tf.identity(g.global_step.read_value())
        beat = tf.compat.v1.scatter_update(heartbeat, [cluster.task_index], tf.reshape(step, [1]))
        with tf.control_dependencies([g.train_ops.train_op]):
            step_after_train = tf.identity(g.global_step.read_value(), name="cluster/global_step_after_train")
        done_index = tf.compat.v1.placeholder_with_default(cluster.task_index, [], "cluster/done_index")
        done = [_done_queue(i).enqueue(done_index) for i in range(len(cluster.ps_hosts))]
        local_init, init_tokens, sync_ops = _sync_ops(g.train_ops.sync_optimizer, cluster.is_chief)
    return g.with_cluster(ClusterOps(
        state=state, heartbeat=heartbeat, init=init, new_state=new_state, set_state=set_state, ready=ready,
        beat=beat, step_after_train=step_after_train, done_index=done_index, done=done, local_init=local_init,
        init_tokens=init_tokens, sync_ops=sync_ops))


def _sync_ops(opt, is_chief):
    """--sync_replicas' ops (local init, the chief's first tokens and queue-runner ops), or a no-op."""
    if opt is None:
        return tf.no_op(), None, None
    opt.ready_for_local_init_op.mark_used()  # ours is cluster/ready: it waits for cluster/state too
    if not is_chief:
        return opt.local_step_init_op, None, None
    # What the chief's QueueRunner would run: take the gradients, update, hand out tokens; the first
    # tokens at step 0, lockstep: no step ahead.
    return opt.chief_init_op, opt.get_init_tokens_op(0), opt.get_chief_queue_runner().enqueue_ops
