"""Evaluate a checkpoint: `python -m cnn_tf.evaluate --checkpoint_dir=DIR`.

DIR is a train dir or its checkpoints/. The graph is rebuilt from DIR's flags.cfg, so nothing but
the directory is needed; flags about where data is and how to run (--data_dir, --device, ...)
may be given to override the saved ones.
"""
import json
import os

import tensorflow as tf
from absl import flags

from cnn_tf import checkpoints, config, errors
from cnn_tf.data import load_dataset_from_flags
from cnn_tf.evaluation import evaluate_split, format_report, per_class_metrics
from cnn_tf.graph import build_graph_for
from cnn_tf.traindir import TrainDir, write_atomic

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint_dir", None, "A train dir, or its checkpoints/ directory.")
flags.DEFINE_string("checkpoint_path", None, "One checkpoint to evaluate, e.g. DIR/checkpoints/"
                    "model.ckpt-860 (default: the latest).")
flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Split to evaluate.")
flags.mark_flag_as_required("checkpoint_dir")
config.define_runtime_flags(FLAGS)


def evaluate(run_dir, hp, checkpoint_path, split):
    data = load_dataset_from_flags(hp)
    images, labels = data.split(split)
    if len(images) == 0:
        raise errors.UserError(f"the {split} split of {hp.dataset} is empty; evaluate another --split")
    g = build_graph_for(hp, data)
    with tf.compat.v1.Session(graph=g.graph, config=config.session_config(hp)) as sess:
        step = checkpoints.restore(sess, g, checkpoint_path)
        metrics, summary = evaluate_split(sess, g, images, labels, hp.eval_batch_size)
        with tf.compat.v1.summary.FileWriter(run_dir.summaries("eval")) as writer:
            writer.add_summary(summary, step)
    per_class = per_class_metrics(metrics["confusion"], data.class_names)
    result = {
        "checkpoint_path": checkpoint_path, "global_step": step, "dataset": hp.dataset, "split": split,
        "num_examples": metrics["count"], "accuracy": metrics["accuracy"], "loss": metrics["loss"],
        "per_class": per_class, "confusion_matrix": metrics["confusion"].tolist(),
    }
    os.makedirs(run_dir.eval, exist_ok=True)
    write_atomic(os.path.join(run_dir.eval, "metrics.json"), json.dumps(result, indent=2) + "\n")
    return result


def main(argv):
    if len(argv) > 1:
        raise errors.UserError(f"unexpected arguments {' '.join(argv[1:])}; flags take the form --name=value")
    run_dir = TrainDir.find(FLAGS.checkpoint_dir)
    hp = config.load_flags(run_dir.flags_cfg)
    for name in config.RUNTIME_FLAGS:
        if FLAGS[name].present:
            hp[name].value = FLAGS[name].value
    path = FLAGS.checkpoint_path or checkpoints.latest(run_dir.checkpoints)
    if not path:
        raise errors.UserError(f"no checkpoint in {run_dir.checkpoints}; train first, or pass --checkpoint_path")
    result = evaluate(run_dir, hp, path, FLAGS.split)
    print(f"checkpoint: {path} (global step {result['global_step']})")
    print(f"{FLAGS.split} images: {result['num_examples']}")
    print(format_report(result["per_class"], result["confusion_matrix"]))
    print(f"{FLAGS.split} loss: {result['loss']:.4f}")
    print(f"{FLAGS.split} accuracy: {result['accuracy']:.4f}")
    print(f"wrote {os.path.join(run_dir.eval, 'metrics.json')}")


def run():
    errors.run(main)


if __name__ == "__main__":
    run()
