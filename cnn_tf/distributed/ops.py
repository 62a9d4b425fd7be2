"""The ops a cluster run adds to the graph: the run's state, heartbeats, done queues, sync tokens."""
import types

import tensorflow as tf

from cnn_tf.distributed.runtime import _done_queue

RUNNING, FINISHED, STOPPED = 0, 1, 2  # the run's state (cluster/state), as the chief sets it


def add_cluster_ops(g, cluster):
    """The ops a cluster run needs on top of build_graph's (before the graph is finalized)."""
    c = types.SimpleNamespace()
    with g.graph.as_default(), tf.compat.v1.device("/job:ps/task:0"):
        # Not global variables: never saved, never restored; the chief sets them at every start.
        c.state = tf.compat.v1.Variable(RUNNING, name="cluster/state", collections=[], trainable=False)
        c.heartbeat = tf.compat.v1.Variable(tf.fill([cluster.num_workers], tf.constant(-1, tf.int64)),
                                            name="cluster/heartbeat", collections=[], trainable=False)
        c.init = tf.group(c.state.initializer, c.heartbeat.initializer, name="cluster/init")
        c.new_state = tf.compat.v1.placeholder(tf.int32, [], "cluster/new_state")
        c.set_state = c.state.assign(c.new_state)
        # Empty once the chief has initialized or restored the variables (what the others wait for).
        c.ready = tf.compat.v1.report_uninitialized_variables(
            tf.compat.v1.global_variables() + [c.state, c.heartbeat], name="cluster/ready")
        getattr(c.ready, "mark_used", lambda: None)()  # a run that never starts must not log a page about it
    with g.graph.as_default(), tf.compat.v1.device(f"/job:worker/task:{cluster.task_index}"):
        # The worker computed this step's gradients at this global step: a worker that is gone
        # stops beating, one waiting for its sync token has beaten.
        with tf.control_dependencies(g.gradients):
            step = tf.identity(g.global_step.read_value())
        c.beat = tf.compat.v1.scatter_update(c.heartbeat, [cluster.task_index], tf.reshape(step, [1]))
        with tf.control_dependencies([g.train_op]):
            c.step_after_train = tf.identity(g.global_step.read_value(), name="cluster/global_step_after_train")
        c.done_index = tf.compat.v1.placeholder_with_default(cluster.task_index, [], "cluster/done_index")
        c.done = [_done_queue(i).enqueue(c.done_index) for i in range(len(cluster.ps_hosts))]
        if g.sync_optimizer is not None:
            opt = g.sync_optimizer
            opt.ready_for_local_init_op.mark_used()  # ours is c.ready: it waits for c.state too
            c.local_init = opt.chief_init_op if cluster.is_chief else opt.local_step_init_op
            c.init_tokens = opt.get_init_tokens_op(0) if cluster.is_chief else None  # lockstep: no step ahead
            # What the chief's QueueRunner would run: take the gradients, update, hand out tokens.
            c.sync_ops = opt.get_chief_queue_runner().enqueue_ops if cluster.is_chief else None
        else:
            c.local_init, c.init_tokens, c.sync_ops = tf.no_op(), None, None
    g.cluster = c
    return c
