"""TensorFlow's gRPC runtime: a task's server, waits on peers bounded in time, a ps's loop."""
import socket
import threading
import time

import tensorflow as tf

from cnn_tf import errors
from cnn_tf.errors import UserError

PS_GRACE = 5.0  # seconds a ps serves on after the last done token


def start_server(cluster, config):
    try:
        return tf.compat.v1.train.Server(cluster.spec(), job_name=cluster.job_name, task_index=cluster.task_index,
                                         config=config, start=True)
    except (tf.errors.OpError, ValueError) as e:
        raise UserError(f"cannot start the server of {cluster.name(cluster.job_name)}: "
                        f"{errors.reason(e)} (is the port in use?)") from e


def _first_line(error):
    """The message of a TensorFlow error without its "Graph execution error" preamble and traceback."""
    lines = [line.strip() for line in (getattr(error, "message", "") or str(error)).splitlines()]
    useful = [line for line in lines if line and not line.startswith(("Graph execution error", "Detected at node",
                                                                      "File ", "Node:", "[["))]
    return useful[-1] if useful else type(error).__name__


def wait_for_listeners(hosts, deadline):
    """Waits until each host:port accepts a TCP connection, until `deadline` (time.monotonic());
    returns the ones that never did."""
    waiting = list(hosts)
    while waiting:
        for host in list(waiting):
            address, _, port = host.rpartition(":")
            try:
                with socket.create_connection((address.strip("[]"), int(port)), timeout=1.0):
                    waiting.remove(host)
            except OSError:
                pass
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    return waiting


def close_quietly(sess, wait=0.0):
    """Closes `sess` in a daemon thread, waiting at most `wait` seconds: closing a session whose ps
    is gone, or one with a run still pending on it, can block for good."""
    closing = threading.Thread(target=sess.close, name="close_session", daemon=True)
    closing.start()
    closing.join(timeout=wait)


def _done_queue(ps_index):
    with tf.compat.v1.device(f"/job:ps/task:{ps_index}"):
        return tf.queue.FIFOQueue(-1, tf.int32, shapes=[], shared_name=f"done_{ps_index}", name=f"done_{ps_index}")


def run_ps(cluster, config):
    """Serves until every worker has enqueued its done token (a ps's server.join() never returns:
    TensorFlow issue 4713), then exits 0. A worker restarted after a kill counts once."""
    server = start_server(cluster, config)
    print(f"{cluster.name('ps')}: serving {cluster.num_workers} workers", flush=True)
    graph = tf.Graph()
    with graph.as_default():
        dequeue = _done_queue(cluster.task_index).dequeue()
    done, failed = set(), []

    def take_tokens():
        # A dequeue without a timeout: one cut short by a deadline can take a token with it.
        try:
            while len(done) < cluster.num_workers:
                done.add(int(sess.run(dequeue)))
        except tf.errors.OpError as e:
            failed.append(e)

    with tf.compat.v1.Session(server.target, graph=graph, config=cluster.session_config(config)) as sess:
        taker = threading.Thread(target=take_tokens, name="done_tokens", daemon=True)
        taker.start()
        while taker.is_alive():
            taker.join(timeout=1.0)  # the main thread stays free for signals
    if failed:
        raise UserError(f"{cluster.name('ps')}: cannot read the workers' done tokens: {_first_line(failed[0])}")
    # A worker closes its session after its token; closing one whose ps is already gone can block.
    time.sleep(PS_GRACE)
    print(f"{cluster.name('ps')}: all {cluster.num_workers} workers done", flush=True)
