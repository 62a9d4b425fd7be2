"""Training on several processes through TensorFlow's own runtime: gRPC servers, parameter servers
(ps) holding the variables, workers each building the whole graph (between-graph replication), as
TF-Slim's train_image_classifier.py did, and past the walls its users hit.

    Cluster             who is who: --job_name/--task_index/--ps_hosts/--worker_hosts or TF_CONFIG
    run_ps              a ps: serves its variables until every worker says it is done, then exits 0
    ClusterSession      a worker's session: the chief (worker 0) initializes or restores the
                        variables, the others wait for it; a lost ps or worker is recovered
                        from, every wait is bounded by --worker_timeout
    add_cluster_ops     the graph's part of it: sync tokens, heartbeats, the run's state, done queues
    join                a worker's entry: its server, the cluster's ops, its ClusterSession

Recovery: a worker whose step fails (a ps or the chief gone, a timeout) creates a new session.
The chief's new session restores the latest checkpoint, over the variables a ps kept or into a
restarted one, and sets SyncReplicasOptimizer's accumulators to its step (a chief gone before its
first checkpoint carries on from the variables on the ps tasks). The other workers wait until the
variables are ready again and carry on from the global step they find.
"""
from cnn_tf.distributed.description import Cluster, cluster_from
from cnn_tf.distributed.ops import add_cluster_ops
from cnn_tf.distributed.runtime import run_ps, start_server
from cnn_tf.distributed.session import AFTER_A_RESTART, RECOVERABLE, ClusterSession, join

__all__ = ["AFTER_A_RESTART", "RECOVERABLE", "Cluster", "ClusterSession", "add_cluster_ops", "cluster_from", "join",
           "run_ps", "start_server"]
