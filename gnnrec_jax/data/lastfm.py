"""Last.fm (HetRec 2011) as the LightGCN repository ships it: listening counts plus friendships.

`data1.txt` (train) and `test1.txt` (test): tab-separated `user item weight`, 1-based integer ids,
weight = listening count (written as an int or a float such as `3.2466e+05`).
`trustnetwork.txt` (optional): `user user` friendship pairs with the same ids.

The catalogue is the users and items that appear in train (1,878 users and 4,476 artists in the
shipped file), in increasing id order: test rows naming another id are dropped with a counted
warning (a model has nothing to score them with). Friendships become `Dataset.social`, an [m, 2]
int32 array of undirected pairs of user indices, each listed once with the smaller index first;
both directions of a pair and repeated lines merge into one, while self-pairs and pairs with a
user outside the catalogue are dropped with a counted warning.

Repeated (user, item) rows are combined by `duplicates` (max by default; sum adds the listening
counts). Ids beyond int64 and weights beyond float32 are errors naming their line; lines made
only of whitespace are skipped with a counted warning.
"""
from __future__ import annotations

import numpy as np

from gnnrec_jax.data import checks, files, splits
from gnnrec_jax.data.types import Dataset, Interactions, Split, Vocab
from gnnrec_jax.errors import DataError


def _read_triples(path):
  lines, nums = checks.split_lines(files.read_text(path), path)
  rows = checks.split_fields(lines, nums, path, None, ncols=3, expected="user<TAB>item<TAB>weight")
  cols = list(zip(*rows))
  users = checks.parse_ints(cols[0], nums, path, "user id")
  items = checks.parse_ints(cols[1], nums, path, "item id")
  weight = checks.parse_floats(cols[2], nums, path, "weight")
  checks.check_weights(weight, nums, path)
  return users, items, weight, np.asarray(nums, np.int64)


def _index(ids: np.ndarray, catalogue: np.ndarray) -> np.ndarray:
  """Index of each id in the sorted `catalogue`, -1 where absent."""
  pos = np.clip(np.searchsorted(catalogue, ids), 0, max(len(catalogue) - 1, 0))
  return np.where(catalogue[pos] == ids, pos, -1) if len(catalogue) else np.full(len(ids), -1)


def read_social(path, user_ids: np.ndarray) -> np.ndarray:
  """Undirected user-index pairs from a `user user` file (see the module docstring)."""
  lines, nums = checks.split_lines(files.read_text(path), path)
  rows = checks.split_fields(lines, nums, path, None, min_cols=2, expected="user<TAB>user")
  a = checks.parse_ints([r[0] for r in rows], nums, path, "user id")
  b = checks.parse_ints([r[1] for r in rows], nums, path, "user id")
  ia, ib = _index(a, user_ids), _index(b, user_ids)
  self_pair = a == b
  unknown = ~self_pair & ((ia < 0) | (ib < 0))
  if self_pair.any() or unknown.any():
    checks.warn(f"{path}: dropped {int(self_pair.sum())} self-pairs and {int(unknown.sum())} "
                "pairs with a user unknown to the catalogue (the users of the training data)")
  keep = ~self_pair & ~unknown
  lo, hi = np.minimum(ia[keep], ib[keep]), np.maximum(ia[keep], ib[keep])
  pairs = np.unique(np.stack([lo, hi], 1), axis=0) if keep.any() else np.zeros((0, 2), np.int64)
  return pairs.astype(np.int32)


def load_lastfm(data_dir, *, valid_from_train: float = 0.0, seed: int = 2020,
                duplicates: str = "max") -> Dataset:
  """Loads Last.fm with its predefined train/test split (empty valid unless `valid_from_train`);
  repeated (user, item) rows combined by `duplicates` (`checks.combine_duplicates`)."""
  d = files.require_dir(data_dir, "Last.fm folder (data1.txt, test1.txt, trustnetwork.txt)")
  train_path, test_path, trust_path = d / "data1.txt", d / "test1.txt", d / "trustnetwork.txt"
  tr_u, tr_i, tr_w, tr_n = _read_triples(train_path)
  te_u, te_i, te_w, te_n = _read_triples(test_path)
  user_ids, item_ids = np.unique(tr_u), np.unique(tr_i)
  if not len(user_ids):
    raise DataError(f"{train_path}: no interactions")
  train, _ = checks.combine_duplicates(
      Interactions(_index(tr_u, user_ids), _index(tr_i, item_ids), tr_w), train_path, tr_n,
      duplicates)
  tu, ti = _index(te_u, user_ids), _index(te_i, item_ids)
  keep = checks.drop_unknown(tu, ti, test_path, "test", te_u, te_i)
  test, _ = checks.combine_duplicates(Interactions(tu[keep], ti[keep], te_w[keep]), test_path,
                                      te_n[keep], duplicates)
  test = checks.drop_train_overlap(train, test, test_path, "test")
  valid = Interactions(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))
  if valid_from_train:
    train, valid = splits.carve_valid(train, valid_from_train, seed=seed)
  # exists(), not is_file(): a FIFO or device here is refused by name, not silently skipped.
  social = read_social(trust_path, user_ids) if trust_path.exists() else None
  return Dataset(name="lastfm", users=Vocab(tuple(map(str, user_ids))),
                 items=Vocab(tuple(map(str, item_ids))),
                 interactions=Interactions.concat([train, valid, test]),
                 split=Split(train, valid, test), social=social, source=f"lastfm:{d}")
