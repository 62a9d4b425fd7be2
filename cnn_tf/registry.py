"""Registries: names a package fills as its modules load (timm's `register_model`), so the option
schema can offer them as choices without importing the package that fills them.

    MODELS = Registry("model", filled_by="cnn_tf.nets")
    register_model("lenet", lenet, ...)   the last line of cnn_tf/nets/lenet.py
    "lenet" in MODELS, sorted(MODELS)     the first lookup imports cnn_tf.nets, which registers them all
"""
import importlib


class Registry:
    def __init__(self, kind, filled_by):
        self.kind, self.filled_by = kind, filled_by
        self._entries, self._filling = {}, False

    def register(self, name, entry=None):
        """Registers `entry` under `name`; without an entry, a decorator that registers what it decorates."""
        if entry is None:
            return lambda decorated: self.register(name, decorated)
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def _filled(self):
        if not self._filling:  # once, and not again while the package registers itself
            self._filling = True
            importlib.import_module(self.filled_by)
        return self._entries

    def __getitem__(self, name):
        entries = self._filled()
        if name not in entries:
            raise ValueError(f"unknown {self.kind} {name!r}; {self.kind}s: {', '.join(sorted(entries))}")
        return entries[name]

    def __contains__(self, name):
        return name in self._filled()

    def __iter__(self):
        return iter(sorted(self._filled()))

    def __len__(self):
        return len(self._filled())

    def items(self):
        return sorted(self._filled().items())


MODELS = Registry("model", filled_by="cnn_tf.nets")  # name -> net function (with its arg_scope)
DATASETS = Registry("dataset", filled_by="cnn_tf.data")  # name -> loader
AUGMENTATIONS = Registry("augmentation", filled_by="cnn_tf.data.pipeline")  # name -> what it does
INITIALIZERS = Registry("initializer", filled_by="cnn_tf.nets.layers")  # name -> stddev -> initializer
MODEL_OPTIONS = Registry("model option", filled_by="cnn_tf.nets")  # flag name -> (type, dataclasses field)


def register_model(name, net, arg_scope, options=()):
    """Model `name` is `net(images, num_classes, is_training, keep_prob, scope, **options)`, built
    inside `arg_scope(weight_decay=, use_batch_norm=, init_stddev=[, weights_initializer=])`.
    `options`: the flags of its own keyword arguments (cnn_tf.options.model_option), declared in its
    file; cnn_tf.config.RunConfig has a field for each."""
    net.arg_scope = arg_scope
    for option_name, kind, field in options:
        MODEL_OPTIONS.register(option_name, (kind, field))
    return MODELS.register(name, net)
