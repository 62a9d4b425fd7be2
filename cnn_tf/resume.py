"""What a resumed run takes from the run that wrote its checkpoints (its flags.cfg): the flags that
must match, and the data choices it keeps when they are not given again."""
import dataclasses

from cnn_tf.errors import UserError
from cnn_tf.options import DATA, SOURCES, serialize


def check_resume(cfg, saved):
    """A resumed run must share the flags that fix the graph's variables, the data or its order with
    the run that wrote the checkpoints; the rest (--num_epochs, the learning rate, --precision, where
    the data is, --num_towers, ...) may change."""
    if (saved.learning_rate_schedule == "plateau") != (cfg.learning_rate_schedule == "plateau"):
        raise UserError(f"{cfg.train_dir} was trained with --learning_rate_schedule={saved.learning_rate_schedule}; "
                        f"plateau keeps its factor in the checkpoints, so a run cannot switch to or from it on a "
                        "resume: use another --train_dir")
    for field in dataclasses.fields(cfg):
        name = field.name
        if field.metadata["must_match"] and getattr(saved, name) != getattr(cfg, name):
            raise UserError(f"{cfg.train_dir} was trained with {serialize(name, getattr(saved, name))} and this "
                            f"run asks for {serialize(name, getattr(cfg, name))}; resume with the same value or "
                            "use another --train_dir")


def remembered(cfg, saved, given):
    """A resumed run's data choices that were not given again (`given`: the names of the flags given
    on the command line or in a flagfile) are the ones it started with, in its flags.cfg `saved`:
    where the data is, --skip_bad_images, --augment, ... (the must-match ones are checked instead)."""
    if given is None:
        return cfg
    keep = {f.name: getattr(saved, f.name) for f in dataclasses.fields(cfg)
            if f.metadata["group"] in (DATA, SOURCES) and not f.metadata["must_match"] and f.name not in given}
    return cfg.replace(**keep)
