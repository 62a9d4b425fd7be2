"""The start-up summary: what a run is about to do, before its first step."""
import sys

import numpy as np
import tensorflow as tf

from cnn_tf.graph.hardware import tower_devices
from cnn_tf.loop import Callback


def _count(n):
    return f"{n:,}"


def _parameters(variables):
    return sum(int(np.prod(v.shape.as_list())) for v in variables)


class StartupSummary(Callback):
    """One aligned line each: dataset and where it was read from, split sizes, classes, image shape,
    model and parameter count, devices, precision, train dir, and whether the run starts, resumes
    (from which checkpoint and step) or has nothing left to do."""

    def __init__(self, cfg, data, warm_start=None, cluster=None, file=None):
        self.cfg, self.data, self.warm_start, self.cluster, self.file = cfg, data, warm_start, cluster, file

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
        if t.global_step >= t.max_steps:
            state = (f"already done: trained {t.num_epochs} epochs (global step {t.global_step}); raise --num_epochs "
                     "to train on")
        elif self.cluster and not self.cluster.is_chief:
            state = (f"joining at global step {t.global_step}: {t.steps_per_epoch} steps of {cfg.batch_size} images "
                     f"an epoch, until global step {t.max_steps}")
        elif t.resumed_from:
            state = (f"resuming from {t.resumed_from} at global step {t.global_step} (epoch "
                     f"{t.epoch + 1}, step {t.step_in_epoch} of {t.steps_per_epoch})")
        else:
            state = f"starting: {t.num_epochs} epoch{'s' if t.num_epochs > 1 else ''} of {t.steps_per_epoch} steps of {cfg.batch_size} images"
        # Which weights: said every time a run could warm-start, as slim's users had to guess.
        if self.warm_start and not t.resumed_from:
            state += f"; warm start: {self.warm_start.summary()}"
        elif cfg.warm_start_from and t.resumed_from:
            state += f"; not warm-starting from {cfg.warm_start_from}: the train dir has its own checkpoint"
        model = f"{cfg.model}, {_count(self.parameters)} parameters"
        if self.trained != self.parameters:
            model += f", {_count(self.trained)} trained ({','.join(cfg.trainable_scopes)})"
        rows = []
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
            ("precision", t.g.precision),
            ("train dir", cfg.train_dir),
            *rows,
            ("run", state),
        ], self.file)


def print_summary(rows, file=None):
    """Aligned `key  value` lines, as Keras' model summary: what a run is about to do."""
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}", file=file or sys.stdout)
    (file or sys.stdout).flush()
