"""Checkpoints in TF-Slim's exact naming, written without cnn_tf's nets: the names and shapes follow
slim's own code (research/slim/nets/mobilenet_v1.py: _CONV_DEFS, mobilenet_v1_base, the Logits
scope; mobilenet/mobilenet_v2.py: V2_DEF, and conv_blocks.py: expanded_conv; resnet_v1.py:
resnet_v1_block, bottleneck, resnet_v1_50; batch norm with center and scale),
the values are random. What a published ImageNet checkpoint holds (mobilenet_v1_<d>_224.ckpt, 1001
classes; resnet_v1_50.ckpt, 1000).

    python tests/slim_checkpoints.py OUT_PREFIX mobilenet_v1 [depth_multiplier]
    python tests/slim_checkpoints.py OUT_PREFIX mobilenet_v2
    python tests/slim_checkpoints.py OUT_PREFIX resnet_v1_50
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


# slim's V2_DEF after its first conv (3x3 / 2, 32): expanded_conv(expansion, num_outputs, stride), in order
MOBILENET_V2_DEFS = [(1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1), (6, 64, 2), (6, 64, 1),
                     (6, 64, 1), (6, 64, 1), (6, 96, 1), (6, 96, 1), (6, 96, 1), (6, 160, 2), (6, 160, 1),
                     (6, 160, 1), (6, 320, 1)]


def mobilenet_v2_shapes(num_classes=1001):
    """{variable name: shape} of slim's mobilenet_v2 at depth multiplier 1 (scope MobilenetV2): each
    expanded_conv an expand 1x1 (absent where the expansion is 1), a depthwise 3x3, a project 1x1."""
    shapes = {"MobilenetV2/Conv/weights": [3, 3, 3, 32], **_batch_norm("MobilenetV2/Conv", 32)}
    channels = 32
    for i, (expansion, out, _) in enumerate(MOBILENET_V2_DEFS):
        prefix = f"MobilenetV2/expanded_conv{f'_{i}' if i else ''}"
        inner = channels * expansion
        if expansion > 1:
            shapes[f"{prefix}/expand/weights"] = [1, 1, channels, inner]
            shapes.update(_batch_norm(f"{prefix}/expand", inner))
        shapes[f"{prefix}/depthwise/depthwise_weights"] = [3, 3, inner, 1]
        shapes.update(_batch_norm(f"{prefix}/depthwise", inner))
        shapes[f"{prefix}/project/weights"] = [1, 1, inner, out]
        shapes.update(_batch_norm(f"{prefix}/project", out))
        channels = out
    shapes["MobilenetV2/Conv_1/weights"] = [1, 1, 320, 1280]
    shapes.update(_batch_norm("MobilenetV2/Conv_1", 1280))
    shapes["MobilenetV2/Logits/Conv2d_1c_1x1/weights"] = [1, 1, 1280, num_classes]
    shapes["MobilenetV2/Logits/Conv2d_1c_1x1/biases"] = [num_classes]
    return shapes


def resnet_v1_50_shapes(num_classes=1000):
    """{variable name: shape} of slim's resnet_v1_50: resnet_v1_block(scope, base_depth, num_units,
    stride) for its four blocks; each unit a bottleneck_v1 of conv1 1x1, conv2 3x3, conv3 1x1 (depth
    4 x base), and a 1x1 shortcut conv where the input depth differs."""
    shapes = {"resnet_v1_50/conv1/weights": [7, 7, 3, 64], **_batch_norm("resnet_v1_50/conv1", 64)}
    channels = 64
    for block, base, units in (("block1", 64, 3), ("block2", 128, 4), ("block3", 256, 6), ("block4", 512, 3)):
        for unit in range(1, units + 1):
            prefix = f"resnet_v1_50/{block}/unit_{unit}/bottleneck_v1"
            if channels != 4 * base:
                shapes[f"{prefix}/shortcut/weights"] = [1, 1, channels, 4 * base]
                shapes.update(_batch_norm(f"{prefix}/shortcut", 4 * base))
            for conv, shape in (("conv1", [1, 1, channels, base]), ("conv2", [3, 3, base, base]),
                                ("conv3", [1, 1, base, 4 * base])):
                shapes[f"{prefix}/{conv}/weights"] = shape
                shapes.update(_batch_norm(f"{prefix}/{conv}", shape[-1]))
            channels = 4 * base
    shapes["resnet_v1_50/logits/weights"] = [1, 1, 2048, num_classes]
    shapes["resnet_v1_50/logits/biases"] = [num_classes]
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
    if sys.argv[2] == "resnet_v1_50":
        write(sys.argv[1], resnet_v1_50_shapes())
    elif sys.argv[2] == "mobilenet_v2":
        write(sys.argv[1], mobilenet_v2_shapes())
    else:
        write(sys.argv[1], mobilenet_v1_shapes(float(sys.argv[3]) if len(sys.argv) > 3 else 1.0))
