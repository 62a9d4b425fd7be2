"""Several processes on TensorFlow's runtime (cnn_tf.distributed, cnn_tf.cluster): 1 ps + 2 workers on
127.0.0.1 at ephemeral ports, asynchronous and synchronous, and the four faults (a worker, the chief,
the ps killed and restarted; a worker gone for good). Every process is started here, waited for with a
timeout and killed by its own PID. And a train dir on another filesystem than the local one (TensorFlow's
ram://, through tf.io.gfile), as a cluster's shared train dir may be."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from cnn_tf import checkpoints
from cnn_tf.cluster import free_ports
from conftest import ROOT, cli_env, printed_accuracy, run_cli, scalar_values, small_run_flags

pytestmark = pytest.mark.slow
TIMEOUT = 240  # seconds any one process of a test may take


class Cluster:
    """ps and worker processes of `python -m cnn_tf.train`, output to files in `tmp`."""

    def __init__(self, tmp, flags, num_workers=2):
        ports = free_ports(1 + num_workers)
        self.ps_hosts, self.worker_hosts = [f"127.0.0.1:{ports[0]}"], [f"127.0.0.1:{p}" for p in ports[1:]]
        self.tmp, self.flags, self.started = tmp, flags, []
        self.logs = {}

    def command(self, job, index):
        return [sys.executable, "-m", "cnn_tf.train", *self.flags, f"--job_name={job}", f"--task_index={index}",
                f"--ps_hosts={','.join(self.ps_hosts)}", f"--worker_hosts={','.join(self.worker_hosts)}"]

    def start(self, job, index):
        name = f"{job}{index}"
        log = self.tmp / f"{name}.{sum(1 for p in self.started if p.name == name)}.log"
        process = subprocess.Popen(self.command(job, index), stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                   cwd=ROOT, env=cli_env(), start_new_session=True)
        process.name, process.log = name, log
        self.started.append(process)
        return process

    def start_all(self):
        return [self.start("ps", 0)] + [self.start("worker", i) for i in range(len(self.worker_hosts))]

    def wait_for(self, process, pattern, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, process.log.read_text()):
                return
            assert process.poll() is None, f"{process.name} exited {process.returncode}:\n{process.log.read_text()}"
            time.sleep(0.2)
        raise AssertionError(f"{process.name}: no {pattern!r} within {timeout} s:\n{process.log.read_text()}")

    def finish(self, process, timeout=TIMEOUT):
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{process.name} still running after {timeout} s:\n{process.log.read_text()}")
        return code, process.log.read_text()

    def kill(self, process):
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def kill_and_restart(self, victim, job, index, watched, pattern):
        """SIGKILLs `victim` once `watched` has printed `pattern`; returns the same task started again."""
        self.wait_for(watched, pattern)
        self.kill(victim)
        time.sleep(1)
        return self.start(job, index)

    def finish_all(self, *processes):
        """Each process exits 0 within the timeout; returns their output."""
        logs = []
        for process in processes:
            try:
                code, log = self.finish(process)
                assert code == 0, log
            except AssertionError as e:
                others = "".join(f"\n--- {p.name} ({p.log.name}):\n{p.log.read_text()}" for p in self.started
                                 if p is not process)
                raise AssertionError(f"{e}{others}") from None
            logs.append(log)
        return logs

    def cleanup(self):
        for process in self.started:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


@pytest.fixture
def cluster_of(tmp_path):
    made = []

    def make(flags):
        made.append(Cluster(tmp_path, flags))
        return made[-1]

    yield make
    for cluster in made:
        cluster.cleanup()


def last_step(train_dir):
    return checkpoints.step_of(checkpoints.latest(os.path.join(train_dir, "checkpoints")))


def assert_evaluates_as_printed(train_dir, out):
    evaluated = run_cli("evaluate", f"--checkpoint_dir={train_dir}")
    assert evaluated.returncode == 0, evaluated.stderr
    assert printed_accuracy(evaluated.stdout) == printed_accuracy(out)


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
def test_the_launcher_trains_on_one_ps_and_two_workers(data_dir, tmp_path, sync):
    train_dir = str(tmp_path / "run")
    # Synchronous: each worker on two towers of its own (two CPU devices of its server), streaming its
    # share of every epoch from TFRecord shards.
    # A summary at every step the chief takes: asynchronously, under load, the other worker may take
    # nearly all the global steps, and the chief fewer than --summary_every_n_steps of them.
    flags = small_run_flags(data_dir, train_dir, "--worker_timeout=60", "--summary_every_n_steps=1",
                            *(["--sync_replicas", "--num_towers=2"] if sync else []))
    if sync:
        from cnn_tf import config
        from cnn_tf.data.convert import convert

        convert(config.RunConfig(dataset="mnist", data_dir=str(data_dir), validation_size=200),
                str(tmp_path / "records"), num_shards=3)
        flags += ["--dataset=tfrecord", f"--data_dir={tmp_path / 'records'}"]
    watcher = subprocess.Popen([sys.executable, "-m", "cnn_tf.evaluate", f"--checkpoint_dir={train_dir}", "--watch",
                                "--watch_timeout=200", "--watch_interval=0.5", "--split=validation"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=cli_env(),
                               start_new_session=True)
    try:
        result = subprocess.run([sys.executable, "-m", "cnn_tf.cluster", "--num_ps=1", "--num_workers=2", "--", *flags],
                                capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=TIMEOUT)
        out, err = watcher.communicate(timeout=TIMEOUT)
    finally:
        if watcher.poll() is None:
            os.kill(watcher.pid, signal.SIGKILL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[cluster] exit codes: worker0 0, worker1 0, ps0 0" in result.stdout, result.stdout
    chief = "\n".join(line[len("[worker0] "):] for line in result.stdout.splitlines() if line.startswith("[worker0] "))
    assert f"{'synchronous' if sync else 'asynchronous'} updates" in chief
    assert ("dataset    tfrecord from" if sync else "dataset    mnist from") in chief
    assert ("devices    /cpu:0, /cpu:1 (2 towers of 32 images)" if sync else "devices    /cpu:0\n") in chief
    # 1,000 training images in batches of 64, two epochs: 16 global steps an epoch when each worker's
    # step counts (async), 8 when a step aggregates both workers' (sync).
    steps = 16 if sync else 32
    assert re.search(r"\[worker1\] worker 1 \(.*\): finished", result.stdout)
    # Asynchronous workers may both be mid-step when the global step reaches the end: one more.
    assert last_step(train_dir) in ((steps,) if sync else (steps, steps + 1))
    assert printed_accuracy(chief) > 0.6
    assert_evaluates_as_printed(train_dir, chief)
    # The schedule (x0.95 every epoch) counts epochs of the cluster's data: 8 global steps synchronously,
    # 16 asynchronously. A summary's step is the global step after its update (one or, async, two later).
    per_epoch = 8 if sync else 16
    logged = scalar_values(os.path.join(train_dir, "summaries", "train"), "learning_rate")
    assert logged and (not sync or any(step > per_epoch + 1 for step, _ in logged))
    for step, rate in logged:
        assert any(rate == pytest.approx(1e-3 * 0.95 ** ((step - k) // per_epoch)) for k in ((1,) if sync else (1, 2))), \
            (step, rate)
    # evaluate --watch beside it saw the checkpoints and stopped when training finished.
    assert watcher.returncode == 0, err
    assert f"training finished at global step {last_step(train_dir)}" in out, out

    # Only the chief wrote into the train dir, and no cluster flag went into flags.cfg.
    chief_pid = int(re.search(r"\[cluster\] worker0 at \S+, pid (\d+)", result.stdout).group(1))
    assert json.load(open(os.path.join(train_dir, "status.json")))["pid"] == chief_pid
    assert set(os.listdir(train_dir)) <= {"checkpoints", "eval", "flags.cfg", "history.csv", "run.json", "status.json",
                                       "summaries"}
    saved = open(os.path.join(train_dir, "flags.cfg")).read()
    assert "--job_name" not in saved and "--ps_hosts" not in saved and "--sync_replicas" not in saved


def test_a_bad_cluster_description_is_one_line(data_dir, tmp_path):
    flags = small_run_flags(data_dir, str(tmp_path / "run"))
    for extra, message in [
        (["--job_name=worker", "--ps_hosts=127.0.0.1:1", "--worker_hosts=localhost"],
         "error: --worker_hosts: 'localhost' is not host:port (e.g. 127.0.0.1:2222)"),
        (["--job_name=worker", "--task_index=2", "--ps_hosts=127.0.0.1:1", "--worker_hosts=127.0.0.1:2,127.0.0.1:3"],
         "error: --task_index=2: the worker job has 2 tasks (0..1)"),
        (["--sync_replicas"], "error: --sync_replicas needs a cluster: --job_name, --task_index, --ps_hosts and "
                              "--worker_hosts (or TF_CONFIG); `python -m cnn_tf.cluster` starts one on this machine"),
    ]:
        result = run_cli("train", *flags, *extra)
        assert result.returncode == 2 and result.stderr.strip() == message, result.stderr
    result = run_cli("train", *flags, env=cli_env(TF_CONFIG="{not json"))
    assert result.returncode == 2 and result.stderr.startswith("error: TF_CONFIG is not a JSON object like")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_killed_worker_restarted_rejoins_a_synchronous_run(data_dir, tmp_path, cluster_of):
    train_dir = str(tmp_path / "run")
    cluster = cluster_of(small_run_flags(data_dir, train_dir, "--num_epochs=4", "--sync_replicas",
                                         "--worker_timeout=60", "--progress=false"))
    ps, chief, worker = cluster.start_all()
    worker = cluster.kill_and_restart(worker, "worker", 1, worker, r"epoch 1/4")
    cluster.finish_all(chief, worker, ps)
    assert last_step(train_dir) == 32


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
def test_a_killed_chief_restarted_resumes_and_the_run_finishes(data_dir, tmp_path, cluster_of, sync):
    # The restarted chief restores its last checkpoint over the variables the ps tasks kept, and the
    # other worker carries on from there.
    train_dir = str(tmp_path / "run")
    # Enough epochs that the other worker cannot finish them alone while the chief restarts.
    epochs = 4 if sync else 20
    cluster = cluster_of(small_run_flags(data_dir, train_dir, f"--num_epochs={epochs}", "--worker_timeout=30",
                                         "--progress=false", *(["--sync_replicas"] if sync else [])))
    ps, chief, worker = cluster.start_all()
    # After the first epoch's checkpoint.
    chief = cluster.kill_and_restart(chief, "worker", 0, chief, rf"epoch 2/{epochs}")
    log, _, _ = cluster.finish_all(chief, worker, ps)
    resumed = re.search(r"resuming from (\S+) at global step (\d+)", log)
    assert resumed and resumed.group(1).startswith(os.path.join(train_dir, "checkpoints")), log
    # Asynchronously the other worker goes on updating while the chief saves: a checkpoint's
    # variables can be a few steps ahead of the step in its name.
    saved_at, restored_at = checkpoints.step_of(resumed.group(1)), int(resumed.group(2))
    assert 0 < saved_at <= restored_at if not sync else 0 < saved_at == restored_at, log
    # 16 global steps an epoch asynchronously; 8 synchronously (a step of both workers).
    assert last_step(train_dir) in ((8 * epochs,) if sync else (16 * epochs, 16 * epochs + 1))
    assert_evaluates_as_printed(train_dir, log)


def test_a_killed_ps_restarted_is_recovered_from_the_last_checkpoint(data_dir, tmp_path, cluster_of):
    train_dir = str(tmp_path / "run")
    cluster = cluster_of(small_run_flags(data_dir, train_dir, "--num_epochs=4", "--sync_replicas",
                                         "--worker_timeout=30", "--progress=false"))
    ps, chief, worker = cluster.start_all()
    ps = cluster.kill_and_restart(ps, "ps", 0, chief, r"epoch 2/4")
    log, _, _ = cluster.finish_all(chief, worker, ps)
    assert "lost the cluster at global step" in log
    assert last_step(train_dir) == 32


def test_a_worker_gone_for_longer_than_the_timeout_stops_a_synchronous_run_naming_it(data_dir, tmp_path, cluster_of):
    train_dir = str(tmp_path / "run")
    cluster = cluster_of(small_run_flags(data_dir, train_dir, "--num_epochs=30", "--sync_replicas",
                                         "--worker_timeout=8", "--progress=false"))
    ps, chief, worker = cluster.start_all()
    cluster.wait_for(worker, r"epoch 1/30")
    cluster.kill(worker)
    code, log = cluster.finish(chief)
    assert code == 4, log
    line = next(line for line in log.splitlines() if line.startswith("stopped by"))
    assert line.startswith(f"stopped by worker 1 ({cluster.worker_hosts[1]}) sending no gradients for 8 s "
                           "(--worker_timeout) at global step"), line
    step = int(re.search(r"at global step (\d+)", line).group(1))
    assert last_step(train_dir) == step and f"saved {train_dir}/checkpoints/model.ckpt-{step}" in line
    code, log = cluster.finish(ps)
    assert code == 0, log


def test_a_train_dir_on_another_tensorflow_filesystem(data_dir):
    import tensorflow as tf

    from cnn_tf import cli, config
    from cnn_tf.evaluate import Evaluator
    from cnn_tf.train import train

    cfg = config.RunConfig(dataset="mnist", data_dir=data_dir, validation_size=200, batch_size=64, num_epochs=1,
                           progress=False, train_dir="ram://cnn_tf_test/run").resolved()
    assert cfg.train_dir == "ram://cnn_tf_test/run"
    metrics = train(cfg).metrics
    latest = checkpoints.latest("ram://cnn_tf_test/run/checkpoints")
    assert latest.endswith("model.ckpt-16")
    assert tf.io.gfile.glob("ram://cnn_tf_test/run/summaries/train/events.out.tfevents.*")
    run_dir, saved = cli.load_run("ram://cnn_tf_test/run")
    assert run_dir.status()["state"] == "finished" and saved.batch_size == 64
    assert Evaluator(run_dir, saved, "test").evaluate(latest)["accuracy"] == pytest.approx(metrics["accuracy"])


def test_a_chief_whose_ps_never_comes_up_stops_in_one_line_within_its_timeout(data_dir, tmp_path):
    ps, chief = free_ports(2)  # nothing listens at the ps's port
    train_dir = tmp_path / "run"
    result = run_cli("train", *small_run_flags(data_dir, str(train_dir)), "--job_name=worker", "--task_index=0",
                     f"--ps_hosts=127.0.0.1:{ps}", f"--worker_hosts=127.0.0.1:{chief}", "--worker_timeout=2",
                     timeout=120)  # a hang fails here (it waited past 110 s with --worker_timeout=5)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: worker 0 (127.0.0.1:{chief}): waited 6 s for the ps tasks; nothing listens at 127.0.0.1:{ps}: is "
        "every process of the cluster running?"], result.stderr
    assert not train_dir.exists()  # the empty train dir it made is gone


def test_tf_config_describes_the_cluster_and_flags_win_over_it():
    from cnn_tf import config
    from cnn_tf.distributed import cluster_from

    tf_config = json.dumps({"cluster": {"chief": ["c:1"], "worker": ["w:1", "w:2"], "ps": ["p:1"]},
                            "task": {"type": "worker", "index": 1}})
    cluster = cluster_from(config.RunConfig(), {"TF_CONFIG": tf_config})
    # The chief job is worker 0; TF_CONFIG's worker 1 is worker 2 here.
    assert (cluster.job_name, cluster.task_index, cluster.worker_hosts, cluster.ps_hosts) == (
        "worker", 2, ("c:1", "w:1", "w:2"), ("p:1",))
    assert not cluster.is_chief and cluster.address == "w:2"
    flags_ = config.RunConfig(task_index=0, ps_hosts=("p:9",))
    cluster = cluster_from(flags_, {"TF_CONFIG": tf_config})
    assert cluster.task_index == 0 and cluster.is_chief and cluster.ps_hosts == ("p:9",)
    assert cluster_from(config.RunConfig(), {}) is None


def test_the_launcher_stops_the_cluster_on_sigint_with_a_checkpoint(data_dir, tmp_path):
    train_dir = str(tmp_path / "run")
    flags = small_run_flags(data_dir, train_dir, "--num_epochs=200", "--progress=false")
    log = tmp_path / "launcher.log"
    # Started with SIGINT ignored, as under nohup or some CI runners: the launcher sets its own handler.
    launcher = subprocess.Popen([sys.executable, "-m", "cnn_tf.cluster", "--", *flags], stdout=open(log, "w"),
                                stderr=subprocess.STDOUT, cwd=ROOT, env=cli_env(), start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + TIMEOUT
        while "[worker0] epoch 2/200" not in log.read_text():
            assert launcher.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        launcher.send_signal(signal.SIGINT)
        code = launcher.wait(timeout=TIMEOUT)
    finally:
        if launcher.poll() is None:
            os.kill(launcher.pid, signal.SIGKILL)
    out = log.read_text()
    assert code == 143, out  # the chief's: stopped by SIGTERM, which the launcher sends the workers
    assert "[cluster] interrupted: stopping the cluster" in out
    stopped = next(line for line in out.splitlines() if line.startswith("[worker0] stopped by SIGTERM"))
    step = int(re.search(r"at global step (\d+)", stopped).group(1))
    assert last_step(train_dir) == step
    pids = [int(p) for p in re.findall(r"pid (\d+)", out)]
    assert len(pids) == 3
    for pid in pids:  # every process of the cluster is gone
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
