"""Validation shared by every loader: files, lines, ids, weights, duplicates.

Every problem in a user's file becomes a `DataError` that names `file:line` (1-based, as editors
show it) or the id at fault, and says what was expected. Problems that a loader repairs (duplicate
pairs, ids unknown to the catalogue) become a `DataWarning` with a count, so a user can see how
much of the file was dropped.
"""
from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from gnnrec_jax.data.types import Interactions, Vocab
from gnnrec_jax.errors import DataError, where


class DataWarning(UserWarning):
  """Input that a loader repaired (and counted): duplicates, unknown ids, dropped pairs."""


def warn(message: str) -> None:
  warnings.warn(message, DataWarning, stacklevel=3)


@contextlib.contextmanager
def one_line_warnings(prog: str):
  """Shows every `DataWarning` raised inside as one line `PROG: warning: ...` on stderr.

  For command-line tools: Python's default format adds the source line of the warning call, which
  says nothing to a user about their file.
  """
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", DataWarning)
    try:
      yield
    finally:
      for w in caught:
        if issubclass(w.category, DataWarning):
          print(f"{prog}: warning: {w.message}", file=sys.stderr)
        else:  # not showwarning(): inside catch_warnings it appends to `caught` (endless loop)
          print(f"{prog}: warning: {w.category.__name__}: {w.message}", file=sys.stderr)


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
    DataError: the file is missing, is a folder, is empty (only whitespace), or is not valid
      `encoding` (naming the line of the first bad byte).
  """
  path = Path(path)
  if not path.exists():
    raise DataError(f"{path}: {what} not found")
  if path.is_dir():
    raise DataError(f"{path}: expected a {what}, found a directory")
  data = path.read_bytes()
  try:
    text = data.decode(encoding)
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b"\n") + 1
    raise DataError(f"{where(path, line)}: byte {data[e.start]:#04x} is not valid {encoding} "
                    f"(expected a {encoding} text file)") from None
  if not text.strip():
    raise DataError(f"{path}: {what} is empty")
  return text.lstrip("\ufeff")  # a UTF-8 byte-order mark is not part of the first field


def split_lines(text: str) -> tuple[list[str], list[int]]:
  """Non-blank lines (without line ends) and their 1-based line numbers."""
  lines, numbers = [], []
  for n, line in enumerate(text.splitlines(), start=1):
    if line.strip():
      lines.append(line.rstrip("\r"))
      numbers.append(n)
  return lines, numbers


def split_fields(lines: Sequence[str], numbers: Sequence[int], path, sep: str | None, *,
                 ncols: int | None = None, min_cols: int | None = None,
                 expected: str = "") -> list[list[str]]:
  """Splits each line on `sep` (None: any whitespace), checking the number of columns.

  Args:
    ncols: exact column count required (or `min_cols`: at least that many).
    expected: a description of the line format for messages (e.g. "user<TAB>item<TAB>weight").
  """
  rows = [line.split(sep) if sep is not None else line.split() for line in lines]
  for row, line, n in zip(rows, lines, numbers):
    bad = (ncols is not None and len(row) != ncols) or (min_cols is not None and len(row) < min_cols)
    if bad:
      want = ncols if ncols is not None else f"at least {min_cols}"
      fmt = f" ({expected})" if expected else ""
      raise DataError(f"{where(path, n)}: expected {want} columns{fmt}, found {len(row)}: "
                      f"{_show(line)}")
  return rows


def _show(line: str, limit: int = 80) -> str:
  return repr(line if len(line) <= limit else line[:limit] + "...")


def parse_ints(tokens: Sequence[str], numbers: Sequence[int], path, what: str) -> np.ndarray:
  """Non-negative decimal integers; a `DataError` naming the first bad token's `file:line`."""
  try:
    values = np.asarray(tokens, dtype=np.str_).astype(np.int64) if len(tokens) else \
        np.zeros(0, np.int64)
  except (ValueError, OverflowError):
    values = None
  if values is not None and (values >= 0).all():
    return values
  for tok, n in zip(tokens, numbers):  # slow path, only to name the culprit
    if not (tok.strip().isdigit() and tok.strip().isascii()):
      raise DataError(f"{where(path, n)}: {what} {tok!r} is not a non-negative integer id "
                      f"(this format needs numeric ids)")
  raise DataError(f"{path}: {what} column is not all non-negative integers")


def parse_floats(tokens: Sequence[str], numbers: Sequence[int], path, what: str) -> np.ndarray:
  """Floats (NaN and inf parse; `check_weights` rejects them); `DataError` names `file:line`."""
  try:
    return np.asarray(tokens, dtype=np.str_).astype(np.float64) if len(tokens) else \
        np.zeros(0, np.float64)
  except ValueError:
    pass
  for tok, n in zip(tokens, numbers):
    try:
      float(tok)
    except ValueError:
      raise DataError(f"{where(path, n)}: {what} {tok!r} is not a number") from None
  raise DataError(f"{path}: {what} column is not numeric")


def check_weights(weight: np.ndarray | None, numbers: Sequence[int], path, what: str = "weight"):
  """Weights must be finite and >= 0 (a negative count or NaN rating breaks degree normalisation)."""
  if weight is None:
    return
  bad = ~np.isfinite(weight) | (weight < 0)
  if bad.any():
    k = int(np.argmax(bad))
    raise DataError(f"{where(path, numbers[k])}: {what} {float(weight[k])} is invalid "
                    f"(expected a finite number >= 0); {int(bad.sum())} invalid in the file")


