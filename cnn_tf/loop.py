"""Where the training loop runs: a small step loop, and the protocol of the callbacks that do
everything else (progress, summaries, NaN guard, signals, validation, checkpoints, status).

    trainer = Trainer(g, feed, callbacks, num_epochs, session_config, checkpoint_dir)
    trainer.train()

    setup(trainer)        each callback, in order; the graph is still open, so a callback may add ops
    -- the graph is finalized, the session created, the latest checkpoint restored (or the
       variables initialized); a failure here leaves the train dir as it was --
    before_train()
    per epoch:   the feed starts the epoch's order at the current step, then before_epoch()
      per step:  before_step() -> extra fetches; ONE sess.run(train op + every callback's fetches);
                 after_step(values of that callback's own fetches)
      after_epoch()       (only for an epoch run to its end)
    after_train(state)    state: "finished", "stopped" or "failed" (an exception is on its way)
    after_save(path)      when the Checkpoint callback has saved (and listed) a checkpoint

A callback that must keep something across a restart (the best value so far, a count) returns it
from `state()`: it is saved with every checkpoint (model.ckpt-N.json) and given back to
`load_state()` whenever the weights are restored (a resume, a rollback; None: fresh weights).

A callback may ask the loop to stop after the current step (`request_stop`; with `finished=True`
the run counts as finished: early stopping), or put the weights
back to an earlier step (`rewind`, after restoring them): the epoch then restarts at that step and
`after_rewind()` tells every callback. Callbacks run in the order given; `chief_only` ones run on the
chief (worker 0) only.
"""
import dataclasses
import typing

import tensorflow as tf

from cnn_tf import checkpoints
from cnn_tf.errors import UserError


@dataclasses.dataclass
class RunLogs:
    """What callbacks share, declared in one place (Keras passes `logs` the same way): each field has
    one writer, and any callback after it in the list may read it."""
    events: typing.Any = None  # EventWriters: write(run, serialized summary, step) to summaries/<run>
    epoch: dict = dataclasses.field(default_factory=dict)  # this epoch's: {"validation": metrics}; reset each epoch
    results: dict = dataclasses.field(default_factory=dict)  # the run's: {"test": metrics} (FinalEvaluation)
    best: typing.Any = None  # the best checkpoint so far: a cnn_tf.best_checkpoints.Entry (BestCheckpoint)


class Callback:
    """One concern of a training run; override the events it needs (see the module docstring).
    `self.trainer` is the Trainer (its `sess`, `g`, `global_step`, `epoch`, `step_in_epoch`, ...);
    what callbacks pass each other is in `trainer.logs` (RunLogs)."""

    chief_only = False
    state_key = None  # the key of `state()` in a checkpoint's state (default: the class name)

    def setup(self, trainer):
        self.trainer = trainer

    def state(self):
        """What to keep across a restart (JSON-able), saved with each checkpoint; None: nothing."""
        return None

    def load_state(self, state):
        """`state()` as saved with the checkpoint just restored (None: fresh weights, or none saved)."""

    def before_train(self):
        pass

    def before_epoch(self):
        pass

    def before_step(self):
        """Returns a dict of tensors or ops to fetch in this step's sess.run, or None."""
        return None

    def after_step(self, values):
        """`values`: the fetched values of this callback's own before_step dict (None if it had none)."""

    def after_epoch(self):
        pass

    def after_rewind(self):
        pass

    def after_train(self, state):
        pass

    def after_save(self, path):
        pass


@typing.runtime_checkable
class TrainingSession(typing.Protocol):
    """How the Trainer gets and keeps its session: LocalSession here, cnn_tf.distributed's
    ClusterSession in a cluster."""
    recoverable: tuple  # the errors of a step that `recover` handles (none in one process)
    run_options: typing.Any  # RunOptions of every step (a cluster's timeout), or None

    def create(self, trainer) -> tuple:
        """Sets trainer.sess; returns (global step, checkpoint path or None) it starts from."""

    def recover(self, trainer, error):
        """After a `recoverable` error: returns the step to go on from (None: retry the step)."""

    def close(self, trainer) -> None: ...


class LocalSession:
    """A session in this process: the latest checkpoint restored, or fresh weights."""

    recoverable = ()  # nothing to recover from: an error is the run's error
    run_options = None

    def __init__(self, config=None):
        self.config = config

    def create(self, trainer):
        trainer.sess = tf.compat.v1.Session(graph=trainer.g.graph, config=self.config)
        try:
            return trainer.restore()
        except BaseException:
            trainer.sess.close()
            raise

    def recover(self, trainer, error):
        raise error  # not called: nothing is recoverable in one process

    def close(self, trainer):
        trainer.sess.close()


