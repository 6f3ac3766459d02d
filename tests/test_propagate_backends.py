"""Every `weighted_sum` backend (segment, dense, csr) against a hand-computed example and scipy:
values and gradients (x and weights), one and several heads, jit and no-jit, padded graphs,
and the rules of `resolve_backend`."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest

from gnnrec_jax import propagate
from gnnrec_jax.config import Config
from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.graph import adjacency, build_graph, pad_graph
from gnnrec_jax.models import create_model
from gnnrec_jax.propagate import resolve_backend, weighted_sum

BACKENDS = ("segment", "dense", "csr")
U, I = 6, 9
N_PAD, E_PAD = 20, 80


def random_graph(seed=0, padded=False):
  rng = np.random.default_rng(seed)
  key = np.unique(rng.integers(0, U, 40) * I + rng.integers(0, I - 1, 40))  # item I-1 isolated
  g = build_graph(Interactions(key // I, key % I, rng.uniform(0.5, 2.0, len(key))), U, I)
  return pad_graph(g, n_node=N_PAD, n_edge=E_PAD) if padded else g


def dev(g):
  return jax.tree.map(jnp.asarray, g)


def maybe_jit(f, jit):
  return jax.jit(f) if jit else f


def test_hand_computed_example():
  # Edges 1->0 (w 1), 2->0 (w 2), 0->1 (w 3), 0->2 (w 4), sorted by receiver:
  #   out[0] = 1 x[1] + 2 x[2],  out[1] = 3 x[0],  out[2] = 4 x[0].
  g = jraph.GraphsTuple(nodes=None, edges={}, senders=np.array([1, 2, 0, 0], np.int32),
                        receivers=np.array([0, 0, 1, 2], np.int32), n_node=np.array([3]),
                        n_edge=np.array([4]), globals=None)
  x = jnp.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
  w = jnp.array([1.0, 2.0, 3.0, 4.0])
  want = np.array([[8.0, 80.0], [3.0, 30.0], [4.0, 40.0]])
  # d sum(out) / d w_e = sum(x[s_e]); d sum(out) / d x[j] = sum of w over edges leaving j.
  want_dw = np.array([22.0, 33.0, 11.0, 11.0])
  want_dx = np.array([[7.0, 7.0], [1.0, 1.0], [2.0, 2.0]])
  for b in BACKENDS:
    for jit in (False, True):
      f = maybe_jit(lambda x, w, b=b: weighted_sum(x, g, w, num_nodes=3, backend=b), jit)
      np.testing.assert_allclose(f(x, w), want, rtol=1e-6)
      dx, dw = jax.grad(lambda x, w: jnp.sum(f(x, w)), argnums=(0, 1))(x, w)
      np.testing.assert_allclose(dx, want_dx, rtol=1e-6)
      np.testing.assert_allclose(dw, want_dw, rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_backends_match_scipy(jit, padded):
  g = random_graph(1, padded)
  n = N_PAD if padded else U + I
  x = np.random.default_rng(2).standard_normal((n, 5)).astype(np.float32)
  want = adjacency(g) @ x
  gd = dev(g)
  for b in BACKENDS:
    f = maybe_jit(lambda x, g, b=b: weighted_sum(x, g, g.edges["norm"], num_nodes=n, backend=b),
                  jit)
    np.testing.assert_allclose(f(jnp.asarray(x), gd), want, atol=1e-5, err_msg=b)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("heads", [1, 3])
def test_gradients_agree_across_backends(jit, heads):
  g = dev(random_graph(3, padded=True))
  rng = np.random.default_rng(4)
  num_edges = E_PAD
  if heads == 1:
    x = jnp.asarray(rng.standard_normal((N_PAD, 4)), jnp.float32)
    w = jnp.asarray(rng.uniform(0, 1, num_edges), jnp.float32)
  else:
    x = jnp.asarray(rng.standard_normal((N_PAD, heads, 2)), jnp.float32)
    w = jnp.asarray(rng.uniform(0, 1, (num_edges, heads)), jnp.float32)

  def loss(x, w, b):
    # A nonlinear loss, so that the cotangent g differs per node.
    return jnp.sum(jnp.sin(weighted_sum(x, g, w, num_nodes=N_PAD, backend=b)) * jnp.cos(x))

  results = {b: maybe_jit(jax.value_and_grad(lambda x, w, b=b: loss(x, w, b), argnums=(0, 1)),
                          jit)(x, w) for b in BACKENDS}
  ref_val, (ref_dx, ref_dw) = results["segment"]
  for b in ("dense", "csr"):
    val, (dx, dw) = results[b]
    np.testing.assert_allclose(val, ref_val, atol=1e-5, err_msg=b)
    np.testing.assert_allclose(dx, ref_dx, atol=1e-5, err_msg=b)
    np.testing.assert_allclose(dw, ref_dw, atol=1e-5, err_msg=b)


def test_csr_gradient_matches_finite_differences():
  g = dev(random_graph(5))
  n = U + I
  x = jnp.asarray(np.random.default_rng(6).standard_normal((n, 3)), jnp.float64
                  if jax.config.jax_enable_x64 else jnp.float32)
  w = jnp.asarray(g.edges["weight"], x.dtype)
  f = lambda x, w: jnp.sum(jnp.tanh(weighted_sum(x, g, w, num_nodes=n, backend="csr")))
  dw = jax.grad(f, argnums=1)(x, w)
  eps = 1e-2
  for e in (0, 7, 20):
    bump = jnp.zeros_like(w).at[e].set(eps)
    fd = (f(x, w + bump) - f(x, w - bump)) / (2 * eps)
    np.testing.assert_allclose(dw[e], fd, rtol=2e-2, atol=1e-4)


def test_csr_threads_give_the_same_result(monkeypatch):
  g = dev(random_graph(7))
  n = U + I
  x = jnp.asarray(np.random.default_rng(8).standard_normal((n, 6)), jnp.float32)
  c = jnp.asarray(np.random.default_rng(9).standard_normal((n, 6)), jnp.float32)
  f = jax.jit(jax.value_and_grad(
      lambda x: jnp.sum(weighted_sum(x, g, g.edges["norm"], num_nodes=n, backend="csr") * c)))
  monkeypatch.setenv("GNNREC_CSR_THREADS", "1")
  one = f(x)
  monkeypatch.setattr(propagate, "_THREAD_MIN_WORK", 1)  # split even this tiny product
  for threads in ("2", "3"):
    monkeypatch.setenv("GNNREC_CSR_THREADS", threads)
    several = f(x)
    np.testing.assert_allclose(several[0], one[0], atol=1e-5)
    np.testing.assert_allclose(several[1], one[1], atol=1e-6)


def test_csr_under_vmap_and_bfloat16():
  g = dev(random_graph(10))
  n = U + I
  xs = jnp.asarray(np.random.default_rng(11).standard_normal((2, n, 3)), jnp.float32)
  f = lambda x, b: weighted_sum(x, g, g.edges["norm"], num_nodes=n, backend=b)
  np.testing.assert_allclose(jax.vmap(lambda x: f(x, "csr"))(xs),
                             jax.vmap(lambda x: f(x, "segment"))(xs), atol=1e-5)
  out = f(xs[0].astype(jnp.bfloat16), "csr")
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(out.astype(jnp.float32), f(xs[0], "segment"), atol=0.05)


def test_csr_refuses_unsorted_edges():
  g = jraph.GraphsTuple(nodes=None, edges={}, senders=np.array([0, 1], np.int32),
                        receivers=np.array([1, 0], np.int32), n_node=np.array([2]),
                        n_edge=np.array([2]), globals=None)
  with pytest.raises(Exception, match="sorted by receiver"):
    jax.block_until_ready(weighted_sum(jnp.ones((2, 2)), g, jnp.ones(2), num_nodes=2,
                                       backend="csr"))


def test_csr_x_gradient_skips_the_edge_gathers():
  # The weight cotangent needs [E, d] gathers; XLA must drop them when only dx is requested
  # (LightGCN's fixed norm), else the csr backward costs as much as the segment one.
  g = dev(random_graph(12))
  n, d = U + I, 7
  num_edges = int(g.senders.shape[0])
  x = jnp.ones((n, d))
  grad_x = jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.sin(
      weighted_sum(x, g, w, num_nodes=n, backend="csr")))))
  grad_w = jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.sin(
      weighted_sum(x, g, w, num_nodes=n, backend="csr"))), argnums=1))
  w = g.edges["norm"]
  shape = f"[{num_edges},1,{d}]"
  assert shape not in grad_x.lower(x, w).compile().as_text()
  assert shape in grad_w.lower(x, w).compile().as_text()


def test_lightgcn_model_csr_equals_dense():
  g = dev(random_graph(13))
  outs = {}
  for b in ("dense", "csr"):
    model = create_model(Config(model="lightgcn", embed_dim=8, propagation=b),
                         num_users=U, num_items=I)
    params = model.init(jax.random.key(0), g)
    loss = lambda p: jnp.sum(jnp.sin(model.apply(p, g)[0]))
    outs[b] = jax.jit(jax.value_and_grad(loss))(params)
  np.testing.assert_allclose(outs["csr"][0], outs["dense"][0], atol=1e-5)
  for a, b in zip(jax.tree.leaves(outs["csr"][1]), jax.tree.leaves(outs["dense"][1])):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_resolve_backend():
  assert resolve_backend("auto", 10, platform="cpu") == "csr"
  assert resolve_backend("auto", 10**6, platform="cpu") == "csr"
  assert resolve_backend("auto", 10, platform="gpu") == "segment"
  assert resolve_backend("csr", 10, platform="cpu") == "csr"
  assert resolve_backend("csr", 10, platform="tpu") == "segment"  # no host round trip there
  assert resolve_backend("dense", 10**6, platform="cpu") == "dense"  # explicit choice kept
  with pytest.raises(ConfigError, match="csr"):
    resolve_backend("cusparse", 10)
