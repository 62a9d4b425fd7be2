"""Where the training loop runs: `python -m cnn_tf.train --flagfile=configs/X.cfg`.

Builds the graph, restores the latest checkpoint of --train_dir if there is one (global step,
learning rate, optimizer state and the position in the epoch's shuffled order all continue),
trains epoch by epoch, evaluates the validation split after each epoch, saves a checkpoint, and
at the end prints the test accuracy.
"""
import os
import time

import tensorflow as tf
import tqdm
from absl import flags

from cnn_tf import checkpoints, config, errors
from cnn_tf.data import load_dataset_from_flags
from cnn_tf.data.pipeline import epoch_order
from cnn_tf.evaluation import evaluate_split
from cnn_tf.graph import PER_EPOCH, TRAIN, build_graph_for, steps_per_epoch
from cnn_tf.traindir import TrainDir

FLAGS = flags.FLAGS
config.define_train_flags(FLAGS)


def run_epoch(sess, g, writer, step, num_steps, batch_size, summary_every_n_steps, bar):
    """Runs `num_steps` training steps. Summaries ride on the step that is run anyway (every
    --summary_every_n_steps; histograms and images on the epoch's last step). Returns the new
    global step and the mean loss and accuracy of the epoch's steps."""
    loss_sum = acc_sum = 0.0
    started = time.perf_counter()
    for i in range(num_steps):
        fetches = {"train": g.train_op, "loss": g.loss, "accuracy": g.accuracy}
        if (step + 1) % summary_every_n_steps == 0:
            fetches["summary"] = g.summaries[TRAIN]
        if i == num_steps - 1:
            fetches["epoch_summary"] = g.summaries[PER_EPOCH]
        out = sess.run(fetches)
        step += 1
        for key in ("summary", "epoch_summary"):
            if key in out:
                writer.add_summary(out[key], step)
        loss_sum += out["loss"]
        acc_sum += out["accuracy"]
        bar.update(1)
        if i % 10 == 0 or i == num_steps - 1:
            rate = (i + 1) * batch_size / (time.perf_counter() - started)
            bar.set_postfix(loss=f"{out['loss']:.4f}", acc=f"{out['accuracy']:.4f}",
                            img_s=f"{rate:.0f}", refresh=False)
    return step, loss_sum / max(num_steps, 1), acc_sum / max(num_steps, 1)


def train(fv):
    run_dir = TrainDir(fv.train_dir)
    latest = checkpoints.latest(run_dir.checkpoints)
    if latest and os.path.isfile(run_dir.flags_cfg):
        config.check_resume(fv, run_dir.flags_cfg)
    data = load_dataset_from_flags(fv)
    train_x, train_y = data.split("train")
    run_dir.make()
    per_epoch = steps_per_epoch(len(train_x), fv.batch_size)
    g = build_graph_for(fv, data)
    sess = tf.compat.v1.Session(graph=g.graph, config=config.session_config(fv))
    with sess:
        if latest:
            step = checkpoints.restore(sess, g, latest)
            print(f"resuming from {latest} at global step {step} "
                  f"(epoch {step // per_epoch + 1}, step {step % per_epoch} of {per_epoch})")
        else:
            sess.run(g.init_op)
            step = 0
        config.save_flags(fv, run_dir.flags_cfg)  # only once the checkpoint is known to fit

        train_writer = tf.compat.v1.summary.FileWriter(run_dir.summaries("train"))
        test_writer = tf.compat.v1.summary.FileWriter(run_dir.summaries("test"))
        if step == 0:
            train_writer.add_graph(g.graph)
        else:
            # TensorBoard drops events a crashed run wrote past this step: no backwards curves.
            start = tf.compat.v1.SessionLog(status=tf.compat.v1.SessionLog.START)
            for writer in (train_writer, test_writer):
                writer.add_session_log(start, step)

        epoch, offset = divmod(step, per_epoch)
        if epoch >= fv.num_epochs:
            print(f"already trained {fv.num_epochs} epochs (global step {step}); raise --num_epochs to "
                  "train on")
        for epoch in range(epoch, fv.num_epochs):
            started = time.perf_counter()
            order = epoch_order(len(train_x), fv.seed, epoch)[offset * fv.batch_size:]
            g.pipeline.start(sess, train_x[order], train_y[order], fv.batch_size,
                             augment_seed=(fv.seed, epoch, offset) if fv.augment else None)
            with tqdm.tqdm(total=per_epoch, initial=offset, desc=f"epoch {epoch + 1}/{fv.num_epochs}",
                           unit="step", disable=None if fv.progress else True, leave=False) as bar:
                step, loss, acc = run_epoch(sess, g, train_writer, step, per_epoch - offset,
                                            fv.batch_size, fv.summary_every_n_steps, bar)
            images_per_s = len(order) / (time.perf_counter() - started)
            offset = 0
            line = (f"epoch {epoch + 1}/{fv.num_epochs}  step {step}  "
                    f"train loss {loss:.4f} acc {acc:.4f}  {images_per_s:.0f} img/s")
            if len(data.split("validation")[0]):
                metrics, summary = evaluate_split(sess, g, *data.split("validation"), fv.eval_batch_size)
                test_writer.add_summary(summary, step)
                line += f"  validation loss {metrics['loss']:.4f} acc {metrics['accuracy']:.4f}"
            g.saver.save(sess, run_dir.checkpoint_prefix, global_step=step)
            train_writer.flush()
            test_writer.flush()
            print(f"{line}  ({time.perf_counter() - started:.1f}s)", flush=True)
        metrics = None
        if len(data.split("test")[0]):
            metrics, _ = evaluate_split(sess, g, *data.split("test"), fv.eval_batch_size)
        train_writer.close()
        test_writer.close()
    print(f"checkpoint: {checkpoints.latest(run_dir.checkpoints)}")
    print(f"test accuracy: {metrics['accuracy']:.4f}" if metrics else "no test split to evaluate")
    return metrics


def main(argv):
    if len(argv) > 1:
        raise errors.UserError(f"unexpected arguments {' '.join(argv[1:])}; flags take the form --name=value")
    config.resolve_paths(FLAGS)
    train(FLAGS)


def run():
    errors.run(main)


if __name__ == "__main__":
    run()
