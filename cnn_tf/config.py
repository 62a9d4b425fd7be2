"""The flags both CLIs share, their checks, and the train dir's flags.cfg (the effective flags).

`define_train_flags` defines every flag that shapes a run. `train` writes them to
`<train_dir>/flags.cfg`; `evaluate` parses that file into a FlagValues of its own with the same
definitions, so the graph it rebuilds is the one that was trained.
"""
import os

from absl import flags
import tensorflow as tf

from cnn_tf.data import DATASETS
from cnn_tf.errors import UserError
from cnn_tf.nets import nets_map
from cnn_tf.nets.layers import INITIALIZERS
from cnn_tf.traindir import write_atomic

OPTIMIZERS = ("adam", "momentum", "sgd", "rmsprop")
TRAIN_FLAGS = []  # names of the flags saved to flags.cfg, in definition order


def _positive(fv, name):
    flags.register_validator(name, lambda v: v > 0, message=f"--{name} must be positive", flag_values=fv)


def define_train_flags(fv=flags.FLAGS):
    names_before = set(fv)
    d = dict(flag_values=fv)
    # Run
    flags.DEFINE_string("train_dir", None, "Where checkpoints, summaries and flags.cfg go "
                        "(default: runs/<model>_<dataset>).", **d)
    flags.DEFINE_integer("seed", 0, "Seed of weight initialization, dropout and the per-epoch shuffle.", **d)
    # Data
    flags.DEFINE_enum("dataset", "fashion_mnist", sorted(DATASETS), "Dataset to train on.", **d)
    flags.DEFINE_integer("validation_size", 5000, "Training images held out as the validation split.",
                         lower_bound=0, **d)
    flags.DEFINE_integer("image_size", None, "Side of the square images image_folder resizes to "
                         "(default: the model's default_image_size).", lower_bound=1, **d)
    flags.DEFINE_list("class_names", None, "image_folder's classes, in label order (default: the "
                      "sub-folder names, or the labels CSV's labels, sorted); other labels are bad input.", **d)
    flags.DEFINE_float("validation_fraction", 0.1, "Fraction of each image_folder class held out for "
                       "validation.", **d)
    flags.DEFINE_float("test_fraction", 0.1, "Fraction of each image_folder class held out for test.", **d)
    flags.DEFINE_boolean("skip_bad_images", False, "Leave out unreadable images, ids without a file and "
                         "unknown labels with a warning, instead of stopping with an error.", **d)
    flags.DEFINE_enum("normalization", "scale", ["scale", "mean"], "Pixels are scaled to [0, 1]; mean "
                      "also subtracts the training images' per-channel mean.", **d)
    flags.DEFINE_boolean("augment", False, "Random horizontal flip and random crop after padding by "
                         "1/8 of the size, on training batches (for photos, not digits).", **d)
    # Model
    flags.DEFINE_enum("model", "lenet", sorted(nets_map), "Network architecture.", **d)
    flags.DEFINE_boolean("batch_norm", True, "Batch-normalize the convolutional layers.", **d)
    flags.DEFINE_float("weight_decay", 5e-4, "L2 weight decay coefficient (0 disables it).", lower_bound=0, **d)
    flags.DEFINE_float("keep_prob", 0.5, "Dropout keep probability of the fully connected layers, "
                       "in (0, 1].", **d)
    flags.DEFINE_float("keep_prob_conv", 0.8, "Dropout keep probability after the conv blocks of "
                       "four_conv, in (0, 1].", **d)
    flags.DEFINE_enum("weights_initializer", None, sorted(INITIALIZERS),
                      "Initializer of the weights (default: the model's own, as in its tutorial).", **d)
    flags.DEFINE_float("init_stddev", 0.1, "Standard deviation of --weights_initializer=truncated_normal.", **d)
    # Optimization
    flags.DEFINE_integer("batch_size", 128, "Training batch size.", **d)
    flags.DEFINE_integer("num_epochs", 5, "Epochs to train for (in total, across resumes).", **d)
    flags.DEFINE_enum("optimizer", "adam", OPTIMIZERS, "Optimizer.", **d)
    flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                      "Compute precision; mixed_* keep float32 master weights, loss and softmax. "
                      "bfloat16 needs a CPU with AVX512_BF16/AMX or a GPU, float16 a GPU (else float32).", **d)
    flags.DEFINE_float("momentum", 0.9, "Momentum of --optimizer=momentum and rmsprop.", **d)
    flags.DEFINE_float("initial_learning_rate", 1e-3, "Learning rate at step 0.", **d)
    flags.DEFINE_float("learning_rate_decay_factor", 0.95, "Staircase decay factor of the learning rate.", **d)
    flags.DEFINE_float("num_epochs_per_decay", 1.0, "Epochs between learning rate decays.", **d)
    # Output
    flags.DEFINE_integer("max_num_checkpoint", 5, "Checkpoints kept (one is saved every epoch).", **d)
    flags.DEFINE_integer("summary_every_n_steps", 20, "Steps between train summaries.", **d)
    flags.DEFINE_boolean("progress", True, "Show a progress bar while an epoch runs (on a terminal).", **d)
    # Divergence
    flags.DEFINE_enum("on_nan", "stop", ["stop", "rollback"], "At a NaN or infinite loss: stop with an "
                      "error, or roll back to the last checkpoint with a lower learning rate.", **d)
    flags.DEFINE_float("nan_lr_factor", 0.5, "--on_nan=rollback multiplies the learning rate by this.", **d)
    flags.DEFINE_integer("max_nan_rollbacks", 3, "--on_nan=rollback gives up after this many rollbacks.",
                         lower_bound=0, **d)
    define_runtime_flags(fv)
    TRAIN_FLAGS[:] = [name for name in fv if name not in names_before]

    for name in ("batch_size", "num_epochs", "initial_learning_rate", "num_epochs_per_decay",
                 "max_num_checkpoint", "summary_every_n_steps"):
        _positive(fv, name)
    for name in ("keep_prob", "keep_prob_conv"):
        flags.register_validator(name, lambda v: 0 < v <= 1, message=f"--{name} must be in (0, 1]",
                                 flag_values=fv)
    for name in ("validation_fraction", "test_fraction"):
        flags.register_validator(name, lambda v: 0 <= v < 1, message=f"--{name} must be in [0, 1)",
                                 flag_values=fv)
    flags.register_multi_flags_validator(
        ["validation_fraction", "test_fraction"], lambda v: v["validation_fraction"] + v["test_fraction"] < 1,
        message="--validation_fraction plus --test_fraction must leave some images to train on", flag_values=fv)
    flags.register_validator("nan_lr_factor", lambda v: 0 < v < 1, message="--nan_lr_factor must be in (0, 1)",
                             flag_values=fv)
    flags.register_validator("learning_rate_decay_factor", lambda v: 0 < v <= 1,
                             message="--learning_rate_decay_factor must be in (0, 1]", flag_values=fv)


