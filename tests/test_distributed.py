"""cnn_tf.distributed's recovery rules, without processes: what a step's error leads to."""
import types

import pytest
import tensorflow as tf

from cnn_tf import distributed
from cnn_tf.distributed import Cluster, ClusterSession


class FakeSession:
    """A session whose only answer is what cluster/ready reports (the variables not yet initialized)."""

    def __init__(self, uninitialized):
        self.uninitialized = uninitialized

    def run(self, fetches, *args, **kwargs):
        return list(self.uninitialized)

    def close(self):
        pass


def cluster_session(monkeypatch, uninitialized):
    cluster = Cluster(job_name="worker", task_index=1, ps_hosts=("127.0.0.1:1",),
                      worker_hosts=("127.0.0.1:2", "127.0.0.1:3"), worker_timeout=30.0)
    session = ClusterSession(cluster, server=None, config=tf.compat.v1.ConfigProto())
    reconnected = []
    monkeypatch.setattr(session, "create", lambda trainer: reconnected.append(True) or (42, None))
    trainer = types.SimpleNamespace(sess=FakeSession(uninitialized), global_step=7, resumed_from=None,
                                    g=types.SimpleNamespace(cluster=types.SimpleNamespace(ready="cluster/ready")))
    return session, trainer, reconnected


def test_a_programming_error_in_a_cluster_step_surfaces_at_once(monkeypatch):
    session, trainer, reconnected = cluster_session(monkeypatch, uninitialized=[])
    # A bug's errors are not a lost peer's: the loop does not even hand them to recover().
    for error in (tf.errors.InternalError, tf.errors.UnknownError, tf.errors.InvalidArgumentError):
        assert not issubclass(error, session.recoverable)
    # A missing resource while every variable is in place is a bug too: raised, no reconnecting.
    error = tf.errors.NotFoundError(None, None, "Resource localhost/foo does not exist")
    with pytest.raises(tf.errors.NotFoundError):
        session.recover(trainer, error)
    assert not reconnected


@pytest.mark.parametrize("error", [tf.errors.UnavailableError(None, None, "Socket closed"),
                                   tf.errors.AbortedError(None, None, "Session was not created")])
def test_a_lost_peer_is_recovered_by_a_new_session(monkeypatch, error):
    session, trainer, reconnected = cluster_session(monkeypatch, uninitialized=[])
    assert session.recover(trainer, error) == 42 and reconnected


def test_a_restarted_ps_without_its_variables_is_recovered(monkeypatch):
    session, trainer, reconnected = cluster_session(monkeypatch, uninitialized=[b"conv1/weights"])
    error = tf.errors.FailedPreconditionError(None, None, "Attempting to use uninitialized value conv1/weights")
    assert session.recover(trainer, error) == 42 and reconnected
    assert distributed.RECOVERABLE == (tf.errors.UnavailableError, tf.errors.AbortedError,
                                       tf.errors.DeadlineExceededError)
