"""Saving, finding and restoring checkpoints, so that a crash at any moment loses nothing complete.

A checkpoint counts once the `checkpoint` state file lists it, and the state file is rewritten
(atomically) only after the checkpoint's data, index and meta graph are all on disk. So whatever
moment a process dies at, the latest listed checkpoint is complete. Old checkpoints are forgotten
through the state file too, which survives restarts (`tf.train.Saver` keeps that list in memory and
forgets it when the process dies).

Each checkpoint of a training run also has `model.ckpt-<N>.json`: the state its callbacks keep
across a restart (the best value so far, early stopping's count, ...; cnn_tf.loop), written first,
so a checkpoint whose index is on disk has it.

The checkpoints/ folder is the user's as much as ours: only files named as a part of a checkpoint
(`model.ckpt-<N>.index|.meta|.data-K-of-M`) or as the temporary files a save writes are ever
deleted, and only when they are provably incomplete (`repair`). A state file that is missing, empty
or unreadable is rebuilt from the complete checkpoints on disk: it is an index, never the only record.
"""
import json
import os
import re

import tensorflow as tf
from google.protobuf import text_format
from tensorflow.python.training.checkpoint_state_pb2 import CheckpointState  # the state file's proto

from cnn_tf import errors
from cnn_tf.errors import UserError
from cnn_tf.traindir import CHECKPOINT_NAME, write_atomic

STATE_FILE = "checkpoint"
# A checkpoint's parts, and the temporary files a save writes before renaming them into place:
# TensorFlow's `<part>.tempstate<digits>` and `<prefix>_temp*/` folders, our own `<file>.<random>.tmp`.
_PART = re.compile(r"^(?P<prefix>.+-(?P<step>\d+))\.(?P<part>index|meta|json|data-(?P<shard>\d{5})-of-(?P<shards>\d{5}))$")
_OURS = re.escape(CHECKPOINT_NAME) + r"-\d+"  # the prefix of a checkpoint this package writes
_TEMPORARY = re.compile(rf"^(?:{_OURS}(?:\.(?:index|meta|json|data-\d{{5}}-of-\d{{5}}))?(?:\.tempstate\d+|\.\w{{8}}\.tmp|\.\d+\.tmp)"
                        rf"|{_OURS}_temp.*|{re.escape(STATE_FILE)}(?:\.\w{{8}}|\.\d+)\.tmp)$")


def _state(checkpoint_dir):
    """(the paths the state file lists, or None; what is wrong with it when None)."""
    path = os.path.join(checkpoint_dir, STATE_FILE)
    if not tf.io.gfile.exists(path):
        return None, "missing"
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            text = f.read().decode("utf-8")
        state = text_format.Parse(text, CheckpointState())
    except (tf.errors.OpError, text_format.ParseError, UnicodeDecodeError, ValueError):
        return None, "unreadable"
    if not state.model_checkpoint_path:
        return None, "empty"
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    if state.model_checkpoint_path not in paths:
        paths.append(state.model_checkpoint_path)
    return [p if os.path.isabs(p) or "://" in p else os.path.join(checkpoint_dir, p) for p in paths], None


def _parts(checkpoint_dir):
    """{checkpoint prefix: set of its part names found}, for the files named as parts of a checkpoint."""
    found = {}
    try:
        names = tf.io.gfile.listdir(checkpoint_dir)
    except tf.errors.OpError:
        return found
    for name in names:
        match = _PART.match(name.rstrip("/"))
        if match:
            found.setdefault(os.path.join(checkpoint_dir, match["prefix"]), set()).add(match["part"])
    return found


def _is_complete(parts):
    """An index and every data shard it names: Saver.restore can read it (the meta graph is extra)."""
    shards = [p for p in parts if p.startswith("data-")]
    if "index" not in parts or not shards:
        return False
    count = int(shards[0].rsplit("-", 1)[1])
    return {f"data-{i:05d}-of-{count:05d}" for i in range(count)} <= set(shards)


def parts(path):
    """The file names of checkpoint `path`'s parts on disk (index, meta, json, data-*), the index last."""
    return sorted((f"{os.path.basename(path)}.{part}" for part in _parts(os.path.dirname(path)).get(path, ())),
                  key=lambda name: name.endswith(".index"))


def is_complete(path):
    """Whether checkpoint `path` (a prefix) has its index and every data shard on disk."""
    return _is_complete(_parts(os.path.dirname(path)).get(path, ()))


