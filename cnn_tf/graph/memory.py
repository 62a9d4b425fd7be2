"""Evaluation and prediction batches sized by memory, not by count: a batch of 1,000 28x28 digits
is a few megabytes, one of 1,000 224x224 photos through four_conv is tens of gigabytes. The
activations of one image are read from the graph itself (every float tensor whose shape is known
but for the batch), so the estimate follows the model and the image size with nothing to keep in
step by hand."""

EVAL_MEMORY_BUDGET = 1 << 30  # bytes of activations an evaluation or prediction batch may take
MAX_EVAL_BATCH = 1000  # what --eval_batch_size was by default: small images keep their batch


def activation_bytes_per_image(ops):
    """Bytes of every float output of `ops` shaped [None, ...known...], for one image. Their sum: an
    upper bound of what is alive at once (TensorFlow frees a tensor after its last use)."""
    total = 0
    for op in ops:
        for tensor in op.outputs:
            shape = tensor.shape
            if (shape.rank or 0) >= 2 and shape[0] is None and shape[1:].is_fully_defined() \
                    and tensor.dtype.is_floating:
                total += shape[1:].num_elements() * tensor.dtype.size
    return total


def batch_for_budget(ops, budget=EVAL_MEMORY_BUDGET, most=MAX_EVAL_BATCH):
    """The largest batch, at most `most`, whose activations through `ops` fit in `budget` bytes."""
    return int(max(1, min(most, budget // max(activation_bytes_per_image(ops), 1))))


def inference_batch_size(g, given=None):
    """`given` (--eval_batch_size), else the batch of the graph's inference tower under the budget."""
    if given:
        return given
    return batch_for_budget([op for op in g.graph.get_operations() if op.name.startswith("inference/")])
