"""A worker's session in a cluster: started, recovered after a lost peer, closed for the ps to exit."""
import threading
import time

import tensorflow as tf

from cnn_tf import checkpoints, exit_codes, log
from cnn_tf.distributed.description import lost_reason
from cnn_tf.distributed.ops import FINISHED, RUNNING, STOPPED, add_cluster_ops
from cnn_tf.distributed.runtime import PS_GRACE, _first_line, close_quietly, start_server, wait_for_listeners
from cnn_tf.errors import UserError

LIVE_STATE = "the variables on the ps tasks"  # what a chief restarted before any checkpoint resumes from
# What a lost or slow peer raises in a session: recovered by a new session.
RECOVERABLE = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError)
# What a step also raises right after a ps restarted (its variables uninitialized or gone, a run
# cancelled as its session reset): recovered only when the cluster shows that, else a bug, raised at once.
AFTER_A_RESTART = (tf.errors.FailedPreconditionError, tf.errors.NotFoundError, tf.errors.CancelledError)


def join(cluster, g, config):
    """A worker joins the cluster: its server started, the cluster's ops added to TrainGraph `g`.
    Returns (that graph, the ClusterSession the Trainer runs it in); what the train CLI calls for a
    worker, as run_ps for a ps."""
    server = start_server(cluster, config)
    return add_cluster_ops(g, cluster), ClusterSession(cluster, server, config)


