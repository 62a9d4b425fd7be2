"""A training run's configuration: `RunConfig`, the frozen dataclass of every `train` flag.

The CLI edge turns absl's flags into one (`options.from_flags`), and the data layer, the graph
builder and the loop take it, so each can be built and tested without absl
(`RunConfig(model="three_conv", batch_size=32)`). Each field says its flag's group (for --help),
whether it is saved in `<train_dir>/flags.cfg` (cnn_tf.flagfile), whether a resumed run must give
the same value, and whether `evaluate` may override the saved value (where data is, how the graph
runs). The choices of --dataset, --model, --augment and --weights_initializer come from the
registries cnn_tf.data and cnn_tf.nets fill (cnn_tf.registry): this module imports neither.
"""
import dataclasses
import os
import typing

from cnn_tf.augment_options import AugmentFlags
from cnn_tf.errors import UserError
from cnn_tf.options import (CLUSTER, DATA, FINE_TUNING, MAX_IMAGE_PIXELS, MODEL, OPTIMIZATION, OUTPUT, RUNTIME,
                            SOURCES, finite_positive, fraction, grey_or_colour, image_side, non_negative,
                            open_unit_interval, option, positive, unit_interval)
from cnn_tf.registry import AUGMENTATIONS, DATASETS, INITIALIZERS, MODEL_OPTIONS, MODELS
from cnn_tf.traindir import absolute

OPTIMIZERS = ("adam", "adamw", "momentum", "nesterov", "sgd", "rmsprop")
SCHEDULES = ("exponential", "cosine", "one_cycle", "piecewise", "constant", "plateau")


