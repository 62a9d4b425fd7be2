"""Fine-tuning: which of the model's variables a run trains (--trainable_scopes), and where its first
weights come from (--warm_start_from, --checkpoint_exclude_scopes, --ignore_missing_vars). A source
in a train dir is described by its run manifest (what it trained on), never by loading its data.

A scope names a variable-scope prefix at a `/` boundary: `lenet/fc4` covers `lenet/fc4/weights` and
`lenet/fc4/biases`, not `lenet/fc40/...`. Only the model's own variables are warm-started; the global
step, the optimizer's slots, the learning-rate state and the loss scale always start afresh.
A warm start happens only when the train dir has no checkpoint of its own: the loop restores
its latest checkpoint if there is one, and calls `WarmStart` for fresh weights otherwise, which
includes a NaN rollback before the first checkpoint (cnn_tf.loop.Trainer.restore).
"""
import os

import tensorflow as tf

from cnn_tf import checkpoints, errors, log
from cnn_tf.errors import UserError
from cnn_tf.manifest import RunManifest
from cnn_tf.registry import MODELS
from cnn_tf.traindir import TrainDir


def under(name, scope):
    scope = scope.strip("/")
    return name == scope or name.startswith(scope + "/")


def layer_scopes(variables):
    """The distinct `model/layer` scopes of `variables`, in order: what a user may name."""
    return list(dict.fromkeys("/".join(v.op.name.split("/")[:2]) for v in variables))


def select(variables, scopes, flag):
    """The variables under any of `scopes`; a scope that matches none is an error naming the flag."""
    for scope in scopes:
        if not any(under(v.op.name, scope) for v in variables):
            raise UserError(f"{flag}: {scope!r} matches no variable of the model; its scopes are "
                            f"{', '.join(layer_scopes(variables))}")
    return [v for v in variables if any(under(v.op.name, scope) for scope in scopes)]


def variables_to_train(cfg, model_variables):
    """The trainable model variables under --trainable_scopes (all of them by default)."""
    trainable = [v for v in model_variables if v.trainable]
    if not cfg.trainable_scopes:
        return trainable
    chosen = {v.op.name for v in select(model_variables, cfg.trainable_scopes, "--trainable_scopes")}
    return [v for v in trainable if v.op.name in chosen]  # by name: `in` on variables compares tensors


def source_checkpoint(path):
    """The checkpoint --warm_start_from names: a checkpoint prefix (or one of its files), a train dir
    (its latest checkpoint), a checkpoints/ folder, or any folder with a `checkpoint` state file."""
    flag = f"--warm_start_from={path}"
    if os.path.isdir(path):
        found = (checkpoints.latest(TrainDir(path).checkpoints) or checkpoints.latest(path)
                 or tf.train.latest_checkpoint(path))
        if not found:
            raise UserError(f"{flag}: the folder holds no checkpoint; give a train dir, its checkpoints/ "
                            "folder or a checkpoint such as DIR/checkpoints/model.ckpt-N")
        return found
    for suffix in (".index", ".meta"):
        if path.endswith(suffix):
            path = path[:-len(suffix)]
    if not os.path.isfile(path + ".index"):
        raise UserError(f"{flag}: no such checkpoint ({path}.index does not exist); give a train dir or a "
                        "checkpoint such as DIR/checkpoints/model.ckpt-N")
    return path


def source_record(checkpoint_path):
    """The run manifest of the train dir a checkpoint lives in (DIR/checkpoints/model.ckpt-N), if any:
    what the source run trained on, read without its data."""
    train_dir = os.path.dirname(os.path.dirname(os.path.abspath(checkpoint_path)))
    try:
        return RunManifest.read(TrainDir(train_dir).run_json)
    except UserError:
        return None  # a damaged record of another run does not stop this one: it only informs


