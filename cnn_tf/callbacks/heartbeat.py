"""A synchronous cluster's heartbeat: each worker records the global step at which it last computed
gradients, so a chief left waiting can name the worker that is gone (cnn_tf.distributed)."""
from cnn_tf.loop import Callback


class Heartbeat(Callback):
    def before_step(self):
        return {"beat": self.trainer.g.cluster.beat}
