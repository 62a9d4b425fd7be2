"""The train CLI: `python -m cnn_tf.train --flagfile=configs/X.cfg [--flag=value ...]`.

Loads the dataset, builds the graph, and hands both to the training loop (`cnn_tf.loop`) with the
default callbacks (`cnn_tf.callbacks`): the latest complete checkpoint of --train_dir is resumed
(global step, learning rate, optimizer state and the position in the epoch's shuffled order all
continue), the validation split is evaluated and a checkpoint saved after each epoch, and at the
end the test accuracy is printed. SIGINT / SIGTERM stop it after the current step with a
checkpoint; a NaN or infinite loss stops it (or, with --on_nan=rollback, rolls it back).
"""
import dataclasses
import sys

from absl import flags
import tensorflow as tf

from cnn_tf import checkpoints, cli, config, distributed, exit_codes, flagfile, options, resume
from cnn_tf.callbacks import default_callbacks
from cnn_tf.class_weights import class_weights
from cnn_tf.data import load_dataset_for
from cnn_tf.data.pipeline import AugmentSpec, TrainFeed
from cnn_tf.errors import UserError
from cnn_tf.fine_tuning import WarmStart
from cnn_tf.graph import build_graph_for, hardware
from cnn_tf.lock import TrainDirLock
from cnn_tf.loop import Trainer
from cnn_tf.manifest import RunManifest
from cnn_tf.traindir import TrainDir


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """How a run of `train` ended; the CLI prints it (`report`) and exits with `exit_code`."""
    state: str  # "finished", "stopped" (a stop request: a signal, a lost worker), or "served" (a ps)
    exit_code: int = exit_codes.OK
    global_step: int = 0
    steps_per_epoch: int = 0
    stop_reason: str = None
    checkpoint: str = None  # the latest complete checkpoint (the chief's)
    metrics: dict = None  # the test split's, at the end of a finished run that has one
    best: dict = None  # the best checkpoint's {path, step, epoch, value, test: metrics}, when one was kept
    best_metric: str = None
    worker: str = None  # a worker that is not the chief: its name


def train(cfg, given=None):
    """Trains run configuration `cfg` (paths resolved); returns a TrainResult. `given`: the names of
    the flags given this time; on a resume, the data choices not among them are the ones the run
    started with (None: take `cfg` as it is). In a cluster (cnn_tf.distributed), a ps serves until the
    workers are done; only the chief (worker 0) writes into the train dir, and holds its lock."""
    cluster = distributed.cluster_from(cfg)
    if cluster and cluster.job_name == "ps":
        distributed.run_ps(cluster, hardware.session_config(cfg))
        return TrainResult("served")
    chief = cluster is None or cluster.is_chief
    lock = TrainDirLock(cfg.train_dir)
    try:
        if chief and tf.io.gfile.isdir(cfg.train_dir):  # before anything is read from it
            lock.acquire()
        return _train(cfg, given, cluster, chief, lock)
    finally:
        lock.release()


def _train(cfg, given, cluster, chief, lock):
    run_dir = TrainDir(cfg.train_dir)
    try:
        return _train_in(run_dir, cfg, given, cluster, chief, lock)
    except BaseException:
        lock.release()  # its file first: an empty train dir this run made goes too
        run_dir.remove_if_empty()
        raise


