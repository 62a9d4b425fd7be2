"""cnn_tf: train and evaluate convolutional image classifiers in TF1-style graph mode."""
import os

# TensorFlow's C++ start-up chatter (CUDA probing on GPU-less machines) drowns our own output.
# Set TF_CPP_MIN_LOG_LEVEL=0 yourself to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# oneDNN kernels train LeNet ~1.5x faster on this project's CPUs; TensorFlow enables them only on
# some Intel CPUs by default. TF_ENABLE_ONEDNN_OPTS=0 turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
