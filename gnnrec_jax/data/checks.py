"""Validation shared by every loader: lines, values, ids, weights, repeated pairs.

Every problem in a user's file becomes a `DataError` that names `file:line` (1-based, as editors
show it) or the id at fault, and says what was expected. Problems that a loader repairs (repeated
pairs, ids unknown to the catalogue, blank rows) become a `DataWarning` with a count, so a user can
see how much of the file was changed.

Policies every loader shares:
  * Files are read through `gnnrec_jax.data.files` (regular files only, a size limit).
  * Lines: empty lines are skipped silently; lines made only of whitespace or separators are
    skipped with a counted warning (they usually are rows whose values were lost).
  * Values are checked in the type they are stored in: weights in float32 (beyond 3.4e38 is an
    error, not inf; a positive weight that would round to 0 is an error), timestamps in int64
    (parsed exactly when written as integers, an error beyond int64 rather than a wrap), integer
    ids in int64 (and node indices in int32).
  * Ids are kept as written, whatever their length; ids longer than `MAX_ID_CHARS` characters
    are counted in a warning (such an id is usually a misparsed column, e.g. a whole line).
"""
from __future__ import annotations

import contextlib
import sys
import warnings
from typing import Sequence

import numpy as np

from gnnrec_jax.data.types import Interactions, Vocab
from gnnrec_jax.errors import ConfigError, DataError, where

# Ids longer than this are kept but counted in a warning: real ids (numbers, UUIDs, ASINs, most
# URLs) are far shorter, and a very long one usually means a column was misparsed.
MAX_ID_CHARS = 256
INT64_MAX = int(np.iinfo(np.int64).max)
INT32_MAX = int(np.iinfo(np.int32).max)
FLOAT32_MAX = float(np.finfo(np.float32).max)


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


def show(token, limit: int = 60) -> str:
  """`repr(token)`, shortened for messages (an id can be a megabyte long)."""
  token = str(token)
  if len(token) <= limit:
    return repr(token)
  return repr(token[:limit]) + f"... ({len(token):,} characters)"


def split_lines(text: str, path=None, sep: str | None = None) -> tuple[list[str], list[int]]:
  """Non-blank lines (without line ends) and their 1-based line numbers.

  Lines end at "\n" (with an optional "\r"), as editors count them. Empty lines are skipped
  silently; lines made only of whitespace or of `sep` and whitespace are skipped too, with a
  counted warning when `path` is given (such a line is usually a row whose values were lost).
  """
  lines, numbers, blank = [], [], []
  for n, line in enumerate(text.split("\n"), start=1):
    line = line.rstrip("\r")
    content = line.strip()
    if sep is not None and sep.strip():
      content = content.replace(sep, "").strip()
    if content:
      lines.append(line)
      numbers.append(n)
    elif line:
      blank.append(n)
  if blank and path is not None:
    warn_blank(path, blank)
  return lines, numbers


def warn_blank(path, lines: Sequence[int]) -> None:
  """The counted warning for skipped lines made only of whitespace or separators."""
  warn(f"{path}: skipped {len(lines)} lines made only of separators or whitespace (first at "
       f"{where(path, int(lines[0]))}); empty lines are skipped silently")


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
    t = tok.strip()
    if not (t.isdigit() and t.isascii()):
      raise DataError(f"{where(path, n)}: {what} {show(tok)} is not a non-negative integer id "
                      f"(this format needs numeric ids)")
    if len(t.lstrip("0")) > 19 or int(t) > INT64_MAX:  # int() refuses > 4300 digits
      raise DataError(f"{where(path, n)}: {what} {show(t)} is beyond int64 (max {INT64_MAX}), "
                      "the type it is stored in")
  raise DataError(f"{path}: {what} column is not all non-negative integers")


