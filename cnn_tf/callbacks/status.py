"""What the train dir says about the run: flags.cfg and status.json."""
from cnn_tf import config
from cnn_tf.loop import Callback


class RunStatus(Callback):
    """Writes flags.cfg once training starts (only then: a run that fails to start leaves the train
    dir as it was) and status.json: running, then finished, stopped or failed, at which step."""

    chief_only = True

    def __init__(self, run_dir, cfg):
        self.run_dir, self.cfg = run_dir, cfg

    def before_train(self):
        config.save_config(self.cfg, self.run_dir.flags_cfg)
        self.run_dir.write_status("running", self.trainer.global_step)

    def after_train(self, state):
        self.run_dir.write_status(state, self.trainer.global_step)
