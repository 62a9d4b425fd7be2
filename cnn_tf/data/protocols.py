"""The data layer's two interfaces, declared (tensorpack's InputSource, Keras' epoch iterator): what
a dataset hands the rest of cnn_tf, and what a graph's input pipeline offers the loop and the
evaluation pass. `Dataset` (arrays in memory) and `RecordDataset` (TFRecord shards) are the two
DataSources; `InputPipeline` and `RecordPipeline` the two Pipelines."""
import typing

from cnn_tf.data.pipeline import EpochPlan


@typing.runtime_checkable
class Pipeline(typing.Protocol):
    """Where data enters a graph: the batch tensors the placeholders default to, and the passes the
    loop and evaluation start over a split (whatever the DataSource's `split(name)` returns)."""
    images: typing.Any  # [N, H, W, C] float32 in [0, 1], augmented when the epoch asks for it
    labels: typing.Any  # [N] int64
    mix_weight: typing.Any  # [] float32: the batch's share of its own labels (mixup, cutmix; else 1)

    @staticmethod
    def size(split) -> int:
        """Examples in `split`."""

    def start_pass(self, sess, split, batch_size) -> None:
        """One pass over `split` in its stored order, unshuffled and unaugmented (evaluation)."""

    def start_epoch(self, sess, split, batch_size, plan: EpochPlan) -> None:
        """A training epoch over `split`: the order of (seed, epoch), from step `plan.first_step`."""


@typing.runtime_checkable
class DataSource(typing.Protocol):
    """What a dataset loader returns (cnn_tf.data.load_dataset_for)."""
    name: str
    class_names: list
    source: str  # where it was read from, for people

    @property
    def num_classes(self) -> int: ...

    @property
    def image_shape(self) -> tuple: ...

    @property
    def pixel_mean(self):
        """Per-channel mean of the training images in [0, 1] (--normalization=mean)."""

    def split(self, name):
        """Split `name` ("train", "validation", "test") as the dataset's Pipeline reads it."""

    def size(self, name) -> int: ...

    def fingerprint(self, name) -> str:
        """SHA-256 of split `name`'s content: what the run manifest checks on a resume."""

    def pipeline(self, image_shape) -> Pipeline:
        """A new Pipeline for this dataset's splits, in the graph being built."""