def parse_floats(tokens: Sequence[str], numbers: Sequence[int], path, what: str) -> np.ndarray:
  """Floats (NaN and inf parse; `check_weights` rejects them); `DataError` names `file:line`.

  A number beyond float64's range (1e400) is an error rather than an infinity nobody wrote.
  """
  try:
    values = np.asarray(tokens, dtype=np.str_).astype(np.float64) if len(tokens) else \
        np.zeros(0, np.float64)
  except ValueError:
    values = None
  if values is not None:
    for k in np.flatnonzero(np.isinf(values)):
      if str(tokens[k]).strip().lower().lstrip("+-") not in ("inf", "infinity"):
        raise DataError(f"{where(path, numbers[k])}: {what} {show(tokens[k])} is beyond "
                        "float64's range (about 1.8e308)")
    return values
  for tok, n in zip(tokens, numbers):
    try:
      float(tok)
    except ValueError:
      raise DataError(f"{where(path, n)}: {what} {show(tok)} is not a number") from None
  raise DataError(f"{path}: {what} column is not numeric")


def check_weights(weight: np.ndarray | None, numbers: Sequence[int], path, what: str = "weight"):
  """Weights must be finite and >= 0 (a negative count or NaN rating breaks degree normalisation)
  and representable in float32, the type they are stored in: beyond 3.4e38 they would become
  inf, and a positive weight below 1.4e-45 would become 0."""
  if weight is None:
    return
  weight = np.asarray(weight, np.float64)
  bad = ~np.isfinite(weight) | (weight < 0)
  if bad.any():
    k = int(np.argmax(bad))
    raise DataError(f"{where(path, numbers[k])}: {what} {float(weight[k])} is invalid "
                    f"(expected a finite number >= 0); {int(bad.sum())} invalid in the file")
  with np.errstate(over="ignore", under="ignore"):
    stored = weight.astype(np.float32)
  big = weight > FLOAT32_MAX
  tiny = (weight > 0) & (stored == 0)
  for mask, why in ((big, f"beyond float32's range (max {FLOAT32_MAX:.4g}), so it would become "
                          "inf"),
                    (tiny, "below float32's smallest positive value (1.4e-45), so it would "
                           "become 0")):
    if mask.any():
      k = int(np.argmax(mask))
      raise DataError(f"{where(path, numbers[k])}: {what} {float(weight[k]):g} is {why} "
                      f"(weights are stored as float32); {int(mask.sum())} such in the file")


def parse_timestamps(tokens: Sequence[str], numbers: Sequence[int], path) -> np.ndarray:
  """Timestamp tokens as int64, exactly.

  Integer tokens are parsed as integers, never through float64 (which rounds beyond 2**53: two
  nanosecond times could tie or swap); one beyond int64 is an error naming its line. Other
  tokens (fractions, exponents) go through `parse_floats` and `timestamps`.
  """
  toks = [str(t).strip() for t in tokens]
  if not toks:
    return np.zeros(0, np.int64)
  try:
    return np.asarray(toks, dtype=np.str_).astype(np.int64)
  except OverflowError:
    for tok, n in zip(toks, numbers):
      digits = tok.lstrip("+-")
      if digits.isdigit() and digits.isascii() and (
          len(digits.lstrip("0")) > 19 or not -INT64_MAX - 1 <= int(tok) <= INT64_MAX):
        raise DataError(f"{where(path, n)}: timestamp {show(tok)} is beyond int64 (the type "
                        "timestamps are stored in)") from None
  except ValueError:
    pass  # fractions, exponents, blanks: the float path names the culprit
  return timestamps(parse_floats(toks, numbers, path, "timestamp"), numbers, path)


