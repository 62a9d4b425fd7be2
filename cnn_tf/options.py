"""The option schema: every flag of every CLI is a field of a frozen dataclass (an `Options`), with
its group (for --help), its check, and what a resumed run and `evaluate` may do with it. Flags are
defined on a FlagValues only when a CLI starts (`define_flags`), so every CLI module can be imported
in one process. Each CLI declares its own options beside it; `cnn_tf.config.RunConfig` is a
training run's.
"""
import dataclasses
import typing

from absl import flags

from cnn_tf.errors import UserError

DATA, SOURCES, MODEL, FINE_TUNING, OPTIMIZATION, OUTPUT, RUNTIME, CLUSTER, CHECKPOINT, EVALUATION, EXPORT, \
    PREDICTION, CONVERSION = ("data", "data sources", "model", "fine-tuning", "optimization", "output", "runtime",
                              "cluster", "checkpoint", "evaluation", "export", "prediction", "conversion")
# Groups --help lists after the others: what only some datasets, fine-tuning or clusters need.
LATER_GROUPS = (SOURCES, FINE_TUNING, CLUSTER)
def positive(v):
    return v > 0


def non_negative(v):
    return v >= 0


def unit_interval(v):  # (0, 1]
    return 0 < v <= 1


def fraction(v):  # [0, 1)
    return 0 <= v < 1


def probability(v):  # [0, 1]
    return 0 <= v <= 1


def open_unit_interval(v):  # (0, 1)
    return 0 < v < 1


def grey_or_colour(v):
    return v in (1, 3)


MAX_TIMEOUT = 7 * 24 * 3600.0  # seconds: longer is a typo (and overflows a run's timeout in milliseconds)


def finite_positive(v):
    return 0 < v <= MAX_TIMEOUT


MAX_IMAGE_PIXELS = 89_478_485  # as Pillow's: a larger image is refused as a decompression bomb
MAX_IMAGE_SIDE = 4096  # pixels: an --image_size past it is a typo, not a model (a batch of them is gigabytes)


def image_side(v):
    return 0 < v <= MAX_IMAGE_SIDE


_CHECK_WORDS = {positive: "must be positive", non_negative: "must be >= 0", unit_interval: "must be in (0, 1]",
                fraction: "must be in [0, 1)", probability: "must be a probability, in [0, 1]", open_unit_interval: "must be in (0, 1)",
                grey_or_colour: "must be 1 (grayscale) or 3 (RGB)", finite_positive: "must be a positive number of "
                "seconds, at most a week (604800)", image_side: f"must be in 1..{MAX_IMAGE_SIDE} pixels"}


def option(default, help, group, choices=None, check=None, must_match=False, overridable=False, saved=True):
    """A field that is also a flag. `check`: a predicate of the value (None passes); `must_match`:
    a resumed run must give the saved value (it fixes the variables, the data or their order);
    `overridable`: evaluate may replace the saved value; `saved`: written to flags.cfg."""
    return dataclasses.field(default=default, metadata=dict(
        help=help, group=group, choices=choices, check=check, must_match=must_match, overridable=overridable,
        saved=saved))


def model_option(name, kind, default, help, check=None, must_match=False):
    """A flag a model declares in its own file (resnet's --resnet_depth), registered with the model
    (cnn_tf.registry.register_model): RunConfig gains a field of that name, in the model group.
    `check` may carry its message as a `words` attribute."""
    return name, kind, option(default, help, MODEL, check=check, must_match=must_match)


class Options:
    """Checks every field against its `check` when built, so a bad value never gets far."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value, check = getattr(self, field.name), field.metadata.get("check")
            if isinstance(value, list):  # frozen: lists (from a list flag) become tuples
                object.__setattr__(self, field.name, value := tuple(value))
            choices = field.metadata.get("choices")
            if choices and value is not None and value not in choices:
                raise UserError(f"--{field.name}={value}: must be one of {', '.join(choices)}")
            if check and value is not None and not check(value):
                words = _CHECK_WORDS.get(check) or getattr(check, "words", "is invalid")
                raise UserError(f"--{field.name} {words} (got {value})")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)



def fields(options_class, overridable_only=False):
    return [f for f in dataclasses.fields(options_class) if f.metadata["overridable"] or not overridable_only]


def flag_kind(field):
    kind = field.type
    if typing.get_origin(kind) is typing.Union:  # Optional[X]
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return kind


def define_flags(fv, fields_):
    """Defines a flag on FlagValues `fv` for each field (its group is kept for --help)."""
    for field in fields_:
        name, meta, default, kind = field.name, field.metadata, field.default, flag_kind(field)
        args = dict(flag_values=fv, module_name=f"cnn_tf ({meta['group']})")
        if meta["choices"]:
            flags.DEFINE_enum(name, default, list(meta["choices"]), meta["help"], **args)
        elif kind is bool:
            flags.DEFINE_boolean(name, default, meta["help"], **args)
        elif kind is int:
            flags.DEFINE_integer(name, default, meta["help"], **args)
        elif kind is float:
            flags.DEFINE_float(name, default, meta["help"], **args)
        elif kind is tuple:
            flags.DEFINE_list(name, default, meta["help"], **args)
        else:
            flags.DEFINE_string(name, default, meta["help"], **args)


def from_flags(options_class, fv, fields_=None):
    """An `options_class` of the parsed flags in `fv` (its other fields keep their defaults)."""
    fields_ = fields_ if fields_ is not None else dataclasses.fields(options_class)
    return options_class(**{f.name: fv[f.name].value for f in fields_})


def given_flags(fv, fields_):
    """{name: value} of the flags among `fields_` that were given on the command line or a flagfile."""
    return {f.name: fv[f.name].value for f in fields_ if fv[f.name].present}


def serialize(name, value):
    if value is None:
        return f"no --{name}"
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no{name}"
    if isinstance(value, tuple):
        return f"--{name}={','.join(value)}"
    return f"--{name}={value}"
