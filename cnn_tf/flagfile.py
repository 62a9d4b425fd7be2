"""A train dir's flags.cfg: the effective flags of a run, written as a flagfile `train
--flagfile=<train_dir>/flags.cfg` reads, and read back (old spellings upgraded) by a resume,
`evaluate`, `export` and `predict`."""
import dataclasses

from absl import flags
import tensorflow as tf

from cnn_tf import config, errors
from cnn_tf.errors import UserError
from cnn_tf.options import define_flags, from_flags, serialize
from cnn_tf.textfile import read_text
from cnn_tf.traindir import write_atomic


def flagfile_text(cfg):
    return "".join(serialize(f.name, getattr(cfg, f.name)) + "\n" for f in dataclasses.fields(cfg)
                   if f.metadata["saved"] and getattr(cfg, f.name) is not None)


def save_config(cfg, path):
    write_atomic(path, flagfile_text(cfg))


# Flags whose spelling changed: --augment was a boolean before it named a kind of augmentation.
_RENAMED = {"--augment": "--augment=flip_crop", "--noaugment": "--augment=none", "--augment=true": "--augment=flip_crop",
            "--augment=false": "--augment=none"}


def upgrade_flags(args):
    """Command-line arguments (flagfiles expanded) or flags.cfg lines in today's spelling."""
    return [_RENAMED.get(arg.strip().lower(), arg) if arg.strip().lower().startswith(("--augment", "--noaugment"))
            else arg for arg in args]


def load_config(path):
    """The RunConfig saved in flags.cfg at `path`."""
    fv = flags.FlagValues()
    define_flags(fv, dataclasses.fields(config.RunConfig))
    try:  # read through tf.io.gfile: a train dir may be on any filesystem TensorFlow supports
        lines = [line.strip() for line in read_text(path).splitlines()]
        fv(["cnn_tf"] + upgrade_flags([line for line in lines if line and not line.startswith(("#", "//"))]))
    except flags.Error as e:
        raise UserError(f"{path}: {e}") from e
    except tf.errors.OpError as e:
        raise UserError(f"cannot read {path}: {errors.reason(e)}") from e
    try:
        return from_flags(config.RunConfig, fv)
    except UserError as e:
        raise UserError(f"{path}: {e}") from e
