"""Evaluation and prediction batches follow a memory budget from the graph's own activations: small
digits keep the batch of 1,000, the tutorial's four_conv at 224 px gets a batch whose activations
fit the budget, and --eval_batch_size, when given, wins."""
import tensorflow as tf

from cnn_tf.config import RunConfig
from cnn_tf.graph import build_graph
from cnn_tf.graph.memory import EVAL_MEMORY_BUDGET, activation_bytes_per_image, inference_batch_size


def inference_ops(g):
    return [op for op in g.graph.get_operations() if op.name.startswith("inference/")]


def test_the_evaluation_batch_follows_the_memory_budget():
    small = build_graph(RunConfig(model="lenet"), (28, 28, 1), 10, 100)
    assert inference_batch_size(small) == 1000
    large = build_graph(RunConfig(model="four_conv"), (224, 224, 3), 3, 100)
    per_image = activation_bytes_per_image(inference_ops(large))
    # four_conv's first conv alone is 224 x 224 x 32 floats an image, before its batch norm and ReLU.
    assert per_image > 3 * 224 * 224 * 32 * 4
    batch = inference_batch_size(large)
    assert 1 <= batch < 64 and batch * per_image <= EVAL_MEMORY_BUDGET < (batch + 1) * per_image
    assert inference_batch_size(large, given=500) == 500


def test_activations_are_counted_per_image_and_only_for_known_shapes():
    with tf.Graph().as_default() as graph:
        x = tf.compat.v1.placeholder(tf.float32, [None, 10, 10, 3])
        tf.nn.relu(x)
        tf.compat.v1.placeholder(tf.float32, [None, None, 3])  # unknown: not counted
        tf.compat.v1.placeholder(tf.int64, [None, 4])  # not a float: not counted
    assert activation_bytes_per_image(graph.get_operations()) == 2 * 10 * 10 * 3 * 4
