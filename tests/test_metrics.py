"""Top-K metrics: hand-computed values, the tie rule, and JAX == NumPy reference (hypothesis)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnnrec_jax.data.types import Interactions
from gnnrec_jax.evaluation import metrics as M
from gnnrec_jax.evaluation.evaluate import evaluate_full_ranking

# 3 users, 5 items. User 2's only target is a seen item, so user 2 is not evaluated.
SCORES = np.array([
    [0.9, 0.8, 0.7, 0.6, 0.5],  # ranking without item 0: 1, 2, 3, 4
    [0.1, 0.5, 0.5, 0.2, 0.5],  # ties among 1, 2, 4 -> 1, 2, 4, then 3, 0
    [0.0, 0.0, 0.0, 0.0, 1.0],
], np.float32)
TRUTH = [[2, 4], [4], [3]]
EXCLUDE = [[0], [], [3]]
L3 = math.log2(3)
L5 = math.log2(5)
# Hand-computed. user 0: hits at ranks 2 (@3) and 2, 4 (@5); user 1: hit at rank 3.
HAND = {
    "recall@1": 0.0, "ndcg@1": 0.0, "precision@1": 0.0, "hit@1": 0.0, "mrr@1": 0.0,
    "coverage@1": 1 / 5,  # item 1 for both users
    "recall@3": (1 / 2 + 1) / 2,
    "ndcg@3": ((1 / L3) / (1 + 1 / L3) + (1 / 2) / 1) / 2,
    "precision@3": (1 / 3 + 1 / 3) / 2,
    "hit@3": 1.0,
    "mrr@3": (1 / 2 + 1 / 3) / 2,
    "coverage@3": 4 / 5,  # {1, 2, 3} | {1, 2, 4}
    "recall@5": 1.0,
    "ndcg@5": ((1 / L3 + 1 / L5) / (1 + 1 / L3) + 0.5) / 2,
    "precision@5": (2 / 5 + 1 / 5) / 2,  # / K although user 0 has only 4 candidates
    "hit@5": 1.0,
    "mrr@5": (1 / 2 + 1 / 3) / 2,
    "coverage@5": 1.0,
    "num_users": 2,
}


def gather_scores(scores, users):
  return scores[users]


def interactions(lists):
  user = [u for u, items in enumerate(lists) for _ in items]
  item = [i for items in lists for i in items]
  return Interactions(np.array(user, np.int32), np.array(item, np.int32))


def jax_metrics(scores, truth, exclude, ks, item_mask=None, batch_size=4):
  return evaluate_full_ranking(
      gather_scores, jnp.asarray(scores), num_users=scores.shape[0], num_items=scores.shape[1],
      exclude=[interactions(exclude)], target=interactions(truth), ks=ks,
      batch_size=batch_size, item_mask=item_mask)


@pytest.mark.parametrize("impl", ["numpy", "jax"])
def test_hand_computed_case(impl):
  ks = (1, 3, 5)
  if impl == "numpy":
    got = M.metrics_numpy(SCORES, TRUTH, EXCLUDE, ks)
  else:
    got = jax_metrics(SCORES, TRUTH, EXCLUDE, ks)
  assert set(got) == set(HAND)
  for key, want in HAND.items():
    assert got[key] == pytest.approx(want, abs=1e-6), key


@pytest.mark.parametrize("impl", ["numpy", "jax"])
def test_hand_computed_item_mask(impl):
  # Without item 1: user 0 ranks 2, 3, 4 (hit at 1); user 1 ranks 2, 4, 3, 0 (hit at 2).
  mask = np.array([True, False, True, True, True])
  ks = (1, 2)
  if impl == "numpy":
    got = M.metrics_numpy(SCORES, TRUTH, EXCLUDE, ks, item_mask=mask)
  else:
    got = jax_metrics(SCORES, TRUTH, EXCLUDE, ks, item_mask=mask)
  assert got["hit@1"] == pytest.approx(0.5)
  assert got["recall@1"] == pytest.approx((1 / 2 + 0) / 2)
  assert got["mrr@2"] == pytest.approx((1 + 1 / 2) / 2)
  assert got["ndcg@2"] == pytest.approx((1 / (1 + 1 / L3) + 1 / L3) / 2)
  assert got["coverage@1"] == pytest.approx(1 / 4)  # item 2 of 4 rankable items
  assert got["coverage@2"] == pytest.approx(3 / 4)  # {2, 3} | {2, 4}


def test_metrics_from_hits_by_hand():
  hits = jnp.array([[0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]], jnp.float32)
  num_rel = jnp.array([3, 1, 0])
  got = jax.jit(M.metrics_from_hits, static_argnums=2)(hits, num_rel, (2, 4))
  np.testing.assert_allclose(got["recall@4"], [2 / 3, 1, 0], atol=1e-6)
  np.testing.assert_allclose(got["precision@2"], [1 / 2, 1 / 2, 0], atol=1e-6)
  np.testing.assert_allclose(got["mrr@4"], [1 / 2, 1, 0], atol=1e-6)
  np.testing.assert_allclose(got["hit@2"], [1, 1, 0], atol=1e-6)
  idcg = 1 + 1 / L3 + 1 / 2  # min(3, 4) = 3 ideal hits
  np.testing.assert_allclose(got["ndcg@4"], [(1 / L3 + 1 / L5) / idcg, 1, 0], atol=1e-6)
  np.testing.assert_allclose(got["ndcg@2"], [(1 / L3) / (1 + 1 / L3), 1, 0], atol=1e-6)


def test_tie_rule_top_k_equals_stable_argsort():
  # lax.top_k orders -0.0 below 0.0; rank_topk canonicalises it so that -0.0 ties with 0.0.
  s = np.array([[1.0, 3.0, 3.0, 0.0, -0.0, 3.0, 0.0, -1.0]], np.float32)
  rankable = np.ones_like(s, bool)
  items, _ = jax.jit(M.rank_topk, static_argnums=2)(s, rankable, 8)
  np.testing.assert_array_equal(items[0], np.argsort(-s[0], kind="stable"))
  np.testing.assert_array_equal(items[0], [1, 2, 5, 0, 3, 4, 6, 7])
  # Raw lax.top_k on equal scores also keeps the lower index first.
  _, raw = jax.lax.top_k(jnp.array([[2.0, 5.0, 2.0, 5.0]]), 4)
  np.testing.assert_array_equal(raw[0], [1, 3, 0, 2])


def test_rank_topk_marks_empty_slots():
  s = np.array([[0.5, 0.1, 0.9]], np.float32)
  rankable = np.array([[True, False, False]])
  items, _ = M.rank_topk(s, rankable, 3)
  np.testing.assert_array_equal(items[0], [0, -1, -1])


# Few distinct values force ties; -0.0 is among them.
VALUES = st.sampled_from([-1.0, -0.5, -0.0, 0.0, 0.25, 0.5, 1.0, 2.0])
U, I = 7, 9


@settings(max_examples=40, deadline=None)
@given(
    scores=st.lists(VALUES, min_size=U * I, max_size=U * I),
    truth=st.lists(st.lists(st.integers(0, I - 1), max_size=5), min_size=U, max_size=U),
    exclude=st.lists(st.lists(st.integers(0, I - 1), max_size=6), min_size=U, max_size=U),
    mask=st.lists(st.booleans(), min_size=I, max_size=I).filter(lambda m: sum(m) >= 2),
    use_mask=st.booleans(),
)
def test_jax_equals_numpy_reference(scores, truth, exclude, mask, use_mask):
  scores = np.array(scores, np.float32).reshape(U, I)
  mask = np.array(mask) if use_mask else None
  ks = (1, 3, 5)
  want = M.metrics_numpy(scores, truth, exclude, ks, item_mask=mask)
  got = jax_metrics(scores, truth, exclude, ks, item_mask=mask, batch_size=4)
  assert got["num_users"] == want["num_users"]
  for key in want:
    assert got[key] == pytest.approx(want[key], abs=1e-6), key