class ClusterSession:
    """The training loop's session in a cluster (cnn_tf.loop.Trainer's `session`)."""

    def __init__(self, cluster, server, config):
        self.cluster, self.server, self.config = cluster, server, cluster.session_config(config)
        self.recoverable = RECOVERABLE + AFTER_A_RESTART  # what the loop hands to recover()
        self.run_options = self._short()
        self.aggregation = None
        self.stalls, self.stalled_at = 0, None
        self.lost = []  # workers the chief gave up on: it says they are done, for the ps to exit

    def _short(self, options_ms=None):
        return tf.compat.v1.RunOptions(timeout_in_ms=options_ms or int(self.cluster.worker_timeout * 1000))

    def create(self, trainer):
        """A session to the cluster, ready to train; returns (global step, the checkpoint restored)."""
        deadline = time.monotonic() + 3 * self.cluster.worker_timeout
        # A session's first run waits for every ps without any timeout (extending the graph to them):
        # nothing is asked of the cluster before each ps accepts connections.
        silent = wait_for_listeners(self.cluster.ps_hosts, deadline)
        if silent:
            raise UserError(f"{self.cluster.name()}: waited {3 * self.cluster.worker_timeout:g} s for the ps tasks; "
                            f"nothing listens at {', '.join(silent)}: is every process of the cluster running?")
        last_error = None
        while time.monotonic() < deadline:
            sess = None
            try:
                sess = tf.compat.v1.Session(self.server.target, graph=trainer.g.graph, config=self.config)
                trainer.sess = sess
                if self.cluster.is_chief:
                    return self._chief_start(trainer)
                return self._worker_start(trainer, deadline)
            except self.recoverable as e:
                if isinstance(e, AFTER_A_RESTART) and not self._cluster_was_reset(trainer):
                    raise
                last_error = e
                if sess is not None:
                    close_quietly(sess)
                time.sleep(1.0)
        who = "the ps tasks " + ",".join(self.cluster.ps_hosts) if self.cluster.is_chief else \
            f"the chief, {self.cluster.name(index=0)}, to initialize the variables"
        reason = (getattr(last_error, "message", "") or str(last_error)).splitlines()[0] if last_error else ""
        raise UserError(f"{self.cluster.name()}: waited {3 * self.cluster.worker_timeout:g} s for {who} "
                        f"({reason}); is every process of the cluster running?")

    def _chief_start(self, trainer):
        c, sess = trainer.g.cluster, trainer.sess
        live = len(sess.run(c.ready, options=self._short())) == 0
        if live and not (trainer.checkpoint_dir and checkpoints.latest(trainer.checkpoint_dir)):
            # A chief restarted before the first checkpoint: the ps tasks' variables are all there is.
            sess.run(trainer.g.saving.local_init_op, options=self._short())
            step, path = int(sess.run(trainer.g.global_step, options=self._short())), LIVE_STATE
        else:
            step, path = trainer.restore()  # the latest checkpoint, else fresh (or warm-started) weights
        sess.run(c.init, options=self._short())
        sess.run(c.local_init, options=self._short())
        if c.init_tokens is not None:
            sess.run(c.init_tokens, options=self._short())
        if c.sync_ops is not None:
            self._start_aggregation(sess, c.sync_ops)
        return step, path

    def _start_aggregation(self, sess, sync_ops):
        """The chief's aggregation of the workers' gradients (what SyncReplicasOptimizer's queue
        runner does), in a daemon thread of ours. Its runs have no timeout: one run takes the
        gradients of every variable, and a timeout striking between two of them would lose the
        first ones and deadlock every later update. Its session is closed in the background
        (close_quietly), so a run left waiting for a worker that is gone never holds up the chief."""
        stop = threading.Event()

        def aggregate():
            while not stop.is_set():
                try:
                    sess.run(sync_ops)
                except tf.errors.OpError:
                    return  # the training loop sees the same failure in its own step and recovers

        thread = threading.Thread(target=aggregate, name="sync_replicas", daemon=True)
        thread.start()
        self.aggregation = (stop, thread)

    def _worker_start(self, trainer, deadline):
        g, c, sess = trainer.g, trainer.g.cluster, trainer.sess
        while len(sess.run(c.ready, options=self._short())):  # until the chief has initialized
            if time.monotonic() > deadline:
                raise tf.errors.DeadlineExceededError(None, None, "the variables are not initialized")
            time.sleep(0.5)
        sess.run(g.saving.local_init_op, options=self._short())
        sess.run(c.local_init, options=self._short())
        return int(sess.run(g.global_step, options=self._short())), None

    def recover(self, trainer, error):
        """After a failed step: stop (a lost worker, the chief's end) or a new session; returns the
        global step to go on from, or None when the loop should stop."""
        c = trainer.g.cluster
        if isinstance(error, AFTER_A_RESTART) and not self._cluster_was_reset(trainer):
            raise error  # the variables are all there: not a peer's fault
        if isinstance(error, tf.errors.DeadlineExceededError):
            state = self._read(trainer, c.state)
            if state in (FINISHED, STOPPED) and not self.cluster.is_chief:
                trainer.request_stop("the chief ending the run", exit_codes.OK if state == FINISHED else exit_codes.RUN_STOPPED)
                return None
            if self.cluster.sync and self.cluster.is_chief and state == RUNNING:
                lost = self.lost = self._lost_workers(trainer)
                if lost:
                    trainer.request_stop(lost_reason(self.cluster, lost), exit_codes.RUN_STOPPED)
                    return None
            self.stalls = self.stalls + 1 if self.stalled_at == trainer.global_step else 1
            self.stalled_at = trainer.global_step
            if self.stalls > 3:
                raise UserError(f"{self.cluster.name()}: no step finished for {3 * self.cluster.worker_timeout:g} s "
                                f"(--worker_timeout) at global step {trainer.global_step}; is every process of the "
                                "cluster running?")
            if state == RUNNING and self.cluster.is_chief:
                return trainer.global_step  # a slow step: wait again
        log.info(f"{self.cluster.name()}: lost the cluster at global step {trainer.global_step} "
                 f"({type(error).__name__}: {_first_line(error)}); reconnecting")
        self._stop_aggregation()
        close_quietly(trainer.sess)
        step, path = self.create(trainer)
        if path:
            trainer.resumed_from = path
        return step

    def _cluster_was_reset(self, trainer):
        """Whether a ps lost its variables (restarted) or cannot be reached."""
        try:
            return len(trainer.sess.run(trainer.g.cluster.ready, options=self._short(5000))) > 0
        except tf.errors.OpError:
            return True

    def _read(self, trainer, tensor):
        try:
            return int(trainer.sess.run(tensor, options=self._short(5000)))
        except tf.errors.OpError:
            return None

    def _lost_workers(self, trainer):
        try:
            beats = trainer.sess.run(trainer.g.cluster.heartbeat, options=self._short(5000))
        except tf.errors.OpError:
            return []
        mine = beats[self.cluster.task_index]
        return [i for i, beat in enumerate(beats) if beat < mine]

    def close(self, trainer):
        """The run's end as every worker must tell it: the chief sets the cluster's state (the others
        then stop waiting for tokens), every worker enqueues its done token on every ps. Each is
        retried for up to --worker_timeout: a ps left without a token serves for good."""
        sess, c = trainer.sess, trainer.g.cluster
        deadline = time.monotonic() + self.cluster.worker_timeout
        if self.cluster.is_chief:
            self._until_done(sess, c.set_state, {c.new_state: FINISHED if trainer.state == "finished" else STOPPED},
                             deadline, "the run's end")
        for index in [self.cluster.task_index, *self.lost]:
            for ps, enqueue in enumerate(c.done):
                self._until_done(sess, enqueue, {c.done_index: index}, deadline,
                                 f"{self.cluster.name(index=index)}'s done token to {self.cluster.name('ps', ps)}")
        self._stop_aggregation()
        close_quietly(sess, wait=PS_GRACE)  # the ps tasks serve that long after the last token

    def _until_done(self, sess, op, feed, deadline, what):
        while True:
            try:
                sess.run(op, feed, options=self._short(5000))
                return
            except tf.errors.DeadlineExceededError as e:  # slow, not gone: again
                if time.monotonic() >= deadline:
                    log.warning(f"{self.cluster.name()}: could not give {what} ({_first_line(e)}); "
                                "a ps still running must be stopped by hand")
                    return
                time.sleep(0.5)
            except tf.errors.OpError:
                return  # a ps that is gone waits for nothing

    def _stop_aggregation(self):
        if self.aggregation is not None:
            self.aggregation[0].set()  # its pending run ends with its session
            self.aggregation = None
