"""`arg_scope` and `add_arg_scope`: per-op default arguments, with TF-Slim's semantics.

    with arg_scope([conv2d, max_pool2d], padding="SAME"):
        with arg_scope([conv2d], activation_fn=None):   # nested scopes add to the outer ones
            conv2d(x, 32, 3, padding="VALID")           # an explicit argument always wins

Unlike slim, a default naming an argument the op does not take is an error at the `arg_scope`,
not a surprise later.
"""
import contextlib
import functools
import inspect
import threading

_state = threading.local()


def _stack():
    if not hasattr(_state, "stack"):
        _state.stack = [{}]
    return _state.stack


def current_arg_scope():
    """The defaults in force: {op key: {arg: value}}; can be re-entered with `arg_scope(scope)`."""
    return _stack()[-1]


def _key(op):
    key = getattr(op, "_arg_scope_key", None)
    if key is None:
        raise ValueError(f"{getattr(op, '__name__', op)} is not decorated with @add_arg_scope")
    return key


def add_arg_scope(func):
    """Lets `arg_scope` supply defaults to `func`'s keyword arguments."""
    signature = inspect.signature(func)
    positional = [p.name for p in signature.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        defaults = current_arg_scope().get(wrapper._arg_scope_key, {})
        given = set(positional[: len(args)]) | set(kwargs)
        merged = {k: v for k, v in defaults.items() if k not in given}
        merged.update(kwargs)
        return func(*args, **merged)

    wrapper._arg_scope_key = f"{func.__module__}.{func.__qualname__}"
    wrapper._arg_scope_params = frozenset(signature.parameters)
    return wrapper


@contextlib.contextmanager
def arg_scope(ops_or_scope, **kwargs):
    """Sets `kwargs` as defaults for every op in `ops_or_scope`, or re-enters a saved scope dict."""
    if isinstance(ops_or_scope, dict):
        if kwargs:
            raise ValueError("re-entering a saved arg_scope takes no keyword arguments")
        scope = ops_or_scope
    else:
        scope = {key: dict(args) for key, args in current_arg_scope().items()}
        for op in ops_or_scope:
            unknown = set(kwargs) - op._arg_scope_params if hasattr(op, "_arg_scope_params") else set()
            if unknown:
                raise ValueError(f"arg_scope gives {op.__name__} argument(s) it does not take: "
                                 f"{', '.join(sorted(unknown))}")
            scope.setdefault(_key(op), {}).update(kwargs)
    _stack().append(scope)
    try:
        yield scope
    finally:
        _stack().pop()