class WarmStart:
    """Fresh weights from a source checkpoint: `warm_start(sess)` initializes every variable, then
    restores the model's variables that are not excluded. Built (and every name, shape and scope
    checked) before the graph is finalized and before the train dir is touched."""

    def __init__(self, cfg, g, class_names=None):
        self.g = g
        self.path = source_checkpoint(cfg.warm_start_from)
        self.source = source_record(self.path)
        try:
            reader = tf.compat.v1.train.NewCheckpointReader(self.path)  # see checkpoints.check_compatible
        except (tf.errors.OpError, ValueError) as e:
            raise UserError(f"--warm_start_from: cannot read checkpoint {self.path}: "
                            f"{errors.reason(e)}") from e
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
        model = g.model_variables
        self.excluded = select(model, cfg.checkpoint_exclude_scopes or (), "--checkpoint_exclude_scopes")
        excluded = {v.op.name for v in self.excluded}
        candidates = [v for v in model if v.op.name not in excluded]
        mismatched = [v for v in candidates if v.op.name in shapes and (
            shapes[v.op.name] != v.shape.as_list() or dtypes[v.op.name] != v.dtype.base_dtype)]
        if mismatched:
            v = mismatched[0]
            fix = ",".join([*(cfg.checkpoint_exclude_scopes or ()), *layer_scopes(mismatched)])
            raise UserError(
                f"--warm_start_from: {v.op.name} is {dtypes[v.op.name].name} {shapes[v.op.name]} in {self.path} and "
                f"{v.dtype.base_dtype.name} {v.shape.as_list()} in this model"
                f"{f' ({len(mismatched) - 1} more differ)' if len(mismatched) > 1 else ''}; pass "
                f"--checkpoint_exclude_scopes={fix} to start {'them' if len(mismatched) > 1 else 'it'} "
                "from the initializer")
        self.restored = [v for v in candidates if v.op.name in shapes]
        try:  # every value read once now: a truncated data file is found before the train dir is touched
            for v in self.restored:
                reader.get_tensor(v.op.name)
        except (tf.errors.OpError, ValueError, IndexError) as e:
            raise UserError(f"--warm_start_from: cannot read {self.path}: {errors.reason(e)}; its data file is "
                            "corrupt or truncated: give another checkpoint") from e
        if not self.restored:
            raise UserError(f"--warm_start_from: {self.path} holds none of this model's variables "
                            f"({', '.join(layer_scopes(model))}): another model wrote it")
        self.missing = [v for v in candidates if v.op.name not in shapes]
        if self.missing and not cfg.ignore_missing_vars:
            more = f" (and {len(self.missing) - 1} more)" if len(self.missing) > 1 else ""
            raise UserError(f"--warm_start_from: {self.path} has no variable {self.missing[0].op.name}{more}; "
                            "pass --ignore_missing_vars to start such variables from their initializer, or "
                            f"--checkpoint_exclude_scopes={','.join(layer_scopes(self.missing))}")
        if self.missing:
            log.warning(f"--ignore_missing_vars: {self.path} lacks {len(self.missing)} of the model's variables "
                        f"(in {', '.join(layer_scopes(self.missing))}); they start from their initializer")
        self._warn_of_other_classes(class_names)
        self._warn_of_other_inputs(cfg)
        with g.graph.as_default():
            self.saver = tf.compat.v1.train.Saver(self.restored, name="warm_start")
        self.description = f"the warm-started weights of {self.path}"

    def __call__(self, sess):
        sess.run(self.g.saving.init_op)
        try:
            with self.g.graph.as_default():  # Saver works on the default graph
                self.saver.restore(sess, self.path)
        except tf.errors.OpError as e:
            raise UserError(f"--warm_start_from: cannot restore {self.path}: {errors.reason(e)}") from e

    def _warn_of_other_classes(self, class_names):
        """The source run's record (its run.json) names its classes: an output layer restored over other
        classes of the same count maps them silently to this run's, which is worth a line."""
        if not (self.source and class_names) or list(self.source.class_names) == list(class_names):
            return
        output = layer_scopes(self.g.model_variables)[-1]
        if any(under(v.op.name, output) for v in self.restored):
            log.warning(f"--warm_start_from: {self.path} was trained on the classes "
                        f"{', '.join(self.source.class_names[:5])}{', ...' if len(self.source.class_names) > 5 else ''}, "
                        f"not this run's; its output layer {output} is restored as it is (pass "
                        f"--checkpoint_exclude_scopes={output} to start it from the initializer)")

    def _warn_of_other_inputs(self, cfg):
        """Slim trained its published weights on inputs of one normalization (the net's
        `published_normalization`); fed others, a checkpoint from outside cnn_tf starts far from what it learned."""
        expected = getattr(MODELS[cfg.model], "published_normalization", None)
        if self.source is None and expected and cfg.normalization != expected:
            log.warning(f"--warm_start_from: {self.path} is not a cnn_tf run's, and slim trained its {cfg.model} "
                        f"weights on --normalization={expected} inputs; this run feeds "
                        f"--normalization={cfg.normalization}: pass --normalization={expected} to match them")

    def summary(self):
        """One line: what came from where."""
        origin = (f" (a {self.source.dataset} run, {self.source.num_classes} classes)" if self.source else "")
        parts = [f"{len(self.restored)} of the model's {len(self.g.model_variables)} variables from {self.path}{origin}"]
        fresh = self.excluded + self.missing
        if fresh:
            parts.append(f"from their initializer: {', '.join(layer_scopes(fresh))}")
        return "; ".join(parts)
