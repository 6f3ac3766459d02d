"""losses.py and sampling.py against hand-computed values and brute-force references."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gnnrec_jax.data.types import Interactions
from gnnrec_jax.objectives.losses import bpr_loss, l2_reg, sampled_softmax_loss
from gnnrec_jax.objectives.sampling import (
  is_seen,
  resample_if_seen,
  sample_negatives,
  train_csr,
)


def softplus(x):
  return math.log1p(math.exp(x))


USER = jnp.array([[1.0, 0.0], [0.0, 1.0]])
POS = jnp.array([[2.0, 0.0], [0.0, 1.0]])
NEG = jnp.array([[1.0, 0.0], [0.0, 3.0]])
USER_EGO = jnp.array([[1.0, 1.0], [0.0, 0.0]])
POS_EGO = jnp.array([[0.0, 2.0], [1.0, 0.0]])
NEG_EGO = jnp.array([[0.0, 0.0], [3.0, 0.0]])


@pytest.mark.parametrize("jit", [False, True])
def test_bpr_loss_by_hand(jit):
  f = jax.jit(bpr_loss, static_argnames=()) if jit else bpr_loss
  loss, aux = f(user=USER, pos=POS, neg=NEG, user_ego=USER_EGO, pos_ego=POS_EGO,
                neg_ego=NEG_EGO, l2=0.1)
  # Row 0: u.p = 2, u.n = 1, diff 1 -> softplus(-1). Row 1: u.p = 1, u.n = 3 -> softplus(2).
  rank = (softplus(-1) + softplus(2)) / 2
  # Squared ego norms: row 0: 2 + 4 + 0 = 6; row 1: 0 + 1 + 9 = 10 -> (6 + 10) / 2 / 2 = 4.
  reg = 0.1 * 4.0
  np.testing.assert_allclose(aux["bpr"], rank, rtol=1e-6)
  np.testing.assert_allclose(aux["reg"], reg, rtol=1e-6)
  np.testing.assert_allclose(loss, rank + reg, rtol=1e-6)
  np.testing.assert_allclose(aux["pairwise_acc"], 0.5)


def test_bpr_loss_mask_drops_padding_rows():
  loss, aux = bpr_loss(user=USER, pos=POS, neg=NEG, user_ego=USER_EGO, pos_ego=POS_EGO,
                       neg_ego=NEG_EGO, l2=0.1, mask=jnp.array([1.0, 0.0]))
  # Only row 0: softplus(-1) + 0.1 * 6 / 2 / 1.
  np.testing.assert_allclose(loss, softplus(-1) + 0.3, rtol=1e-6)
  np.testing.assert_allclose(aux["pairwise_acc"], 1.0)
  # An all-padding batch gives 0, not NaN.
  loss, _ = bpr_loss(user=USER, pos=POS, neg=NEG, user_ego=USER_EGO, pos_ego=POS_EGO,
                     neg_ego=NEG_EGO, l2=0.1, mask=jnp.zeros(2))
  assert float(loss) == 0.0


def test_bpr_loss_with_several_negatives():
  neg = jnp.array([[[1.0, 0.0], [3.0, 0.0]], [[0.0, 3.0], [0.0, 0.0]]])  # [B=2, K=2, d]
  neg_ego = jnp.zeros((2, 2, 2)).at[0, 1].set(jnp.array([1.0, 1.0]))
  loss, aux = bpr_loss(user=USER, pos=POS, neg=neg, user_ego=USER_EGO, pos_ego=POS_EGO,
                       neg_ego=neg_ego, l2=1.0)
  # Row 0: diffs 2-1 = 1, 2-3 = -1; row 1: diffs 1-3 = -2, 1-0 = 1.
  rank = ((softplus(-1) + softplus(1)) / 2 + (softplus(2) + softplus(-1)) / 2) / 2
  # Squared norms: row 0: 2 + 4 + (0 + 2) = 8; row 1: 0 + 1 + 0 = 1 -> 9 / 2 / 2.
  np.testing.assert_allclose(aux["bpr"], rank, rtol=1e-6)
  np.testing.assert_allclose(aux["reg"], 9 / 4, rtol=1e-6)
  np.testing.assert_allclose(aux["pairwise_acc"], 0.5)
  np.testing.assert_allclose(loss, rank + 9 / 4, rtol=1e-6)


def test_bpr_gradient_pushes_positive_up():
  g = jax.grad(lambda p: bpr_loss(user=USER, pos=p, neg=NEG, user_ego=USER_EGO,
                                  pos_ego=POS_EGO, neg_ego=NEG_EGO, l2=0.0)[0])(POS)
  # d/dp softplus(-(u.p - u.n)) = -sigmoid(-(diff)) u / B: descent moves p towards u.
  np.testing.assert_allclose(g[0], -jax.nn.sigmoid(-1.0) * USER[0] / 2, rtol=1e-6)
  np.testing.assert_allclose(g[1], -jax.nn.sigmoid(2.0) * USER[1] / 2, rtol=1e-6)


NEG_K = jnp.array([[[0.0, 1.0], [2.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]]])  # [B=2, K=2, d]
POS_SM = jnp.array([[1.0, 0.0], [0.0, 2.0]])


def lse(*xs):
  return math.log(sum(math.exp(x) for x in xs))


@pytest.mark.parametrize("jit", [False, True])
def test_sampled_softmax_by_hand(jit):
  f = jax.jit(sampled_softmax_loss, static_argnames=("in_batch_negatives",)) if jit \
      else sampled_softmax_loss
  loss, aux = f(user=USER, pos=POS_SM, neg=NEG_K, temperature=0.5)
  # Row 0 logits / 0.5: pos 1 -> 2; negs 0 -> 0, 2 -> 4.   Row 1: pos 2 -> 4; negs 1 -> 2, 0 -> 0.
  l0 = -2 + lse(2, 0, 4)
  l1 = -4 + lse(4, 2, 0)
  np.testing.assert_allclose(loss, (l0 + l1) / 2, rtol=1e-6)
  np.testing.assert_allclose(aux["pos_prob"], (math.exp(-l0) + math.exp(-l1)) / 2, rtol=1e-6)
  # In-batch: row 0 also sees p_1 (u0.p1 = 0 -> 0), row 1 sees p_0 (u1.p0 = 0 -> 0).
  loss_ib, _ = f(user=USER, pos=POS_SM, neg=NEG_K, temperature=0.5, in_batch_negatives=True)
  np.testing.assert_allclose(loss_ib, ((-2 + lse(2, 0, 4, 0)) + (-4 + lse(4, 2, 0, 0))) / 2,
                             rtol=1e-6)


def test_sampled_softmax_mask_and_l2():
  mask = jnp.array([1.0, 0.0])
  loss, aux = sampled_softmax_loss(user=USER, pos=POS_SM, neg=NEG_K, temperature=0.5, mask=mask,
                                   in_batch_negatives=True, user_ego=USER_EGO, pos_ego=POS_EGO,
                                   neg_ego=jnp.zeros((2, 2, 2)), l2=0.5)
  # Row 1 is padding: excluded from the mean and never an in-batch negative for row 0.
  np.testing.assert_allclose(aux["softmax"], -2 + lse(2, 0, 4), rtol=1e-6)
  # Row 0 squared ego norms: 2 + 4 + 0 = 6 -> 0.5 * 6 / 2 / 1.
  np.testing.assert_allclose(aux["reg"], 1.5, rtol=1e-6)
  np.testing.assert_allclose(loss, -2 + lse(2, 0, 4) + 1.5, rtol=1e-6)


def test_l2_reg_by_hand():
  np.testing.assert_allclose(l2_reg(user_ego=USER_EGO, pos_ego=POS_EGO, neg_ego=NEG_EGO), 4.0)


# --- sampling ----------------------------------------------------------------------------------


def test_sample_negatives_uniform_in_range():
  neg = jax.jit(sample_negatives, static_argnames=("num_items", "num_negatives"))(
      jax.random.key(0), batch_users=jnp.zeros(5000, jnp.int32), num_items=10, num_negatives=4)
  assert neg.shape == (5000, 4) and neg.dtype == jnp.int32
  assert int(neg.min()) >= 0 and int(neg.max()) < 10
  counts = np.bincount(np.asarray(neg).ravel(), minlength=10)
  # 20,000 draws, expected 2,000 each; sd ~ 42, so 5 sd is 212.
  assert np.all(np.abs(counts - 2000) < 212)


def test_train_csr_and_is_seen_against_python_sets():
  rng = np.random.default_rng(0)
  users, items = rng.integers(0, 6, 40), rng.integers(0, 9, 40)
  users[users == 4] = 5  # user 4 has no items
  train = Interactions(users, items)
  indptr, indices = train_csr(train, num_users=7, num_items=9)  # user 6: beyond any data
  seen = {u: set(items[users == u].tolist()) for u in range(7)}
  for u in range(7):
    row = indices[indptr[u]:indptr[u + 1]].tolist()
    assert row == sorted(seen[u])
  qu = np.repeat(np.arange(7), 9)
  qi = np.tile(np.arange(9), 7)[:, None].repeat(2, 1)  # [63, 2]
  out = jax.jit(is_seen)(jnp.asarray(qu), jnp.asarray(qi), indptr=jnp.asarray(indptr),
                         indices=jnp.asarray(indices))
  expected = np.array([[i in seen[u]] * 2 for u, i in zip(qu, qi[:, 0])])
  np.testing.assert_array_equal(out, expected)


def test_resample_if_seen_reduces_false_negatives():
  # User 0 has seen items 0..4 of 10 (density 0.5); user 1 has seen nothing.
  train = Interactions(np.zeros(5, np.int32), np.arange(5))
  indptr, indices = map(jnp.asarray, train_csr(train, num_users=2, num_items=10))
  users = jnp.asarray(np.repeat([0, 1], 2000))
  neg = sample_negatives(jax.random.key(1), batch_users=users, num_items=10, num_negatives=2)
  out = jax.jit(resample_if_seen, static_argnames=("num_items", "num_retries"))(
      jax.random.key(2), neg, batch_users=users, num_items=10, indptr=indptr, indices=indices,
      num_retries=3)
  before = np.asarray(neg)[:2000] < 5
  after = np.asarray(out)[:2000] < 5
  assert 0.45 < before.mean() < 0.55
  assert 0.03 < after.mean() < 0.10  # expected 0.5^4 = 0.0625
  # Unseen negatives are never touched; user 1's negatives are all unseen.
  np.testing.assert_array_equal(np.asarray(out)[:2000][~before], np.asarray(neg)[:2000][~before])
  np.testing.assert_array_equal(out[2000:], neg[2000:])


def test_resample_if_seen_with_a_pool_checks_the_pooled_items():
  # Draws are positions in pool = [1, 3, 5, 7, 9]; user 0 has seen items 1, 3 (positions 0, 1).
  train = Interactions(np.zeros(2, np.int32), np.asarray([1, 3]))
  indptr, indices = map(jnp.asarray, train_csr(train, num_users=1, num_items=10))
  pool = jnp.asarray([1, 3, 5, 7, 9], jnp.int32)
  users = jnp.zeros(4000, jnp.int32)
  neg = sample_negatives(jax.random.key(1), batch_users=users, num_items=5, num_negatives=1)
  out = jax.jit(resample_if_seen, static_argnames=("num_items", "num_retries"))(
      jax.random.key(2), neg, batch_users=users, num_items=5, indptr=indptr, indices=indices,
      num_retries=3, pool=pool)
  before, after = np.asarray(neg)[:, 0] < 2, np.asarray(out)[:, 0] < 2
  assert 0.35 < before.mean() < 0.45
  assert 0.01 < after.mean() < 0.05  # expected 0.4^4 = 0.0256
  assert np.asarray(out).min() >= 0 and np.asarray(out).max() < 5  # still positions in the pool
  np.testing.assert_array_equal(np.asarray(out)[~before], np.asarray(neg)[~before])
