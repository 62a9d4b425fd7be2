"""Finding and restoring checkpoints, with errors that name what does not match."""
import tensorflow as tf

from cnn_tf.errors import UserError


def latest(checkpoint_dir):
    return tf.train.latest_checkpoint(checkpoint_dir)


def check_compatible(path, variables):
    """Compares names and shapes before restoring, so a mismatch names the variable and both shapes
    (Saver.restore would print a page of C++ error instead)."""
    try:
        saved = dict(tf.train.list_variables(path))
    except (tf.errors.OpError, ValueError) as e:
        raise UserError(f"cannot read checkpoint {path}: {getattr(e, 'message', e)}; "
                        "it is corrupt or incomplete, pass another --checkpoint_path") from e
    for var in variables:
        name, shape = var.op.name, var.shape.as_list()
        if name not in saved:
            raise UserError(f"checkpoint {path} has no variable {name}: it was written by another model "
                            "(check --model and the train dir)")
        if list(saved[name]) != shape:
            raise UserError(f"checkpoint {path} holds {name} with shape {list(saved[name])}, the model built "
                            f"here has {shape}: another model, dataset or class count wrote it")


def restore(sess, g, path):
    """Restores every saved variable of graph `g` from `path`; returns the global step."""
    with g.graph.as_default():
        variables = tf.compat.v1.global_variables()
    check_compatible(path, variables)
    try:
        g.saver.restore(sess, path)
    except tf.errors.OpError as e:
        raise UserError(f"cannot restore checkpoint {path}: {e.message.splitlines()[0]}") from e
    sess.run(g.local_init_op)
    return int(sess.run(g.global_step))
