"""Evaluations during training: the validation split after each epoch, the test split at the end."""
import time

import tensorflow as tf

from cnn_tf import checkpoints
from cnn_tf.best_checkpoints import path_of
from cnn_tf.evaluation import averaged_weights, evaluate_split, visual_summaries
from cnn_tf.graph.memory import inference_batch_size
from cnn_tf.loop import Callback


class Validation(Callback):
    """Evaluates the inference tower on the validation split after each epoch (when the split is
    not empty; with the moving averages of the weights under --ema_decay): `summaries/validation` at the epoch's step (scalars, the confusion matrix, the
    misclassified images, precision-recall curves, the per-class report), and
    `trainer.logs.epoch["validation"]`."""

    chief_only = True

    def __init__(self, data, batch_size, every_steps=0):
        self.split, self.size, self.batch_size = data.split("validation"), data.size("validation"), batch_size
        self.class_names, self.every_steps = data.class_names, every_steps

    def setup(self, trainer):
        super().setup(trainer)
        self.batch_size = inference_batch_size(trainer.g, self.batch_size)

    def after_epoch(self):
        if self.size:
            self.trainer.logs.epoch["validation"] = self._evaluate()

    def before_train(self):
        self._next = (self.trainer.global_step // self.every_steps + 1) * self.every_steps if self.every_steps else 0

    def after_rewind(self):
        self.before_train()

    def after_step(self, values):
        """--validate_every_steps within an epoch: summaries only (the epoch's own validation ranks
        the best checkpoint); the pass reused the input pipeline, so the epoch's batches start again
        where they were, the same batches (their order and augmentation are pure functions of the step)."""
        t = self.trainer
        if not (self.size and self.every_steps and t.global_step >= self._next):
            return
        self._next = (t.global_step // self.every_steps + 1) * self.every_steps  # a cluster's step may jump
        if t.step_in_epoch < t.steps_per_epoch:
            self._evaluate()
            t.feed.start(t.sess, t.epoch, t.step_in_epoch)

    def _evaluate(self):
        started = time.perf_counter()
        t = self.trainer
        with averaged_weights(t.sess, t.g):
            evaluation = evaluate_split(t.sess, t.g, self.split, self.batch_size, details=True)
        for serialized in [evaluation.summary, *visual_summaries(evaluation, self.class_names)]:
            t.logs.events.write("validation", serialized, t.global_step)
        return dict(evaluation.metrics, seconds=time.perf_counter() - started)


class FinalEvaluation(Callback):
    """Evaluates the test split when training finishes: `trainer.logs.results["test"]`, and the same
    summaries as validation's in `summaries/test` at the final step. When the run kept a best
    checkpoint at another step (`trainer.logs.best`), its test metrics too, in
    `trainer.logs.results["best"]` (in one process: a cluster's chief must not load weights the
    other workers share)."""

    chief_only = True

    def __init__(self, data, batch_size, run_dir):
        self.split, self.size, self.batch_size = data.split("test"), data.size("test"), batch_size
        self.class_names, self.run_dir = data.class_names, run_dir

    def setup(self, trainer):
        super().setup(trainer)
        self.batch_size = inference_batch_size(trainer.g, self.batch_size)

    def after_train(self, state):
        if state == "finished" and self.size:
            t = self.trainer
            with averaged_weights(t.sess, t.g):
                evaluation = evaluate_split(t.sess, t.g, self.split, self.batch_size, details=True)
            with t.g.graph.as_default():  # a v1 FileWriter refuses eager mode
                writer = tf.compat.v1.summary.FileWriter(self.run_dir.summaries("test"))
            for serialized in [evaluation.summary, *visual_summaries(evaluation, self.class_names)]:
                writer.add_summary(serialized, t.global_step)
            writer.close()
            t.logs.results["test"] = evaluation.metrics
            if t.logs.best is not None:
                t.logs.results["best"] = self._best(evaluation.metrics)

    def _best(self, last):
        t, best = self.trainer, self.trainer.logs.best
        path = path_of(self.run_dir.best, best.step)
        result = {"path": path, "step": best.step, "epoch": best.epoch, "value": best.value, "test": last}
        if best.step != t.global_step and t.g.cluster is None:
            checkpoints.restore(t.sess, t.g, path)
            with averaged_weights(t.sess, t.g):
                result["test"] = evaluate_split(t.sess, t.g, self.split, self.batch_size).metrics
        elif best.step != t.global_step:
            result["test"] = None
        return result
