"""Checkpoints in TF-Slim's exact naming, written without cnn_tf's nets: the names and shapes follow
slim's own code (research/slim/nets/mobilenet_v1.py: _CONV_DEFS, mobilenet_v1_base, the Logits
scope; batch norm with center and scale), the values are random. What a published ImageNet
checkpoint (mobilenet_v1_<d>_224.ckpt, 1001 classes) holds, at any size.

    python tests/slim_checkpoints.py OUT_PREFIX [depth_multiplier]
"""
import sys

import numpy as np

# slim's _CONV_DEFS: ("conv" | "sep", stride, depth)
MOBILENET_V1_DEFS = [("conv", 2, 32)] + [("sep", s, d) for s, d in [
    (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512), (1, 512), (1, 512), (1, 512),
    (2, 1024), (1, 1024)]]


def _batch_norm(prefix, channels):
    return {f"{prefix}/BatchNorm/{name}": [channels] for name in ("beta", "gamma", "moving_mean", "moving_variance")}


def mobilenet_v1_shapes(depth_multiplier=1.0, num_classes=1001, min_depth=8):
    """{variable name: shape} of slim's mobilenet_v1 (scope MobilenetV1)."""
    shapes, channels = {}, 3
    for i, (kind, _, depth) in enumerate(MOBILENET_V1_DEFS):
        out = max(int(depth * depth_multiplier), min_depth)
        if kind == "conv":
            shapes[f"MobilenetV1/Conv2d_{i}/weights"] = [3, 3, channels, out]
            shapes.update(_batch_norm(f"MobilenetV1/Conv2d_{i}", out))
        else:
            shapes[f"MobilenetV1/Conv2d_{i}_depthwise/depthwise_weights"] = [3, 3, channels, 1]
            shapes.update(_batch_norm(f"MobilenetV1/Conv2d_{i}_depthwise", channels))
            shapes[f"MobilenetV1/Conv2d_{i}_pointwise/weights"] = [1, 1, channels, out]
            shapes.update(_batch_norm(f"MobilenetV1/Conv2d_{i}_pointwise", out))
        channels = out
    shapes["MobilenetV1/Logits/Conv2d_1c_1x1/weights"] = [1, 1, channels, num_classes]
    shapes["MobilenetV1/Logits/Conv2d_1c_1x1/biases"] = [num_classes]
    return shapes


def write(prefix, shapes, seed=0):
    """Saves random values of `shapes` under their names (variances positive, as trained ones are)
    with the TF1 Saver slim used; returns {name: value}."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    values = {}
    for name, shape in shapes.items():
        value = rng.normal(0, 0.1, shape).astype(np.float32)
        if name.endswith(("moving_variance", "gamma")):
            value = np.abs(value) + 0.5
        values[name] = value
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.get_variable(name, initializer=value) for name, value in values.items()]
        variables.append(tf.compat.v1.train.get_or_create_global_step())
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, prefix, write_meta_graph=False)
    return values


if __name__ == "__main__":
    write(sys.argv[1], mobilenet_v1_shapes(float(sys.argv[2]) if len(sys.argv) > 2 else 1.0))
