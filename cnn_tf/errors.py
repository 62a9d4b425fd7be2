"""The exception types for mistakes a user can fix (cnn_tf.cli reports them as one line)."""


class UserError(Exception):
    """Bad input: the message names the file, flag or value and says what to do."""

    exit_code = 2


class TrainingDiverged(UserError):
    """The loss or the weights became NaN or infinite (exit 3)."""

    exit_code = 3
