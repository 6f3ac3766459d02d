"""Train/valid/test splits of a dataset's interactions, deterministic given the seed.

Every split returns parts that are disjoint and whose union is the input (rows are never invented
or lost), each part in the input's row order. Methods:

  random     per user, RecBole's `RS` ratio split (`split_random`).
  loo        leave-one-out by time: last -> test, second last -> valid (`split_leave_one_out`).
  temporal   global time cut points (`split_temporal`).
  cold_item  a seeded fraction of items never in train (`split_cold_item`).
  predefined the split the source files define (LightGCN format, `--train/--valid/--test`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from gnnrec_jax.data.types import Dataset, Interactions, Split
from gnnrec_jax.errors import ConfigError, DataError

METHODS = ("random", "loo", "temporal", "cold_item", "predefined")


def split_counts(n: int, ratios: Sequence[float]) -> list[int]:
  """Sizes of the parts of `n` rows: RecBole 1.2.1 `Dataset._calcu_split_ids`, exactly.

  Each part after the first gets `int(ratio * n)` (rounded down), the first part the rest; then,
  from the last part backwards and while the first part keeps more than one row, a part whose
  `ratio * n` lies in (0, 1) gets one row. With (0.8, 0.1, 0.1) and n >= 10 this is
  valid = test = floor(n / 10); n = 1 -> (1, 0, 0), n = 2 -> (1, 0, 1), n = 3..9 -> (n - 2, 1, 1).
  """
  tot = float(sum(ratios))
  r = [x / tot for x in ratios]
  cnt = [int(x * n) for x in r]
  cnt[0] = n - sum(cnt[1:])
  for i in range(1, len(r)):
    if cnt[0] <= 1:
      break
    if 0 < r[-i] * n < 1:
      cnt[-i] += 1
      cnt[0] -= 1
  return cnt


def _check_ratios(ratios) -> tuple[float, ...]:
  ratios = tuple(float(x) for x in ratios)
  if len(ratios) not in (2, 3) or any(x < 0 for x in ratios) or sum(ratios) <= 0 or ratios[0] <= 0:
    raise ConfigError(f"split ratios must be 2 or 3 non-negative numbers with train > 0, got {ratios}")
  return ratios + (0.0,) * (3 - len(ratios))


def _parts(inter: Interactions, part: np.ndarray, cold_items=None) -> Split:
  """Split from a [n] array of part ids (0 train, 1 valid, 2 test), keeping row order."""
  return Split(inter.take(part == 0), inter.take(part == 1), inter.take(part == 2),
               cold_items=cold_items)


def _stable_group_order(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
  """values[np.argsort(keys, kind="stable")] for non-negative integer keys, by a counting sort
  (scipy's COO -> CSR conversion: O(n + max key) in C++, where the argsort is O(n log n); at
  10^8 rows about 10x faster)."""
  n = len(keys)
  if n == 0:
    return values[:0]
  cols = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
  mat = sp.coo_matrix((values, (keys, cols)), shape=(int(keys.max()) + 1, n)).tocsr()
  mat.sort_indices()  # rows keep the input order (columns are the positions); a no-op check
  return mat.data


def _random_parts(user: np.ndarray, ratios, rng: np.random.Generator) -> np.ndarray:
  """[n] part ids: each user's rows shuffled, then cut by `split_counts` (RecBole `RS`)."""
  n = len(user)
  part = np.zeros(n, np.int8)
  if n == 0:
    return part
  perm = rng.permutation(n)
  # A stable sort by user of the shuffled rows gives each user's rows in shuffled order.
  order = _stable_group_order(user[perm], perm)
  counts = np.bincount(user, minlength=int(user.max()) + 1)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  rank = np.arange(n) - np.repeat(starts, counts)  # position within the user's shuffled rows
  # split_counts once per distinct count, then looked up: O(n) however many distinct counts a
  # power-law dataset has (a loop with a mask per count was O(distinct counts x users)).
  distinct, which = np.unique(counts, return_inverse=True)
  table = np.array([split_counts(int(c), ratios) for c in distinct], np.int64).reshape(-1, 3)
  n_train, n_valid = table[which, 0], table[which, 1]
  u = user[order]
  part[order] = np.where(rank < n_train[u], 0, np.where(rank < n_train[u] + n_valid[u], 1, 2))
  return part


def split_random(inter: Interactions, *, ratios: Sequence[float] = (0.8, 0.1, 0.1),
                 seed: int) -> Split:
  """Per-user random split, RecBole's `RS` with `group_by=user`.

  Each user's interactions are shuffled (seeded) and cut by `split_counts`: with the default
  (0.8, 0.1, 0.1) a user with n >= 10 interactions gets floor(n/10) valid and floor(n/10) test
  rows; users with 3..9 get one of each; 2 -> one train, one test; 1 -> train only.
  """
  ratios = _check_ratios(ratios)
  return _parts(inter, _random_parts(inter.user, ratios, np.random.default_rng(seed)))


