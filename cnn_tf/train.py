"""Where the training loop runs: `python -m cnn_tf.train --flagfile=configs/X.cfg`.

Builds the graph, restores the latest complete checkpoint of --train_dir if there is one (global
step, learning rate, optimizer state and the position in the epoch's shuffled order all continue),
trains epoch by epoch, evaluates the validation split after each epoch, saves a checkpoint, and at
the end prints the test accuracy. SIGINT / SIGTERM stop it after the current step with a
checkpoint; a NaN or infinite loss stops it (or, with --on_nan=rollback, rolls it back).
"""
import math
import os
import signal
import sys
import time
import types

import tensorflow as tf
import tqdm
from absl import flags

from cnn_tf import checkpoints, config, errors
from cnn_tf.data import load_dataset_from_flags
from cnn_tf.data.pipeline import epoch_order
from cnn_tf.evaluation import evaluate_split
from cnn_tf.graph import PER_EPOCH, TRAIN, build_graph_for, steps_per_epoch
from cnn_tf.traindir import TrainDir, drop_events_after

FLAGS = flags.FLAGS
config.define_train_flags(FLAGS)


class StopSignals:
    """SIGINT and SIGTERM ask the loop to stop after the current step (it saves a checkpoint);
    a second one quits at once, which loses nothing complete either (see cnn_tf.checkpoints)."""

    def __enter__(self):
        self.signum = None
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            print(f"\n{signal.Signals(signum).name} again: quitting without saving", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step (send it again to quit at once)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def run_epoch(sess, g, writer, step, num_steps, batch_size, summary_every_n_steps, bar, stop):
    """Runs up to `num_steps` training steps. Summaries ride on the step that is run anyway (every
    --summary_every_n_steps; histograms and images on the epoch's last step). Stops early at a
    non-finite loss or a stop signal. Returns a namespace: step (the new global step), steps run,
    mean loss and accuracy, and bad_loss (the non-finite loss, or None)."""
    loss_sum = acc_sum = 0.0
    started = time.perf_counter()
    result = types.SimpleNamespace(step=step, steps=0, loss=0.0, accuracy=0.0, bad_loss=None)
    for i in range(num_steps):
        fetches = {"train": g.train_op, "loss": g.train.loss, "accuracy": g.train.accuracy}
        if (step + 1) % summary_every_n_steps == 0:
            fetches["summary"] = g.summaries[TRAIN]
        if i == num_steps - 1:
            fetches["epoch_summary"] = g.summaries[PER_EPOCH]
        out = sess.run(fetches)
        step += 1
        for key in ("summary", "epoch_summary"):
            if key in out:
                writer.add_summary(out[key], step)
        result.step, result.steps = step, i + 1
        if not math.isfinite(out["loss"]):
            result.bad_loss = out["loss"]
            break
        loss_sum += out["loss"]
        acc_sum += out["accuracy"]
        bar.update(1)
        if i % 10 == 0 or i == num_steps - 1:
            rate = (i + 1) * batch_size / (time.perf_counter() - started)
            bar.set_postfix(loss=f"{out['loss']:.4f}", acc=f"{out['accuracy']:.4f}",
                            img_s=f"{rate:.0f}", refresh=False)
        if stop.signum is not None:
            break
    result.loss, result.accuracy = loss_sum / max(result.steps, 1), acc_sum / max(result.steps, 1)
    return result


class Trainer:
    """One training run: the session, the writers and what the loop needs between epochs."""

    def __init__(self, fv, data, run_dir, sess, g, stop):
        self.fv, self.data, self.run_dir, self.sess, self.g, self.stop = fv, data, run_dir, sess, g, stop
        self.train_x, self.train_y = data.split("train")
        self.per_epoch = steps_per_epoch(len(self.train_x), fv.batch_size)

    def start(self):
        """Restores the latest complete checkpoint (or initializes); opens the summary writers."""
        latest = checkpoints.latest(self.run_dir.checkpoints)
        if latest:
            step = checkpoints.restore(self.sess, self.g, latest)
            print(f"resuming from {latest} at global step {step} "
                  f"(epoch {step // self.per_epoch + 1}, step {step % self.per_epoch} of {self.per_epoch})")
        else:
            self.sess.run(self.g.init_op)
            step = 0
        for name in ("train", "test"):  # what a killed run logged past the checkpoint
            drop_events_after(self.run_dir.summaries(name), step)
        self.writers = {name: tf.compat.v1.summary.FileWriter(self.run_dir.summaries(name))
                        for name in ("train", "test")}
        if step == 0:
            self.writers["train"].add_graph(self.g.graph)
        else:
            self._mark_restart(step)
        return step

    def _mark_restart(self, step):
        # TensorBoard drops what was logged after a SessionLog START's step - 1: everything a crashed
        # or rolled-back run wrote past `step`, while `step`'s own summaries stay.
        start = tf.compat.v1.SessionLog(status=tf.compat.v1.SessionLog.START)
        for writer in self.writers.values():
            writer.add_session_log(start, step + 1)

    def close(self):
        for writer in self.writers.values():
            writer.close()

    def save(self, step):
        """A checkpoint at `step`, unless the weights are not finite (then it is a NaN to handle)."""
        if not self.sess.run(self.g.all_finite):
            return False
        checkpoints.save(self.sess, self.g, self.run_dir.checkpoint_prefix, step, self.fv.max_num_checkpoint)
        for writer in self.writers.values():
            writer.flush()
        return True

    def on_nan(self, step, what):
        """--on_nan=stop: a clear error. rollback: restore the last checkpoint, scale the learning
        rate, go on (at most --max_nan_rollbacks times). Returns the step to continue from."""
        fv = self.fv
        latest = checkpoints.latest(self.run_dir.checkpoints)
        rollbacks, scale = self.sess.run([self.g.nan_rollbacks, self.g.learning_rate_scale])
        kept = f"the latest checkpoint {latest} is finite" if latest else "no checkpoint was written"
        if fv.on_nan == "stop" or rollbacks >= fv.max_nan_rollbacks:
            self.close()  # the summaries up to the bad step show where it went wrong
            self.run_dir.write_status("failed", step)
            tried = f" after {rollbacks} rollbacks" if fv.on_nan == "rollback" else ""
            raise errors.TrainingDiverged(
                f"{what} at global step {step}{tried}: training diverged; {kept}. Lower "
                f"--initial_learning_rate{'' if fv.on_nan == 'rollback' else ' or pass --on_nan=rollback'} "
                "and run the same command to continue")
        if latest:
            restored = checkpoints.restore(self.sess, self.g, latest)
        else:
            self.sess.run(self.g.init_op)
            restored = 0
        # The count and the factor compound across rollbacks, whatever the checkpoint held.
        scale *= fv.nan_lr_factor
        self.sess.run(self.g.set_rollback_state, {self.g.new_learning_rate_scale: scale,
                                                  self.g.new_nan_rollbacks: rollbacks + 1})
        self._mark_restart(restored)
        print(f"{what} at global step {step}: rolled back to step {restored} "
              f"({latest or 'the initial weights'}), learning rate x{scale:g} "
              f"(rollback {rollbacks + 1} of at most {fv.max_nan_rollbacks})", flush=True)
        return restored

    def stopped(self, step):
        """Saves where a signal stopped the run, says how to continue, exits 128 + the signal."""
        name = signal.Signals(self.stop.signum).name
        epoch, offset = divmod(step, self.per_epoch)
        where = f"global step {step} (epoch {epoch + 1}, step {offset} of {self.per_epoch})"
        saved = "nothing new to save"
        if checkpoints.latest(self.run_dir.checkpoints) != f"{self.run_dir.checkpoint_prefix}-{step}":
            saved = (f"saved {self.run_dir.checkpoint_prefix}-{step}" if self.save(step)
                     else "the weights are not finite: not saved")
        self.run_dir.write_status("stopped", step)
        self.close()
        print(f"stopped by {name} at {where}; {saved}. Run the same command to continue.", flush=True)
        sys.exit(128 + self.stop.signum)

    def run(self, step):
        fv, g = self.fv, self.g
        self.run_dir.write_status("running", step)
        epoch = step // self.per_epoch
        if epoch >= fv.num_epochs:
            print(f"already trained {fv.num_epochs} epochs (global step {step}); raise --num_epochs to "
                  "train on")
        while step < fv.num_epochs * self.per_epoch:
            epoch, offset = divmod(step, self.per_epoch)
            started = time.perf_counter()
            order = epoch_order(len(self.train_x), fv.seed, epoch)[offset * fv.batch_size:]
            g.pipeline.start(self.sess, self.train_x[order], self.train_y[order], fv.batch_size,
                             augment_seed=(fv.seed, epoch, offset) if fv.augment else None)
            with tqdm.tqdm(total=self.per_epoch, initial=offset, desc=f"epoch {epoch + 1}/{fv.num_epochs}",
                           unit="step", disable=None if fv.progress else True, leave=False) as bar:
                result = run_epoch(self.sess, g, self.writers["train"], step, self.per_epoch - offset,
                                   fv.batch_size, fv.summary_every_n_steps, bar, self.stop)
            step = result.step
            if result.bad_loss is not None:
                step = self.on_nan(step, f"loss is {result.bad_loss}")
                continue
            if self.stop.signum is not None and step % self.per_epoch:
                self.stopped(step)
            images_per_s = result.steps * fv.batch_size / (time.perf_counter() - started)
            line = (f"epoch {epoch + 1}/{fv.num_epochs}  step {step}  "
                    f"train loss {result.loss:.4f} acc {result.accuracy:.4f}  {images_per_s:.0f} img/s")
            if len(self.data.split("validation")[0]):
                evaluating = time.perf_counter()
                metrics, summary = evaluate_split(self.sess, g, *self.data.split("validation"),
                                                  fv.eval_batch_size)
                self.writers["test"].add_summary(summary, step)
                line += (f"  validation loss {metrics['loss']:.4f} acc {metrics['accuracy']:.4f} "
                         f"in {time.perf_counter() - evaluating:.1f}s")
            if not self.save(step):
                step = self.on_nan(step, "the weights are not finite")
                continue
            print(f"{line}  ({time.perf_counter() - started:.1f}s)", flush=True)
            if self.stop.signum is not None:
                self.stopped(step)
        metrics = None
        if len(self.data.split("test")[0]):
            metrics, _ = evaluate_split(self.sess, g, *self.data.split("test"), fv.eval_batch_size)
        self.close()
        self.run_dir.write_status("finished", step)
        return metrics


def train(fv):
    run_dir = TrainDir(fv.train_dir)
    if checkpoints.latest(run_dir.checkpoints) and os.path.isfile(run_dir.flags_cfg):
        config.check_resume(fv, run_dir.flags_cfg)
    with StopSignals() as stop:
        return _train(fv, run_dir, stop)


def _train(fv, run_dir, stop):
    data = load_dataset_from_flags(fv)
    run_dir.make()
    g = build_graph_for(fv, data)
    with tf.compat.v1.Session(graph=g.graph, config=config.session_config(fv)) as sess:
        trainer = Trainer(fv, data, run_dir, sess, g, stop)
        step = trainer.start()
        # Only now that the checkpoint is known to fit: a failed start leaves the train dir alone.
        checkpoints.remove_incomplete(run_dir.checkpoints)
        config.save_flags(fv, run_dir.flags_cfg)
        metrics = trainer.run(step)
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
