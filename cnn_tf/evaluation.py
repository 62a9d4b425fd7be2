"""One evaluation pass over a split, and the per-class report built from its confusion matrix.

Shared by the training loop (validation after each epoch, test at the end) and `evaluate`, so
both count the same images the same way and print the same accuracy for the same checkpoint.
"""
import contextlib
import dataclasses
import typing

import numpy as np
import tensorflow as tf

from cnn_tf.graph import TEST
from cnn_tf.visuals import MISTAKES


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One pass's result: `metrics` {count, loss, accuracy, confusion; top5_accuracy for more than 5
    classes}, the serialized `test`
    `summary`, and with details, every image's class probabilities and label, the confusion matrix
    and the first misclassified images (what cnn_tf.visuals draws)."""
    metrics: dict
    summary: bytes
    details: typing.Optional[dict] = None


def evaluate_split(sess, g, split, batch_size, details=False):
    """Runs the inference tower (no dropout, no gradients) over every image of `split` (what the
    dataset's `split(name)` gives) once (the last batch may be partial); returns an Evaluation, with
    its details when `details`."""
    sess.run(g.evaluation.reset)
    g.inputs.pipeline.start_pass(sess, split, batch_size)
    probabilities, labels = [], []
    mistakes = {"images": [], "labels": [], "predictions": []}
    while True:
        fetches = {"update": g.evaluation.update}
        if details:
            fetches.update(probabilities=g.evaluation.probabilities, labels=g.inputs.label,
                           predictions=g.inference.predictions)
            if len(mistakes["images"]) < MISTAKES:
                fetches["images"] = g.inputs.image
        try:
            values = sess.run(fetches)
        except tf.errors.OutOfRangeError:
            break
        if details:
            probabilities.append(values["probabilities"])
            labels.append(values["labels"])
            if "images" in values:
                wrong = np.flatnonzero(values["predictions"] != values["labels"])[:MISTAKES - len(mistakes["images"])]
                mistakes["images"] += list(values["images"][wrong])
                mistakes["labels"] += list(values["labels"][wrong])
                mistakes["predictions"] += list(values["predictions"][wrong])
    metrics, summary = sess.run([g.evaluation.metrics, g.summaries[TEST]])
    metrics = {key: (value.item() if np.ndim(value) == 0 else value) for key, value in metrics.items()}
    metrics["count"] = int(metrics["count"])
    if not details:
        return Evaluation(metrics, summary)
    return Evaluation(metrics, summary, {"probabilities": np.concatenate(probabilities), "labels": np.concatenate(labels),
                                         "confusion": metrics["confusion"], "mistakes": mistakes})


@contextlib.contextmanager
def averaged_weights(sess, g):
    """Within it, the model's variables hold their moving averages (--ema_decay), if the graph keeps
    any; after it, the weights again, bit for bit."""
    if g.averages is None:
        yield
        return
    sess.run(g.averages.swap_in)
    try:
        yield
    finally:
        sess.run(g.averages.swap_out)


def visual_summaries(evaluation, class_names):
    """The serialized image, pr_curves and text summaries of an Evaluation made with `details`."""
    from cnn_tf.visuals import evaluation_summaries

    return evaluation_summaries(evaluation.details, class_names,
                                per_class_metrics(evaluation.metrics["confusion"], class_names))


def per_class_metrics(confusion, class_names):
    """Precision, recall, F1 and support per class; rows of `confusion` are true labels."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positives = np.diag(confusion)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positives / predicted, 0.0)
        recall = np.where(actual > 0, true_positives / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return [dict(name=name, precision=float(p), recall=float(r), f1=float(f), support=int(s))
            for name, p, r, f, s in zip(class_names, precision, recall, f1, actual)]


def format_report(per_class, confusion):
    """The per-class table, then the confusion matrix with a header row: the class names cut to the
    column's width, or, when cut names would be ambiguous, class numbers that the rows name."""
    names = [c["name"] for c in per_class]
    cell = max(6, len(str(int(np.max(confusion)))) + 2)
    headers = [name[:cell - 2] for name in names]
    if len(set(headers)) < len(headers):
        headers = [str(k) for k in range(len(names))]
        names = [f"{k} {name}" for k, name in enumerate(names)]
    width = max(12, max(len(name) for name in names) + 2)
    lines = [f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for name, c in zip(names, per_class):
        lines.append(f"{name:<{width}}{c['precision']:>10.4f}{c['recall']:>10.4f}{c['f1']:>10.4f}{c['support']:>9d}")
    lines += ["", "confusion matrix (rows: true class, columns: predicted class)",
              " " * width + "".join(f"{h:>{cell}}" for h in headers)]
    for name, row in zip(names, confusion):
        lines.append(f"{name:<{width}}" + "".join(f"{int(v):>{cell}d}" for v in row))
    return "\n".join(lines)
