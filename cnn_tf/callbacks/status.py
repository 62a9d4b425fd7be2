"""What the train dir says about the run: flags.cfg, run.json and status.json."""

import tensorflow as tf

from cnn_tf import flagfile, log
from cnn_tf.loop import Callback


class RunStatus(Callback):
    """Writes flags.cfg and, if the train dir has none yet, the run manifest `record` (cnn_tf.manifest)
    once training starts (only then: a run that fails to start leaves the train dir as it was), and
    status.json: running, then finished, stopped or failed, at which step."""

    chief_only = True

    def __init__(self, run_dir, cfg, record=None):
        self.run_dir, self.cfg, self.record = run_dir, cfg, record

    def before_train(self):
        # run.json before flags.cfg: a reader that found flags.cfg (evaluate --watch) finds the record too.
        if self.record is not None and not tf.io.gfile.exists(self.run_dir.run_json):
            if self.trainer.resumed_from:  # a train dir written before run manifests
                log.note(f"{self.run_dir.path} had no run.json (it was written before run manifests): recorded "
                         "its data as found now; from here on a resume checks the data against it")
            self.record.write(self.run_dir.run_json)
        flagfile.save_config(self.cfg, self.run_dir.flags_cfg)
        self.run_dir.write_status("running", self.trainer.global_step)

    def after_train(self, state):
        self.run_dir.write_status(state, self.trainer.global_step)
