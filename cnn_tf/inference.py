"""The model for inference, from image files or arrays to class probabilities: what `export` writes
as a SavedModel and `predict` runs from a checkpoint. Float32, the inference tower's layers (moving
averages, no dropout), the run's preprocessing (cnn_tf.data.preprocess); with `tta="flip"` each
image's probabilities are averaged with its mirror's, as `evaluate --tta=flip` measures."""
import types

import tensorflow as tf

from cnn_tf import checkpoints
from cnn_tf.data.preprocess import bounded, decode, normalize, scale_pixels
from cnn_tf.nets import get_network_fn, model_options


def averaged_over_mirrors(probabilities, logits_of, images, tta="none"):
    """`tta="flip"`: the mean of `probabilities` (of `images`, NHWC) and of the mirrored images'
    (`logits_of(mirrored)`, on the same variables); else `probabilities` as they are. One place for
    evaluate's inference tower and for export / predict."""
    if tta != "flip":
        return probabilities
    with tf.compat.v1.name_scope("mirrored"):
        return (probabilities + tf.nn.softmax(logits_of(tf.reverse(images, [2])))) / 2.0


def build_inference_graph(cfg, image_shape, class_names, pixel_mean=None, tta="none"):
    """Returns a namespace: `graph`, `encoded` (tf.string [N]: PNG/JPEG/BMP/GIF bytes) and `images`
    (uint8 [N, H, W, C]) placeholders, `from_files` and `from_arrays` ({probabilities, classes,
    class_names} for each), and `saver` for the model's variables, named as in training."""
    height, width, channels = image_shape
    graph = tf.Graph()
    g = types.SimpleNamespace(graph=graph, class_names=list(class_names), image_shape=tuple(image_shape))
    with graph.as_default():
        network_fn = get_network_fn(cfg.model, len(class_names), use_batch_norm=cfg.batch_norm,
                                    weights_initializer=cfg.weights_initializer, init_stddev=cfg.init_stddev,
                                    **{name: getattr(cfg, name) for name in model_options(cfg.model)})
        names = tf.constant(g.class_names)

        def logits_of(pixels, reuse=True):
            with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(), reuse=reuse):
                return network_fn(normalize(pixels, pixel_mean), is_training=False, keep_prob=1.0)[0]

        def classify(pixels, reuse):
            probabilities = averaged_over_mirrors(tf.nn.softmax(logits_of(pixels, reuse)), logits_of, pixels, tta)
            classes = tf.argmax(probabilities, 1)
            return {"probabilities": probabilities, "classes": classes,
                    "class_names": tf.gather(names, classes)}

        g.encoded = tf.compat.v1.placeholder(tf.string, [None], "encoded_images")
        decoded = tf.map_fn(lambda contents: decode(contents, height, width, channels),
                            bounded(g.encoded, cfg.max_image_pixels),
                            fn_output_signature=tf.TensorSpec([height, width, channels], tf.uint8))
        with tf.compat.v1.name_scope("from_files"):
            g.from_files = classify(scale_pixels(decoded), reuse=False)
        g.images = tf.compat.v1.placeholder(tf.uint8, [None, height, width, channels], "images")
        with tf.compat.v1.name_scope("from_arrays"):
            g.from_arrays = classify(scale_pixels(g.images), reuse=True)
        g.variables = tf.compat.v1.global_variables()
        g.saver = tf.compat.v1.train.Saver(g.variables)
    return g


def restore(sess, g, path):
    """The model's variables from training checkpoint `path` (a mismatch is one clear line)."""
    checkpoints.check_compatible(path, g.variables)
    try:
        with g.graph.as_default():  # Saver works on the default graph
            g.saver.restore(sess, path)
    except tf.errors.OpError as e:
        raise checkpoints.corrupt(path, e) from e
