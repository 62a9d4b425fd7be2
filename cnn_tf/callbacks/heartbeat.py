"""A synchronous cluster's heartbeat (cnn_tf.distributed): each worker records, with every step, the
global step at which it computed its gradients. The chief watches the record: a worker whose beat
has not moved for --worker_timeout seconds is gone, and the chief stops the run naming it (with a
checkpoint), rather than go on aggregating its own batches in the missing worker's place, which is
what SyncReplicasOptimizer's tokens let it do."""
import time

from cnn_tf import exit_codes
from cnn_tf.distributed.description import lost_reason
from cnn_tf.loop import Callback


class Heartbeat(Callback):
    def __init__(self, cluster):
        self.cluster = cluster

    def before_train(self):
        self.changed = [time.monotonic()] * self.cluster.num_workers
        self.seen = [None] * self.cluster.num_workers

    def after_rewind(self):  # a new session: everyone gets a fresh start
        self.before_train()

    def before_step(self):
        c = self.trainer.g.cluster
        return {"beat": c.beat, "beats": c.heartbeat} if self.cluster.is_chief else {"beat": c.beat}

    def after_step(self, values):
        if not self.cluster.is_chief:
            return
        now = time.monotonic()
        for worker, beat in enumerate(values["beats"]):
            if beat != self.seen[worker]:
                self.seen[worker], self.changed[worker] = beat, now
        lost = [w for w in range(self.cluster.num_workers)
                if w != self.cluster.task_index and now - self.changed[w] > self.cluster.worker_timeout]
        if lost:
            self.trainer.session.lost = lost  # the chief says they are done, for the ps tasks to exit
            self.trainer.request_stop(lost_reason(self.cluster, lost), exit_codes.RUN_STOPPED)
