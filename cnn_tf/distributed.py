"""Training on several processes through TensorFlow's own runtime: gRPC servers, parameter servers
(ps) holding the variables, workers each building the whole graph (between-graph replication), as
TF-Slim's train_image_classifier.py did, and past the walls its users hit.

    Cluster             who is who: --job_name/--task_index/--ps_hosts/--worker_hosts or TF_CONFIG
    run_ps              a ps: serves its variables until every worker says it is done, then exits 0
    ClusterSession      a worker's session: the chief (worker 0) initializes or restores the
                        variables, the others wait for it; a lost ps or worker is recovered
                        from, every wait is bounded by --worker_timeout
    add_cluster_ops     the graph's part of it: sync tokens, heartbeats, the run's state, done queues

Recovery: a worker whose step fails (a ps or the chief gone, a timeout) creates a new session.
The chief's new session restores the latest checkpoint, over the variables a ps kept or into a
restarted one, and sets SyncReplicasOptimizer's accumulators to its step (a chief gone before its
first checkpoint carries on from the variables on the ps tasks). The other workers wait until the
variables are ready again and carry on from the global step they find.
"""
import dataclasses
import json
import os
import socket
import threading
import time
import types

import tensorflow as tf

from cnn_tf import checkpoints, errors, exit_codes, log
from cnn_tf.callbacks.heartbeat import lost_reason
from cnn_tf.errors import UserError

PS_GRACE = 5.0  # seconds a ps serves on after the last done token
LIVE_STATE = "the variables on the ps tasks"  # what a chief restarted before any checkpoint resumes from
RUNNING, FINISHED, STOPPED = 0, 1, 2
# What a lost or slow peer raises in a session: recovered by a new session.
RECOVERABLE = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError)
# What a step also raises right after a ps restarted (its variables uninitialized or gone, a run
# cancelled as its session reset): recovered only when the cluster shows that, else a bug, raised at once.
AFTER_A_RESTART = (tf.errors.FailedPreconditionError, tf.errors.NotFoundError, tf.errors.CancelledError)


def _hosts(value, name):
    hosts = [h.strip() for h in value if h.strip()]
    for host in hosts:
        address, _, port = host.rpartition(":")
        if not address or not port.isdigit() or not 0 < int(port) < 65536:
            raise UserError(f"{name}: {host!r} is not host:port (e.g. 127.0.0.1:2222)")
    if len(set(hosts)) != len(hosts):
        raise UserError(f"{name}: an address is listed twice ({','.join(hosts)})")
    return tuple(hosts)


@dataclasses.dataclass(frozen=True)
class Cluster:
    job_name: str
    task_index: int
    ps_hosts: tuple
    worker_hosts: tuple
    sync: bool = False
    worker_timeout: float = 60.0

    @property
    def num_workers(self):
        return len(self.worker_hosts)

    @property
    def is_chief(self):
        return self.job_name == "worker" and self.task_index == 0

    @property
    def address(self):
        return (self.ps_hosts if self.job_name == "ps" else self.worker_hosts)[self.task_index]

    def name(self, job="worker", index=None):
        index = self.task_index if index is None else index
        return f"{job} {index} ({(self.ps_hosts if job == 'ps' else self.worker_hosts)[index]})"

    def spec(self):
        """The cluster as this process's server knows it: a worker knows the ps tasks and itself only
        (workers never talk to each other), so nothing it does waits for a worker that is gone."""
        if self.job_name == "ps":
            return tf.train.ClusterSpec({"ps": list(self.ps_hosts), "worker": list(self.worker_hosts)})
        return tf.train.ClusterSpec({"ps": list(self.ps_hosts), "worker": {self.task_index: self.address}})

    def device_setter(self):
        """Variables round-robin over the ps tasks, everything else on this worker."""
        return tf.compat.v1.train.replica_device_setter(
            ps_tasks=len(self.ps_hosts), worker_device=f"/job:worker/task:{self.task_index}", cluster=self.spec())

    def session_config(self, config):
        """`config` (a ConfigProto) seeing only the ps tasks and this worker: workers never wait for
        each other's devices, at start or at shutdown."""
        config = tf.compat.v1.ConfigProto.FromString(config.SerializeToString())
        config.device_filters[:] = ["/job:ps", f"/job:{self.job_name}/task:{self.task_index}"]
        return config


def _from_tf_config(environ):
    """(job_name, task_index, ps_hosts, worker_hosts, whether TF_CONFIG is set) from TF_CONFIG; a "chief"
    job is worker 0."""
    text = environ.get("TF_CONFIG")
    if not text:
        return None, None, None, None, False
    try:
        tf_config = json.loads(text)
        cluster, task = tf_config.get("cluster", {}), tf_config.get("task", {})
        kind, index = task.get("type"), int(task.get("index", 0))
        chief, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
    except (ValueError, AttributeError, TypeError) as e:
        raise UserError(f"TF_CONFIG is not a JSON object like {{\"cluster\": {{\"ps\": [...], \"worker\": [...]}}, "
                        f"\"task\": {{\"type\": \"worker\", \"index\": 0}}}} ({e})") from e
    for job in ("ps", "chief", "worker"):  # TensorFlow's own form: each job a list of "host:port" strings
        hosts = cluster.get(job)
        if hosts is not None and (not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts)):
            raise UserError(f"TF_CONFIG: cluster.{job} must be a list of \"host:port\" strings, e.g. "
                            f"[\"127.0.0.1:2222\"] (got {json.dumps(hosts)})")
    if kind not in (None, "ps", "worker", "chief"):
        raise UserError(f"TF_CONFIG: task type {kind!r} is not one cnn_tf runs (ps, worker, chief)")
    if kind == "chief":
        kind, index = "worker", 0
    elif kind == "worker" and chief:
        index += len(chief)
    return kind, index, cluster.get("ps"), chief + workers or None, True