def on_disk(checkpoint_dir):
    """Paths of the complete checkpoints found in `checkpoint_dir` (named model.ckpt-<N>), oldest first."""
    complete = [p for p, parts in _parts(checkpoint_dir).items()
                if _is_complete(parts) and re.fullmatch(_OURS, os.path.basename(p))]
    return sorted(complete, key=step_of)


def listed(checkpoint_dir):
    """Paths of the complete checkpoints in `checkpoint_dir`, oldest first: those the state file lists,
    or, when it is missing, empty or unreadable, those on disk."""
    paths = _state(checkpoint_dir)[0]
    if paths is None:
        return on_disk(checkpoint_dir)
    return [p for p in paths if tf.io.gfile.exists(p + ".index")]


def latest(checkpoint_dir):
    paths = listed(checkpoint_dir)
    return paths[-1] if paths else None


def step_of(path):
    """The global step of checkpoint `path` (a prefix model.ckpt-N, or one of its files)."""
    match = re.search(r"-(\d+)(?:\.(?:index|meta|json|data-\d{5}-of-\d{5}))?$", os.path.basename(path))
    if not match:
        raise UserError(f"{path} is not a checkpoint of cnn_tf: its name does not end in -<global step>, "
                        "as DIR/checkpoints/model.ckpt-N does")
    return int(match.group(1))


def prefix_of(path):
    """A checkpoint's prefix from the prefix itself or any of its files (.index, .meta, .data-*)."""
    return re.sub(r"\.(?:index|meta|json|data-\d{5}-of-\d{5})$", "", path)


def repair(checkpoint_dir):
    """Before a training process restores: deletes the files of checkpoints that are provably
    incomplete (parts named model.ckpt-<N>.* without an index or missing a data shard) and the
    temporary files of a save cut short; lists the complete checkpoints the state file lacks (a save
    killed just before listing it, a rotation killed before deleting one, a state file lost), by step.
    Nothing else is touched. Returns one line per thing done, for a warning."""
    if not tf.io.gfile.isdir(checkpoint_dir):
        return []
    notes, removed = [], []
    for prefix, parts in sorted(_parts(checkpoint_dir).items()):
        if not _is_complete(parts) and re.fullmatch(_OURS, os.path.basename(prefix)):
            for part in sorted(parts):
                tf.io.gfile.remove(f"{prefix}.{part}")
                removed.append(f"{os.path.basename(prefix)}.{part}")
    removed += _remove_temporaries(checkpoint_dir)
    if removed:
        notes.append(f"removed the files of a checkpoint save that did not finish: {', '.join(removed)}")
    state, problem = _state(checkpoint_dir)
    complete = on_disk(checkpoint_dir)
    if state is None and complete:
        write_state(checkpoint_dir, complete)
        notes.append(f"the state file {os.path.join(checkpoint_dir, STATE_FILE)} was {problem}: "
                     f"rebuilt it from the {len(complete)} complete checkpoints on disk (the latest: "
                     f"{os.path.basename(complete[-1])})")
    elif state is not None:
        known = [p for p in state if tf.io.gfile.exists(p + ".index")]
        unlisted = [p for p in complete if p not in known]
        if unlisted:  # a save killed before listing it, or a rotation before deleting it: --max_num_checkpoint
            write_state(checkpoint_dir, sorted(known + unlisted, key=step_of))  # applies at the next save
            notes.append(f"listed {', '.join(os.path.basename(p) for p in unlisted)}: complete on disk, but "
                         "the state file did not name it (a save or clean-up was cut short)")
    return notes


def _remove_temporaries(checkpoint_dir, prefix=None):
    """Deletes the temporary files of saves (of checkpoint `prefix` only, if given); returns their names."""
    removed = []
    start = os.path.basename(prefix) if prefix else ""
    for name in sorted(n.rstrip("/") for n in tf.io.gfile.listdir(checkpoint_dir)):
        if _TEMPORARY.match(name) and (not prefix or re.match(re.escape(start) + r"[._]", name)):
            path = os.path.join(checkpoint_dir, name)
            tf.io.gfile.rmtree(path) if tf.io.gfile.isdir(path) else tf.io.gfile.remove(path)
            removed.append(name)
    return removed


def write_state(checkpoint_dir, paths):
    """The `checkpoint` file tf.train.get_checkpoint_state reads (a text proto), written atomically;
    names are relative, so a train dir can be moved."""
    names = [json.dumps(os.path.basename(p)) for p in paths]
    write_atomic(os.path.join(checkpoint_dir, STATE_FILE), f"model_checkpoint_path: {names[-1]}\n" +
                 "".join(f"all_model_checkpoint_paths: {name}\n" for name in names))