@dataclasses.dataclass(frozen=True)
class RunFlags(AugmentFlags):
    """Every field of RunConfig but the models' own flags (the photo augmentation's are in
    cnn_tf.augment_options)."""
    # Data
    dataset: str = option("fashion_mnist", "Dataset to train on.", DATA, choices=DATASETS,
                          must_match=True)
    data_dir: typing.Optional[str] = option(None, "Directory with the dataset's files (looked in first).", DATA,
                                            overridable=True)
    validation_size: int = option(5000, "Training images held out as the validation split (mnist, "
                                  "fashion_mnist, cifar10).", DATA, check=non_negative, must_match=True)
    labels_csv: typing.Optional[str] = option(None, "image_folder: a CSV with columns id,label naming the "
                                              "class of each image in --data_dir by its file name without "
                                              "extension.", SOURCES, overridable=True)
    image_size: typing.Optional[int] = option(None, "Side of the square images image_folder resizes to "
                                              "(default: the model's default_image_size; tfrecord: as converted).",
                                              DATA, check=image_side,
                                              must_match=True)
    class_names: typing.Optional[tuple] = option(None, "image_folder's classes, in label order (default: the "
                                                 "sub-folder names, or the labels CSV's labels, sorted).", SOURCES,
                                                 must_match=True)
    channels: typing.Optional[int] = option(None, "image_folder, tfrecord: 1 (grayscale) or 3 (RGB) channels "
                                            "(default: 1 when every image is grayscale, else 3; tfrecord: as "
                                            "converted).", SOURCES, check=grey_or_colour,
                                            must_match=True)
    pets_label: str = option("breed", "oxford_pets: classify the 37 breeds, or the species (cat, dog).", SOURCES,
                             choices=("breed", "species"), must_match=True)
    validation_fraction: float = option(0.1, "Fraction of each image_folder class (oxford_pets: of each class's "
                                        "trainval images) held out for validation.",
                                        SOURCES, check=fraction, must_match=True)
    test_fraction: float = option(0.1, "Fraction of each image_folder class held out for test.", SOURCES,
                                  check=fraction, must_match=True)
    max_image_pixels: int = option(MAX_IMAGE_PIXELS, "Images whose header gives more pixels are refused before "
                                   "they are decoded (a decompression bomb); as Pillow's MAX_IMAGE_PIXELS.", SOURCES,
                                   check=positive, overridable=True)
    skip_bad_images: bool = option(False, "Leave out unreadable images, ids without a file and unknown labels "
                                   "with a warning, instead of stopping with an error.", SOURCES)
    normalization: str = option("scale", "Pixels are scaled to [0, 1]; mean also subtracts the training "
                                "images' per-channel mean; inception maps them to [-1, 1] (slim's preprocessing "
                                "for its published MobileNet weights); vgg to 0-255 minus ImageNet's channel means "
                                "(its VGG and ResNet v1 weights').", DATA,
                                choices=("scale", "mean", "inception", "vgg"), must_match=True)
    augment: str = option("none", "Training batches: flip_crop, a random horizontal flip and a random crop after "
                          "zero-padding (clothes); crop, the crop alone (digits: a mirrored 2 is no 2); "
                          "random_resized_crop, a crop of random area and aspect resized to the image, and a flip "
                          "(photos).",
                          DATA, choices=AUGMENTATIONS)
    augment_padding: typing.Optional[int] = option(None, "Pixels --augment pads each side with before cropping "
                                                   "(default: 1/8 of the image size).", DATA, check=non_negative)
    download_mirror: typing.Optional[str] = option(None, "Base URL to download missing dataset files from "
                                                   "(default: the dataset's official mirror).", SOURCES,
                                                   overridable=True)
    shuffle_buffer: int = option(10000, "tfrecord: records shuffled at once while streaming (the files' order is "
                                 "shuffled too).", SOURCES, check=positive, must_match=True)
    verify_shards: bool = option(True, "tfrecord: check every shard's SHA-256 against dataset.json when loading "
                                 "(off: only their sizes).", SOURCES, overridable=True)
    # Model
    model: str = option("lenet", "Network architecture.", MODEL, choices=MODELS, must_match=True)
    batch_norm: bool = option(True, "Batch-normalize the convolutional layers.", MODEL, must_match=True)
    weight_decay: float = option(5e-4, "L2 weight decay coefficient (0 disables it).", MODEL, check=non_negative)
    keep_prob: float = option(0.5, "Dropout keep probability of the fully connected layers, in (0, 1].", MODEL,
                              check=unit_interval)
    # (a model's own flags, resnet's --resnet_depth, are declared in its file: see RunConfig below)
    weights_initializer: typing.Optional[str] = option(
        None, "Initializer of the weights (default: the model's own, as in its tutorial).", MODEL,
        choices=INITIALIZERS, must_match=True)
    init_stddev: float = option(0.1, "Standard deviation of --weights_initializer=truncated_normal.", MODEL,
                                check=positive)
    precision: str = option("float32", "Compute precision; mixed_* keep float32 master weights, loss and "
                            "softmax. bfloat16 needs a CPU with AVX512_BF16/AMX or a GPU, float16 a GPU "
                            "(else float32).", MODEL, choices=("float32", "mixed_bfloat16", "mixed_float16"))
    # Fine-tuning
    warm_start_from: typing.Optional[str] = option(
        None, "A checkpoint, or a train dir (its latest checkpoint), whose model weights this run starts from; "
        "used only while --train_dir has no checkpoint of its own (then the run resumes).", FINE_TUNING)
    checkpoint_exclude_scopes: typing.Optional[tuple] = option(
        None, "Variable scopes --warm_start_from does not restore (they start from their initializer), e.g. the "
        "logits layer lenet/fc4 when the classes change.", FINE_TUNING)
    trainable_scopes: typing.Optional[tuple] = option(
        None, "Variable scopes to train (default: all); every other variable, batch-norm statistics included, "
        "stays as it starts.", FINE_TUNING, must_match=True)
    ignore_missing_vars: bool = option(False, "Start the variables the --warm_start_from checkpoint lacks from "
                                       "their initializer, with a warning, instead of stopping.", FINE_TUNING)
    # Optimization
    batch_size: int = option(128, "Training batch size (the global batch: --num_towers split it).", OPTIMIZATION,
                             check=positive, must_match=True)
    gradient_accumulation_steps: int = option(1, "Each update sums the gradients of this many batches of --batch_size, "
                                              "one after the other (the memory of one batch, the update of a K-times "
                                              "batch; batch norm's statistics are each batch's own); the schedule "
                                              "counts updates.", OPTIMIZATION, check=positive, must_match=True)
    num_epochs: int = option(5, "Epochs to train for (in total, across resumes).", OPTIMIZATION, check=positive)
    optimizer: str = option("adam", "Optimizer (nesterov: momentum with Nesterov's update; adamw: Adam with "
                            "--weight_decay applied to the weights, not through the loss).", OPTIMIZATION,
                            choices=OPTIMIZERS, must_match=True)
    momentum: float = option(0.9, "Momentum of --optimizer=momentum and rmsprop.", OPTIMIZATION,
                             check=non_negative)
    initial_learning_rate: float = option(1e-3, "Learning rate at step 0.", OPTIMIZATION, check=positive)
    learning_rate_decay_factor: float = option(0.95, "Staircase decay factor of the learning rate, in (0, 1].",
                                               OPTIMIZATION, check=unit_interval)
    num_epochs_per_decay: float = option(1.0, "Epochs between learning rate decays.", OPTIMIZATION,
                                         check=positive)
    learning_rate_schedule: str = option("exponential", "How the learning rate moves: exponential (staircase, "
                                         "the decay flags), cosine or one_cycle (down to --end_learning_rate at the "
                                         "last step), piecewise (--boundaries_epochs, --values), constant, plateau (lowered by "
                                         "--plateau_factor after --plateau_patience epochs without --best_metric "
                                         "improving).",
                                         OPTIMIZATION, choices=SCHEDULES)
    warmup_epochs: float = option(0.0, "Epochs of linear warm-up to --initial_learning_rate (one_cycle: from a "
                                  "25th of it; default for one_cycle: 30% of --num_epochs).", OPTIMIZATION,
                                  check=non_negative)
    end_learning_rate: float = option(0.0, "cosine and one_cycle: the learning rate at the last step.",
                                      OPTIMIZATION, check=non_negative)
    boundaries_epochs: typing.Optional[tuple] = option(None, "piecewise: the epochs where the rate changes, "
                                                       "e.g. 10,15.", OPTIMIZATION)
    values: typing.Optional[tuple] = option(None, "piecewise: the rates before, between and after the boundaries, "
                                            "one more than them, e.g. 0.1,0.01,0.001.", OPTIMIZATION)
    ema_decay: float = option(0.0, "Keep an exponential moving average of the weights with this decay (e.g. "
                              "0.999; 0: off), warmed up over the first steps; validation, the best checkpoint, "
                              "evaluate, export and predict use it.", OPTIMIZATION, check=fraction, must_match=True)
    clip_gradient_norm: float = option(0.0, "Scale the gradients (summed over the towers) down to this global "
                                       "norm when it is larger (0: off).", OPTIMIZATION, check=non_negative)
    plateau_factor: float = option(0.1, "plateau: the learning rate is multiplied by this, in (0, 1).", OPTIMIZATION,
                                   check=open_unit_interval)
    plateau_patience: int = option(2, "plateau: epochs without --best_metric improving before the rate is lowered.",
                                   OPTIMIZATION, check=positive)
    min_learning_rate: float = option(0.0, "plateau: the rate is never lowered below this.", OPTIMIZATION,
                                      check=non_negative)
    class_weights: typing.Optional[tuple] = option(None, "Weight each training example's loss by its class: "
                                                   "balanced (n / (classes * n_class), from the training split) or "
                                                   "one weight per class, w1,w2,...", OPTIMIZATION)
    label_smoothing: float = option(0.0, "Training targets (1 - e) on the true class plus e spread over all "
                                    "classes; evaluation reports the plain cross-entropy.", OPTIMIZATION,
                                    check=fraction)
    seed: int = option(0, "Seed of weight initialization, dropout and the per-epoch shuffle.", OPTIMIZATION,
                       must_match=True)
    on_nan: str = option("stop", "At a NaN or infinite loss: stop with an error, or roll back to the last "
                         "checkpoint with a lower learning rate.", OPTIMIZATION, choices=("stop", "rollback"))
    nan_lr_factor: float = option(0.5, "--on_nan=rollback multiplies the learning rate by this, in (0, 1).",
                                  OPTIMIZATION, check=open_unit_interval)
    max_nan_rollbacks: int = option(3, "--on_nan=rollback gives up after this many rollbacks.", OPTIMIZATION,
                                    check=non_negative)
    early_stopping_patience: int = option(0, "Finish the run after this many epochs without --best_metric "
                                          "improving by more than --early_stopping_min_delta (0: off).",
                                          OPTIMIZATION, check=non_negative)
    early_stopping_min_delta: float = option(0.0, "The least change of --best_metric that counts as improving.",
                                             OPTIMIZATION, check=non_negative)
    early_stopping_start_epoch: int = option(0, "Epochs early stopping ignores at the start (a warm-up).",
                                             OPTIMIZATION, check=non_negative)
    # Output
    train_dir: typing.Optional[str] = option(None, "Where checkpoints, summaries and flags.cfg go "
                                             "(default: runs/<model>_<dataset>).", OUTPUT)
    max_num_checkpoint: int = option(5, "Checkpoints kept (one is saved every epoch).", OUTPUT, check=positive)
    checkpoint_every_steps: int = option(0, "Also save a checkpoint every this many global steps within epochs (0: "
                                         "at the end of each epoch only).", OUTPUT, check=non_negative)
    checkpoint_every_secs: float = option(0.0, "Also save a checkpoint when this many seconds passed since the last "
                                          "one (0: off).", OUTPUT, check=non_negative)
    validate_every_steps: int = option(0, "Also evaluate the validation split every this many global steps within "
                                       "epochs, for its summaries (0: after each epoch only).", OUTPUT,
                                       check=non_negative)
    keep_best: int = option(1, "Best checkpoints by --best_metric kept in checkpoints/best/, apart from the latest "
                            "ones (0: none).", OUTPUT, check=non_negative)
    best_metric: str = option("validation_accuracy", "What ranks the best checkpoints and early stopping: "
                              "validation_accuracy (higher is better) or validation_loss (lower).", OUTPUT,
                              choices=("validation_accuracy", "validation_loss"), must_match=True)
    summary_every_n_steps: int = option(20, "Steps between train summaries.", OUTPUT, check=positive)
    progress: bool = option(True, "Show a progress bar while an epoch runs (on a terminal).", OUTPUT)
    # Runtime: where and how the graph runs, not what it computes; evaluate may override them.
    device: str = option("cpu", "Device of the model; gpu falls back to the CPU on a machine without one "
                         "when --allow_soft_placement.", RUNTIME, choices=("cpu", "gpu"), overridable=True)
    num_towers: int = option(1, "Replicas of the model, each on its own device (/gpu:0.. with --device=gpu, "
                             "/cpu:0.. with cpu), each computing the gradients of its share of the batch.",
                             RUNTIME, check=positive)
    allow_soft_placement: bool = option(True, "Let TensorFlow place ops elsewhere when the asked-for device "
                                        "cannot run them.", RUNTIME, overridable=True)
    log_device_placement: bool = option(False, "Log the device of every op.", RUNTIME, overridable=True)
    intra_op_threads: int = option(0, "Threads inside one op (0: one per core).", RUNTIME, check=non_negative,
                                   overridable=True)
    inter_op_threads: int = option(0, "Ops run at once (0: TensorFlow's choice).", RUNTIME, check=non_negative,
                                   overridable=True)
    eval_batch_size: typing.Optional[int] = option(None, "Batch size of evaluation passes (default: as many images, "
                                                   "up to 1000, as 1 GiB of the model's activations holds).",
                                                   RUNTIME, check=positive, overridable=True)
    deterministic: bool = option(False, "Deterministic kernels (TensorFlow's op determinism): the same seed "
                                 "gives the same weights, even across kills and resumes.", RUNTIME, overridable=True)
    # Cluster: who this process is in a multi-machine run; never saved, never has to match on a resume.
    job_name: typing.Optional[str] = option(None, "This process's job in a cluster (default: TF_CONFIG's, else "
                                            "a single process).", CLUSTER, choices=("ps", "worker"), saved=False)
    task_index: typing.Optional[int] = option(None, "This process's index in its job (worker 0 is the chief).",
                                              CLUSTER, check=non_negative, saved=False)
    ps_hosts: typing.Optional[tuple] = option(None, "The parameter servers, host:port,...", CLUSTER, saved=False)
    worker_hosts: typing.Optional[tuple] = option(None, "The workers, host:port,... (the first is the chief).",
                                                  CLUSTER, saved=False)
    sync_replicas: bool = option(False, "Aggregate one step of every worker per update (SyncReplicasOptimizer); "
                                 "else workers update asynchronously.", CLUSTER, saved=False)
    worker_timeout: float = option(60.0, "Seconds a worker waits for the cluster (a step's sync token, the chief, "
                                   "a lost ps) before acting: with --sync_replicas the chief then stops the run "
                                   "naming the worker that sent no gradients.", CLUSTER, check=finite_positive, saved=False)

    def __post_init__(self):
        super().__post_init__()
        if self.validation_fraction + self.test_fraction >= 1:
            raise UserError("--validation_fraction plus --test_fraction must leave some images to train on")
        for name in ("checkpoint_exclude_scopes", "ignore_missing_vars"):
            if getattr(self, name) and not self.warm_start_from:
                raise UserError(f"--{name} applies to a warm start: give --warm_start_from too, or leave it out")
        if self.learning_rate_schedule == "piecewise":
            piecewise_schedule(self)
        if self.optimizer == "adamw" and self.sync_replicas:
            raise UserError("--optimizer=adamw decays the weights in each worker's own step; with --sync_replicas "
                            "use adam (its --weight_decay goes through the loss)")
        if self.learning_rate_schedule == "plateau" and self.min_learning_rate >= self.initial_learning_rate:
            raise UserError(f"--min_learning_rate={self.min_learning_rate:g} must be below --initial_learning_rate="
                            f"{self.initial_learning_rate:g}: plateau could never lower the rate")
        if self.gradient_accumulation_steps > 1 and self.num_towers > 1:
            raise UserError("--gradient_accumulation_steps runs its batches one after the other on one device; with "
                            "--num_towers, give a larger --batch_size instead")
        if self.batch_size % self.num_towers:
            raise UserError(f"--batch_size={self.batch_size} does not split evenly over --num_towers="
                            f"{self.num_towers}; make it a multiple of {self.num_towers}")

    @property
    def update_batch_size(self):
        """Images per update (per global step): --batch_size times --gradient_accumulation_steps."""
        return self.batch_size * self.gradient_accumulation_steps

    def resolved(self):
        """Absolute paths (flags.cfg must work from any directory); the default train dir."""
        changes = {"train_dir": absolute(self.train_dir or os.path.join("runs", f"{self.model}_{self.dataset}"))}
        for name in ("data_dir", "labels_csv", "warm_start_from"):
            if getattr(self, name):
                changes[name] = absolute(getattr(self, name))
        return self.replace(**changes)


