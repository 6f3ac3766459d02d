"""baselines.py: known scores of random / popularity / content-kNN and their blocks."""
from __future__ import annotations

import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gnnrec_jax.config import Config
from gnnrec_jax.data.types import Interactions, Split
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.evaluation import coldstart, evaluate
from gnnrec_jax.models import baselines

U, I = 3, 5
# Train counts: item 0 x3, item 1 x1, item 2 x2, items 3 and 4 never (cold).
TRAIN = Interactions(np.array([0, 1, 2, 0, 1, 2]), np.array([0, 0, 0, 1, 2, 2]))


def test_random_scores_are_seeded_per_user_and_batch_independent():
  p = baselines.random_params(I, seed=7)
  s = np.asarray(baselines.random_scores(p, jnp.array([2, 0])))
  key = jax.random.key(7)
  np.testing.assert_allclose(s[0], jax.random.uniform(jax.random.fold_in(key, 2), (I,)))
  np.testing.assert_allclose(s[1], jax.random.uniform(jax.random.fold_in(key, 0), (I,)))
  np.testing.assert_array_equal(np.asarray(baselines.random_scores(p, jnp.array([0])))[0], s[1])
  other = np.asarray(baselines.random_scores(baselines.random_params(I, seed=8), jnp.array([0])))
  assert not np.allclose(other[0], s[1])


def test_random_recall_is_k_over_rankable_items():
  # 2000 users, 50 items, one target each: recall@5 of a random ranking is 5/50 in expectation
  # (std 0.0067 over 2000 users; the seed makes the value fixed, so the test is not flaky).
  n_users, n_items = 2000, 50
  rng = np.random.default_rng(0)
  target = Interactions(np.arange(n_users), rng.integers(0, n_items, n_users))
  out = evaluate.evaluate_full_ranking(
      baselines.random_scores, baselines.random_params(n_items, seed=0), num_users=n_users,
      num_items=n_items, exclude=[], target=target, ks=(5,))
  assert out["recall@5"] == pytest.approx(0.1, abs=0.02)


def test_popularity_scores_are_train_counts_with_ties_broken_at_random():
  p = baselines.popularity_params(TRAIN, I, seed=0)
  np.testing.assert_array_equal(p["counts"], [3, 1, 2, 0, 0])
  s = np.asarray(baselines.popularity_scores(p, jnp.arange(U)))
  assert s.shape == (U, I)
  np.testing.assert_array_equal(np.floor(s), np.broadcast_to([3, 1, 2, 0, 0], (U, I)))
  for row in s:  # the count order is never changed by the tie-breaker
    assert list(np.argsort(-row)[:3]) == [0, 2, 1]
  # The cold items (count 0) tie: their order is the random baseline's, not their index order.
  r = np.asarray(baselines.random_scores(p["ties"], jnp.arange(U)))
  np.testing.assert_array_equal(s[:, 3] > s[:, 4], r[:, 3] > r[:, 4])


def test_popularity_by_hand_on_warm_items():
  # User 0 has seen items 0 and 1; the most popular item left is 2.
  target = Interactions(np.array([0, 1]), np.array([2, 1]))
  out = evaluate.evaluate_full_ranking(
      baselines.popularity_scores, baselines.popularity_params(TRAIN, I), num_users=U,
      num_items=I, exclude=[TRAIN], target=target, ks=(1, 2))
  # u0 ranks [2, then cold]; target 2 -> hit@1. u1 (saw 0, 2) ranks [1, ...] -> target 1 hit@1.
  assert out["recall@1"] == 1.0 and out["num_users"] == 2


def test_content_knn_scores_are_cosines_by_hand():
  s2 = 1 / math.sqrt(2)
  items = np.array([[2, 0], [0, 1], [1, 1], [0, 0], [-1, 0]], np.float32)  # item 3 has no text
  train = Interactions(np.array([0, 1, 1]), np.array([0, 0, 1]))  # user 2: no history
  p = baselines.content_knn_params(items, train, num_users=U)
  s = np.asarray(baselines.content_knn_scores(p, jnp.arange(U)))
  # user 0 = [1, 0]; user 1 = mean([1, 0], [0, 1]) -> [s2, s2]; user 2 = 0.
  np.testing.assert_allclose(s[0], [1, 0, s2, 0, -1], atol=1e-6)
  np.testing.assert_allclose(s[1], [s2, s2, 1, 0, -s2], atol=1e-6)
  np.testing.assert_allclose(s[2], np.zeros(I), atol=0)


def fake_exp(features=True):
  valid = Interactions(np.array([0]), np.array([3]))
  test = Interactions(np.array([1, 2]), np.array([4, 1]))
  feats = None
  if features:
    feats = np.zeros((U + I, 2), np.float32)
    feats[U:] = [[1, 0], [0, 1], [1, 1], [1, 0.1], [0, 1]]
  return types.SimpleNamespace(
      num_users=U, num_items=I, split=Split(TRAIN, valid, test), features=feats,
      config=Config(topk=(1, 2), select_metric="ndcg@2"))


def test_evaluate_baselines_on_the_blocks():
  exp = fake_exp()
  s = exp.split
  out = baselines.evaluate_baselines(exp, target=s.test, exclude=[s.train, s.valid])
  assert set(out) == {"random", "popularity", "content_knn"}
  for blocks in out.values():
    assert set(blocks) == {"all", "warm", "cold"}
    assert blocks["cold"]["num_pairs"] == 1 and blocks["warm"]["num_pairs"] == 1
  # Cold block: user 1 (history items 0, 2 -> direction [2, 1]) ranks items 3, 4 (3 is its valid
  # item only for user 0): cos with [1, 0.1] beats [0, 1], so its target 4 is at rank 2.
  assert out["content_knn"]["cold"]["recall@1"] == 0.0
  assert out["content_knn"]["cold"]["ndcg@2"] == pytest.approx(1 / math.log2(3))
  # Popularity's cold block is the random ranking (all counts tie at 0).
  for m in ("recall@1", "ndcg@2"):
    assert out["popularity"]["cold"][m] == out["random"]["cold"][m]
  # Warm block: user 2 saw items 0 and 2, so item 1 is the only warm item left: a hit for all.
  for name in baselines.NAMES:
    assert out[name]["warm"]["recall@1"] == 1.0
  with pytest.raises(ConfigError, match="text vectors"):
    baselines.evaluate_baselines(fake_exp(features=False), target=s.test, exclude=[s.train],
                                 names=["content_knn"])
  with pytest.raises(ConfigError, match="unknown baseline"):
    baselines.baseline("itemknn", exp)


def test_blocks_of_a_baseline_match_evaluate_full_ranking_with_masks():
  exp = fake_exp()
  s = exp.split
  fn, params = baselines.baseline("content_knn", exp)
  blocks = coldstart.evaluate_score_blocks(fn, params, train=s.train, num_users=U, num_items=I,
                                           target=s.test, exclude=[s.train], ks=(1, 2))
  direct = evaluate.evaluate_full_ranking(fn, params, num_users=U, num_items=I,
                                          exclude=[s.train], target=s.test, ks=(1, 2),
                                          item_mask=np.array([0, 0, 0, 1, 1], bool))
  assert blocks["cold"]["ndcg@2"] == direct["ndcg@2"]