def timestamps(values: np.ndarray, numbers: Sequence[int], path) -> np.ndarray:
  """Parsed timestamps as int64, keeping their order exactly.

  Whole numbers (Unix time) are kept as they are. Fractional ones would be truncated by a cast,
  which can tie or reorder events within a second (and a time split breaks ties by row order),
  so they are replaced by their dense rank (0, 1, ...: same order, same ties) with a warning.

  Raises:
    DataError: a missing (NaN) or infinite timestamp, naming its `file:line`.
  """
  values = np.asarray(values, np.float64)
  bad = ~np.isfinite(values)
  if bad.any():
    raise DataError(f"{where(path, numbers[int(np.argmax(bad))])}: timestamp is missing or not a "
                    "finite number (expected Unix time)")
  if np.array_equal(values, np.floor(values)):
    return values.astype(np.int64)
  warn(f"{path}: timestamps have fractions of a unit; replaced by their rank order (same order "
       "and ties) so that time splits stay exact")
  return np.unique(values, return_inverse=True)[1].reshape(-1).astype(np.int64)


def unique_ids(ids: Sequence[str], numbers: Sequence[int], path) -> None:
  """A `DataError` naming `file:line` of the first id listed twice (metadata: one row per id)."""
  seen: dict[str, int] = {}
  for tok, n in zip(ids, numbers):
    if tok in seen:
      raise DataError(f"{where(path, n)}: id {tok!r} already listed at line {seen[tok]} "
                      "(expected one row per id)")
    seen[tok] = n


def catalogue(*token_lists: Sequence[str]) -> Vocab:
  """The distinct tokens of all lists, in order of first appearance (earlier lists first)."""
  return Vocab.from_tokens(t for tokens in token_lists for t in tokens)


def first_occurrence(user: np.ndarray, item: np.ndarray) -> np.ndarray:
  """Boolean mask keeping the first row of every distinct (user, item) pair."""
  key = user.astype(np.int64) * (int(item.max(initial=0)) + 1) + item.astype(np.int64)
  _, first = np.unique(key, return_index=True)
  keep = np.zeros(len(key), bool)
  keep[first] = True
  return keep


def dedupe(inter: Interactions, path, numbers: np.ndarray | None = None
           ) -> tuple[Interactions, np.ndarray | None]:
  """Keeps the FIRST row of each duplicate (user, item) pair, with a counted warning.

  The first row is kept (not a sum of weights) so that ratings keep their scale and timestamps
  stay real events; counts that a source splits over several rows are rare in practice.
  """
  keep = first_occurrence(inter.user, inter.item)
  dropped = int((~keep).sum())
  if dropped:
    k = int(np.argmin(keep))
    at = where(path, int(numbers[k])) if numbers is not None else str(path)
    warn(f"{path}: {dropped} duplicate user-item rows dropped, keeping the first of each pair "
         f"(first duplicate at {at})")
    return inter.take(keep), (None if numbers is None else numbers[keep])
  return inter, numbers


def drop_unknown(users: np.ndarray, items: np.ndarray, path, part: str,
                 user_tokens: Sequence[str], item_tokens: Sequence[str]) -> np.ndarray:
  """Mask of rows whose user and item are known (index >= 0); warns with counts otherwise.

  Policy (for valid/test files): the catalogue is fixed by the training data (and metadata), so a
  row naming an id it lacks cannot be scored by any model and is dropped, never added.
  """
  keep = (users >= 0) & (items >= 0)
  n = int((~keep).sum())
  if n:
    bu = sorted({str(t) for t, u in zip(user_tokens, users) if u < 0})
    bi = sorted({str(t) for t, i in zip(item_tokens, items) if i < 0})
    ex = ", ".join([f"user {t!r}" for t in bu[:2]] + [f"item {t!r}" for t in bi[:2]])
    warn(f"{path}: dropped {n} {part} rows whose ids are unknown to the catalogue "
         f"({len(bu)} unknown users, {len(bi)} unknown items, e.g. {ex}); ids come only from "
         "the training data and metadata files")
  return keep


def drop_train_overlap(train: Interactions, part: Interactions, path, name: str) -> Interactions:
  """Drops valid/test pairs already in train (ranking excludes train items, so they never count)."""
  if not len(part) or not len(train):
    return part
  m = int(max(train.item.max(), part.item.max())) + 1
  known = np.sort(train.user.astype(np.int64) * m + train.item)
  key = part.user.astype(np.int64) * m + part.item
  # Sorted search, not np.isin: numpy 2.4's hash-based isin takes ~2 s on Gowalla's 1M keys.
  pos = np.minimum(np.searchsorted(known, key), len(known) - 1)
  seen = known[pos] == key
  if seen.any():
    warn(f"{path}: dropped {int(seen.sum())} {name} rows whose user-item pair is also in train")
    return part.take(~seen)
  return part


def to_interactions(path, part: str, user_tokens: Sequence[str], item_tokens: Sequence[str],
                    weight: np.ndarray | None, timestamp: np.ndarray | None,
                    numbers: Sequence[int], users: Vocab, items: Vocab) -> Interactions:
  """Maps tokens to indices, checks weights, drops unknown ids (counted) and duplicates (first kept).

  Args:
    part: "train", "valid" or "test"; in train every id must already be in the catalogue.
  """
  numbers = np.asarray(numbers, np.int64)
  check_weights(weight, numbers, path)
  u = users.lookup(user_tokens)
  i = items.lookup(item_tokens)
  keep = drop_unknown(u, i, path, part, user_tokens, item_tokens)
  inter = Interactions(u, i, None if weight is None else weight.astype(np.float32),
                       None if timestamp is None else timestamp.astype(np.int64))
  if not keep.all():
    inter, numbers = inter.take(keep), numbers[keep]
  inter, _ = dedupe(inter, path, numbers)
  return inter
