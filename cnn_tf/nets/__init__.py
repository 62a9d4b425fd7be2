"""The model factory, as slim's nets_factory: a model's name -> its function and its arg_scope.

Every net has the signature `net(images, num_classes, is_training, keep_prob, scope, **options)
-> (logits, end_points)` and a `default_image_size` attribute; `options` are its own (four_conv's
`keep_prob_conv`). `get_network_fn` is how the rest of cnn_tf builds one. A model registers itself, at the end of
its file: `register_model("lenet", lenet, lenet_arg_scope)`.
"""
import functools
import importlib
import inspect
import pkgutil

from cnn_tf.nets.scopes import arg_scope
from cnn_tf.registry import MODELS

# Every module of this package but the building blocks is a model that registers itself
# (cnn_tf.registry.register_model): a new model is one new file here.
_BUILDING_BLOCKS = {"layers", "scopes"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _BUILDING_BLOCKS:
        importlib.import_module(f"{__name__}.{_module.name}")

nets_map = MODELS  # slim's names: model name -> net function
arg_scopes_map = {name: net.arg_scope for name, net in MODELS.items()}

_COMMON = ("images", "num_classes", "is_training", "keep_prob", "scope")


def model_options(name):
    """The keyword arguments model `name` takes besides every net's common ones."""
    return tuple(p for p in inspect.signature(nets_map[name]).parameters if p not in _COMMON)


def get_network_fn(name, num_classes, weight_decay=0.0, use_batch_norm=False, weights_initializer=None,
                   init_stddev=0.1, **options):
    """Returns `network_fn(images, is_training=True, keep_prob=0.5) -> (logits, end_points)`, which
    builds model `name` inside its arg_scope (weight decay, batch norm, initializer: None keeps the
    model's own) with its own `options`. An unknown name or option is a ValueError, never ignored."""
    unknown = set(options) - set(model_options(name))
    if unknown:
        raise ValueError(f"model {name} takes no option(s) {', '.join(sorted(unknown))}; "
                         f"its options: {', '.join(model_options(name)) or 'none'}")
    net = nets_map[name]
    scope_args = dict(weight_decay=weight_decay, use_batch_norm=use_batch_norm, init_stddev=init_stddev)
    if weights_initializer:
        scope_args["weights_initializer"] = weights_initializer

    @functools.wraps(net)
    def network_fn(images, is_training=True, keep_prob=0.5):
        with arg_scope(net.arg_scope(**scope_args)):
            return net(images, num_classes, is_training=is_training, keep_prob=keep_prob, **options)

    network_fn.default_image_size = net.default_image_size
    return network_fn