def carve_valid(train: Interactions, fraction: float, *, seed: int) -> tuple[Interactions,
                                                                             Interactions]:
  """Moves a seeded per-user `fraction` of train to a validation part (`split_counts` rule)."""
  if not 0.0 < fraction < 1.0:
    raise ConfigError(f"valid_from_train must be in (0, 1), got {fraction}")
  s = split_random(train, ratios=(1.0 - fraction, fraction, 0.0), seed=seed)
  return s.train, s.valid


def _time_order(inter: Interactions, what: str) -> np.ndarray:
  if inter.timestamp is None:
    raise DataError(f"the {what} split needs timestamps, and this dataset has none "
                    "(use --split random or predefined)")
  return np.argsort(inter.timestamp, kind="stable")  # ties keep the original row order


def split_leave_one_out(inter: Interactions) -> Split:
  """Per user by time: last interaction -> test, second last -> valid, the rest -> train.

  Ties in timestamp are broken by the original row order (a later row counts as later). Users with
  fewer than 3 interactions keep them all in train, so every evaluated user has training data.
  """
  t_order = _time_order(inter, "leave-one-out")
  order = t_order[np.argsort(inter.user[t_order], kind="stable")]  # by user, then time, then row
  n = len(inter)
  part = np.zeros(n, np.int8)
  if n == 0:
    return _parts(inter, part)
  u = inter.user[order]
  counts = np.bincount(u)
  ends = np.cumsum(counts)  # one past each user's last row in `order`
  ok = counts >= 3
  part[order[ends[ok] - 1]] = 2
  part[order[ends[ok] - 2]] = 1
  return _parts(inter, part)


def split_temporal(inter: Interactions, *, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> Split:
  """Global time cut: the earliest rows -> train, then valid, the latest -> test.

  Part sizes follow `split_counts` over all rows, so rows with the same timestamp on both sides of
  a cut point are separated by their original order (RecBole `TO` ordering).
  """
  ratios = _check_ratios(ratios)
  order = _time_order(inter, "temporal")
  tr, va, _ = split_counts(len(inter), ratios)
  part = np.zeros(len(inter), np.int8)
  part[order[tr:tr + va]] = 1
  part[order[tr + va:]] = 2
  return _parts(inter, part)


def split_cold_item(inter: Interactions, *, cold_fraction: float = 0.2, seed: int,
                    num_items: int, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> Split:
  """Cold-start items: a seeded fraction of items never appears in train.

  `round(cold_fraction * m)` of the m items that have interactions are chosen (seeded); the cold
  items are then split between valid and test (the first half of them, rounded down, to valid),
  and ALL interactions of a cold item go to its part, so no test item is seen in valid either.
  The remaining (warm) interactions are split per user as `split_random` does with `ratios`.

  Returns:
    A `Split` with `cold_items` = the sorted [k] int32 indices of the cold items.
  """
  if not 0.0 < cold_fraction < 1.0:
    raise ConfigError(f"cold_fraction must be in (0, 1), got {cold_fraction}")
  ratios = _check_ratios(ratios)
  if len(inter) and int(inter.item.max()) >= num_items:
    raise DataError(f"item index {int(inter.item.max())} is outside the catalogue of {num_items}")
  rng = np.random.default_rng(seed)
  present = np.flatnonzero(np.bincount(inter.item, minlength=num_items))
  chosen = rng.permutation(present)[:int(round(cold_fraction * len(present)))]
  half = len(chosen) // 2
  where_cold = np.zeros(num_items, np.int8)  # 0 warm, 1 cold -> valid, 2 cold -> test
  where_cold[chosen[:half]] = 1
  where_cold[chosen[half:]] = 2
  part = where_cold[inter.item]
  warm = np.flatnonzero(part == 0)
  part[warm] = _random_parts(inter.user[warm], ratios, rng)
  return _parts(inter, part, cold_items=np.sort(chosen).astype(np.int32))


def make_split(dataset: Dataset, method: str, *, ratios: Sequence[float] = (0.8, 0.1, 0.1),
               seed: int = 2020, cold_fraction: float = 0.2) -> Split:
  """The split of `dataset` by `method` (one of `METHODS`)."""
  if method == "predefined":
    if dataset.split is None:
      raise DataError(f"dataset {dataset.name!r} has no predefined split (its source defines none); "
                      "use --split random, loo, temporal or cold_item")
    return dataset.split
  inter = dataset.interactions
  if method == "random":
    return split_random(inter, ratios=ratios, seed=seed)
  if method == "loo":
    return split_leave_one_out(inter)
  if method == "temporal":
    return split_temporal(inter, ratios=ratios)
  if method == "cold_item":
    return split_cold_item(inter, cold_fraction=cold_fraction, seed=seed,
                           num_items=dataset.num_items, ratios=ratios)
  raise ConfigError(f"unknown split method {method!r}; expected one of {', '.join(METHODS)}")
