"""TensorFlow's own SessionRunHooks (SyncReplicasOptimizer's, StopAtStepHook, ...) in cnn_tf's loop."""
import tensorflow as tf

from cnn_tf.loop import Callback


class HookCallback(Callback):
    """Runs a `tf.compat.v1.train.SessionRunHook`: begin() while the graph is still open (a hook may
    add ops there), its fetches in the step's sess.run, its request_stop as the loop's, end() at the
    end. Hooks that feed or set run options are refused: the loop's step has neither."""

    def __init__(self, hook, chief_only=False):
        self.hook, self.chief_only = hook, chief_only

    def setup(self, trainer):
        super().setup(trainer)
        with trainer.g.graph.as_default():
            self.hook.begin()

    def before_train(self):
        self.hook.after_create_session(self.trainer.sess, None)

    def before_step(self):
        self._context = tf.compat.v1.train.SessionRunContext(
            tf.compat.v1.train.SessionRunArgs(self.trainer.g.train_ops.train_op), self.trainer.sess)
        args = self.hook.before_run(self._context)
        if args is None:
            return None
        if args.feed_dict or args.options:
            raise ValueError(f"{type(self.hook).__name__} feeds or sets run options; cnn_tf's loop does neither")
        return {"hook": args.fetches} if args.fetches is not None else None

    def after_step(self, values):
        results = values["hook"] if values else None
        self.hook.after_run(self._context, tf.compat.v1.train.SessionRunValues(results, None, None))
        if self._context.stop_requested:
            self.trainer.request_stop(type(self.hook).__name__)

    def after_train(self, state):
        self.hook.end(self.trainer.sess)
