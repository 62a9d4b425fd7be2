"""`arg_scope` and `add_arg_scope`: per-op default arguments, with TF-Slim's semantics (its own test
suite, ported, is `tests/test_arg_scope_slim.py`).

    with arg_scope([conv2d, max_pool2d], padding="SAME"):
        with arg_scope([conv2d], activation_fn=None):   # nested scopes add to the outer ones
            conv2d(x, 32, 3, padding="VALID")           # an explicit argument always wins

Unlike slim, a default naming an argument the op does not take is a TypeError at the `arg_scope`
(slim's own TypeError came later, at the call); an op that takes **kwargs accepts any.
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


def arg_scope_func_key(op):
    """The key of `op` in a scope dict: the decorated function itself (its str() holds its address), as slim
    keys it, so two layers one factory made (same module and qualified name) keep their own defaults."""
    return getattr(op, "_key_op", None)


def has_arg_scope(func):
    return arg_scope_func_key(func) is not None


def arg_scoped_arguments(func):
    """The names of `func`'s arguments that have defaults: what an arg_scope usually sets."""
    if not has_arg_scope(func):
        raise ValueError(f"{getattr(func, '__name__', func)} is not decorated with @add_arg_scope")
    return func._arg_scope_defaults


def add_arg_scope(func):
    """Lets `arg_scope` supply defaults to `func`'s keyword arguments."""
    signature = inspect.signature(func)
    parameters = signature.parameters.values()
    positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        defaults = current_arg_scope().get(wrapper._key_op, {})
        given = set(positional[: len(args)]) | set(kwargs)
        merged = {k: v for k, v in defaults.items() if k not in given}
        merged.update(kwargs)
        return func(*args, **merged)

    wrapper._key_op = str(func)
    wrapper._arg_scope_defaults = tuple(p.name for p in parameters if p.default is not p.empty
                                        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters)
    wrapper._arg_scope_params = None if takes_any else frozenset(signature.parameters)
    return wrapper


@contextlib.contextmanager
def arg_scope(list_ops_or_scope, **kwargs):
    """Sets `kwargs` as defaults for every op in `list_ops_or_scope` (a list or tuple), or re-enters a
    saved scope dict (which then replaces the scope in force, as in slim)."""
    if isinstance(list_ops_or_scope, dict):
        if kwargs:
            raise ValueError("re-entering a saved arg_scope takes no keyword arguments")
        scope = list_ops_or_scope
    else:
        if not isinstance(list_ops_or_scope, (list, tuple)):
            raise TypeError("arg_scope takes a list or tuple of ops, or a saved scope dict")
        scope = {key: dict(args) for key, args in current_arg_scope().items()}
        for op in list_ops_or_scope:
            if not has_arg_scope(op):
                raise ValueError(f"{getattr(op, '__name__', op)} is not decorated with @add_arg_scope")
            unknown = set(kwargs) - op._arg_scope_params if op._arg_scope_params is not None else set()
            if unknown:
                raise TypeError(f"arg_scope gives {op.__name__} argument(s) it does not take: "
                                f"{', '.join(sorted(unknown))}")
            scope.setdefault(arg_scope_func_key(op), {}).update(kwargs)
    _stack().append(scope)
    try:
        yield scope
    finally:
        _stack().pop()