def _train_in(run_dir, cfg, given, cluster, chief, lock):
    resuming = bool(checkpoints.latest(run_dir.checkpoints))
    saved = None
    if resuming and tf.io.gfile.exists(run_dir.flags_cfg):
        saved = flagfile.load_config(run_dir.flags_cfg)
        cfg = resume.remembered(cfg, saved, given)
        resume.check_resume(cfg, saved)
    # A resume reads its data's record (an image folder is checked file by file before decoding).
    record = RunManifest.read(run_dir.run_json) if resuming else None
    data = load_dataset_for(cfg, record, cfg.train_dir)
    watching = ([f"--early_stopping_patience={cfg.early_stopping_patience}"] if cfg.early_stopping_patience else []) + (
        ["--learning_rate_schedule=plateau"] if cfg.learning_rate_schedule == "plateau" else [])
    if watching and not data.size("validation"):
        raise UserError(f"{' and '.join(watching)} watch the validation split, and {cfg.dataset} has none here; give "
                        "--validation_size (or --validation_fraction) above 0")
    if record is not None:
        record.check(data, cfg.train_dir)
    else:
        record = RunManifest.of(cfg, data)
    g = build_graph_for(cfg, record, data.pipeline, cluster, class_weights=class_weights(cfg, data))
    # Checked in full before the train dir is touched; a train dir with checkpoints resumes instead.
    warm_start = WarmStart(cfg, g, record.class_names) if cfg.warm_start_from and not resuming and chief else None
    if chief:
        run_dir.make()
        lock.acquire()
        if bool(checkpoints.latest(run_dir.checkpoints)) != resuming:
            raise UserError(f"another process wrote checkpoints into {cfg.train_dir} while this one started; run "
                            "the same command again to resume from them")
    feed = TrainFeed(g.inputs.pipeline, data.split("train"), cfg.update_batch_size, cfg.seed, AugmentSpec.of(cfg),
                     **(dict(worker=cluster.task_index, num_workers=cluster.num_workers, sync=cluster.sync)
                        if cluster else {}))
    session = None
    if cluster:
        g, session = distributed.join(cluster, g, hardware.session_config(cfg))
    trainer = Trainer(g, feed, default_callbacks(cfg, run_dir, data, warm_start, cluster, record, saved), cfg.num_epochs,
                      hardware.session_config(cfg), run_dir.checkpoints, initialize=warm_start, is_chief=chief,
                      session=session)
    trainer.train()
    return TrainResult(trainer.state, trainer.exit_code, trainer.global_step, trainer.steps_per_epoch,
                       trainer.stop_reason, checkpoints.latest(run_dir.checkpoints) if chief else None,
                       trainer.logs.results.get("test") if chief else None,
                       best=trainer.logs.results.get("best") if chief else None, best_metric=cfg.best_metric,
                       worker=None if chief else cluster.name())


def report(result):
    """What the train CLI prints (stdout) of how the run ended."""
    if result.worker:
        end = result.state if result.stop_reason is None else "stopped by " + result.stop_reason
        print(f"{result.worker}: {end} at global step {result.global_step}", flush=True)
    elif result.state == "stopped":  # where the stop left the run, and how to continue
        step, per_epoch, latest = result.global_step, result.steps_per_epoch, result.checkpoint
        saved = (f"saved {latest}" if latest and checkpoints.step_of(latest) == step else
                 f"the weights are not finite: not saved; the latest checkpoint is {latest or 'none'}")
        print(f"stopped by {result.stop_reason} at global step {step} (epoch {step // per_epoch + 1}, step "
              f"{step % per_epoch} of {per_epoch}); {saved}. Run the same command to continue.", flush=True)
    elif result.state == "finished":
        if result.stop_reason:
            print(f"finished early: {result.stop_reason}")
        print(f"checkpoint: {result.checkpoint}")
        print(f"test accuracy: {result.metrics['accuracy']:.4f}" if result.metrics else "no test split to evaluate")
        best = result.best
        if best and best["test"]:
            print(f"best checkpoint: {best['path']} (epoch {best['epoch']}, {result.best_metric} {best['value']:.4f}): "
                  f"test accuracy {best['test']['accuracy']:.4f}")


def main(argv):
    cli.no_arguments(argv)
    fields = dataclasses.fields(config.RunConfig)
    result = train(options.from_flags(config.RunConfig, flags.FLAGS).resolved(),
                   given=set(options.given_flags(flags.FLAGS, fields)))
    report(result)
    sys.exit(result.exit_code)


def run():
    cli.run(main, "python -m cnn_tf.train --flagfile=configs/X.cfg [--flag=value ...]",
            dataclasses.fields(config.RunConfig))


if __name__ == "__main__":
    run()
