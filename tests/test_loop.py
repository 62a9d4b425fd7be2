"""The training loop's protocol: events in order, fetches riding on the step's sess.run,
chief-only callbacks, stop requests, and TensorFlow's SessionRunHooks through the adapter."""
import os
import re

import tensorflow as tf

from cnn_tf.callbacks import HookCallback
from cnn_tf.loop import Callback
from conftest import ROOT, setup_trainer


class Recorder(Callback):
    def __init__(self, chief_only=False):
        self.chief_only, self.events = chief_only, []

    def setup(self, trainer):
        super().setup(trainer)
        with trainer.g.graph.as_default():  # the graph is still open: a callback may add ops
            self.doubled = tf.multiply(trainer.g.global_step, 2)
        self.events.append("setup")

    def before_train(self):
        self.events.append(("before_train", self.trainer.global_step))

    def before_epoch(self):
        self.events.append(("before_epoch", self.trainer.epoch, self.trainer.step_in_epoch))

    def before_step(self):
        return {"doubled": self.doubled}

    def after_step(self, values):
        self.events.append(("step", self.trainer.global_step, int(values["doubled"])))

    def after_epoch(self):
        self.events.append(("after_epoch", self.trainer.global_step))

    def after_train(self, state):
        self.events.append(("after_train", state))


def test_the_loop_fires_the_events_in_order_with_each_callbacks_own_fetches():
    recorder, chief = Recorder(), Recorder(chief_only=True)
    trainer = setup_trainer([recorder, chief])
    assert trainer.train() == "finished" and trainer.global_step == 6
    # the fetch ran in the step's sess.run: global step (before the increment lands) x 2
    steps = [e for e in recorder.events if e[0] == "step"]
    assert [s for _, s, _ in steps] == [1, 2, 3, 4, 5, 6]
    assert all(v in (2 * (s - 1), 2 * s) for _, s, v in steps)
    assert recorder.events[:3] == ["setup", ("before_train", 0), ("before_epoch", 0, 0)]
    assert ("after_epoch", 3) in recorder.events and ("before_epoch", 1, 0) in recorder.events
    assert recorder.events[-2:] == [("after_epoch", 6), ("after_train", "finished")]
    assert chief.events == recorder.events
    assert trainer.g.graph.finalized

    # on a worker that is not the chief, chief-only callbacks do not run at all
    recorder, chief = Recorder(), Recorder(chief_only=True)
    setup_trainer([recorder, chief], is_chief=False).train()
    assert recorder.events and chief.events == []


def test_a_stop_request_ends_the_run_after_the_current_step():
    class StopAt4(Callback):
        def after_step(self, values):
            if self.trainer.global_step == 4:
                self.trainer.request_stop("test", exit_code=7)

    recorder = Recorder()
    trainer = setup_trainer([StopAt4(), recorder])
    assert trainer.train() == "stopped"
    assert trainer.global_step == 4 and trainer.stop_reason == "test" and trainer.exit_code == 7
    assert recorder.events[-1] == ("after_train", "stopped")
    assert ("after_epoch", 6) not in recorder.events


def test_session_run_hooks_run_through_the_adapter():
    recorder = Recorder()
    trainer = setup_trainer([HookCallback(tf.compat.v1.train.StopAtStepHook(last_step=5)), recorder], num_epochs=4)
    assert trainer.train() == "stopped"
    assert trainer.global_step == 5 and trainer.stop_reason == "StopAtStepHook"


def test_the_readme_example_callback_works_as_written():
    readme = open(os.path.join(ROOT, "README.md")).read()
    code = re.search(r"```python\n(from cnn_tf\.loop import Callback\n\nclass StopAtAccuracy.*?)```", readme, re.S)
    namespace = {}
    exec(code.group(1), namespace)

    class FakeValidation(Callback):
        def after_epoch(self):
            self.trainer.logs.epoch["validation"] = {"accuracy": 0.5 + 0.25 * self.trainer.epoch}

    trainer = setup_trainer([FakeValidation(), namespace["StopAtAccuracy"](0.7)], num_epochs=5)
    assert trainer.train() == "stopped"
    assert trainer.global_step == 6 and trainer.stop_reason == "validation accuracy 0.7500"
