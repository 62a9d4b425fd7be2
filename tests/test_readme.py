"""The README is the user's manual: every shell command of its Quick start, Training and Evaluation
sections runs as written in a new shell at the repository root (with its placeholders replaced by
a small run's values, and the training commands pointed at small generated data), and exits 0."""
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from cnn_tf import checkpoints
from conftest import ROOT, cli_env, small_run_flags

SECTIONS = ("Quick start", "Training", "Evaluation")


def readme_commands():
    """The lines of the ```sh blocks of SECTIONS (subsections included), comments cut."""
    text = open(os.path.join(ROOT, "README.md")).read()
    commands = []
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        if section.split("\n", 1)[0].strip() not in SECTIONS:
            continue
        for block in re.findall(r"```sh\n(.*?)```", section, re.S):
            for line in block.splitlines():
                line = re.sub(r"\s+#.*$", "", line).strip()
                if line and not line.startswith("#"):
                    commands.append(line)
    return commands


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def concrete(command, train_dir, small_flags):
    """The command with a small run's values: the train dir for DIR and runs/lenet_fashion_mnist (a
    train dir of its own, beside it, for another runs/<run>), the latest checkpoint's step for N, the
    first choice of an optional [--flag=a|b], no [--flag=value ...]."""
    command = command.replace("runs/lenet_fashion_mnist", train_dir)
    command = re.sub(r"\bruns/(\w+)", rf"{train_dir}_\1", command)
    if "--train_dir=" in command:  # its own train dir, not the small run's
        small_flags = [flag for flag in small_flags if not flag.startswith("--train_dir=")]
    command = re.sub(r"\bDIR\b", train_dir, command)
    latest = checkpoints.latest(os.path.join(train_dir, "checkpoints"))
    if latest:
        command = command.replace("model.ckpt-N", os.path.basename(latest))
    command = re.sub(r"\s*\[--flag=value \.\.\.\]", "", command)
    command = re.sub(r"\[(--\w+=)([^]|]+)(\|[^]]*)?\]", r"\1\2", command)
    small = " ".join(small_flags)
    if command.startswith("make train"):  # the make variable FLAGS: the small run's, then the README's
        if 'FLAGS="' in command:
            command = command.replace('FLAGS="', f'FLAGS="{small} ')
        else:
            command += f' FLAGS="{small}"'
    elif "-m cnn_tf.train" in command and "--help" not in command:
        command += " " + small
    return command


def run_tensorboard(command):
    """TensorBoard serves until stopped: it must answer on its port; then it is stopped."""
    port = free_port()
    process = subprocess.Popen(f"{command} PORT={port}", shell=True, cwd=ROOT, env=cli_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as response:
                    assert response.status == 200
                    return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"{command}: TensorBoard did not answer on port {port} in 120 s")
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the make and the tensorboard it started, by our PID
        output = process.communicate(timeout=30)[0]
        assert "cuInit" not in output and "I0000" not in output and "Traceback" not in output, output
        assert f"http://127.0.0.1:{port}/" in output  # make tensorboard says where to look


@pytest.mark.slow
def test_every_readme_command_runs_as_written(data_dir, tmp_path):
    commands = readme_commands()
    assert "make train" in commands and any("cnn_tf.evaluate" in c for c in commands), commands
    train_dir = str(tmp_path / "run")
    small = small_run_flags(data_dir, train_dir, "--num_epochs=1", "--noprogress")
    ran = []
    for command in commands:
        if command == "make test":
            continue  # this test runs inside `make test`
        command = concrete(command, train_dir, small)
        if command.startswith("make tensorboard"):
            run_tensorboard(command)
        else:
            result = subprocess.run(["bash", "-c", command], cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                                    timeout=600)
            assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
            assert "Traceback" not in result.stderr, (command, result.stderr)
        ran.append(command)
    assert len(ran) >= 10, ran
    assert checkpoints.latest(os.path.join(train_dir, "checkpoints")).endswith("model.ckpt-160")  # 10 epochs


def test_the_readme_lists_every_exit_code():
    from cnn_tf import exit_codes

    text = open(os.path.join(ROOT, "README.md")).read()
    table = re.search(r"### Exit codes\n(.*?)\n\n(.*?)\n\n", text, re.S).group(2)
    listed = {row.split("|")[1].strip() for row in table.splitlines()[2:]}
    codes = {str(v) for k, v in vars(exit_codes).items() if k.isupper() and k not in ("SIGNALLED", "INTERRUPTED")}
    assert listed == codes | {f"{exit_codes.SIGNALLED} + N"}, (listed, codes)
    assert f"{exit_codes.INTERRUPTED} Ctrl-C" in table
