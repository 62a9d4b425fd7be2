"""What every dataset loader returns: uint8 images in memory, int64 labels, class names."""
import dataclasses

from cnn_tf.errors import UserError


@dataclasses.dataclass
class Dataset:
    name: str
    splits: dict  # split name -> (uint8 images [N, H, W, C], int64 labels [N])
    class_names: list
    source: str = ""  # where the files were read from, for people

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def image_shape(self):
        return tuple(self.splits["train"][0].shape[1:])

    @property
    def pixel_mean(self):
        """Per-channel mean of the training images, in [0, 1] units (--normalization=mean)."""
        images = self.splits["train"][0]
        return images.reshape(-1, images.shape[-1]).mean(axis=0) / 255.0

    def split(self, name):
        if name not in self.splits:
            raise UserError(f"split {name!r} is not one of {', '.join(self.splits)}")
        return self.splits[name]


def check_labels(labels, num_classes, source):
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise UserError(f"{source} holds label {bad}, outside the {num_classes} classes 0..{num_classes - 1}")