def remove(path):
    """The parts of checkpoint `path` (and nothing else that starts with its name), the index first: a
    reader sees the checkpoint gone, never half there."""
    for part in sorted(_parts(os.path.dirname(path)).get(path, ()), key=lambda part: part != "index"):
        tf.io.gfile.remove(f"{path}.{part}")


def save(sess, g, prefix, step, max_to_keep, state=None):
    """Writes checkpoint `prefix-step` (the callbacks' `state` dict, variables and meta graph), then lists it in the state file,
    then deletes the oldest beyond `max_to_keep`. A failed write (a full disk) removes its own
    partial files and names the intact previous checkpoint."""
    checkpoint_dir = os.path.dirname(prefix)
    previous = listed(checkpoint_dir)
    path = f"{prefix}-{step}"
    try:
        write_atomic(path + ".json", json.dumps(state or {}, sort_keys=True) + "\n")
        with g.graph.as_default():  # Saver works on the default graph
            g.saving.saver.save(sess, prefix, global_step=step, write_meta_graph=False, write_state=False)
            meta_graph = g.saving.saver.export_meta_graph()
        # No device pins (clear_devices=True would edit the finalized graph): a run trained on a GPU
        # must restore by name on a machine without one.
        for node in meta_graph.graph_def.node:
            node.device = ""
        write_atomic(path + ".meta", meta_graph.SerializeToString())
        kept = [p for p in previous if p != path][-(max_to_keep - 1):] if max_to_keep > 1 else []
        write_state(checkpoint_dir, kept + [path])
    except (tf.errors.OpError, OSError) as e:
        if latest(checkpoint_dir) != path:  # this process's own save, cut short: its files go
            remove(path)
            _remove_temporaries(checkpoint_dir, path)
        intact = f"the previous checkpoint {previous[-1]} is intact" if previous else "no earlier checkpoint exists"
        raise UserError(f"could not write checkpoint {path}: {errors.reason(e)} (is the disk full?); "
                        f"{intact}. Free some space and run the same command to continue") from e
    for old in previous:
        if old not in kept and old != path:
            remove(old)
    return path


def read_state(path):
    """The callbacks' state saved with checkpoint `path` ({} for a checkpoint written before there was one)."""
    try:
        with tf.io.gfile.GFile(path + ".json") as f:
            state = json.load(f)
    except tf.errors.NotFoundError:
        return {}
    except (tf.errors.OpError, ValueError) as e:
        raise UserError(f"cannot read {path}.json, the training state saved with the checkpoint: {e}; delete the "
                        "checkpoint's files to fall back to the one before") from e
    return state if isinstance(state, dict) else {}


def check_compatible(path, variables, optional=()):
    """Compares names and shapes before restoring, so a mismatch names the variable and both shapes
    (Saver.restore would print a page of C++ error instead). Returns whether any of the `optional`
    variables is missing from the checkpoint."""
    try:
        # The reader itself: tf.train.list_variables asks first whether `path` is a directory, which
        # TensorFlow's ram:// filesystem answers yes for a checkpoint prefix.
        saved = tf.compat.v1.train.NewCheckpointReader(path).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError, IndexError) as e:
        raise UserError(f"cannot read checkpoint {path}: {errors.reason(e)}; it is corrupt or "
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


def corrupt(path, error):
    """The error of a checkpoint whose index reads but whose data does not (truncated, damaged)."""
    return UserError(f"cannot restore checkpoint {path}: {errors.reason(error)}; it is corrupt: delete its files to "
                     "fall back to the one before, or pass another --checkpoint_path")


def restore(sess, g, path):
    """Restores every saved variable of graph `g` from `path`; returns the global step. A float16
    run's loss scale starts afresh when the checkpoint has none (it was written in float32)."""
    with g.graph.as_default():
        variables = tf.compat.v1.global_variables()
    fresh = check_compatible(path, variables, optional=g.train_ops.loss_scale_variables)
    try:
        with g.graph.as_default():  # Saver works on the default graph
            (g.saving.saver_without_loss_scale if fresh else g.saving.saver).restore(sess, path)
    except tf.errors.OpError as e:
        raise corrupt(path, e) from e
    if fresh:
        sess.run(g.saving.init_loss_scale)
    sess.run(g.saving.local_init_op)
    return int(sess.run(g.global_step))