def define_runtime_flags(fv=flags.FLAGS):
    """Flags about where data is and how a graph runs, not what it is; evaluate may override them."""
    d = dict(flag_values=fv)
    flags.DEFINE_string("data_dir", None, "Directory with the dataset's files (looked in first).", **d)
    flags.DEFINE_string("labels_csv", None, "image_folder: a CSV with columns id,label naming the class "
                        "of each image in --data_dir by its file name without extension.", **d)
    flags.DEFINE_string("download_mirror", None, "Base URL to download missing dataset files from "
                        "(default: the dataset's official mirror).", **d)
    flags.DEFINE_enum("device", "cpu", ["cpu", "gpu"], "Device for the model; gpu falls back to "
                      "the CPU on a machine without one when --allow_soft_placement.", **d)
    flags.DEFINE_boolean("allow_soft_placement", True, "Let TensorFlow place ops elsewhere when the "
                         "asked-for device cannot run them.", **d)
    flags.DEFINE_boolean("log_device_placement", False, "Log the device of every op.", **d)
    flags.DEFINE_integer("intra_op_threads", 0, "Threads inside one op (0: one per core).", lower_bound=0, **d)
    flags.DEFINE_integer("inter_op_threads", 0, "Ops run at once (0: TensorFlow's choice).", lower_bound=0, **d)
    flags.DEFINE_integer("eval_batch_size", 1000, "Batch size of evaluation passes.", **d)
    flags.DEFINE_boolean("deterministic", False, "Deterministic kernels (TensorFlow's op determinism): "
                         "the same seed gives the same weights, even across kills and resumes.", **d)
    _positive(fv, "eval_batch_size")
    return RUNTIME_FLAGS


RUNTIME_FLAGS = ("data_dir", "labels_csv", "download_mirror", "device", "allow_soft_placement",
                 "log_device_placement", "intra_op_threads", "inter_op_threads", "eval_batch_size",
                 "deterministic")


def session_config(fv):
    """The ConfigProto of a run's flags; with --deterministic, turns on op determinism (process-wide,
    read by kernels when a session creates them)."""
    if fv.deterministic:
        tf.config.experimental.enable_op_determinism()
    return tf.compat.v1.ConfigProto(
        allow_soft_placement=fv.allow_soft_placement, log_device_placement=fv.log_device_placement,
        intra_op_parallelism_threads=fv.intra_op_threads, inter_op_parallelism_threads=fv.inter_op_threads)


def resolve_paths(fv):
    """Makes the run's paths absolute (flags.cfg must work from any directory)."""
    if not fv.train_dir:
        fv.train_dir = os.path.join("runs", f"{fv.model}_{fv.dataset}")
    fv.train_dir = os.path.abspath(fv.train_dir)
    for name in ("data_dir", "labels_csv"):
        if fv[name].value:
            fv[name].value = os.path.abspath(fv[name].value)


def flagfile_text(fv):
    return "".join(fv[name].serialize() + "\n" for name in TRAIN_FLAGS if fv[name].value is not None)


def save_flags(fv, path):
    write_atomic(path, flagfile_text(fv))


# Flags a resumed run must share with the run that wrote the checkpoints: they fix the graph's
# variables, the data, or the order the data is seen in. The rest (--num_epochs, the learning
# rate, where the data is, --precision, ...) may change between runs.
RESUME_MUST_MATCH = ("dataset", "model", "batch_norm", "batch_size", "seed", "validation_size",
                     "optimizer", "weights_initializer", "image_size", "class_names", "validation_fraction",
                     "test_fraction", "normalization")


def check_resume(fv, path):
    saved = load_flags(path)
    for name in RESUME_MUST_MATCH:
        if saved[name].value != fv[name].value:
            raise UserError(f"{fv.train_dir} was trained with {saved[name].serialize()} and this run asks "
                            f"for {fv[name].serialize()}; resume with the same value or use another --train_dir")


def load_flags(path):
    """A new FlagValues holding the flags saved at `path`."""
    fv = flags.FlagValues()
    define_train_flags(fv)
    try:
        fv(["cnn_tf", f"--flagfile={path}"])
    except flags.Error as e:
        raise UserError(f"{path}: {e}") from e
    return fv
