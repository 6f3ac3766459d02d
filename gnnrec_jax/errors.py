"""Typed exceptions. The CLI turns every `GnnrecError` into one clear line and exit code 2.

Library code raises these (never a bare `ValueError` for user input) so that callers in notebooks
can catch them by type, and the CLI never shows a traceback for a user's mistake.
"""
from __future__ import annotations


class GnnrecError(Exception):
  """Base class for errors caused by user input (files, ids, configs, checkpoints)."""


class DataError(GnnrecError):
  """A data file or folder is missing, malformed or inconsistent.

  The message names the file and line (or the id) at fault and what was expected.
  """


class ConfigError(GnnrecError):
  """An unknown config key, an invalid value, or an unknown model/dataset name."""


class CheckpointError(GnnrecError):
  """A checkpoint is corrupt, missing, or belongs to another dataset or config."""


class TrainingError(GnnrecError):
  """Training cannot continue (e.g. a NaN or infinite loss); the message names the step."""


def where(path, line: int | None = None) -> str:
  """Formats `path:line` for messages (line numbers are 1-based, as editors show them)."""
  return f"{path}:{line}" if line is not None else f"{path}"
