"""Who is who in a cluster: --job_name/--task_index/--ps_hosts/--worker_hosts, or TF_CONFIG."""
import dataclasses
import json
import os

import tensorflow as tf

from cnn_tf.errors import UserError


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
    if cfg.early_stopping_patience:
        raise UserError("--early_stopping_patience stops one process's run; a cluster trains --num_epochs (the best "
                        "checkpoint is still kept: --keep_best)")
    if cfg.ema_decay:
        raise UserError("--ema_decay averages the weights in one process (validation swaps the averages into the "
                        "variables the workers share); leave it out in a cluster")
    return Cluster(job, index, ps, workers, bool(cfg.sync_replicas), cfg.worker_timeout)


def lost_reason(cluster, lost):
    """Why the chief stops a run: the workers `lost` (task indices) sent no gradients in time."""
    names = ", ".join(cluster.name(index=i) for i in lost)
    return f"{names} sending no gradients for {cluster.worker_timeout:g} s (--worker_timeout)"