class Trainer:
    """Runs the train op of TrainGraph `g` over `feed` (steps_per_epoch, start(sess, epoch, first_step))
    for `num_epochs` epochs, counted across resumes; `initialize(sess)` gives fresh weights (default:
    g.saving.init_op), and its `description` attribute, if any, says which (for messages)."""

    def __init__(self, g, feed, callbacks, num_epochs, session_config=None, checkpoint_dir=None,
                 initialize=None, is_chief=True, session=None):
        self.g, self.feed, self.num_epochs = g, feed, num_epochs
        self.checkpoint_dir, self.is_chief = checkpoint_dir, is_chief
        self.session = session or LocalSession(session_config)
        self._initialize = initialize or (lambda sess: sess.run(g.saving.init_op))
        self.initial_weights = getattr(initialize, "description", "the initial weights")
        self.callbacks = [c for c in callbacks if is_chief or not c.chief_only]
        self.steps_per_epoch = feed.steps_per_epoch  # this process's steps of an epoch
        # What an epoch adds to the global step: the same in one process; in a cluster, see TrainFeed.
        self.global_steps_per_epoch = getattr(feed, "global_steps_per_epoch", feed.steps_per_epoch)
        self.max_steps = num_epochs * self.global_steps_per_epoch
        # In a cluster others move the global step too: each step fetches its value after the update.
        self._step_after_train = g.cluster.step_after_train if g.cluster is not None else None
        self.sess, self.global_step, self.epoch, self.step_in_epoch = None, 0, 0, 0
        self.resumed_from, self.state, self.stop_reason, self.exit_code = None, None, None, 0
        self._stop_finishes = False
        self.logs = RunLogs()
        self._rewound = False

    # What callbacks may call.
    def request_stop(self, reason, exit_code=0, finished=False):
        """Stop after the current step (the callbacks' after_train("stopped") still run; "finished"
        with `finished`: the run is done, as early stopping says)."""
        if self.stop_reason is None:
            self.stop_reason, self.exit_code, self._stop_finishes = reason, exit_code, finished

    def restore(self):
        """The latest complete checkpoint of checkpoint_dir, or fresh weights; returns (step, path).
        Every callback's saved state is given back (load_state)."""
        latest = checkpoints.latest(self.checkpoint_dir) if self.checkpoint_dir else None
        if latest:
            step = checkpoints.restore(self.sess, self.g, latest)
        else:
            self._initialize(self.sess)
            step = 0
        states = checkpoints.read_state(latest) if latest else {}
        for callback in self.callbacks:
            key = callback.state_key or type(callback).__name__
            try:
                callback.load_state(states.get(key))
            except (TypeError, KeyError, ValueError, AttributeError) as e:
                raise UserError(f"{latest}.json holds a {key} state this version cannot read ({e!r}): delete the "
                                "checkpoint's files to fall back to the one before") from e
        return step, latest

    def callback_states(self):
        """{key: state} of the callbacks that keep one: what a checkpoint saves with the weights."""
        states = {c.state_key or type(c).__name__: c.state() for c in self.callbacks}
        return {key: state for key, state in states.items() if state is not None}

    def saved(self, path):
        """Checkpoint `path` was saved and listed (the Checkpoint callback calls this)."""
        self._fire("after_save", path)

    def rewind(self, step):
        """The weights were put back to `step`: the epoch restarts there."""
        self.global_step, self._rewound = step, True
        self._fire("after_rewind")

    # The loop.
    def train(self):
        """setup, session, restore, loop; returns the final state."""
        self.open()
        try:
            self.run(self.max_steps)
        except BaseException:
            try:
                self.close()
            except Exception:  # noqa: BLE001 - the run's own error is the one to report
                pass
            raise
        self.close()
        return self.state

    def open(self):
        for callback in self.callbacks:
            callback.setup(self)
        self.g.graph.finalize()  # an op created by the loop would be a bug (and a slow leak)
        self.global_step, self.resumed_from = self.session.create(self)
        self.state = "failed"  # until the loop says otherwise
        self._started, self._begun = False, []

    def run(self, max_steps):
        """Trains until global step `max_steps` (or a stop request)."""
        with self.g.graph.as_default():  # the graph callbacks create writers and savers on
            self._run(max_steps)

    def _run(self, max_steps):
        if not self._started:
            self._started = True
            self._locate()
            for callback in self.callbacks:
                callback.before_train()
                self._begun.append(callback)
        while self.global_step < max_steps and self.stop_reason is None:
            self.feed.start(self.sess, self.epoch, self.step_in_epoch)
            self._rewound, self.logs.epoch = False, {}
            self._fire("before_epoch")
            while (self.step_in_epoch < self.steps_per_epoch and self.global_step < max_steps and not self._rewound
                   and self.stop_reason is None):
                self._step()
            if not self._rewound and self.step_in_epoch == self.steps_per_epoch:
                self._fire("after_epoch")
                if not self._rewound:
                    self.epoch, self.step_in_epoch = self.epoch + 1, 0
            if self._rewound:
                self._locate()
        self.state = "stopped" if self.stop_reason is not None and not self._stop_finishes else "finished"

    def _locate(self):
        """The epoch and step in it that the global step stands for (exact in one process)."""
        epoch, done = divmod(self.global_step, self.global_steps_per_epoch)
        self.epoch = epoch
        self.step_in_epoch = min(self.steps_per_epoch, done * self.steps_per_epoch // self.global_steps_per_epoch)

    def close(self):
        """after_train on every callback whose before_train ran (each one, even if another raised:
        writers must close), then the session."""
        error = None
        with self.g.graph.as_default():
            for callback in self._begun:
                try:
                    callback.after_train(self.state)
                except BaseException as e:  # noqa: BLE001 - re-raised below, after the others ran
                    error = error or e
        self.session.close(self)
        if error is not None:
            raise error

    def _step(self):
        train_op = self.g.train_ops.train_op if self._step_after_train is None else self._step_after_train
        fetches = {"train_op": train_op}
        for i, callback in enumerate(self.callbacks):
            extra = callback.before_step()
            if extra:
                fetches[i] = extra
        try:
            values = self.sess.run(fetches, options=self.session.run_options)
        except self.session.recoverable as e:  # a lost ps or worker (cluster only)
            step = self.session.recover(self, e)
            if step is not None:
                self.rewind(step)
            return
        self.global_step = self.global_step + 1 if self._step_after_train is None else int(values["train_op"])
        self.step_in_epoch += 1
        for i, callback in enumerate(self.callbacks):
            callback.after_step(values.get(i))
            if self._rewound:
                return

    def _fire(self, event, *args):
        for callback in self.callbacks:
            getattr(callback, event)(*args)
            if self._rewound and event == "after_epoch":
                return
