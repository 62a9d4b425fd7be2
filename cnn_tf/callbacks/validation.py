"""Evaluations during training: the validation split after each epoch, the test split at the end."""
import time

import tensorflow as tf

from cnn_tf.evaluation import evaluate_split, visual_summaries
from cnn_tf.loop import Callback


class Validation(Callback):
    """Evaluates the inference tower on the validation split after each epoch (when the split is
    not empty): `summaries/validation` at the epoch's step (scalars, the confusion matrix, the
    misclassified images, precision-recall curves, the per-class report), and
    `trainer.logs.epoch["validation"]`."""

    chief_only = True

    def __init__(self, data, batch_size):
        self.split, self.size, self.batch_size = data.split("validation"), data.size("validation"), batch_size
        self.class_names = data.class_names

    def after_epoch(self):
        if not self.size:
            return
        started = time.perf_counter()
        t = self.trainer
        evaluation = evaluate_split(t.sess, t.g, self.split, self.batch_size, details=True)
        for serialized in [evaluation.summary, *visual_summaries(evaluation, self.class_names)]:
            t.logs.events.write("validation", serialized, t.global_step)
        t.logs.epoch["validation"] = dict(evaluation.metrics, seconds=time.perf_counter() - started)


class FinalEvaluation(Callback):
    """Evaluates the test split when training finishes: `trainer.logs.results["test"]`, and the same
    summaries as validation's in `summaries/test` at the final step."""

    chief_only = True

    def __init__(self, data, batch_size, run_dir):
        self.split, self.size, self.batch_size = data.split("test"), data.size("test"), batch_size
        self.class_names, self.run_dir = data.class_names, run_dir

    def after_train(self, state):
        if state == "finished" and self.size:
            t = self.trainer
            evaluation = evaluate_split(t.sess, t.g, self.split, self.batch_size, details=True)
            with t.g.graph.as_default():  # a v1 FileWriter refuses eager mode
                writer = tf.compat.v1.summary.FileWriter(self.run_dir.summaries("test"))
            for serialized in [evaluation.summary, *visual_summaries(evaluation, self.class_names)]:
                writer.add_summary(serialized, t.global_step)
            writer.close()
            t.logs.results["test"] = evaluation.metrics
