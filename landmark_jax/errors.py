"""The library's user-facing errors: a mistake in what the user gave, not a bug.

Each message names the problem and, where it helps, what to do. The command line prints such
an error as one line and exits with status 2 (`landmark_jax.cli`); everything else is a bug
and keeps its traceback. The classes also derive from the built-in exception a Python caller
would expect (`ValueError`, `FileNotFoundError`), so `except ValueError` keeps working.
"""


class UserError(Exception):
  """Base class: bad input, configuration or files; the message says what to change."""


class ConfigError(UserError, ValueError):
  """An unknown config key, a value of the wrong type or out of range, an unknown config."""


class DataError(UserError, ValueError):
  """No data where some is needed, a malformed CSV, a split the dataset does not have."""


class MissingFileError(UserError, FileNotFoundError):
  """A file or folder the user named (a checkpoint, an index, a CSV) does not exist."""


class UsageError(UserError, ValueError):
  """Arguments that do not fit together (given one without the other, or none of several)."""


class TrainingStopped(Exception):
  """Training stopped on a signal (SIGTERM: a preemption notice; SIGINT: Ctrl-C) after
  writing a checkpoint at the step it reached; running the same command again resumes there.
  Not a mistake: the command line prints it as one line and exits with 128 + the signal's
  number, as a shell reports a process the signal ended, so a scheduler sees an unfinished
  job."""

  def __init__(self, message: str, *, step: int, signal_number: int):
    super().__init__(message)
    self.step, self.signal_number = step, signal_number

  @property
  def exit_status(self) -> int:
    return 128 + self.signal_number
