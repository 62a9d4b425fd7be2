"""The start-up summary: what a run is about to do, before its first step."""
import sys

import numpy as np
import tensorflow as tf

from cnn_tf.data.augmentation import AugmentSpec
from cnn_tf.graph.hardware import fallback_cost, tower_devices
from cnn_tf.loop import Callback
from cnn_tf.schedules import horizon_moved


def _count(n):
    return f"{n:,}"


def _parameters(variables):
    return sum(int(np.prod(v.shape.as_list())) for v in variables)


class StartupSummary(Callback):
    """One aligned line each: dataset and where it was read from, split sizes, classes, image shape,
    model and parameter count, devices, precision, train dir, and whether the run starts, resumes
    (from which checkpoint and step, and what a changed --num_epochs did to the schedule) or has
    nothing left to do."""

    def __init__(self, cfg, data, warm_start=None, cluster=None, file=None, saved=None):
        self.cfg, self.data, self.warm_start, self.cluster, self.file = cfg, data, warm_start, cluster, file
        self.saved = saved  # the RunConfig a resumed run was trained with (its flags.cfg)

    def setup(self, trainer):
        super().setup(trainer)
        with trainer.g.graph.as_default():
            self.parameters = _parameters(tf.compat.v1.trainable_variables())
        self.trained = _parameters(trainer.g.train_ops.variables_to_train)

    def before_train(self):
        t, cfg, data = self.trainer, self.cfg, self.data
        names = data.class_names
        classes = f"{len(names)}: {', '.join(names[:10])}" + (f", ... ({len(names) - 10} more)" if len(names) > 10 else "")
        devices = tower_devices(cfg)
        towers = f" ({cfg.num_towers} towers of {cfg.batch_size // cfg.num_towers} images)" if cfg.num_towers > 1 else ""
        batch = (f"{cfg.update_batch_size} ({cfg.gradient_accumulation_steps} batches of {cfg.batch_size})"
                 if cfg.gradient_accumulation_steps > 1 else f"{cfg.batch_size}")
        if t.global_step >= t.max_steps:
            state = (f"already done: trained {t.num_epochs} epochs (global step {t.global_step}); raise --num_epochs "
                     "to train on")
        elif self.cluster and not self.cluster.is_chief:
            state = (f"joining at global step {t.global_step}: {t.steps_per_epoch} steps of {batch} images "
                     f"an epoch, until global step {t.max_steps}")
        elif t.resumed_from:
            state = (f"resuming from {t.resumed_from} at global step {t.global_step} (epoch "
                     f"{t.epoch + 1}, step {t.step_in_epoch} of {t.steps_per_epoch})")
        else:
            state = f"starting: {t.num_epochs} epoch{'s' if t.num_epochs > 1 else ''} of {t.steps_per_epoch} steps of {batch} images"
        # Which weights: said every time a run could warm-start, as slim's users had to guess.
        if self.warm_start and not t.resumed_from:
            state += f"; warm start: {self.warm_start.summary()}"
        elif cfg.warm_start_from and t.resumed_from:
            state += f"; not warm-starting from {cfg.warm_start_from}: the train dir has its own checkpoint"
        model = f"{cfg.model}, {_count(self.parameters)} parameters"
        if self.trained != self.parameters:
            model += f", {_count(self.trained)} trained ({','.join(cfg.trainable_scopes)})"
        fallback = fallback_cost(cfg, t.g.precision)
        augment = AugmentSpec.of(cfg)
        rows = [("augment", augment.describe())] if augment.on else []
        moved = self.saved and t.resumed_from and horizon_moved(cfg, self.saved, t.global_step, data.size("train"))
        if moved:
            rows.append(("schedule", moved))
        if self.cluster:
            c = self.cluster
            rows.append(("cluster", f"{c.name()} of {c.num_workers} workers{' (the chief)' if c.is_chief else ''}, "
                                    f"ps {','.join(c.ps_hosts)}; {'synchronous' if c.sync else 'asynchronous'} updates"))
        print_summary([
            ("dataset", f"{data.name} from {data.source}" if data.source else data.name),
            ("splits", " · ".join(f"{name} {_count(data.size(name))}" for name in data.splits)),
            ("classes", classes),
            ("images", "×".join(str(d) for d in data.image_shape)),
            ("model", model),
            ("devices", ", ".join(devices) + towers),
            ("precision", t.g.precision + (f" ({fallback})" if fallback else "")),
            ("train dir", cfg.train_dir),
            ("saving", self._keeping()),
            *rows,
            ("run", state),
        ], self.file)


    def _keeping(self):
        """What the run keeps, and when it stops before --num_epochs."""
        cfg, best = self.cfg, self.trainer.logs.best
        every = [f"{cfg.checkpoint_every_steps} steps"] * bool(cfg.checkpoint_every_steps) + [
            f"{cfg.checkpoint_every_secs:g} s"] * bool(cfg.checkpoint_every_secs)
        text = f"every epoch{''.join(f' and {e}' for e in every)}, the last {cfg.max_num_checkpoint}"
        if cfg.keep_best and not self.data.size("validation"):
            text += "; no best checkpoint: no validation split"
        elif cfg.keep_best:
            text += f"; the best {cfg.keep_best} by {cfg.best_metric} in checkpoints/best"
            text += f" (so far: {best.value:.4f} at epoch {best.epoch})" if best else ""
        if cfg.early_stopping_patience:
            start = f" after epoch {cfg.early_stopping_start_epoch}" if cfg.early_stopping_start_epoch else ""
            epochs = "epoch" if cfg.early_stopping_patience == 1 else "epochs"
            text += (f"; early stopping after {cfg.early_stopping_patience} {epochs}{start} without "
                     f"{cfg.best_metric} improving by more than {cfg.early_stopping_min_delta:g}")
        return text


def print_summary(rows, file=None):
    """Aligned `key  value` lines, as Keras' model summary: what a run is about to do."""
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}", file=file or sys.stdout)
    (file or sys.stdout).flush()
