"""propagate.py and the layers against independent numpy/scipy references, jit and no-jit,
padded and unpadded graphs."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest

from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.graph.build import adjacency, build_graph, pad_graph
from gnnrec_jax.graph.propagate import (
  edge_dot,
  edge_softmax,
  normalize_per_receiver,
  weighted_sum,
)
from gnnrec_jax.models.layers import GATConv, LightGCNConv, NGCFConv, SoftmaxEdgeConv

U, I = 5, 7
N = U + I
N_PAD, E_PAD = 16, 48


def random_graph(seed=0, padded=False, isolated=True):
  """A random bipartite graph; user U-1 and item I-1 stay isolated when `isolated`."""
  rng = np.random.default_rng(seed)
  users = rng.integers(0, U - 1 if isolated else U, 30)
  items = rng.integers(0, I - 1 if isolated else I, 30)
  key = np.unique(users * I + items)
  train = Interactions(key // I, key % I, rng.uniform(0.5, 2.0, len(key)))
  g = build_graph(train, U, I)
  if padded:
    g = pad_graph(g, n_node=N_PAD, n_edge=E_PAD)
  return g


def dev(g):
  return jax.tree.map(jnp.asarray, g)


def maybe_jit(f, jit):
  return jax.jit(f) if jit else f


# --- weighted_sum ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["segment", "dense", "blocked", "auto"])
@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_weighted_sum_matches_scipy(backend, jit, padded):
  g = random_graph(padded=padded)
  n = N_PAD if padded else N
  x = np.random.default_rng(1).normal(size=(n, 3)).astype(np.float32)
  expected = adjacency(g, values="norm") @ x  # independent host-side sparse matmul
  f = maybe_jit(lambda x, g: weighted_sum(x, g, g.edges["norm"], num_nodes=n, backend=backend),
                jit)
  out = f(jnp.asarray(x), dev(g))
  np.testing.assert_allclose(out, expected, atol=1e-6)
  np.testing.assert_array_equal(out[U - 1], 0.0)  # isolated user: zero message


@pytest.mark.parametrize("jit", [False, True])
def test_weighted_sum_multi_head_backends_agree(jit):
  g = dev(random_graph(padded=True))
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(N_PAD, 2, 3)), jnp.float32)
  w = jnp.asarray(rng.uniform(size=(E_PAD, 2)), jnp.float32)
  seg = maybe_jit(lambda x, w, g: weighted_sum(x, g, w, num_nodes=N_PAD), jit)(x, w, g)
  dense = maybe_jit(lambda x, w, g: weighted_sum(x, g, w, num_nodes=N_PAD, backend="dense"),
                    jit)(x, w, g)
  np.testing.assert_allclose(seg, dense, atol=1e-5)
  # Head h is an ordinary weighted sum with the head's weights.
  for h in range(2):
    one = weighted_sum(x[:, h], g, w[:, h], num_nodes=N_PAD)
    np.testing.assert_allclose(seg[:, h], one, atol=1e-6)


def test_weighted_sum_gradients_agree_across_backends():
  g = dev(random_graph())
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(N, 4)), jnp.float32)
  w = jnp.asarray(rng.uniform(size=g.senders.shape[0]), jnp.float32)

  def loss(x, w, backend):
    return jnp.sum(jnp.sin(weighted_sum(x, g, w, num_nodes=N, backend=backend)))

  gs = jax.grad(loss, argnums=(0, 1))(x, w, "segment")
  gd = jax.grad(loss, argnums=(0, 1))(x, w, "dense")
  for a, b in zip(gs, gd):
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("shape", [(N_PAD, 4), (N_PAD, 2, 3)])
def test_edge_dot_backends_agree_with_loop(shape, cpu_device):  # CPU: csr and scipy are CPU-only
  g = dev(random_graph(padded=True))
  rng = np.random.default_rng(12)
  q = jnp.asarray(rng.normal(size=shape), jnp.float32)
  k = jnp.asarray(rng.normal(size=shape), jnp.float32)
  s, r = np.asarray(g.senders), np.asarray(g.receivers)
  expected = np.stack([np.sum(np.asarray(q)[r[e]] * np.asarray(k)[s[e]], axis=-1)
                       for e in range(len(s))])
  backends = ("segment", "dense", "blocked", "csr", "scipy")
  for backend in backends:
    out = jax.jit(lambda q, k, g: edge_dot(q, k, g, num_nodes=N_PAD, backend=backend))(q, k, g)
    np.testing.assert_allclose(out, expected, atol=1e-5, err_msg=backend)
  # A graph without the reverse-edge index takes the kernel's re-sorting transpose instead.
  no_rev = g._replace(edges={k: v for k, v in g.edges.items() if k != "reverse"})
  grads = {(b, rev): jax.grad(lambda q, k: jnp.sum(jnp.tanh(
      edge_dot(q, k, g if rev else no_rev, num_nodes=N_PAD, backend=b)) * k[:, None].sum()),
      argnums=(0, 1))(q, k) for b in backends for rev in (True, False)}
  ref = grads[("segment", True)]
  for key, got in grads.items():
    for a, b in zip(got, ref):
      np.testing.assert_allclose(a, b, atol=1e-5, err_msg=str(key))


# --- edge_softmax ------------------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True])
def test_edge_softmax_matches_jraph_and_sums_to_one(jit):
  g = dev(random_graph())
  logits = jnp.asarray(np.random.default_rng(4).normal(size=(g.senders.shape[0], 2)) * 3,
                       jnp.float32)
  alpha = maybe_jit(lambda l, g: edge_softmax(l, g, num_nodes=N), jit)(logits, g)
  ref = jraph.segment_softmax(logits, g.receivers, num_segments=N)
  np.testing.assert_allclose(alpha, ref, atol=1e-6)
  sums = jax.ops.segment_sum(alpha, g.receivers, num_segments=N)
  has_in = np.bincount(np.asarray(g.receivers), minlength=N) > 0
  np.testing.assert_allclose(sums[has_in], 1.0, atol=1e-6)
  np.testing.assert_array_equal(sums[~has_in], 0.0)


@pytest.mark.parametrize("jit", [False, True])
def test_edge_softmax_padding_edges_get_zero(jit):
  g0, g1 = dev(random_graph()), dev(random_graph(padded=True))
  e0 = g0.senders.shape[0]
  logits = jnp.asarray(np.random.default_rng(5).normal(size=E_PAD), jnp.float32)
  logits = logits.at[e0:].set(50.0)  # large padding logits must not leak into any denominator
  a0 = edge_softmax(logits[:e0], g0, num_nodes=N)
  a1 = maybe_jit(lambda l, g: edge_softmax(l, g, num_nodes=N_PAD), jit)(logits, g1)
  np.testing.assert_allclose(a1[:e0], a0, atol=1e-6)
  np.testing.assert_array_equal(a1[e0:], 0.0)


def test_edge_softmax_huge_logits_stay_finite():
  g = dev(random_graph(padded=True))
  e = g.senders.shape[0]
  logits = jnp.asarray(np.random.default_rng(6).choice([-1e4, 0.0, 1e4], size=(e, 2)),
                       jnp.float32)
  alpha = edge_softmax(logits, g, num_nodes=N_PAD)
  assert np.all(np.isfinite(alpha))
  grad = jax.grad(lambda l: jnp.sum(edge_softmax(l, g, num_nodes=N_PAD) ** 2))(logits)
  assert np.all(np.isfinite(grad))
  # Two neighbours at 1e4 and 1e4 - 1: alpha = sigmoid(1) and sigmoid(-1), not NaN/inf.
  graph = jraph.GraphsTuple(nodes=None, edges={"mask": jnp.ones(2)}, senders=jnp.array([1, 2]),
                            receivers=jnp.array([0, 0]), n_node=jnp.array([3]),
                            n_edge=jnp.array([2]), globals=None)
  a = edge_softmax(jnp.array([1e4, 1e4 - 1]), graph, num_nodes=3)
  np.testing.assert_allclose(a, [1 / (1 + np.exp(-1)), 1 / (1 + np.exp(1))], rtol=1e-4)


def test_normalize_per_receiver_by_hand():
  # Receiver 0 <- 1 (w 1), 2 (w 3); receiver 1 <- 0 (w 2); a padding edge 3 -> 3 (w 5, mask 0).
  graph = jraph.GraphsTuple(
      nodes=None, edges={"mask": jnp.array([1.0, 1.0, 1.0, 0.0])},
      senders=jnp.array([1, 2, 0, 3]), receivers=jnp.array([0, 0, 1, 3]),
      n_node=jnp.array([4]), n_edge=jnp.array([4]), globals=None)
  out = normalize_per_receiver(jnp.array([1.0, 3.0, 2.0, 5.0]), graph, num_nodes=4)
  np.testing.assert_allclose(out, [0.25, 0.75, 1.0, 0.0])


# --- layers ------------------------------------------------------------------------------------


def np_softmax_conv(h, g, *, heads, temperature, scale, wq=None, wk=None, mix=1.0,
                    act=lambda x: x):
  """Per-receiver loop reference for SoftmaxEdgeConv."""
  n, d = h.shape
  dh = d // heads
  q = h @ wq if wq is not None else h
  k = h @ wk if wk is not None else h
  s, r = np.asarray(g.senders), np.asarray(g.receivers)
  norm, mask = np.asarray(g.edges["norm"]), np.asarray(g.edges["mask"])
  alpha = np.zeros((len(s), heads))
  out = np.zeros((n, d))
  for node in range(n):
    idx = np.where((r == node) & (mask > 0))[0]
    for hd in range(heads):
      sl = slice(hd * dh, (hd + 1) * dh)
      if len(idx) == 0:
        continue
      logit = np.array([q[node, sl] @ k[s[e], sl] for e in idx]) / temperature
      if scale:
        logit /= np.sqrt(dh)
      p = np.exp(logit - logit.max())
      p /= p.sum()
      alpha[idx, hd] = mix * p + (1 - mix) * norm[idx]
      out[node, sl] = alpha[idx, hd] @ h[s[idx], sl]
  return act(out), alpha


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("backend", ["segment", "dense"])
def test_softmax_edge_conv_matches_reference(jit, padded, backend):
  g = random_graph(padded=padded)
  n = N_PAD if padded else N
  h = np.random.default_rng(7).normal(size=(n, 4)).astype(np.float32)
  h[N:] = 0.0
  layer = SoftmaxEdgeConv(n, heads=2, temperature=0.5, scale_logits=True, qk_proj=True,
                          activation="tanh", attention_mix=0.7, backend=backend)
  params = layer.init(jax.random.key(0), jnp.asarray(h), dev(g))
  out, alpha = maybe_jit(layer.apply, jit)(params, jnp.asarray(h), dev(g))
  wq = np.asarray(params["params"]["query"]["kernel"])
  wk = np.asarray(params["params"]["key"]["kernel"])
  ref_out, ref_alpha = np_softmax_conv(h, g, heads=2, temperature=0.5, scale=True, wq=wq, wk=wk,
                                       mix=0.7, act=np.tanh)
  np.testing.assert_allclose(alpha, ref_alpha, atol=1e-5)
  np.testing.assert_allclose(out[:N], ref_out[:N], atol=1e-5)
  np.testing.assert_array_equal(out[U - 1], 0.0)  # isolated: zero message, tanh(0) = 0


def test_softmax_edge_conv_padded_equals_unpadded():
  h = np.random.default_rng(8).normal(size=(N_PAD, 4)).astype(np.float32)
  layer0 = SoftmaxEdgeConv(N, activation="elu")
  layer1 = SoftmaxEdgeConv(N_PAD, activation="elu", backend="dense")
  g0, g1 = dev(random_graph()), dev(random_graph(padded=True))
  o0, a0 = layer0.apply({}, jnp.asarray(h[:N]), g0)
  o1, a1 = layer1.apply({}, jnp.asarray(h), g1)
  np.testing.assert_allclose(o1[:N], o0, atol=1e-5)
  np.testing.assert_allclose(a1[:a0.shape[0]], a0, atol=1e-6)


def test_softmax_edge_conv_rejects_bad_config():
  g = dev(random_graph())
  with pytest.raises(ConfigError, match="divisible"):
    SoftmaxEdgeConv(N, heads=3).apply({}, jnp.ones((N, 4)), g)
  with pytest.raises(ConfigError, match="activation"):
    SoftmaxEdgeConv(N, activation="swish").apply({}, jnp.ones((N, 4)), g)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_lightgcn_conv_is_normalised_adjacency(jit, padded):
  g = random_graph(padded=padded)
  n = N_PAD if padded else N
  h = np.random.default_rng(9).normal(size=(n, 3)).astype(np.float32)
  # Hand-built D^-1/2 A D^-1/2 from the binary adjacency, independent of graph.py's norm.
  s, r, m = np.asarray(g.senders), np.asarray(g.receivers), np.asarray(g.edges["mask"])
  a = np.zeros((n, n))
  a[r[m > 0], s[m > 0]] = 1.0
  deg = a.sum(1)
  inv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1)), 0.0)
  expected = (inv[:, None] * a * inv[None, :]) @ h
  out = maybe_jit(LightGCNConv(n).apply, jit)({}, jnp.asarray(h), dev(g))
  np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_ngcf_conv_matches_reference(jit, padded):
  g = random_graph(padded=padded)
  n = N_PAD if padded else N
  h = np.random.default_rng(10).normal(size=(n, 4)).astype(np.float32)
  layer = NGCFConv(n, 3, dropout=0.5)
  params = layer.init(jax.random.key(1), jnp.asarray(h), dev(g))
  out = maybe_jit(layer.apply, jit)(params, jnp.asarray(h), dev(g))  # eval: no dropout
  p = jax.tree.map(np.asarray, params["params"])
  lap = adjacency(g, values="norm").toarray()
  side = lap @ h
  pre = (h + side) @ p["W1"]["kernel"] + p["W1"]["bias"] + (side * h) @ p["W2"]["kernel"] \
      + p["W2"]["bias"]
  act = np.where(pre > 0, pre, 0.2 * pre)
  expected = act / np.maximum(np.linalg.norm(act, axis=1, keepdims=True), 1e-12)
  np.testing.assert_allclose(out, expected, atol=1e-5)
  # Training mode drops messages with the 'dropout' rng: some entries become exactly 0.
  dropped = layer.apply(params, jnp.asarray(h), dev(g), train=True,
                        rngs={"dropout": jax.random.key(2)})
  assert np.mean(np.asarray(dropped) == 0) > 0.2


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("concat", [True, False])
def test_gat_conv_matches_reference(jit, padded, concat):
  g = random_graph(padded=padded)
  n = N_PAD if padded else N
  h = np.random.default_rng(11).normal(size=(n, 4)).astype(np.float32)
  heads, feats = 2, 4
  layer = GATConv(n, feats, heads=heads, concat_heads=concat)
  params = layer.init(jax.random.key(3), jnp.asarray(h), dev(g))
  out, alpha = maybe_jit(layer.apply, jit)(params, jnp.asarray(h), dev(g))
  p = jax.tree.map(np.asarray, params["params"])
  dh = feats // heads if concat else feats
  z = (h @ p["W"]["kernel"]).reshape(n, heads, dh)
  s, r, m = np.asarray(g.senders), np.asarray(g.receivers), np.asarray(g.edges["mask"])
  expected = np.zeros((n, heads, dh))
  for node in range(n):
    idx = np.where((r == node) & (m > 0))[0]
    if len(idx) == 0:
      continue
    for hd in range(heads):
      # a^T [W h_i || W h_j] with a = [a_dst; a_src]
      e = np.array([np.concatenate([z[node, hd], z[s[j], hd]])
                    @ np.concatenate([p["a_dst"][hd], p["a_src"][hd]]) for j in idx])
      e = np.where(e > 0, e, 0.2 * e)
      a = np.exp(e - e.max())
      a /= a.sum()
      np.testing.assert_allclose(alpha[idx, hd], a, atol=1e-5)
      expected[node, hd] = a @ z[s[idx], hd]
  expected = expected.reshape(n, heads * dh) if concat else expected.mean(1)
  np.testing.assert_allclose(out, expected, atol=1e-5)