def timestamps(values: np.ndarray, numbers: Sequence[int], path) -> np.ndarray:
  """Parsed timestamps as int64, keeping their order exactly.

  Whole numbers (Unix time) are kept as they are. Fractional ones would be truncated by a cast,
  which can tie or reorder events within a second (and a time split breaks ties by row order),
  so they are replaced by their dense rank (0, 1, ...: same order, same ties) with a warning.

  Raises:
    DataError: a missing (NaN) or infinite timestamp, or one beyond int64 (a cast would wrap it
      to the most negative value: the newest event would become the oldest), naming `file:line`.
  """
  values = np.asarray(values, np.float64)
  bad = ~np.isfinite(values)
  if bad.any():
    raise DataError(f"{where(path, numbers[int(np.argmax(bad))])}: timestamp is missing or not a "
                    "finite number (expected Unix time)")
  big = (values >= 2.0 ** 63) | (values < -2.0 ** 63)
  if big.any():
    k = int(np.argmax(big))
    raise DataError(f"{where(path, numbers[k])}: timestamp {values[k]:g} is beyond int64 (the "
                    "type timestamps are stored in)")
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
      raise DataError(f"{where(path, n)}: id {show(tok)} already listed at line {seen[tok]} "
                      "(expected one row per id)")
    seen[tok] = n
  check_id_lengths(ids, numbers, path)


def check_id_lengths(ids: Sequence[str], numbers: Sequence[int], path, what: str = "id") -> None:
  """Warns with a count when ids are longer than `MAX_ID_CHARS` (they are kept as written)."""
  if not len(ids):
    return
  lengths = np.fromiter(map(len, ids), np.int64, count=len(ids))
  long = lengths > MAX_ID_CHARS
  if long.any():
    k = int(np.argmax(long))
    warn(f"{path}: {int(long.sum())} {what}s longer than {MAX_ID_CHARS} characters (longest "
         f"{int(lengths.max()):,}; first at {where(path, int(numbers[k]))}: {show(ids[k], 40)}); "
         "kept as written, but an id that long is usually a misparsed column")


def catalogue(*token_lists: Sequence[str]) -> Vocab:
  """The distinct tokens of all lists, in order of first appearance (earlier lists first)."""
  return Vocab.from_tokens(t for tokens in token_lists for t in tokens)


# How repeated (user, item) rows become one: the config field `duplicates`.
DUPLICATE_RULES = ("max", "sum", "last")
_RULE_TEXT = {
    "max": "the largest weight, dated at the pair's latest timestamp",
    "sum": "weights added, a row without a weight counting 1, dated at the latest timestamp",
    "last": "the latest row kept whole (by timestamp, then file order)",
}


def check_duplicates_rule(rule: str) -> str:
  if rule not in DUPLICATE_RULES:
    # The wording of `config.validate`, so that `data --set` and `train --set` say the same.
    raise ConfigError(f"invalid config: duplicates must be one of {' | '.join(DUPLICATE_RULES)}, "
                      f"got {rule!r} (how repeated user-item rows combine)")
  return rule


