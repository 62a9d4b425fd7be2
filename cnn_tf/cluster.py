"""A cluster on this machine, for trying the distributed mode and for the tests:

    python -m cnn_tf.cluster --num_ps=1 --num_workers=2 -- --flagfile=configs/X.cfg [--sync_replicas]

Starts every process of a ps/worker cluster (`python -m cnn_tf.train` with the flags after `--` and
each one's --job_name, --task_index, --ps_hosts, --worker_hosts) on 127.0.0.1 at free ports, prints
each one's output prefixed with its role, and exits with the chief's exit code. Ctrl-C (SIGINT) or
SIGTERM stops the workers gracefully (the chief saves a checkpoint), then the ps tasks; a process that
fails stops all the others the same way. On several machines, run the same train command on each
with its own --job_name and --task_index (README, "Several machines").
"""
import dataclasses
import signal
import socket
import subprocess
import sys
import threading
import time

from absl import flags

from cnn_tf import cli, exit_codes, options
from cnn_tf.errors import UserError
from cnn_tf.options import CLUSTER, Options, option, positive

CLUSTER_FLAGS = ("job_name", "task_index", "ps_hosts", "worker_hosts")


@dataclasses.dataclass(frozen=True)
class LauncherOptions(Options):
    num_ps: int = option(1, "Parameter servers to start.", CLUSTER, check=positive, saved=False)
    num_workers: int = option(2, "Workers to start (worker 0 is the chief).", CLUSTER, check=positive, saved=False)
    grace: float = option(120.0, "Seconds the others may take to finish after the chief has exited, or to stop "
                          "after one failed, before they are killed.", CLUSTER, check=positive, saved=False)


def free_ports(count):
    """Ports the kernel gives for 127.0.0.1:0 (free when asked; the servers bind them soon after)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Process:
    def __init__(self, role, command, lock):
        self.role = role
        # Its own session: a terminal's Ctrl-C reaches the launcher, which stops each in order.
        self.popen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      bufsize=1, start_new_session=True)
        self.reader = threading.Thread(target=self._relay, args=(lock,), daemon=True)
        self.reader.start()

    def _relay(self, lock):
        for line in self.popen.stdout:
            with lock:
                sys.stdout.write(f"[{self.role}] {line}")
                sys.stdout.flush()

    def signal(self, signum):
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    @property
    def code(self):
        return self.popen.poll()


class Launcher:
    def __init__(self, opts, train_flags):
        given = [f for f in train_flags if f.lstrip("-").split("=")[0] in CLUSTER_FLAGS]
        if given:
            raise UserError(f"{given[0]}: the launcher gives each process its cluster flags; leave them out")
        self.opts, self.lock = opts, threading.Lock()
        # A flag, not an exception: a KeyboardInterrupt could land inside Popen.poll or a print. Both
        # signals are set explicitly, since a parent that ignores SIGINT would leave it ignored here.
        self.interrupted = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.interrupted.set())
        ports = free_ports(opts.num_ps + opts.num_workers)
        hosts = [f"127.0.0.1:{p}" for p in ports]
        ps, workers = hosts[:opts.num_ps], hosts[opts.num_ps:]
        common = [sys.executable, "-m", "cnn_tf.train", *train_flags, f"--ps_hosts={','.join(ps)}",
                  f"--worker_hosts={','.join(workers)}"]
        self.ps = [self._start(f"ps{i}", common + ["--job_name=ps", f"--task_index={i}"], ps[i])
                   for i in range(opts.num_ps)]
        self.workers = [self._start(f"worker{i}", common + ["--job_name=worker", f"--task_index={i}"], workers[i])
                        for i in range(opts.num_workers)]
        self.stopping = False

    def _start(self, role, command, address):
        process = Process(role, command, self.lock)
        self.say(f"{role} at {address}, pid {process.popen.pid}")
        return process

    def say(self, message):
        with self.lock:
            print(f"[cluster] {message}", flush=True)

    def stop(self, why):
        """Workers first, gracefully (SIGTERM: the chief saves a checkpoint), then the ps tasks."""
        if not self.stopping:
            self.stopping = True
            self.say(f"{why}: stopping the cluster")
            for w in self.workers:
                w.signal(signal.SIGTERM)
            self._wait(self.workers, self.opts.grace)
            for p in self.ps:
                p.signal(signal.SIGTERM)
            self._wait(self.ps, 10)

    def _wait(self, processes, seconds):
        deadline = time.monotonic() + seconds
        while any(p.code is None for p in processes) and time.monotonic() < deadline:
            time.sleep(0.1)
        for p in processes:
            if p.code is None:
                self.say(f"{p.role} did not exit within {seconds:g} s; killing it")
                p.signal(signal.SIGKILL)
                p.popen.wait(timeout=30)

    def run(self):
        chief, chief_done_at = self.workers[0], None
        everyone = self.workers + self.ps
        while any(p.code is None for p in everyone):
            if self.interrupted.is_set():
                self.stop("interrupted")
            failed = next((p for p in everyone if p.code not in (None, 0)), None)
            if failed is not None and not self.stopping:
                self.stop(f"{failed.role} exited with {failed.code}")
            if chief.code == 0 and chief_done_at is None:
                chief_done_at = time.monotonic()
            if chief_done_at is not None and time.monotonic() - chief_done_at > self.opts.grace:
                self.stop(f"the chief finished {self.opts.grace:g} s ago")
            time.sleep(0.1)
        for p in everyone:
            p.reader.join(timeout=5)
        self.say("exit codes: " + ", ".join(f"{p.role} {p.code}" for p in everyone))
        return chief.code if chief.code >= 0 else exit_codes.of_signal(-chief.code)  # killed by signal N


def main(argv):
    opts = options.from_flags(LauncherOptions, flags.FLAGS, dataclasses.fields(LauncherOptions))
    launcher = Launcher(opts, argv[1:])
    sys.exit(launcher.run())


def run():
    cli.run(main, "python -m cnn_tf.cluster [--num_ps=1] [--num_workers=2] -- <python -m cnn_tf.train flags>",
            dataclasses.fields(LauncherOptions))


if __name__ == "__main__":
    run()
