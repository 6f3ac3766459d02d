"""The LightGCN / NGCF repositories' format: `train.txt` and `test.txt`, one line per user.

Each line is `user item item ...` (space-separated, 0-based integer ids; a user line may list no
items). The catalogue is `0..max id` over both files, with tokens the decimal ids, so index == id
and users or items that appear in neither file are isolated nodes, as in the original code. The
split is predefined, with an EMPTY validation part (the LightGCN protocol has none) unless
`valid_from_train` carves one out of train per user.

Ids are node indices, stored as int32: an id beyond int32 is an error naming its line (numpy's
reader would clip one beyond int64 silently), and so is a catalogue that would be mostly empty
(over a million ids and over 90% of them in neither file: one stray large id would otherwise
allocate that many nodes). Lines made only of whitespace are skipped with a counted warning;
empty lines silently.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from gnnrec_jax.data import checks, files, splits
from gnnrec_jax.data.types import Dataset, Interactions, Split, Vocab
from gnnrec_jax.errors import DataError, where


def read_adjacency_lists(path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Parses one `user item item ...` file.

  Tokens are located with vectorised byte arithmetic and parsed by numpy's C reader, so Gowalla's
  840k ids take well under a second; only when that fails does a per-token pass name the culprit.

  Returns:
    users: [n] int64 user id of every pair; items: [n] int64 item ids; line_users: [l] the user
    of every non-blank line (including users without items); numbers: [n] 1-based line numbers.
  """
  path = Path(path)
  text = files.read_text(path)
  data = np.frombuffer(text.encode(), np.uint8)
  space = (data == 32) | ((data >= 9) & (data <= 13))  # ASCII whitespace, as str.split sees it
  start = ~space & np.concatenate([[True], space[:-1]])  # first byte of every token
  line_idx = np.cumsum(data == 10)  # [bytes] line ends before each byte (its own included)
  tok_line = (line_idx + 1)[start]  # [num_tokens] 1-based line of each token
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", DeprecationWarning)  # older numpy warns on a bad token
      ids = np.fromstring(text, dtype=np.int64, sep=" ")
  except ValueError:  # numpy >= 2.3 raises on a bad token
    ids = None
  if ids is None or len(ids) != len(tok_line) or (ids < 0).any():
    checks.parse_ints(text.split(), tok_line, path, "id")  # raises, naming file:line
    raise DataError(f"{path}: expected whitespace-separated non-negative integer ids")
  too_big = ids > checks.INT32_MAX  # also catches ids beyond int64, which numpy clips
  if too_big.any():
    k = int(np.argmax(too_big))
    raise DataError(f"{where(path, int(tok_line[k]))}: id {checks.show(text.split()[k])} is "
                    f"beyond int32 (max {checks.INT32_MAX}), the type node indices are stored in "
                    "(this format's ids are indices 0..N-1)")
  # Lines holding some byte other than a line end but no token: whitespace only.
  has_content = np.zeros(int(line_idx[-1]) + 2 if len(data) else 1, bool)
  has_content[line_idx[(data != 10) & (data != 13)] + 1] = True
  has_content[tok_line] = False
  if has_content.any():
    checks.warn_blank(path, np.flatnonzero(has_content))
  first = np.concatenate([[True], tok_line[1:] != tok_line[:-1]])  # first token of each line
  line_users = ids[first]
  lengths = np.diff(np.concatenate([np.flatnonzero(first), [len(ids)]]))
  users = np.repeat(line_users, lengths - 1)
  return users, ids[~first], line_users, tok_line[~first].astype(np.int64)


def _check_dense(ids: np.ndarray, lines: np.ndarray, path, what: str) -> None:
  """A `DataError` when `max id + 1` (the catalogue) is over a million and over 10x the distinct
  ids: the ids are indices, so every missing one would become an isolated node."""
  if not len(ids):
    return
  size = int(ids.max()) + 1
  if size <= 1_000_000:  # the common case: no need to count distinct ids
    return
  distinct = len(np.unique(ids))
  if size > 10 * distinct:
    k = int(np.argmax(ids))
    raise DataError(f"{where(path, int(lines[k]))}: {what} id {size - 1} makes a catalogue of "
                    f"{size:,} {what}s for {distinct:,} distinct ids; this format's ids are dense "
                    "indices 0..N-1 (renumber them, or load the file as --dataset csv)")


def load_lightgcn(data_dir, *, name: str | None = None, valid_from_train: float = 0.0,
                  seed: int = 2020, duplicates: str = "max") -> Dataset:
  """Loads `DIR/train.txt` and `DIR/test.txt` with their predefined split.

  Repeated (user, item) pairs within a file are combined by `duplicates` (max, the default, and
  last keep one unweighted row; sum makes the repeats counts); test pairs that are also in train
  are dropped (both with counted warnings).

  Args:
    data_dir: the folder holding `train.txt` and `test.txt`.
    name: the dataset's name (default: the folder's name, e.g. "gowalla").
    valid_from_train: when > 0, this fraction of each user's train interactions (seeded, rounded
      as `splits.split_counts` does) becomes the validation part.
    seed: seed of that validation carve-out.
  """
  d = files.require_dir(data_dir, "LightGCN-format data folder (train.txt, test.txt)")
  train_path, test_path = d / "train.txt", d / "test.txt"
  tr_u, tr_i, tr_lines, tr_num = read_adjacency_lists(train_path)
  te_u, te_i, te_lines, te_num = read_adjacency_lists(test_path)
  for path, u, i, num in ((train_path, tr_u, tr_i, tr_num), (test_path, te_u, te_i, te_num)):
    _check_dense(u, num, path, "user")
    _check_dense(i, num, path, "item")
  if not len(tr_u):
    raise DataError(f"{train_path}: no interactions (every line lists a user without items)")
  num_users = int(max(tr_lines.max(initial=-1), te_lines.max(initial=-1))) + 1
  num_items = int(max(tr_i.max(initial=-1), te_i.max(initial=-1))) + 1
  train, _ = checks.combine_duplicates(Interactions(tr_u, tr_i), train_path, tr_num, duplicates)
  test, _ = checks.combine_duplicates(Interactions(te_u, te_i), test_path, te_num, duplicates)
  test = checks.drop_train_overlap(train, test, test_path, "test")
  valid = Interactions(np.zeros(0, np.int32), np.zeros(0, np.int32))
  if valid_from_train:
    train, valid = splits.carve_valid(train, valid_from_train, seed=seed)
  ids = lambda n: Vocab(tuple(map(str, range(n))))
  return Dataset(name=name or d.name, users=ids(num_users), items=ids(num_items),
                 interactions=Interactions.concat([train, valid, test]),
                 split=Split(train, valid, test), source=f"lightgcn:{d}")