def combine_duplicates(inter: Interactions, path, numbers: np.ndarray | None = None,
                       rule: str = "max") -> tuple[Interactions, np.ndarray | None]:
  """One row per (user, item) pair: repeated rows combined by `rule`, with a counted warning.

  Rules (the config field `duplicates`):
    max   (default) the pair's largest weight. It is idempotent (a file concatenated twice, or an
          event logged twice, loads unchanged), ratings keep their scale, and for behaviour types
          it is the strongest behaviour shown (a click then a purchase weighs as a purchase).
    sum   weights added, a row without a weight counting 1 (so repeats of unweighted rows become
          counts): for sources that log one row per play or click.
    last  the pair's latest row, weight and timestamp (latest by timestamp when the data has
          them, ties and untimed data by file order): a re-rating replaces the earlier one.
  A combined row sits where its pair first appears (the splits keep row order) and, for max and
  sum, carries the pair's latest timestamp: it holds information from all its rows, so an
  earlier date would leak later behaviour into the train part of a time split.

  Returns:
    (interactions, the kept line numbers or None).

  Raises:
    DataError: a sum beyond float32's range, naming the pair's first line.
  """
  check_duplicates_rule(rule)
  n = len(inter)
  if n < 2:
    return inter, numbers
  key = inter.user.astype(np.int64) * (int(inter.item.max()) + 1) + inter.item.astype(np.int64)
  _, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True,
                                        return_counts=True)
  inverse = inverse.reshape(-1)
  g = len(first)
  if g == n:
    return inter, numbers
  w = None if inter.weight is None else inter.weight.astype(np.float64)
  ts = inter.timestamp
  if rule == "last":
    # Rows sorted by pair, then time, then position: each pair's last row ends its run.
    sort_keys = (np.arange(n), inverse) if ts is None else (np.arange(n), ts, inverse)
    chosen = np.lexsort(sort_keys)[np.cumsum(counts) - 1]  # [g] in np.unique's pair order
    w_pair = None if w is None else w[chosen]
    ts_pair = None if ts is None else ts[chosen]
  else:
    if rule == "sum":
      w_pair = np.bincount(inverse, weights=w, minlength=g).astype(np.float64)
      if (w_pair > FLOAT32_MAX).any():
        k = int(np.argmax(w_pair > FLOAT32_MAX))
        at = where(path, int(numbers[first[k]])) if numbers is not None else str(path)
        raise DataError(f"{at}: the weights of this user-item pair sum to {w_pair[k]:g}, beyond "
                        f"float32's range (max {FLOAT32_MAX:.4g}); use duplicates=max or last")
    elif w is None:
      w_pair = None
    else:
      w_pair = np.full(g, -np.inf)
      np.maximum.at(w_pair, inverse, w)
    ts_pair = None
    if ts is not None:
      ts_pair = np.full(g, np.iinfo(np.int64).min)
      np.maximum.at(ts_pair, inverse, ts)
  order = np.argsort(first, kind="stable")  # pairs in order of first appearance
  rows = first[order]
  out = Interactions(inter.user[rows], inter.item[rows],
                     None if w_pair is None else w_pair[order].astype(np.float32),
                     None if ts_pair is None else ts_pair[order])
  is_first = np.zeros(n, bool)
  is_first[first] = True
  k = int(np.argmin(is_first))
  at = where(path, int(numbers[k])) if numbers is not None else str(path)
  pairs = int((counts > 1).sum())
  repeated = "1 row repeats" if n - g == 1 else f"{n - g} rows repeat"
  warn(f"{path}: {repeated} a user-item pair ({pairs} pair{'s' * (pairs != 1)}; first "
       f"repeat at {at}); combined with duplicates={rule}: {_RULE_TEXT[rule]} (duplicates="
       f"{'|'.join(DUPLICATE_RULES)} sets the rule)")
  return out, (None if numbers is None else np.asarray(numbers)[rows])


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
    ex = ", ".join([f"user {show(t)}" for t in bu[:2]] + [f"item {show(t)}" for t in bi[:2]])
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
                    numbers: Sequence[int], users: Vocab, items: Vocab, *,
                    duplicates: str = "max") -> Interactions:
  """Maps tokens to indices, checks weights and id lengths, drops unknown ids (counted) and
  combines repeated pairs (`combine_duplicates`, by the rule `duplicates`).

  Args:
    part: "train", "valid" or "test"; in train every id must already be in the catalogue.
  """
  numbers = np.asarray(numbers, np.int64)
  check_weights(weight, numbers, path)
  check_id_lengths(user_tokens, numbers, path, "user id")
  check_id_lengths(item_tokens, numbers, path, "item id")
  u = users.lookup(user_tokens)
  i = items.lookup(item_tokens)
  keep = drop_unknown(u, i, path, part, user_tokens, item_tokens)
  inter = Interactions(u, i, None if weight is None else weight.astype(np.float32),
                       None if timestamp is None else timestamp.astype(np.int64))
  if not keep.all():
    inter, numbers = inter.take(keep), numbers[keep]
  inter, _ = combine_duplicates(inter, path, numbers, duplicates)
  return inter
