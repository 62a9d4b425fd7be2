"""`python -m cnn_tf.X ARGS` for the tests without importing TensorFlow each time.

Most of a short CLI run is TensorFlow's import (about 4 s of a core); `make test` starts hundreds of
them. The server (this file, run as a script) imports TensorFlow and every cnn_tf CLI module once,
single-threaded and before any session exists, then forks one child per request: the child points
stdin at /dev/null and stdout/stderr at the caller's files, takes the caller's environment and
working directory, and runs the CLI module as `__main__` through runpy, as `python -m` does, exiting
through the interpreter's own shutdown. Its exit status goes back to the caller.

What a fork cannot show is the import itself (the C++ start-up lines TensorFlow prints, anything
an environment variable changes at import): conftest's `run_cli(..., fresh=True)`, a caller's own
environment and CNN_TF_TEST_FORK=0 start a real process instead; tests of the start-up path use them.
The caller's side is conftest's ForkServer. A run ends when its child does: unlike subprocess.run, it
does not wait for processes the child left behind holding its output (the cluster launcher's tests,
whose CLI starts processes, start it fresh).

Protocol, one JSON object a line: the caller sends {"id", "module", "args", "env", "cwd", "stdout",
"stderr"}; the server answers {"id", "pid"} when the child has started and {"id", "code"} (negative:
the signal that ended it) when it has been reaped. The server exits, killing children it started,
when its stdin closes.
"""
import json
import os
import select
import signal
import sys
import threading

CLI_MODULES = ["cnn_tf.train", "cnn_tf.evaluate", "cnn_tf.export", "cnn_tf.predict", "cnn_tf.cluster",
               "cnn_tf.data.convert", "cnn_tf.data.fetch"]


def _write(message):
    os.write(1, (json.dumps(message) + "\n").encode())


def _serve():
    """Runs until a request forks a child: returns that request in the child; exits in the server."""
    import importlib

    for name in CLI_MODULES:
        importlib.import_module(name)
    assert threading.active_count() == 1, "the server must not fork with threads running"
    children, pending = {}, b""
    _write({"ready": os.getpid()})
    while True:
        readable, _, _ = select.select([0], [], [], 0.02 if children else None)
        if readable:
            data = os.read(0, 1 << 16)
            if not data:  # the caller has gone: so do the children it started
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
                for pid in children:
                    os.waitpid(pid, 0)
                os._exit(0)
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    return request
                children[pid] = request["id"]
                _write({"id": request["id"], "pid": pid})
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            _write({"id": children.pop(pid), "code": os.waitstatus_to_exitcode(status)})


def _become(request):
    """In the child: the process `python -m MODULE ARGS` would be, from its first line of MODULE on."""
    import runpy

    for fd, path, mode in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY),
                           (2, request["stderr"], os.O_WRONLY)):
        opened = os.open(path, mode)
        os.dup2(opened, fd)
        os.close(opened)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.path[0] = request["cwd"]  # as -m puts the working directory first
    sys.argv = [request["module"], *request["args"]]
    sys.modules.pop(request["module"], None)  # imported by the server; -m would run it fresh as __main__
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _become(_serve())
