"""contrastive.py against hand-written NumPy (float64) versions of each paper's formula.

Gradients: jax.grad (float32) against central differences of the float64 NumPy reference.
Masks: a padding row, whatever it holds, changes neither the loss nor the other rows' gradients.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import pdist

from gnnrec_jax.objectives.contrastive import (
  alignment,
  cosine_contrastive_loss,
  cross_layer_view,
  directau_loss,
  first_occurrence,
  info_nce,
  perturb,
  simgcl_loss,
  uniformity,
)
from gnnrec_jax.objectives.losses import l2_reg

B, D, K = 6, 5, 4


def np_unit(x):
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def np_info_nce(v1, v2, tau):
  """-mean_b log(exp(z1_b.z2_b/tau) / sum_b' exp(z1_b.z2_b'/tau)), written out."""
  z1, z2 = np_unit(v1), np_unit(v2)
  out = []
  for b in range(len(z1)):
    scores = np.array([z1[b] @ z2[c] / tau for c in range(len(z2))])
    out.append(-(scores[b] - np.log(np.sum(np.exp(scores)))))
  return np.mean(out)


def np_uniformity(x, t=2.0):
  """log mean over pairs b < b' of exp(-t |unit(x_b) - unit(x_b')|^2), via scipy's pdist."""
  return np.log(np.mean(np.exp(-t * pdist(np_unit(x), "euclidean") ** 2)))


def np_ccl(u, p, n, margin, w):
  """(1 - cos(u, p)) + w / K * sum_k max(0, cos(u, n_k) - margin), mean over rows."""
  cos_p = np.sum(np_unit(u) * np_unit(p), -1)
  cos_n = np.einsum("bd,bkd->bk", np_unit(u), np_unit(n))
  return np.mean((1 - cos_p) + w / n.shape[1] * np.sum(np.maximum(0, cos_n - margin), -1))


def numeric_grad(f, x, h=1e-6):
  """Central differences of a float64 NumPy function f at x."""
  g = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    xp, xm = x.copy(), x.copy()
    xp[idx] += h
    xm[idx] -= h
    g[idx] = (f(xp) - f(xm)) / (2 * h)
  return g


def rand(*shape, seed=0):
  return np.random.default_rng(seed).normal(size=shape)


def maybe_jit(f, jit, static=()):
  return jax.jit(f, static_argnames=static) if jit else f


# --- SimGCL / XSimGCL --------------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True])
def test_perturb_matches_formula(jit):
  e = jnp.asarray(rand(B, D), jnp.float32)
  rng = jax.random.key(3)
  f = maybe_jit(perturb, jit)
  out = f(rng, e, eps=0.1)
  # The same uniform draw, then the formula in NumPy.
  noise = np.asarray(jax.random.uniform(rng, e.shape, jnp.float32), np.float64)
  expected = np.asarray(e) + 0.1 * np.sign(np.asarray(e)) * np_unit(noise)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
  delta = np.asarray(out) - np.asarray(e)
  np.testing.assert_allclose(np.linalg.norm(delta, axis=-1), 0.1, rtol=1e-5)  # radius eps
  assert np.all(np.sign(delta) == np.sign(np.asarray(e)))                    # e's orthant
  # A pure function of (rng, e, eps): same key, same view; another key, another view.
  np.testing.assert_array_equal(f(rng, e, eps=0.1), out)
  assert not np.allclose(f(jax.random.key(4), e, eps=0.1), out)


def test_first_occurrence_against_numpy_unique():
  ids = jnp.array([3, 1, 3, 0, 1, 7, 3, 0])
  mask = jnp.array([1, 1, 1, 1, 1, 0, 1, 0.0])  # the 7 is padding; so is the second 0
  got = np.asarray(first_occurrence(ids, mask))
  real = np.asarray(mask) > 0
  _, first = np.unique(np.where(real, ids, -1), return_index=True)
  expected = np.zeros(len(ids), bool)
  expected[first] = True
  np.testing.assert_array_equal(got, expected & real)
  np.testing.assert_array_equal(got, [1, 1, 0, 1, 0, 0, 0, 0])
  # A padding row never hides a real row with the same id.
  np.testing.assert_array_equal(first_occurrence(jnp.array([5, 5]), jnp.array([0.0, 1.0])),
                                [False, True])


