"""Every exit code of cnn_tf's CLIs, in one table (the README's "Exit codes" lists the same)."""
import signal

OK = 0  # done; in a cluster, also a worker or ps the chief ended
USER_ERROR = 2  # bad input: one `error:` line (errors.UserError); predict, when a file could not be read
DIVERGED = 3  # the loss or the weights went NaN or infinite (errors.TrainingDiverged)
RUN_STOPPED = 4  # a cluster run stopped before its end: a lost worker, or (on the others) the chief stopping
SIGNALLED = 128  # stopped by signal N: 128 + N, as a shell says (130 SIGINT, 143 SIGTERM)


def of_signal(signum):
    return SIGNALLED + int(signum)


INTERRUPTED = of_signal(signal.SIGINT)