def cluster_from(cfg, environ=os.environ):
    """The Cluster of this process (flags win over TF_CONFIG), or None for a single process."""
    job, index, ps, workers, from_env = _from_tf_config(environ)
    job = cfg.job_name or job
    index = cfg.task_index if cfg.task_index is not None else index
    where = {name: f"--{name}" if getattr(cfg, name) or not from_env else f"TF_CONFIG's cluster ({name})"
             for name in ("ps_hosts", "worker_hosts")}
    ps = cfg.ps_hosts if cfg.ps_hosts else ps
    workers = cfg.worker_hosts if cfg.worker_hosts else workers
    if not (job or ps or workers):
        if cfg.sync_replicas:
            raise UserError("--sync_replicas needs a cluster: --job_name, --task_index, --ps_hosts and "
                            "--worker_hosts (or TF_CONFIG); `python -m cnn_tf.cluster` starts one on this machine")
        return None
    if not job:
        raise UserError("a cluster needs --job_name=ps|worker (or TF_CONFIG's task type)")
    if not ps or not workers:
        raise UserError("a cluster needs --ps_hosts and --worker_hosts (host:port,...), or TF_CONFIG's cluster")
    ps, workers = _hosts(ps, where["ps_hosts"]), _hosts(workers, where["worker_hosts"])
    if set(ps) & set(workers):
        raise UserError(f"--ps_hosts and --worker_hosts share {', '.join(sorted(set(ps) & set(workers)))}")
    index = index or 0
    count = len(ps) if job == "ps" else len(workers)
    if not 0 <= index < count:
        raise UserError(f"--task_index={index}: the {job} job has {count} tasks (0..{count - 1})")
    if cfg.on_nan == "rollback":
        raise UserError("--on_nan=rollback restores weights in one process only; in a cluster use --on_nan=stop "
                        "and restart from the last checkpoint")
    return Cluster(job, index, ps, workers, bool(cfg.sync_replicas), cfg.worker_timeout)


def start_server(cluster, config):
    try:
        return tf.compat.v1.train.Server(cluster.spec(), job_name=cluster.job_name, task_index=cluster.task_index,
                                         config=config, start=True)
    except (tf.errors.OpError, ValueError) as e:
        raise UserError(f"cannot start the server of {cluster.name(cluster.job_name)}: "
                        f"{errors.reason(e)} (is the port in use?)") from e


def _first_line(error):
    """The message of a TensorFlow error without its "Graph execution error" preamble and traceback."""
    lines = [line.strip() for line in (getattr(error, "message", "") or str(error)).splitlines()]
    useful = [line for line in lines if line and not line.startswith(("Graph execution error", "Detected at node",
                                                                      "File ", "Node:", "[["))]
    return useful[-1] if useful else type(error).__name__


def wait_for_listeners(hosts, deadline):
    """Waits until each host:port accepts a TCP connection, until `deadline` (time.monotonic());
    returns the ones that never did."""
    waiting = list(hosts)
    while waiting:
        for host in list(waiting):
            address, _, port = host.rpartition(":")
            try:
                with socket.create_connection((address.strip("[]"), int(port)), timeout=1.0):
                    waiting.remove(host)
            except OSError:
                pass
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    return waiting


def close_quietly(sess, wait=0.0):
    """Closes `sess` in a daemon thread, waiting at most `wait` seconds: closing a session whose ps
    is gone, or one with a run still pending on it, can block for good."""
    closing = threading.Thread(target=sess.close, name="close_session", daemon=True)
    closing.start()
    closing.join(timeout=wait)


def _done_queue(ps_index):
    with tf.compat.v1.device(f"/job:ps/task:{ps_index}"):
        return tf.queue.FIFOQueue(-1, tf.int32, shapes=[], shared_name=f"done_{ps_index}", name=f"done_{ps_index}")


def run_ps(cluster, config):
    """Serves until every worker has enqueued its done token (a ps's server.join() never returns:
    TensorFlow issue 4713), then exits 0. A worker restarted after a kill counts once."""
    server = start_server(cluster, config)
    print(f"{cluster.name('ps')}: serving {cluster.num_workers} workers", flush=True)
    graph = tf.Graph()
    with graph.as_default():
        dequeue = _done_queue(cluster.task_index).dequeue()
    done, failed = set(), []

    def take_tokens():
        # A dequeue without a timeout: one cut short by a deadline can take a token with it.
        try:
            while len(done) < cluster.num_workers:
                done.add(int(sess.run(dequeue)))
        except tf.errors.OpError as e:
            failed.append(e)

    with tf.compat.v1.Session(server.target, graph=graph, config=cluster.session_config(config)) as sess:
        taker = threading.Thread(target=take_tokens, name="done_tokens", daemon=True)
        taker.start()
        while taker.is_alive():
            taker.join(timeout=1.0)  # the main thread stays free for signals
    if failed:
        raise UserError(f"{cluster.name('ps')}: cannot read the workers' done tokens: {_first_line(failed[0])}")
    # A worker closes its session after its token; closing one whose ps is already gone can block.
    time.sleep(PS_GRACE)
    print(f"{cluster.name('ps')}: all {cluster.num_workers} workers done", flush=True)


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
            sess.run(trainer.g.local_init_op, options=self._short())
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
        sess.run(g.local_init_op, options=self._short())
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
