"""cnn_tf's one logger, `logging.getLogger("cnn_tf")`: progress, notes and warnings go to stderr,
never stdout, which carries a command's result (a table, JSON, CSV, metrics).

    log.info("decoding 1,200 images ...")    ->  decoding 1,200 images ...
    log.note("... had no run.json ...")       ->  note: ... had no run.json ...
    log.warning("--device=gpu: ...")          ->  warning: --device=gpu: ...
    log.error("a.png: not an image")          ->  error: a.png: not an image

A program using cnn_tf as a library quiets or redirects it as any library's logger."""
import logging
import sys

logger = logging.getLogger("cnn_tf")
_PREFIX = {logging.WARNING: "warning: ", logging.ERROR: "error: "}


class _Stderr(logging.Handler):
    """Writes to the sys.stderr of the moment (a test's capture, a redirect), flushed at once."""

    def emit(self, record):
        try:
            sys.stderr.write(_PREFIX.get(record.levelno, "") + record.getMessage() + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - as logging.Handler does: a closed stderr must not end the run
            self.handleError(record)


if not logger.handlers:
    logger.addHandler(_Stderr())
    logger.setLevel(logging.INFO)
    logger.propagate = False  # absl's handler on the root logger would reformat every line


def info(message):
    logger.info(message)


def note(message):
    logger.info(f"note: {message}")


def warning(message):
    logger.warning(message)


def error(message):
    logger.error(message)