def _run_config():
    """RunConfig: RunFlags plus a field for each flag a model declares in its file (four_conv's
    --keep_prob_conv, resnet's --resnet_depth and --resnet_width), in the model group. Made when first
    asked for, from the models' registry: this module imports no model."""
    fields = [(name, kind, field) for name, (kind, field) in MODEL_OPTIONS.items()]
    return dataclasses.make_dataclass("RunConfig", fields, bases=(RunFlags,), frozen=True, namespace={
        "__doc__": "A training run: every flag of `train`.", "__module__": __name__})


def __getattr__(name):  # PEP 562: `config.RunConfig`, `from cnn_tf.config import RunConfig`
    if name == "RunConfig":
        globals()["RunConfig"] = run_config = _run_config()
        return run_config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def piecewise_schedule(cfg):
    """(boundaries in epochs, values) of --learning_rate_schedule=piecewise, checked."""
    try:
        boundaries = [float(b) for b in cfg.boundaries_epochs or ()]
        values = [float(v) for v in cfg.values or ()]
    except ValueError as e:
        raise UserError(f"--boundaries_epochs and --values take numbers ({e})") from e
    if len(values) != len(boundaries) + 1 or not boundaries:
        raise UserError(f"--learning_rate_schedule=piecewise needs --boundaries_epochs and one more --values "
                        f"(got {len(boundaries)} boundaries and {len(values)} values), e.g. "
                        "--boundaries_epochs=10,15 --values=0.1,0.01,0.001")
    if boundaries != sorted(boundaries) or boundaries[0] <= 0:
        raise UserError(f"--boundaries_epochs={','.join(cfg.boundaries_epochs)} must be positive and increasing")
    return boundaries, values
