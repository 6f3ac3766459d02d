"""Reading a user's input files: regular files only, within a size limit, decoded with the line
of a bad byte.

A FIFO would block the loader until some writer appears and a device such as /dev/zero never
ends, so anything that is not a regular file is refused by name. Files larger than
`max_file_size()` are refused unless asked: a loader holds the text and its parsed rows (Python
strings and lists) in memory, about 25x the file's size. The limit is 1 GiB, or
`$GNNREC_JAX_MAX_FILE_SIZE`, or `--max-file-size` on any command that loads data
(`file_size_limit`); "none" lifts it.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import stat
from pathlib import Path

import numpy as np

from gnnrec_jax.errors import ConfigError, DataError, where

# Input files larger than this are refused unless asked: loaders keep the whole text plus its parsed
# rows (Python strings and lists) in memory, about 25x the file's size (measured: a 44 MiB CSV
# peaks at 1.07 GB, a 10 MiB LightGCN file at 0.28 GB), so 1 GiB already means ~25 GB of RAM;
# the largest benchmark file (Gowalla's train.txt) is 4.5 MiB.
DEFAULT_MAX_FILE_SIZE = 1 << 30
MAX_FILE_SIZE_ENV = "GNNREC_JAX_MAX_FILE_SIZE"
_UNSET = object()
_size_limit: contextvars.ContextVar = contextvars.ContextVar("gnnrec_jax_max_file_size",
                                                            default=_UNSET)


def parse_size(text: str, source: str = "--max-file-size") -> int | None:
  """`"512M"` -> 536870912 (K, M, G, T: powers of 1024); "none", "unlimited" or "0" -> None."""
  t = str(text).strip().upper().removesuffix("B").removesuffix("I")
  if t in ("NONE", "UNLIMITED", "0", "NO"):
    return None
  scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
  number = t[:-1] if t[-1:] in "KMGT" and t else t
  try:
    value = float(number)
  except ValueError:
    value = -1.0
  if not np.isfinite(value) or value <= 0:
    raise ConfigError(f"{source}: {text!r} is not a size (e.g. 2G, 500M, 100000, or none)")
  if value * scale < 1:
    # int(0.5) would be a 0-byte limit that refuses every file, while "0" means no limit.
    raise ConfigError(f"{source}: {text!r} is under one byte (0 or none: no limit)")
  return int(value * scale)


def _human(size: int) -> str:
  for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
    if size >= scale:
      return f"{size / scale:.3g} {unit}"
  return f"{size} bytes"


def max_file_size() -> int | None:
  """The size limit on input files in bytes (None: no limit).

  `file_size_limit(...)` when inside one, else `$GNNREC_JAX_MAX_FILE_SIZE`, else 1 GiB.
  """
  limit = _size_limit.get()
  if limit is not _UNSET:
    return limit
  env = os.environ.get(MAX_FILE_SIZE_ENV)
  if env:
    return parse_size(env, f"${MAX_FILE_SIZE_ENV}")
  return DEFAULT_MAX_FILE_SIZE


@contextlib.contextmanager
def file_size_limit(limit: int | None):
  """Sets the input-file size limit (bytes, None for none) for the loads inside the block."""
  token = _size_limit.set(limit)
  try:
    yield
  finally:
    _size_limit.reset(token)


_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def read_bytes(path, what: str = "file") -> bytes:
  """The bytes of a regular file of at most `max_file_size()` bytes.

  Opened without blocking and checked on the open descriptor (no race with a rename): a FIFO
  would block until a writer appears, and a device such as /dev/zero never ends.

  Raises:
    DataError: missing, a directory, not a regular file, or beyond the size limit.
  """
  path = Path(path)
  try:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
  except (FileNotFoundError, NotADirectoryError):
    raise DataError(f"{path}: {what} not found") from None
  except IsADirectoryError:
    raise DataError(f"{path}: expected a {what}, found a directory") from None
  with open(fd, "rb", closefd=True) as f:
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
      raise DataError(f"{path}: expected a {what}, found a directory")
    if not stat.S_ISREG(st.st_mode):
      kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
      raise DataError(f"{path}: {kind}, not a regular file; expected a {what} (pipes and "
                      "devices are refused: reading one can block or never end)")
    limit = max_file_size()
    size = st.st_size
    if limit is None:
      return f.read()
    if size <= limit:
      data = f.read(limit + 1)  # a file growing while it is read stops at the limit too
      size = max(size, len(data))
      if len(data) <= limit:
        return data
    raise DataError(f"{path}: {_human(size)} is beyond the {_human(limit)} limit on input files "
                    f"(a loader holds about 25x a file's size in memory); raise it with "
                    f"--max-file-size SIZE or {MAX_FILE_SIZE_ENV}=SIZE (e.g. 8G, or none)")


def require_dir(path, what: str = "data folder") -> Path:
  """`path` as a `Path`; a `DataError` saying so when it is not an existing folder."""
  path = Path(path)
  if not path.exists():
    raise DataError(f"{path}: {what} not found")
  if not path.is_dir():
    raise DataError(f"{path}: expected a {what} (a directory), found a file")
  return path


def read_text(path, *, encoding: str = "utf-8", what: str = "file") -> str:
  """Reads a whole text file.

  Raises:
    DataError: the file is missing, is a folder, is not a regular file, is beyond the size limit
      (`read_bytes`), is empty (only whitespace), or is not valid `encoding` (naming the line of
      the first bad byte).
  """
  path = Path(path)
  data = read_bytes(path, what)
  try:
    text = data.decode(encoding)
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b"\n") + 1
    raise DataError(f"{where(path, line)}: byte {data[e.start]:#04x} is not valid {encoding} "
                    f"(expected a {encoding} text file)") from None
  if not text.strip():
    raise DataError(f"{path}: {what} is empty")
  return text.lstrip("\ufeff")  # a UTF-8 byte-order mark is not part of the first field
