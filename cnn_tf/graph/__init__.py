"""The training graph: its contract (contract.py), the hardware it runs on (hardware.py), the one
model function (model.py), the towers (towers.py), its state (state.py), its summaries
(summaries.py), and the builder that puts them together (builder.py)."""
from cnn_tf.graph.contract import PER_EPOCH, TEST, TRAIN, TRAINING_SCOPE, TrainGraph  # noqa: F401
from cnn_tf.graph.hardware import cpu_has_bfloat16, effective_precision  # noqa: F401
from cnn_tf.graph.towers import cross_entropy  # noqa: F401
from cnn_tf.graph.builder import build_graph, build_graph_for  # noqa: F401
