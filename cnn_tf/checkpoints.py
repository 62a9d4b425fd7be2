"""Saving, finding and restoring checkpoints, so that a crash at any moment loses nothing complete.

A checkpoint counts once the `checkpoint` state file lists it, and the state file is rewritten
(atomically) only after the checkpoint's data, index and meta graph are all on disk. So whatever
moment a process dies at, the latest listed checkpoint is complete; files of a save that did not
finish, or of an old checkpoint whose deletion was cut short, are removed at the next start.
Old checkpoints are forgotten through the state file too, which survives restarts
(`tf.train.Saver` keeps that list in memory and forgets it when the process dies).
"""
import glob
import json
import os
import re

import tensorflow as tf

from cnn_tf.errors import UserError
from cnn_tf.traindir import write_atomic

STATE_FILE = "checkpoint"


def listed(checkpoint_dir):
    """Paths of the complete checkpoints in `checkpoint_dir`, oldest first."""
    state = tf.train.get_checkpoint_state(checkpoint_dir)
    if not state:
        return []
    # get_checkpoint_state joins the state file's relative names to checkpoint_dir (any filesystem).
    paths = list(state.all_model_checkpoint_paths)
    return [p for p in paths if tf.io.gfile.exists(p + ".index")]


def latest(checkpoint_dir):
    paths = listed(checkpoint_dir)
    return paths[-1] if paths else None


def step_of(path):
    return int(path.rsplit("-", 1)[1])


def remove_incomplete(checkpoint_dir):
    """Deletes what a killed save left behind: files of checkpoints the state file does not list,
    Saver's `*_temp*` directories and our `*.tmp` files. Returns the names it removed."""
    if not tf.io.gfile.isdir(checkpoint_dir):
        return []
    keep = {os.path.basename(p) for p in listed(checkpoint_dir)}
    removed = []
    for name in sorted(n.rstrip("/") for n in tf.io.gfile.listdir(checkpoint_dir)):
        if name == STATE_FILE:
            continue
        match = re.match(r"(.*?-\d+)(\.(index|meta|data-\d+-of-\d+))$", name)
        if match and match.group(1) in keep:
            continue
        path = os.path.join(checkpoint_dir, name)
        if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        else:
            tf.io.gfile.remove(path)
        removed.append(name)
    return removed


def _write_state(checkpoint_dir, paths):
    """The `checkpoint` file tf.train.get_checkpoint_state reads (a text proto), written atomically;
    names are relative, so a train dir can be moved."""
    names = [json.dumps(os.path.basename(p)) for p in paths]
    write_atomic(os.path.join(checkpoint_dir, STATE_FILE), f"model_checkpoint_path: {names[-1]}\n" +
                 "".join(f"all_model_checkpoint_paths: {name}\n" for name in names))


def _remove_checkpoint(path):
    for name in tf.io.gfile.glob(glob.escape(path) + ".*"):
        tf.io.gfile.remove(name)


def save(sess, g, prefix, step, max_to_keep):
    """Writes checkpoint `prefix-step` (variables and meta graph), then lists it in the state file,
    then deletes the oldest beyond `max_to_keep`. A failed write (a full disk) removes its own
    partial files and names the intact previous checkpoint."""
    checkpoint_dir = os.path.dirname(prefix)
    previous = listed(checkpoint_dir)
    path = f"{prefix}-{step}"
    try:
        with g.graph.as_default():  # Saver works on the default graph
            g.saver.save(sess, prefix, global_step=step, write_meta_graph=False, write_state=False)
            meta_graph = g.saver.export_meta_graph()
        # No device pins (clear_devices=True would edit the finalized graph): a run trained on a GPU
        # must restore by name on a machine without one.
        for node in meta_graph.graph_def.node:
            node.device = ""
        write_atomic(path + ".meta", meta_graph.SerializeToString())
        kept = [p for p in previous if p != path][-(max_to_keep - 1):] if max_to_keep > 1 else []
        _write_state(checkpoint_dir, kept + [path])
    except (tf.errors.OpError, OSError) as e:
        if latest(checkpoint_dir) != path:
            remove_incomplete(checkpoint_dir)
        message = e.message if isinstance(e, tf.errors.OpError) else str(e)
        intact = f"the previous checkpoint {previous[-1]} is intact" if previous else "no earlier checkpoint exists"
        raise UserError(f"could not write checkpoint {path}: {message.splitlines()[0]} (is the disk full?); "
                        f"{intact}. Free some space and run the same command to continue") from e
    for old in previous:
        if old not in kept and old != path:
            _remove_checkpoint(old)
    return path


def check_compatible(path, variables, optional=()):
    """Compares names and shapes before restoring, so a mismatch names the variable and both shapes
    (Saver.restore would print a page of C++ error instead). Returns whether any of the `optional`
    variables is missing from the checkpoint."""
    try:
        # The reader itself: tf.train.list_variables asks first whether `path` is a directory, which
        # TensorFlow's ram:// filesystem answers yes for a checkpoint prefix.
        saved = tf.compat.v1.train.NewCheckpointReader(path).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as e:
        raise UserError(f"cannot read checkpoint {path}: {getattr(e, 'message', e)}; it is corrupt or "
                        "incomplete: delete its files to fall back to the one before, or pass another "
                        "--checkpoint_path") from e
    optional = {v.op.name for v in optional}
    for var in variables:
        name, shape = var.op.name, var.shape.as_list()
        if name not in saved:
            if name in optional:
                continue
            raise UserError(f"checkpoint {path} has no variable {name}: it was written by another model "
                            "(check --model and the train dir)")
        if list(saved[name]) != shape:
            raise UserError(f"checkpoint {path} holds {name} with shape {list(saved[name])}, the model built "
                            f"here has {shape}: another model, dataset or class count wrote it")
    _check_no_strays(path, saved, {v.op.name for v in variables})
    return any(name not in saved for name in optional)


def _check_no_strays(path, saved, names):
    """A checkpoint variable inside one of the model's scopes that the model lacks (not an optimizer
    slot of one of its variables) means another version of the model wrote it, e.g. a resnet with the
    conv biases it no longer has: restoring the rest would silently mix two models."""
    scopes = {name.split("/", 1)[0] + "/" for name in names if "/" in name}
    for name in sorted(saved):
        if name in names or not name.startswith(tuple(scopes)):
            continue
        owner = name.rsplit("/", 1)[0]  # a slot: <variable>/Momentum, <variable>/Adam_1, ...
        if owner in names:
            continue
        raise UserError(f"checkpoint {path} holds {name}, which the model built here does not have: another "
                        "model or an older version of it wrote it; retrain it (or check --model and the "
                        "train dir)")


def restore(sess, g, path):
    """Restores every saved variable of graph `g` from `path`; returns the global step. A float16
    run's loss scale starts afresh when the checkpoint has none (it was written in float32)."""
    with g.graph.as_default():
        variables = tf.compat.v1.global_variables()
    fresh = check_compatible(path, variables, optional=g.loss_scale_variables)
    try:
        with g.graph.as_default():  # Saver works on the default graph
            (g.saver_without_loss_scale if fresh else g.saver).restore(sess, path)
    except tf.errors.OpError as e:
        raise UserError(f"cannot restore checkpoint {path}: {e.message.splitlines()[0]}; it is corrupt: "
                        "delete its files to fall back to the one before") from e
    if fresh:
        sess.run(g.init_loss_scale)
    sess.run(g.local_init_op)
    return int(sess.run(g.global_step))
