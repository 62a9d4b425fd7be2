"""Evaluate a checkpoint: `python -m cnn_tf.evaluate --checkpoint_dir=DIR [--watch]`.

DIR is a train dir or its checkpoints/. The graph is rebuilt from DIR's flags.cfg, so nothing but
the directory is needed; flags about where data is and how to run (--data_dir, --device, ...)
may be given to override the saved ones. With --watch it evaluates every checkpoint training
writes, as it is written, until training finishes or --watch_timeout passes without a new one.
"""
import dataclasses
import json
import os
import time

import tensorflow as tf
from absl import flags

from cnn_tf import checkpoints, cli, errors, log, options
from cnn_tf.data import load_split_for
from cnn_tf.evaluation import evaluate_split, format_report, per_class_metrics, visual_summaries
from cnn_tf.graph import build_graph_for, hardware
from cnn_tf.graph.memory import inference_batch_size
from cnn_tf.manifest import RunManifest, derived_note
from cnn_tf.traindir import TrainDir, write_atomic
from cnn_tf.options import EVALUATION, non_negative, option, positive


@dataclasses.dataclass(frozen=True)
class EvaluateOptions(cli.CheckpointOptions):
    split: str = option("test", "Split to evaluate.", EVALUATION, choices=("train", "validation", "test"),
                        saved=False)
    watch: bool = option(False, "Evaluate each new checkpoint as training writes it, until training finishes "
                         "or --watch_timeout seconds pass without a new one.", EVALUATION, saved=False)
    watch_timeout: float = option(600.0, "--watch stops after this many seconds without a new checkpoint.",
                                  EVALUATION, check=non_negative, saved=False)
    watch_interval: float = option(1.0, "--watch looks for new checkpoints this often (seconds).", EVALUATION,
                                   check=positive, saved=False)
    ema: bool = option(True, "A run trained with --ema_decay is evaluated with the moving averages of its weights, "
                       "as its validation was; --noema evaluates the weights themselves, to compare.", EVALUATION,
                       saved=False)


class Evaluator:
    """The data and graph of a train dir, built once; evaluates any of its checkpoints."""

    def __init__(self, run_dir, cfg, split, tta="none", ema=True):
        self.run_dir, self.cfg, self.split, self.tta = run_dir, cfg, split, tta
        # The run's record gives the classes, shape and mean; only the split evaluated is read (an
        # image folder's recorded members of it), and it must be the split the run recorded.
        record = RunManifest.read(run_dir.run_json)
        self.data = load_split_for(cfg, record, split)
        if record is None:
            derived_note(run_dir.path, "its classes and splits are taken from the data as it is now")
            record = RunManifest.of(cfg, self.data)
        elif split in record.splits and (changes := record.changes(self.data, [split])):
            raise errors.UserError(f"{cfg.data_dir or self.data.source}: {'; '.join(changes)}; this is not the data "
                                   f"{run_dir.path} recorded (run.json): point --data_dir at the run's data")
        self.class_names = record.class_names
        if self.data.size(split) == 0:
            raise errors.UserError(f"the {split} split of {cfg.dataset} is empty; evaluate another --split")
        self.g = build_graph_for(cfg, record, self.data.pipeline, tta=tta)
        self.averaged = ema and self.g.averages is not None
        self.g.graph.finalize()
        self.sess = tf.compat.v1.Session(graph=self.g.graph, config=hardware.session_config(cfg))
        self.writer, self.saved = None, False
        try:
            with self.g.graph.as_default():  # a v1 FileWriter refuses eager mode
                self.writer = tf.compat.v1.summary.FileWriter(run_dir.summaries(f"eval_{split}"))
        except (OSError, tf.errors.OpError) as e:  # a read-only train dir: the result is still worth printing
            _cannot_save(run_dir.summaries(f"eval_{split}"), e)

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.sess.close()

    def evaluate(self, checkpoint_path):
        """Evaluates one checkpoint; writes summaries/eval_<split> at its step and eval/metrics.json."""
        step = checkpoints.restore(self.sess, self.g, checkpoint_path)
        if self.averaged:
            self.sess.run(self.g.averages.load)
        evaluation = evaluate_split(self.sess, self.g, self.data.split(self.split),
                                    inference_batch_size(self.g, self.cfg.eval_batch_size),
                                    details=True)
        metrics = evaluation.metrics
        if self.writer is not None:
            for serialized in [evaluation.summary, *visual_summaries(evaluation, self.class_names)]:
                self.writer.add_summary(serialized, step)
            self.writer.flush()
        result = {
            "checkpoint_path": checkpoint_path, "global_step": step, "dataset": self.cfg.dataset,
            "split": self.split, "tta": self.tta, "weights": "moving averages" if self.averaged else "as trained", "num_examples": metrics["count"], "accuracy": metrics["accuracy"],
            "loss": metrics["loss"], "per_class": per_class_metrics(metrics["confusion"], self.class_names),
            "confusion_matrix": metrics["confusion"].tolist(),
        }
        if "top5_accuracy" in metrics:
            result["top5_accuracy"] = metrics["top5_accuracy"]
        try:
            tf.io.gfile.makedirs(self.run_dir.eval)
            write_atomic(os.path.join(self.run_dir.eval, "metrics.json"), json.dumps(result, indent=2) + "\n")
            self.saved = True
        except (OSError, tf.errors.OpError) as e:
            _cannot_save(os.path.join(self.run_dir.eval, "metrics.json"), e)
            self.saved = False
        return result


