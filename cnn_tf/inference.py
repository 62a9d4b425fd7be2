"""The model for inference, from image files or arrays to class probabilities: what `export` writes
as a SavedModel and `predict` runs from a checkpoint. Float32, the inference tower's layers (moving
averages, no dropout), the run's preprocessing (cnn_tf.data.preprocess); with `tta="flip"` each
image's probabilities are averaged with its mirror's, as `evaluate --tta=flip` measures."""
import tensorflow as tf

from cnn_tf import checkpoints
from cnn_tf.data.preprocess import bounded, decode, normalize, scale_pixels
from cnn_tf.graph.averages import shadow_names
from cnn_tf.graph.contract import InferenceGraph
from cnn_tf.graph.model import averaged_over_mirrors, model_fn


def build_inference_graph(cfg, image_shape, class_names, pixel_mean=None, tta="none"):
    """Returns the InferenceGraph (cnn_tf.graph.contract): placeholders for encoded files and uint8
    arrays, {probabilities, classes, class_names} of each, and a saver for the model's variables,
    named as in training."""
    height, width, channels = image_shape
    graph = tf.Graph()
    with graph.as_default():
        model = model_fn(cfg, len(class_names), weight_decay=0.0)
        names = tf.constant(list(class_names))

        def logits_of(pixels, reuse=True):
            with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(), reuse=reuse):
                return model(normalize(pixels, pixel_mean, cfg.normalization), is_training=False)[0]

        def classify(pixels, reuse):
            probabilities = averaged_over_mirrors(tf.nn.softmax(logits_of(pixels, reuse)), logits_of, pixels, tta)
            classes = tf.argmax(probabilities, 1)
            return {"probabilities": probabilities, "classes": classes,
                    "class_names": tf.gather(names, classes)}

        encoded = tf.compat.v1.placeholder(tf.string, [None], "encoded_images")
        decoded = tf.map_fn(lambda contents: decode(contents, height, width, channels),
                            bounded(encoded, cfg.max_image_pixels),
                            fn_output_signature=tf.TensorSpec([height, width, channels], tf.uint8))
        with tf.compat.v1.name_scope("from_files"):
            from_files = classify(scale_pixels(decoded), reuse=False)
        images = tf.compat.v1.placeholder(tf.uint8, [None, height, width, channels], "images")
        with tf.compat.v1.name_scope("from_arrays"):
            from_arrays = classify(scale_pixels(images), reuse=True)
        variables = tf.compat.v1.global_variables()
        return InferenceGraph(graph=graph, class_names=list(class_names), image_shape=tuple(image_shape),
                              encoded=encoded, images=images, from_files=from_files, from_arrays=from_arrays,
                              variables=variables, saver=tf.compat.v1.train.Saver(variables),
                              averaged_saver=tf.compat.v1.train.Saver(shadow_names(variables)))


def restore(sess, g, path):
    """The model's variables from training checkpoint `path` (a mismatch is one clear line): their
    moving averages when the run kept them (--ema_decay), as its validation used."""
    checkpoints.check_compatible(path, g.variables)
    saved = tf.compat.v1.train.NewCheckpointReader(path).get_variable_to_shape_map()
    averaged = all(name in saved for name in shadow_names(g.variables))
    try:
        with g.graph.as_default():  # Saver works on the default graph
            (g.averaged_saver if averaged else g.saver).restore(sess, path)
    except tf.errors.OpError as e:
        raise checkpoints.corrupt(path, e) from e
