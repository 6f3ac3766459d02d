"""Splits: exact sizes by hand, disjoint parts covering the input, determinism by seed."""
import numpy as np
import pytest

from gnnrec_jax.data import splits
from gnnrec_jax.data.types import Dataset, Interactions, Vocab
from gnnrec_jax.errors import ConfigError, DataError


def _inter(counts, *, num_items=50, seed=0, timestamps=True):
  """Users 0..len(counts)-1, user u with counts[u] distinct items (random), random timestamps."""
  rng = np.random.default_rng(seed)
  users, items = [], []
  for u, c in enumerate(counts):
    users += [u] * c
    items += list(rng.choice(num_items, size=c, replace=False))
  n = len(users)
  perm = rng.permutation(n)  # rows interleaved, as real files are
  ts = rng.integers(0, 1000, n) if timestamps else None
  return Interactions(np.array(users)[perm], np.array(items)[perm],
                      np.arange(n, dtype=np.float32), ts)


def _rows(inter):
  return {(int(u), int(i)) for u, i in zip(inter.user, inter.item)}


def _check_partition(inter, split):
  parts = [_rows(split.train), _rows(split.valid), _rows(split.test)]
  assert sum(len(p) for p in parts) == len(inter)
  assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
  assert set().union(*parts) == _rows(inter)
  # Weights travel with their rows.
  w = {(int(u), int(i)): float(x) for u, i, x in zip(inter.user, inter.item, inter.weights_or_ones())}
  for p in (split.train, split.valid, split.test):
    for u, i, x in zip(p.user, p.item, p.weights_or_ones()):
      assert w[(int(u), int(i))] == float(x)


@pytest.mark.parametrize("n,expected", [
    (1, [1, 0, 0]), (2, [1, 0, 1]), (3, [1, 1, 1]), (5, [3, 1, 1]), (9, [7, 1, 1]),
    (10, [8, 1, 1]), (19, [17, 1, 1]), (20, [16, 2, 2]), (29, [25, 2, 2]), (105, [85, 10, 10]),
])
def test_split_counts_recbole_rule(n, expected):
  assert splits.split_counts(n, (0.8, 0.1, 0.1)) == expected


def test_split_counts_other_ratios():
  # int(0.2*7)=1, int(0.1*7)=0 -> test gets 1 because 0 < 0.7 < 1; train the rest.
  assert splits.split_counts(7, (0.7, 0.2, 0.1)) == [5, 1, 1]
  assert splits.split_counts(10, (0.9, 0.1, 0.0)) == [9, 1, 0]
  assert splits.split_counts(4, (8, 1, 1)) == [2, 1, 1]  # ratios need not be normalised


def test_split_random_sizes_by_hand():
  counts = [1, 2, 3, 10, 25]
  inter = _inter(counts)
  s = splits.split_random(inter, seed=1)
  # Per user (train, valid, test): (1,0,0) (1,0,1) (1,1,1) (8,1,1) (21,2,2)
  assert s.sizes() == {"train": 32, "valid": 4, "test": 5}
  per_user = lambda p: np.bincount(p.user, minlength=5).tolist()
  assert per_user(s.train) == [1, 1, 1, 8, 21]
  assert per_user(s.valid) == [0, 0, 1, 1, 2]
  assert per_user(s.test) == [0, 1, 1, 1, 2]
  _check_partition(inter, s)


def test_split_random_seeded():
  inter = _inter([30] * 20)
  a = splits.split_random(inter, seed=3)
  b = splits.split_random(inter, seed=3)
  c = splits.split_random(inter, seed=4)
  assert _rows(a.test) == _rows(b.test) and _rows(a.valid) == _rows(b.valid)
  assert _rows(a.test) != _rows(c.test)
  assert a.sizes() == c.sizes() == {"train": 480, "valid": 60, "test": 60}


def test_leave_one_out_by_time_with_ties():
  # user 0: ts 5, 1, 9, 9 (tie: the later row wins the "last" place), user 1 only 2 rows.
  inter = Interactions(np.array([0, 0, 1, 0, 0, 1]), np.array([0, 1, 0, 2, 3, 1]),
                       None, np.array([5, 1, 3, 9, 9, 4]))
  s = splits.split_leave_one_out(inter)
  assert _rows(s.test) == {(0, 3)}
  assert _rows(s.valid) == {(0, 2)}
  assert _rows(s.train) == {(0, 0), (0, 1), (1, 0), (1, 1)}
  _check_partition(inter, s)


def test_leave_one_out_needs_timestamps():
  with pytest.raises(DataError, match="timestamps"):
    splits.split_leave_one_out(_inter([5], timestamps=False))


def test_temporal_global_cut():
  ts = np.array([50, 10, 40, 20, 30, 60, 70, 80, 90, 100])
  inter = Interactions(np.arange(10) % 3, np.arange(10), None, ts)
  s = splits.split_temporal(inter, ratios=(0.8, 0.1, 0.1))
  assert sorted(s.test.timestamp.tolist()) == [100]
  assert sorted(s.valid.timestamp.tolist()) == [90]
  assert len(s.train) == 8 and s.train.timestamp.max() <= 80
  _check_partition(inter, s)


def test_cold_item_split():
  inter = _inter([20] * 30, num_items=40, seed=5)
  s = splits.split_cold_item(inter, cold_fraction=0.25, seed=7, num_items=40)
  cold = set(s.cold_items.tolist())
  assert len(cold) == 10  # round(0.25 * 40 items that have interactions)
  assert not cold & set(s.train.item.tolist())
  cold_valid = cold & set(s.valid.item.tolist())
  cold_test = cold & set(s.test.item.tolist())
  assert len(cold_valid) == 5 and len(cold_test) == 5 and not cold_valid & cold_test
  # Every interaction of a cold item is in valid or test.
  n_cold = int(np.isin(inter.item, s.cold_items).sum())
  assert int(np.isin(s.valid.item, s.cold_items).sum() + np.isin(s.test.item, s.cold_items).sum()) \
      == n_cold
  _check_partition(inter, s)
  s2 = splits.split_cold_item(inter, cold_fraction=0.25, seed=7, num_items=40)
  s3 = splits.split_cold_item(inter, cold_fraction=0.25, seed=8, num_items=40)
  assert np.array_equal(s.cold_items, s2.cold_items) and _rows(s.test) == _rows(s2.test)
  assert not np.array_equal(s.cold_items, s3.cold_items)


def test_make_split_dispatch_and_errors():
  inter = _inter([10, 12])
  ds = Dataset("t", Vocab.from_tokens("ab"), Vocab.from_tokens(str(i) for i in range(50)), inter)
  assert splits.make_split(ds, "random", seed=1).sizes() == \
      splits.split_random(inter, seed=1).sizes()
  with pytest.raises(DataError, match="no predefined split"):
    splits.make_split(ds, "predefined")
  with pytest.raises(ConfigError, match="unknown split"):
    splits.make_split(ds, "bogus")


def test_carve_valid():
  train = _inter([10, 20, 1])
  tr, va = splits.carve_valid(train, 0.1, seed=0)
  assert len(va) == 1 + 2 + 0 and len(tr) + len(va) == len(train)
  assert not _rows(tr) & _rows(va)


def test_stable_group_order_is_a_stable_argsort():
  from gnnrec_jax.data.splits import _stable_group_order
  rng = np.random.default_rng(0)
  for n, k in ((0, 1), (10, 3), (50_000, 700)):
    keys = rng.integers(0, k, n)
    values = rng.permutation(n)
    np.testing.assert_array_equal(_stable_group_order(keys, values),
                                  values[np.argsort(keys, kind="stable")])
