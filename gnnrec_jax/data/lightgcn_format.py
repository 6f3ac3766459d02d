"""The LightGCN / NGCF repositories' format: `train.txt` and `test.txt`, one line per user.

Each line is `user item item ...` (space-separated, 0-based integer ids; a user line may list no
items). The catalogue is `0..max id` over both files, with tokens the decimal ids, so index == id
and users or items that appear in neither file are isolated nodes, as in the original code. The
split is predefined, with an EMPTY validation part (the LightGCN protocol has none) unless
`valid_from_train` carves one out of train per user.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from gnnrec_jax.data import checks, splits
from gnnrec_jax.data.types import Dataset, Interactions, Split, Vocab
from gnnrec_jax.errors import DataError


def read_adjacency_lists(path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Parses one `user item item ...` file.

  Tokens are located with vectorised byte arithmetic and parsed by numpy's C reader, so Gowalla's
  840k ids take well under a second; only when that fails does a per-token pass name the culprit.

  Returns:
    users: [n] int64 user id of every pair; items: [n] int64 item ids; line_users: [l] the user
    of every non-blank line (including users without items); numbers: [n] 1-based line numbers.
  """
  path = Path(path)
  text = checks.read_text(path)
  data = np.frombuffer(text.encode(), np.uint8)
  space = (data == 32) | ((data >= 9) & (data <= 13))  # ASCII whitespace, as str.split sees it
  start = ~space & np.concatenate([[True], space[:-1]])  # first byte of every token
  tok_line = (np.cumsum(data == 10) + 1)[start]  # [num_tokens] 1-based line of each token
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", DeprecationWarning)  # older numpy warns on a bad token
      ids = np.fromstring(text, dtype=np.int64, sep=" ")
  except ValueError:  # numpy >= 2.3 raises on a bad token
    ids = None
  if ids is None or len(ids) != len(tok_line) or (ids < 0).any():
    checks.parse_ints(text.split(), tok_line, path, "id")  # raises, naming file:line
    raise DataError(f"{path}: expected whitespace-separated non-negative integer ids")
  first = np.concatenate([[True], tok_line[1:] != tok_line[:-1]])  # first token of each line
  line_users = ids[first]
  lengths = np.diff(np.concatenate([np.flatnonzero(first), [len(ids)]]))
  users = np.repeat(line_users, lengths - 1)
  return users, ids[~first], line_users, tok_line[~first].astype(np.int64)


def load_lightgcn(data_dir, *, name: str | None = None, valid_from_train: float = 0.0,
                  seed: int = 2020) -> Dataset:
  """Loads `DIR/train.txt` and `DIR/test.txt` with their predefined split.

  Duplicate (user, item) pairs within a file keep the first; test pairs that are also in train
  are dropped (both with counted warnings).

  Args:
    data_dir: the folder holding `train.txt` and `test.txt`.
    name: the dataset's name (default: the folder's name, e.g. "gowalla").
    valid_from_train: when > 0, this fraction of each user's train interactions (seeded, rounded
      as `splits.split_counts` does) becomes the validation part.
    seed: seed of that validation carve-out.
  """
  d = checks.require_dir(data_dir, "LightGCN-format data folder (train.txt, test.txt)")
  train_path, test_path = d / "train.txt", d / "test.txt"
  tr_u, tr_i, tr_lines, tr_num = read_adjacency_lists(train_path)
  te_u, te_i, te_lines, te_num = read_adjacency_lists(test_path)
  if not len(tr_u):
    raise DataError(f"{train_path}: no interactions (every line lists a user without items)")
  num_users = int(max(tr_lines.max(initial=-1), te_lines.max(initial=-1))) + 1
  num_items = int(max(tr_i.max(initial=-1), te_i.max(initial=-1))) + 1
  train, _ = checks.dedupe(Interactions(tr_u, tr_i), train_path, tr_num)
  test, _ = checks.dedupe(Interactions(te_u, te_i), test_path, te_num)
  test = checks.drop_train_overlap(train, test, test_path, "test")
  valid = Interactions(np.zeros(0, np.int32), np.zeros(0, np.int32))
  if valid_from_train:
    train, valid = splits.carve_valid(train, valid_from_train, seed=seed)
  ids = lambda n: Vocab(tuple(map(str, range(n))))
  return Dataset(name=name or d.name, users=ids(num_users), items=ids(num_items),
                 interactions=Interactions.concat([train, valid, test]),
                 split=Split(train, valid, test), source=f"lightgcn:{d}")
