"""A list of image files decoded to uint8 arrays in one parallel tf.data pass, and each file that
would not decode named with its own error (image_folder's loading, convert's)."""
import os

import numpy as np
import tensorflow as tf

from cnn_tf import log
from cnn_tf.data.preprocess import decode, exif_orientation
from cnn_tf.errors import reason

ROTATION_ADVICE = ("cnn_tf uses the pixels as stored, in training, predict and export alike (a SavedModel cannot "
                   "read EXIF); if they look sideways, rotate the files upright first, e.g. `exiftran -ai *.jpg` or "
                   "`mogrify -auto-orient *.jpg`")


def warn_rotated(paths):
    """One warning when any of the files carries an EXIF orientation other than upright."""
    rotated = []
    for path in paths:
        if not os.path.isfile(path):
            continue  # a FIFO or device would block the read; named where it is decoded
        try:
            with open(path, "rb") as f:
                head = f.read(1 << 16)
        except OSError:
            continue  # named where it is decoded
        if exif_orientation(head) not in (None, 1):
            rotated.append(path)
    if rotated:
        log.warning(f"{len(rotated)} images carry an EXIF rotation tag (the first: {rotated[0]}); {ROTATION_ADVICE}")
    return rotated


def decode_all(paths, image_size, channels):
    """uint8 [N, size, size, channels] of the images that decode, and {index: error} of those that do not.

    One tf.data pass decodes in parallel; a file that fails is dropped by ignore_errors and named
    afterwards by decoding it alone, for its message.
    """
    if not paths:
        return np.zeros([0], np.int64), np.zeros([0, image_size, image_size, channels], np.uint8), {}
    warn_rotated(paths)
    graph = tf.Graph()
    with graph.as_default():
        def load(index, path):
            return index, decode(tf.io.read_file(path), image_size, image_size, channels)

        dataset = (tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), list(paths)))
                   .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                   .ignore_errors()
                   .batch(256))
        next_batch = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
        one_path = tf.compat.v1.placeholder(tf.string, [])
        _, one = load(0, one_path)
    indices, images = [], []
    with tf.compat.v1.Session(graph=graph) as sess:
        while True:
            try:
                i, x = sess.run(next_batch)
            except tf.errors.OutOfRangeError:
                break
            indices.append(i)
            images.append(x)
        decoded = np.concatenate(indices) if indices else np.zeros([0], np.int64)
        errors = decode_errors(sess, one, one_path, paths, decoded)
    images = np.concatenate(images) if images else np.zeros([0, image_size, image_size, channels], np.uint8)
    return decoded, images, errors


def unreadable(path, message):
    return f"{path}: not a readable PNG/JPEG/BMP/GIF image ({message})"


def decode_errors(sess, one, one_path, paths, decoded):
    """{index: message} of the `paths` a pass with ignore_errors left out (not in `decoded`), each
    decoded alone by `one` (fed `one_path`) for its error's first line."""
    errors = {}
    for i in sorted(set(range(len(paths))) - set(decoded.tolist())):
        try:
            sess.run(one, {one_path: paths[i]})
            errors[i] = "could not be read"
        except tf.errors.OpError as e:
            errors[i] = reason(e)
    return errors
