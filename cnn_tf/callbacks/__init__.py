"""The callbacks of a training run, one concern each (the protocol: `cnn_tf.loop`).

`default_callbacks` is the list `python -m cnn_tf.train` runs, in the order the events need: the
train summaries before the NaN guard (a diverged step's summaries show where it went wrong), the
NaN guard before validation and checkpoints (a rollback skips the rest of the epoch's events), the
event files flushed before a checkpoint is listed (a listed checkpoint's summaries are on disk),
the final test evaluation before the status file says "finished", the console line when the
epoch's numbers are all in, and the signal handlers last, so they guard every other callback's
end of the run.
"""
from cnn_tf import flagfile
from cnn_tf.class_weights import unbalanced
from cnn_tf.callbacks.best_checkpoint import BestCheckpoint
from cnn_tf.callbacks.checkpoint import Checkpoint
from cnn_tf.callbacks.early_stopping import EarlyStopping
from cnn_tf.callbacks.history import History
from cnn_tf.callbacks.heartbeat import Heartbeat
from cnn_tf.callbacks.hooks import HookCallback
from cnn_tf.callbacks.nan_guard import NanGuard
from cnn_tf.callbacks.plateau import ReduceOnPlateau
from cnn_tf.callbacks.progress import Progress
from cnn_tf.callbacks.startup import StartupSummary
from cnn_tf.callbacks.status import RunStatus
from cnn_tf.callbacks.stop_signals import StopOnSignal
from cnn_tf.callbacks.summaries import EventWriters, RunSummary, TrainSummaries
from cnn_tf.callbacks.train_means import TrainMeans
from cnn_tf.callbacks.validation import FinalEvaluation, Validation


def default_callbacks(cfg, run_dir, data, warm_start=None, cluster=None, record=None, saved=None):
    """The callbacks of a training run of configuration `cfg` in TrainDir `run_dir` on `data`
    (`warm_start`: the run's cnn_tf.fine_tuning.WarmStart, if it has one; `cluster`: this process's
    cnn_tf.distributed.Cluster, if any; `record`: the run's cnn_tf.manifest.RunManifest, written
    into the train dir when it has none; `saved`: the RunConfig of a resumed run's flags.cfg)."""
    return [
        StartupSummary(cfg, data, warm_start, cluster, saved=saved),
        TrainSummaries(cfg.summary_every_n_steps),
        NanGuard(cfg.on_nan, cfg.nan_lr_factor, cfg.max_nan_rollbacks),
        TrainMeans(),
        Validation(data, cfg.eval_batch_size, cfg.validate_every_steps),
        History(run_dir.history_csv, data.class_names if cfg.class_weights or unbalanced(data) else None),
        EventWriters(run_dir),
        RunSummary(cfg, run_dir, flagfile.flagfile_text(cfg)),
        BestCheckpoint(run_dir.checkpoints, cfg.keep_best, cfg.best_metric),  # --keep_best=0: best/ emptied
        *([EarlyStopping(cfg.early_stopping_patience, cfg.best_metric, cfg.early_stopping_min_delta,
                         cfg.early_stopping_start_epoch)] if cfg.early_stopping_patience else []),
        *([ReduceOnPlateau(cfg.best_metric, cfg.plateau_factor, cfg.plateau_patience, cfg.initial_learning_rate,
                           cfg.min_learning_rate)] if cfg.learning_rate_schedule == "plateau" else []),
        Checkpoint(cfg.max_num_checkpoint, cfg.checkpoint_every_steps, cfg.checkpoint_every_secs),
        FinalEvaluation(data, cfg.eval_batch_size, run_dir),
        RunStatus(run_dir, cfg, record),
        Progress(enabled=cfg.progress),
        *([Heartbeat(cluster)] if cluster and cluster.sync else []),
        StopOnSignal(),
    ]


__all__ = ["BestCheckpoint", "EarlyStopping", "History", "ReduceOnPlateau", "TrainMeans", "RunSummary", "Checkpoint", "EventWriters", "Heartbeat", "FinalEvaluation", "HookCallback", "NanGuard", "Progress", "RunStatus",
           "StartupSummary", "StopOnSignal", "TrainSummaries", "Validation", "default_callbacks"]
