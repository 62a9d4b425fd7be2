"""arg_scope / add_arg_scope keep TF-Slim's semantics."""
import pytest

from cnn_tf.nets.scopes import add_arg_scope, arg_scope, current_arg_scope


@add_arg_scope
def op_a(x, a=1, b=2, c=3):
    return dict(x=x, a=a, b=b, c=c)


@add_arg_scope
def op_b(x, a=1):
    return dict(x=x, a=a)


def plain(x, a=1):
    return x


def test_defaults_apply_to_listed_ops_only():
    with arg_scope([op_a], a=10):
        assert op_a(0)["a"] == 10
        assert op_b(0)["a"] == 1
    assert op_a(0)["a"] == 1  # the scope ends with the block


def test_explicit_arguments_win_keyword_or_positional():
    with arg_scope([op_a], a=10, b=20):
        assert op_a(0, a=5) == dict(x=0, a=5, b=20, c=3)
        assert op_a(0, 7) == dict(x=0, a=7, b=20, c=3)


def test_nested_scopes_merge_and_inner_overrides():
    with arg_scope([op_a, op_b], a=10):
        with arg_scope([op_a], b=20):
            assert op_a(0) == dict(x=0, a=10, b=20, c=3)
            assert op_b(0) == dict(x=0, a=10)
            with arg_scope([op_a], a=30):
                assert op_a(0)["a"] == 30
        assert op_a(0) == dict(x=0, a=10, b=2, c=3)


def test_saved_scope_can_be_reentered():
    with arg_scope([op_a], c=33) as saved:
        pass
    assert op_a(0)["c"] == 3
    with arg_scope(saved):
        assert op_a(0)["c"] == 33
    with arg_scope([op_b], a=4):
        with arg_scope(saved):  # re-entering replaces the scope in force, as in slim
            assert op_b(0)["a"] == 1
    assert current_arg_scope() == {}


def test_undecorated_op_and_unknown_argument_are_errors():
    with pytest.raises(ValueError, match="not decorated"):
        with arg_scope([plain], a=1):
            pass
    with pytest.raises(TypeError, match="op_b argument.* it does not take: zz"):  # as slim's suite expects
        with arg_scope([op_b], zz=1):
            pass
    assert current_arg_scope() == {}


def test_two_layers_one_factory_made_keep_their_own_defaults():
    # Same module and qualified name (make.<locals>.layer): slim keys by the function, so must we.
    def make():
        @add_arg_scope
        def layer(x, k=1):
            return k
        return layer

    first, second = make(), make()
    with arg_scope([first], k=10):
        assert first(0) == 10 and second(0) == 1
