"""Full-ranking evaluation against the NumPy reference, padding, caching and errors."""
import jax.numpy as jnp
import numpy as np
import pytest

from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError, DataError, TrainingError
from gnnrec_jax.evaluation import evaluate as ev
from gnnrec_jax.evaluation.metrics import metrics_numpy

U, I, D = 45, 31, 8
KS = (1, 5, 10)


def gather_scores(scores, users):
  return scores[users]


def random_problem(seed):
  rng = np.random.default_rng(seed)
  user_emb = rng.normal(size=(U, D)).astype(np.float32)
  item_emb = rng.normal(size=(I, D)).astype(np.float32)
  train = Interactions(rng.integers(0, U, 300), rng.integers(0, I, 300))
  valid = Interactions(rng.integers(0, U, 40), rng.integers(0, I, 40))
  # Duplicates and overlaps with train on purpose: they must count once / not at all.
  test = Interactions(np.r_[rng.integers(0, U, 60), train.user[:5], 3, 3],
                      np.r_[rng.integers(0, I, 60), train.item[:5], 7, 7])
  return user_emb, item_emb, train, valid, test


def per_user_lists(parts, num_users):
  out = [[] for _ in range(num_users)]
  for p in parts:
    for u, i in zip(p.user, p.item):
      out[u].append(int(i))
  return out


@pytest.mark.parametrize("batch_size", [7, 512])  # 7: several batches, the last one padded
def test_matches_reference_with_padding_mask_and_subset(batch_size):
  user_emb, item_emb, train, valid, test = random_problem(0)
  scores = user_emb @ item_emb.T
  rng = np.random.default_rng(1)
  mask = rng.random(I) < 0.7
  subset = rng.choice(U, 30, replace=False)
  got = ev.evaluate_embeddings(user_emb, item_emb, exclude=[train, valid], target=test, ks=KS,
                               batch_size=batch_size, item_mask=mask, user_subset=subset)
  in_subset = np.isin(np.arange(U), subset)
  truth = [t if in_subset[u] else [] for u, t in enumerate(per_user_lists([test], U))]
  want = metrics_numpy(scores, truth, per_user_lists([train, valid], U), KS, item_mask=mask)
  assert got["num_users"] == want["num_users"] > 5
  for key in want:
    assert got[key] == pytest.approx(want[key], abs=1e-6), key


def test_dense_score_fn_equals_embeddings_and_per_user():
  user_emb, item_emb, train, _, test = random_problem(2)
  scores = jnp.asarray(user_emb @ item_emb.T)
  a = ev.evaluate_embeddings(user_emb, item_emb, exclude=[train], target=test, ks=KS,
                             batch_size=8)
  b, per_user = ev.evaluate_full_ranking(
      gather_scores, scores, num_users=U, num_items=I, exclude=[train], target=test, ks=KS,
      batch_size=8, return_per_user=True)
  for key in a:
    assert a[key] == pytest.approx(b[key], abs=1e-6), key
  assert len(per_user["user"]) == b["num_users"]
  assert np.mean(per_user["recall@10"]) == pytest.approx(b["recall@10"], abs=1e-6)
  # A user with no rankable target is not in the per-user list.
  seen = per_user_lists([train], U)
  truth = per_user_lists([test], U)
  evaluable = [u for u in range(U) if set(truth[u]) - set(seen[u])]
  np.testing.assert_array_equal(per_user["user"], evaluable)


def test_no_recompilation_for_same_sizes():
  user_emb, item_emb, train, _, test = random_problem(3)
  kwargs = dict(exclude=[train], target=test, ks=KS, batch_size=8)
  ev.evaluate_embeddings(user_emb, item_emb, **kwargs)
  before = ev._evaluate_batches._cache_size()
  # New embedding values (as after an epoch) must reuse the compiled program.
  ev.evaluate_embeddings(user_emb * 2.0, item_emb + 1.0, **kwargs)
  assert ev._evaluate_batches._cache_size() == before


def test_cold_item_block():
  # Items 0-1 warm, 2-3 cold. Only cold items are rankable; warm targets are dropped.
  user_emb = np.eye(4, dtype=np.float32)[:2]
  item_emb = np.eye(4, dtype=np.float32)
  train = Interactions([0, 1], [0, 1])
  test = Interactions([0, 0, 1], [2, 1, 0])  # user 1 has only a warm target -> skipped
  got = ev.evaluate_embeddings(user_emb, item_emb, exclude=[train], target=test, ks=(1,),
                               item_mask=np.array([False, False, True, True]))
  assert got["num_users"] == 1
  # User 0 scores item 0 highest, but only 2 and 3 are rankable: tie at 0 -> item 2 first.
  assert got["recall@1"] == 1.0 and got["coverage@1"] == 0.5


def test_no_evaluable_users():
  got = ev.evaluate_embeddings(np.ones((2, 3), np.float32), np.ones((4, 3), np.float32),
                               exclude=[Interactions([0], [1])], target=Interactions([0], [1]),
                               ks=(2,))
  assert got["num_users"] == 0 and got["recall@2"] == 0.0


def test_errors():
  user_emb, item_emb, train, _, test = random_problem(4)
  with pytest.raises(ConfigError, match="exceeds the number of items"):
    ev.evaluate_embeddings(user_emb, item_emb, exclude=[train], target=test, ks=(I + 1,))
  with pytest.raises(DataError, match="item index 99"):
    ev.evaluate_embeddings(user_emb, item_emb, exclude=[train], target=Interactions([0], [99]),
                           ks=KS)
  bad = user_emb.copy()
  bad[test.user[0], 0] = np.nan
  with pytest.raises(TrainingError, match="NaN"):
    ev.evaluate_embeddings(bad, item_emb, exclude=[train], target=test, ks=KS)


def test_embeddings_sizes_are_checked():
  user_emb, item_emb, train, _, test = random_problem(5)
  got = ev.evaluate_embeddings(user_emb, item_emb, num_users=U, num_items=I, exclude=[train],
                               target=test, ks=KS)
  assert got["num_users"] > 0
  with pytest.raises(ConfigError, match="num_items=30"):
    ev.evaluate_embeddings(user_emb, item_emb, num_items=I - 1, exclude=[train], target=test)


def test_host_preparation_is_cached_per_interaction_arrays():
  user_emb, item_emb, train, valid, test = random_problem(11)
  kw = dict(exclude=[train], target=valid, ks=KS, batch_size=16)
  ev._PREP_CACHE.clear()
  first = ev.evaluate_embeddings(user_emb, item_emb, **kw)
  assert len(ev._PREP_CACHE) == 1
  again = ev.evaluate_embeddings(user_emb, item_emb, **kw)
  assert again == first and len(ev._PREP_CACHE) == 1  # reused, same numbers
  # Same length, other content: a new entry and the reference's numbers, never the stale ones.
  other = Interactions(valid.user[::-1].copy(), (valid.item + 1) % I)
  got = ev.evaluate_embeddings(user_emb, item_emb, exclude=[train], target=other, ks=KS,
                               batch_size=16)
  assert len(ev._PREP_CACHE) == 2
  ref = metrics_numpy(user_emb @ item_emb.T, per_user_lists([other], U),
                      per_user_lists([train], U), KS)
  for key, value in ref.items():
    assert got[key] == pytest.approx(value, abs=1e-6), key