def _cannot_save(path, error):
    log.warning(f"cannot write {path} ({error.strerror if isinstance(error, OSError) else errors.reason(error)}): "
                "the result is printed, not saved")


def evaluate_once(opts, overrides):
    run_dir, cfg = cli.load_run(opts.checkpoint_dir, overrides)
    cli.checkpoint_to_read(run_dir, opts.checkpoint_path, opts.checkpoint)  # before the data is read: is there any?
    evaluator = Evaluator(run_dir, cfg, opts.split, opts.tta, opts.ema)
    try:
        result, path = cli.with_checkpoint(run_dir, opts, evaluator.evaluate)
    finally:
        evaluator.close()
    split = opts.split
    print(f"checkpoint: {path} (global step {result['global_step']})")
    print(f"{split} images: {result['num_examples']}")
    if opts.tta != "none":
        print(f"test-time augmentation: {opts.tta} (each image's probabilities averaged with its mirror's)")
    if evaluator.averaged:
        print(f"weights: their moving averages (--ema_decay={cfg.ema_decay:g}; --noema for the weights themselves)")
    print(f"{split} accuracy: {result['accuracy']:.4f}")
    if "top5_accuracy" in result:
        print(f"{split} top-5 accuracy: {result['top5_accuracy']:.4f}")
    print(f"{split} loss: {result['loss']:.4f}")
    print()
    print(format_report(result["per_class"], result["confusion_matrix"]))
    print()
    if evaluator.saved:
        print(f"wrote {os.path.join(run_dir.eval, 'metrics.json')}")


def watch(opts, overrides):
    """Evaluates every checkpoint the state file lists (so never one still being written), oldest
    first, each once; stops when training's status.json says it has ended, or after
    --watch_timeout seconds without anything new (also while waiting for the train dir to appear)."""
    last_news = time.monotonic()

    def timed_out():
        return time.monotonic() - last_news > opts.watch_timeout

    while True:  # the train dir may not exist yet: training may start after us
        try:
            TrainDir.find(opts.checkpoint_dir)
            break
        except errors.UserError:
            if timed_out():
                raise errors.UserError(f"--checkpoint_dir={opts.checkpoint_dir} got no flags.cfg in "
                                       f"{opts.watch_timeout:g} s; is training writing to it?") from None
            time.sleep(opts.watch_interval)
    run_dir, cfg = cli.load_run(opts.checkpoint_dir, overrides)
    evaluator = Evaluator(run_dir, cfg, opts.split, opts.tta, opts.ema)
    done = set()
    log.info(f"watching {run_dir.checkpoints} (stops {opts.watch_timeout:g} s after the last new checkpoint, "
             "or when training ends)")
    try:
        while True:
            status = run_dir.status()  # read before listing: a checkpoint listed after "finished" is seen
            new = [p for p in checkpoints.listed(run_dir.checkpoints) if checkpoints.step_of(p) not in done]
            for path in new:
                try:
                    result = evaluator.evaluate(path)
                except (errors.UserError, tf.errors.OpError):
                    if checkpoints.is_complete(path):
                        raise
                    log.note(f"{path} was deleted (--max_num_checkpoint) before it could be evaluated")
                    done.add(checkpoints.step_of(path))
                    continue
                # By the file's step: in an asynchronous cluster the saved global step may run ahead of it.
                done.add(checkpoints.step_of(path))
                last_news = time.monotonic()
                print(f"global step {result['global_step']}: {opts.split} loss {result['loss']:.4f} "
                      f"accuracy {result['accuracy']:.4f}", flush=True)
            if not new and status.get("state") in ("finished", "stopped", "failed"):
                print(f"training {status['state']} at global step {status['global_step']}; "
                      f"evaluated {len(done)} checkpoints", flush=True)
                return
            if not new and timed_out():
                print(f"no new checkpoint for {opts.watch_timeout:g} s; evaluated {len(done)} checkpoints",
                      flush=True)
                return
            time.sleep(opts.watch_interval)
    finally:
        evaluator.close()


def main(argv):
    cli.no_arguments(argv)
    opts = options.from_flags(EvaluateOptions, flags.FLAGS)
    if opts.watch and (opts.checkpoint_path or opts.checkpoint):
        raise errors.UserError("--watch evaluates each new checkpoint; it takes no --checkpoint_path or --checkpoint")
    overrides = options.given_flags(flags.FLAGS, cli.RUN_OVERRIDES)
    watch(opts, overrides) if opts.watch else evaluate_once(opts, overrides)


def run():
    cli.run(main, "python -m cnn_tf.evaluate --checkpoint_dir=DIR [--checkpoint=latest|best|STEP] [--split=S] [--watch]",
            list(dataclasses.fields(EvaluateOptions)) + cli.RUN_OVERRIDES)


if __name__ == "__main__":
    run()