@pytest.mark.parametrize("jit", [False, True])
def test_info_nce_against_numpy(jit):
  v1, v2 = rand(B, D, seed=1), rand(B, D, seed=2)
  got = maybe_jit(info_nce, jit)(jnp.asarray(v1, jnp.float32), jnp.asarray(v2, jnp.float32),
                                 temperature=0.2)
  np.testing.assert_allclose(got, np_info_nce(v1, v2, 0.2), rtol=1e-5)


def test_info_nce_gradient_against_finite_differences():
  v1, v2 = rand(B, D, seed=1), rand(B, D, seed=2)
  g = jax.grad(lambda a: info_nce(a, jnp.asarray(v2, jnp.float32), temperature=0.2))(
      jnp.asarray(v1, jnp.float32))
  np.testing.assert_allclose(g, numeric_grad(lambda a: np_info_nce(a, v2, 0.2), v1),
                             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("jit", [False, True])
def test_simgcl_loss_is_infonce_over_unique_nodes(jit):
  uv1, uv2, iv1, iv2 = (rand(B, D, seed=s) for s in range(4))
  users = np.array([0, 2, 0, 1, 2, 3])
  items = np.array([4, 4, 5, 6, 7, 5])
  # Repeated ids carry identical vectors, as gathered rows of one table would.
  for v in (uv1, uv2):
    v[2], v[4] = v[0], v[1]
  for v in (iv1, iv2):
    v[1], v[5] = v[0], v[2]
  f = maybe_jit(simgcl_loss, jit)
  loss, aux = f(user_view1=jnp.asarray(uv1, jnp.float32), user_view2=jnp.asarray(uv2, jnp.float32),
                item_view1=jnp.asarray(iv1, jnp.float32), item_view2=jnp.asarray(iv2, jnp.float32),
                users=jnp.asarray(users), items=jnp.asarray(items), temperature=0.15, weight=0.2)
  _, ui = np.unique(users, return_index=True)
  _, ii = np.unique(items, return_index=True)
  user_term = np_info_nce(uv1[ui], uv2[ui], 0.15)
  item_term = np_info_nce(iv1[ii], iv2[ii], 0.15)
  np.testing.assert_allclose(aux["cl_user"], user_term, rtol=1e-5)
  np.testing.assert_allclose(aux["cl_item"], item_term, rtol=1e-5)
  np.testing.assert_allclose(loss, 0.2 * (user_term + item_term), rtol=1e-5)


def test_simgcl_loss_padding_row_changes_nothing():
  uv1, uv2, iv1, iv2 = (rand(B, D, seed=s) for s in range(4))
  users, items = np.arange(B), np.arange(B) + 10

  def run(pad):
    args = [uv1, uv2, iv1, iv2]
    u, i, m = users, items, np.ones(B)
    if pad:  # a padding row with large random vectors and a fresh id
      args = [np.concatenate([a, 50 * rand(1, D, seed=9)]) for a in args]
      u, i, m = np.append(users, 99), np.append(items, 0), np.append(m, 0.0)

    def f(a):
      return simgcl_loss(user_view1=a, user_view2=jnp.asarray(args[1], jnp.float32),
                         item_view1=jnp.asarray(args[2], jnp.float32),
                         item_view2=jnp.asarray(args[3], jnp.float32), users=jnp.asarray(u),
                         items=jnp.asarray(i), temperature=0.2, weight=0.5,
                         mask=jnp.asarray(m, jnp.float32))[0]
    a0 = jnp.asarray(args[0], jnp.float32)
    return f(a0), jax.grad(f)(a0)

  loss, grad = run(False)
  loss_p, grad_p = run(True)
  np.testing.assert_allclose(loss_p, loss, rtol=1e-6)
  np.testing.assert_allclose(grad_p[:B], grad, rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(grad_p[B:], 0.0)
  # An all-padding batch: 0 and finite gradients, not NaN.
  z = jnp.zeros((B,), jnp.float32)
  g = jax.grad(lambda a: info_nce(a, a, temperature=0.2, mask=z))(jnp.asarray(uv1, jnp.float32))
  assert float(info_nce(jnp.asarray(uv1), jnp.asarray(uv2), temperature=0.2, mask=z)) == 0.0
  assert np.isfinite(np.asarray(g)).all()


def test_cross_layer_view_picks_layer_l_star():
  hs = [jnp.full((2, 3), float(k)) for k in range(4)]  # h^0 .. h^3
  np.testing.assert_array_equal(cross_layer_view(hs, layer=1), hs[1])
  np.testing.assert_array_equal(cross_layer_view(hs, layer=3), hs[3])
  for bad in (0, 4):
    with pytest.raises(ValueError, match="1 <= l\\* <= 3"):
      cross_layer_view(hs, layer=bad)


# --- DirectAU ----------------------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True])
def test_directau_against_numpy(jit):
  u, i = rand(B, D, seed=5), rand(B, D, seed=6)
  f = maybe_jit(directau_loss, jit)
  loss, aux = f(user=jnp.asarray(u, jnp.float32), item=jnp.asarray(i, jnp.float32), gamma=2.0)
  align = np.mean(np.sum((np_unit(u) - np_unit(i)) ** 2, -1))
  uu, ui = np_uniformity(u), np_uniformity(i)
  np.testing.assert_allclose(aux["align"], align, rtol=1e-5)
  np.testing.assert_allclose(aux["uniform_user"], uu, rtol=1e-5)
  np.testing.assert_allclose(aux["uniform_item"], ui, rtol=1e-5)
  np.testing.assert_allclose(loss, align + 2.0 * (uu + ui) / 2, rtol=1e-5)
  assert float(aux["reg"]) == 0.0


def test_uniformity_by_hand():
  # Two orthogonal unit vectors: |a - b|^2 = 2 -> log exp(-4) = -4. Three: one more pair at 4.
  x = jnp.array([[3.0, 0.0], [0.0, 0.5]])
  np.testing.assert_allclose(uniformity(x), -4.0, rtol=1e-6)
  x3 = jnp.array([[1.0, 0.0], [0.0, 1.0], [-2.0, 0.0]])
  np.testing.assert_allclose(uniformity(x3), np.log((2 * np.exp(-4) + np.exp(-8)) / 3), rtol=1e-6)
  # Fewer than two real rows: no pair, 0.
  assert float(uniformity(x, mask=jnp.array([1.0, 0.0]))) == 0.0


def test_directau_gradient_against_finite_differences():
  u, i = rand(B, D, seed=5), rand(B, D, seed=6)

  def ref(a):
    return (np.mean(np.sum((np_unit(a) - np_unit(i)) ** 2, -1))
            + 0.5 * (np_uniformity(a) + np_uniformity(i)) / 2)

  g = jax.grad(lambda a: directau_loss(user=a, item=jnp.asarray(i, jnp.float32), gamma=0.5)[0])(
      jnp.asarray(u, jnp.float32))
  np.testing.assert_allclose(g, numeric_grad(ref, u), rtol=1e-4, atol=1e-5)


def test_directau_padding_row_changes_nothing_and_unique_ids():
  u, i = rand(B, D, seed=5), rand(B, D, seed=6)
  pad_u = np.concatenate([u, 30 * rand(2, D, seed=7)])
  pad_i = np.concatenate([i, 30 * rand(2, D, seed=8)])
  mask = jnp.asarray(np.r_[np.ones(B), 0, 0], jnp.float32)

  def f(a, b, m=None, **ids):
    return directau_loss(user=a, item=jnp.asarray(b, jnp.float32), gamma=1.0, mask=m, **ids)[0]

  base = f(jnp.asarray(u, jnp.float32), i)
  padded = f(jnp.asarray(pad_u, jnp.float32), pad_i, mask)
  np.testing.assert_allclose(padded, base, rtol=1e-5)
  g = jax.grad(f)(jnp.asarray(u, jnp.float32), i)
  gp = jax.grad(f)(jnp.asarray(pad_u, jnp.float32), pad_i, mask)
  np.testing.assert_allclose(gp[:B], g, rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(gp[B:], 0.0)
  # With ids, uniformity runs over unique users: rows 0 and 3 are one user.
  u_dup = u.copy()
  u_dup[3] = u_dup[0]
  users = jnp.array([0, 1, 2, 0, 4, 5])
  _, aux = directau_loss(user=jnp.asarray(u_dup, jnp.float32), item=jnp.asarray(i, jnp.float32),
                         gamma=1.0, users=users)
  np.testing.assert_allclose(aux["uniform_user"], np_uniformity(np.delete(u_dup, 3, 0)),
                             rtol=1e-5)
  _, aux_rows = directau_loss(user=jnp.asarray(u_dup, jnp.float32),
                              item=jnp.asarray(i, jnp.float32), gamma=1.0)
  np.testing.assert_allclose(aux_rows["uniform_user"], np_uniformity(u_dup), rtol=1e-5)


def test_directau_l2_term():
  u, i = rand(B, D, seed=5), rand(B, D, seed=6)
  ue, ie = rand(B, D, seed=7), rand(B, D, seed=8)
  _, aux = directau_loss(user=jnp.asarray(u, jnp.float32), item=jnp.asarray(i, jnp.float32),
                         gamma=1.0, user_ego=jnp.asarray(ue, jnp.float32),
                         item_ego=jnp.asarray(ie, jnp.float32), l2=0.1)
  np.testing.assert_allclose(aux["reg"], 0.1 * (np.sum(ue ** 2) + np.sum(ie ** 2)) / 2 / B,
                             rtol=1e-5)
  with pytest.raises(ValueError, match="user_ego"):
    directau_loss(user=jnp.asarray(u), item=jnp.asarray(i), gamma=1.0, l2=0.1)


# --- SimpleX CCL -------------------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True])
def test_ccl_against_numpy(jit):
  u, p, n = rand(B, D, seed=10), rand(B, D, seed=11), rand(B, K, D, seed=12)
  f = maybe_jit(cosine_contrastive_loss, jit)
  args = {"user": jnp.asarray(u, jnp.float32), "pos": jnp.asarray(p, jnp.float32),
          "neg": jnp.asarray(n, jnp.float32)}
  # A margin of 0.2 leaves some negatives above and some below it on random vectors.
  loss, aux = f(**args, margin=0.2, negative_weight=3.0)
  np.testing.assert_allclose(loss, np_ccl(u, p, n, 0.2, 3.0), rtol=1e-5)
  cos_n = np.einsum("bd,bkd->bk", np_unit(u), np_unit(n))
  assert 0 < np.mean(cos_n > 0.2) < 1
  np.testing.assert_allclose(aux["active_neg"], np.mean(cos_n > 0.2), rtol=1e-6)
  np.testing.assert_allclose(aux["pos_cos"], np.mean(np.sum(np_unit(u) * np_unit(p), -1)),
                             rtol=1e-5)
  # negative_weight=None: w = K, i.e. a plain sum over the negatives (the reference's default).
  loss_sum, _ = f(**args, margin=0.2)
  np.testing.assert_allclose(loss_sum, np_ccl(u, p, n, 0.2, K), rtol=1e-5)


def test_ccl_by_hand():
  user = jnp.array([[1.0, 0.0]])
  pos = jnp.array([[1.0, 1.0]])                       # cos = 1/sqrt 2
  neg = jnp.array([[[2.0, 0.0], [0.0, 1.0]]])         # cos = 1 and 0
  loss, _ = cosine_contrastive_loss(user=user, pos=pos, neg=neg, margin=0.5, negative_weight=4.0)
  # (1 - 0.70711) + 4 / 2 * (max(0, 1 - .5) + max(0, 0 - .5)) = 0.29289 + 1.
  np.testing.assert_allclose(loss, 1 - 1 / np.sqrt(2) + 1.0, rtol=1e-6)


def test_ccl_gradient_and_padding():
  u, p, n = rand(B, D, seed=10), rand(B, D, seed=11), rand(B, K, D, seed=12)
  n32, p32 = jnp.asarray(n, jnp.float32), jnp.asarray(p, jnp.float32)
  g = jax.grad(lambda a: cosine_contrastive_loss(user=a, pos=p32, neg=n32, margin=0.2,
                                                 negative_weight=3.0)[0])(
      jnp.asarray(u, jnp.float32))
  np.testing.assert_allclose(g, numeric_grad(lambda a: np_ccl(a, p, n, 0.2, 3.0), u),
                             rtol=1e-4, atol=1e-5)
  # A padding row changes nothing; its gradient is 0.
  pu = jnp.asarray(np.concatenate([u, rand(1, D, seed=13)]), jnp.float32)
  pp = jnp.asarray(np.concatenate([p, rand(1, D, seed=14)]), jnp.float32)
  pn = jnp.asarray(np.concatenate([n, rand(1, K, D, seed=15)]), jnp.float32)
  mask = jnp.asarray(np.r_[np.ones(B), 0], jnp.float32)
  f = lambda a: cosine_contrastive_loss(user=a, pos=pp, neg=pn, margin=0.2,
                                        negative_weight=3.0, mask=mask)[0]
  np.testing.assert_allclose(f(pu), np_ccl(u, p, n, 0.2, 3.0), rtol=1e-5)
  gp = jax.grad(f)(pu)
  np.testing.assert_allclose(gp[:B], g, rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(gp[B:], 0.0)


def test_ccl_l2_term_matches_losses_rule():
  u, p, n = rand(B, D, seed=10), rand(B, D, seed=11), rand(B, K, D, seed=12)
  ego = [jnp.asarray(rand(*s, seed=20 + k), jnp.float32)
         for k, s in enumerate([(B, D), (B, D), (B, K, D)])]
  _, aux = cosine_contrastive_loss(user=jnp.asarray(u), pos=jnp.asarray(p), neg=jnp.asarray(n),
                                   margin=0.9, user_ego=ego[0], pos_ego=ego[1], neg_ego=ego[2],
                                   l2=0.01)
  np.testing.assert_allclose(aux["reg"], 0.01 * l2_reg(user_ego=ego[0], pos_ego=ego[1],
                                                       neg_ego=ego[2]), rtol=1e-6)
  with pytest.raises(ValueError, match="neg_ego"):
    cosine_contrastive_loss(user=jnp.asarray(u), pos=jnp.asarray(p), neg=jnp.asarray(n),
                            margin=0.9, l2=0.01)


def test_alignment_mask():
  u, i = rand(B, D, seed=5), rand(B, D, seed=6)
  m = np.r_[np.ones(B - 2), 0, 0]
  got = alignment(jnp.asarray(u, jnp.float32), jnp.asarray(i, jnp.float32),
                  mask=jnp.asarray(m, jnp.float32))
  np.testing.assert_allclose(got, np.mean(np.sum((np_unit(u) - np_unit(i))[:B - 2] ** 2, -1)),
                             rtol=1e-5)


def test_ccl_shared_negatives_equal_broadcast_rows():
  u, p, n = rand(B, D, seed=10), rand(B, D, seed=11), rand(K, D, seed=12)
  ue, pe, ne = (jnp.asarray(rand(*s, seed=30 + k), jnp.float32)
                for k, s in enumerate([(B, D), (B, D), (K, D)]))
  args = {"user": jnp.asarray(u, jnp.float32), "pos": jnp.asarray(p, jnp.float32),
          "margin": 0.1, "negative_weight": 2.0, "user_ego": ue, "pos_ego": pe, "l2": 0.1}
  _, aux = cosine_contrastive_loss(neg=jnp.asarray(n, jnp.float32), neg_ego=ne, **args)
  _, aux_rows = cosine_contrastive_loss(
      neg=jnp.broadcast_to(jnp.asarray(n, jnp.float32), (B, K, D)),
      neg_ego=jnp.zeros((B, K, D)), **args)
  np.testing.assert_allclose(aux["ccl"], np_ccl(u, p, np.broadcast_to(n, (B, K, D)), 0.1, 2.0),
                             rtol=1e-5)
  np.testing.assert_allclose(aux["ccl"], aux_rows["ccl"], rtol=1e-6)
  # Shared negatives' L2 counted once per batch: (sum |u0|^2 + |p0|^2 + sum_k |n0_k|^2) / 2 / B.
  expected_reg = 0.1 * (np.sum(np.square(ue)) + np.sum(np.square(pe))
                        + np.sum(np.square(ne))) / 2 / B
  np.testing.assert_allclose(aux["reg"], expected_reg, rtol=1e-5)
