"""The one exception type for mistakes a user can fix, and how the CLIs report it."""
import sys

from absl import app, flags, logging


class UserError(Exception):
    """Bad input: the message names the file, flag or value and says what to do."""

    exit_code = 2


class TrainingDiverged(UserError):
    """The loss or the weights became NaN or infinite (exit 3)."""

    exit_code = 3


def run(main):
    """absl's app.run, but a UserError is one line on stderr and its exit code, not a traceback.

    `--verbosity=1` (debug) shows the traceback, for bug reports.
    """

    def parse(argv):
        # absl's own report of a bad flag is two lines headed FATAL; ours is one, like the others.
        try:
            return flags.FLAGS(argv)
        except flags.UnrecognizedFlagError as e:
            files = [a.split("=", 1)[1] for a in argv if a.startswith("--flagfile=")]
            where = f" (on the command line or in {', '.join(files)})" if files else ""
            message = f"unknown flag --{e.flagname}{where}; --helpfull lists the flags"
        except flags.Error as e:
            message = str(e).removeprefix("ERROR:: ")
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)

    def guarded(argv):
        try:
            return main(argv)
        except UserError as e:
            if logging.get_verbosity() >= logging.DEBUG:
                raise
            print(f"error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)

    app.run(guarded, flags_parser=parse)
