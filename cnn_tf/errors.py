"""The one exception type for mistakes a user can fix, and how the CLIs report it."""
import sys

from absl import app, logging


class UserError(Exception):
    """Bad input: the message names the file, flag or value and says what to do."""


def run(main):
    """absl's app.run, but a UserError is one line on stderr and exit 2, not a traceback.

    `--verbosity=1` (debug) shows the traceback, for bug reports.
    """

    def guarded(argv):
        try:
            return main(argv)
        except UserError as e:
            if logging.get_verbosity() >= logging.DEBUG:
                raise
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    app.run(guarded)
