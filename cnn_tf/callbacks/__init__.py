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
from cnn_tf.callbacks.checkpoint import Checkpoint
from cnn_tf.callbacks.heartbeat import Heartbeat
from cnn_tf.callbacks.hooks import HookCallback
from cnn_tf.callbacks.nan_guard import NanGuard
from cnn_tf.callbacks.progress import Progress
from cnn_tf.callbacks.startup import StartupSummary
from cnn_tf.callbacks.status import RunStatus
from cnn_tf.callbacks.stop_signals import StopOnSignal
from cnn_tf.callbacks.summaries import EventWriters, RunSummary, TrainSummaries
from cnn_tf.callbacks.validation import FinalEvaluation, Validation


def default_callbacks(cfg, run_dir, data, warm_start=None, cluster=None, record=None):
    """The callbacks of a training run of configuration `cfg` in TrainDir `run_dir` on `data`
    (`warm_start`: the run's cnn_tf.fine_tuning.WarmStart, if it has one; `cluster`: this process's
    cnn_tf.distributed.Cluster, if any; `record`: the run's cnn_tf.manifest.RunManifest, written
    into the train dir when it has none)."""
    return [
        StartupSummary(cfg, data, warm_start, cluster),
        TrainSummaries(cfg.summary_every_n_steps),
        NanGuard(cfg.on_nan, cfg.nan_lr_factor, cfg.max_nan_rollbacks),
        Validation(data, cfg.eval_batch_size),
        EventWriters(run_dir),
        RunSummary(cfg, run_dir, flagfile.flagfile_text(cfg)),
        Checkpoint(cfg.max_num_checkpoint),
        FinalEvaluation(data, cfg.eval_batch_size, run_dir),
        RunStatus(run_dir, cfg, record),
        Progress(enabled=cfg.progress),
        *([Heartbeat(cluster)] if cluster and cluster.sync else []),
        StopOnSignal(),
    ]


__all__ = ["RunSummary", "Checkpoint", "EventWriters", "Heartbeat", "FinalEvaluation", "HookCallback", "NanGuard", "Progress", "RunStatus",
           "StartupSummary", "StopOnSignal", "TrainSummaries", "Validation", "default_callbacks"]
