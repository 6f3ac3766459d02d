"""gnnrec_jax.graph.build on the seed's 3-user x 3-item example, every number worked out by hand.

Edges (weights): u1-i1 0.8, u1-i2 0.2, u2-i2 0.6, u2-i3 0.4, u3-i3 0.8. Node ids: u1..u3 -> 0..2,
i1..i3 -> 3..5. Binary degrees [2, 2, 1, 1, 2, 2]; weighted degrees [1.0, 1.0, 0.8, 0.8, 0.8, 1.2].
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gnnrec_jax.data.types import Interactions
from gnnrec_jax.graph import build as G

U, I = 3, 3
S2 = np.sqrt(2.0)


@pytest.fixture
def train():
  return Interactions(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 2, 2]),
                      np.array([0.8, 0.2, 0.6, 0.4, 0.8]))


def _edges(g, key="norm"):
  """{(sender, receiver): value} over real edges."""
  mask = np.asarray(g.edges["mask"]) > 0
  return {(int(s), int(r)): float(v) for s, r, v, m in
          zip(g.senders, g.receivers, g.edges[key], mask) if m}


# Hand-computed 1/sqrt(|N(u)| |N(i)|) for each undirected user-item pair.
NORM = {(0, 3): 1 / S2, (0, 4): 0.5, (1, 4): 0.5, (1, 5): 0.5, (2, 5): 1 / S2}
# w / sqrt(d_u d_i) with weighted degrees.
WNORM = {(0, 3): 0.8 / np.sqrt(1.0 * 0.8), (0, 4): 0.2 / np.sqrt(1.0 * 0.8),
         (1, 4): 0.6 / np.sqrt(1.0 * 0.8), (1, 5): 0.4 / np.sqrt(1.0 * 1.2),
         (2, 5): 0.8 / np.sqrt(0.8 * 1.2)}


def test_degrees_and_norm(train):
  g = G.build_graph(train, U, I)
  assert G.degrees(g).tolist() == [2, 2, 1, 1, 2, 2]
  np.testing.assert_allclose(G.degrees(g, weighted=True), [1.0, 1.0, 0.8, 0.8, 0.8, 1.2],
                             rtol=1e-6)
  got = _edges(g)
  assert len(got) == 10  # both directions of 5 interactions
  for (u, i), v in NORM.items():
    assert got[(u, i)] == pytest.approx(v, rel=1e-6)
    assert got[(i, u)] == pytest.approx(v, rel=1e-6)  # the reverse edge has the same entry
  w = _edges(g, "weight")
  assert w[(0, 3)] == w[(3, 0)] == pytest.approx(0.8) and w[(1, 5)] == pytest.approx(0.4)
  assert g.n_node.tolist() == [6] and g.n_edge.tolist() == [10] and g.nodes is None


def test_sorted_by_receiver_then_sender(train):
  g = G.build_graph(train, U, I)
  pairs = list(zip(g.receivers.tolist(), g.senders.tolist()))
  assert pairs == sorted(pairs)
  assert g.receivers.tolist() == [0, 0, 1, 1, 2, 3, 4, 4, 5, 5]
  assert g.senders.tolist() == [3, 4, 4, 5, 5, 0, 0, 1, 1, 2]
  assert g.senders.dtype == np.int32 and g.edges["norm"].dtype == np.float32


def test_adjacency_is_symmetric_normalised(train):
  g = G.build_graph(train, U, I)
  a = G.adjacency(g).toarray()
  expected = np.zeros((6, 6))
  for (u, i), v in NORM.items():
    expected[u, i] = expected[i, u] = v
  np.testing.assert_allclose(a, expected, rtol=1e-6)
  # D^-1/2 A D^-1/2 from the binary adjacency directly.
  b = (expected > 0).astype(float)
  d = b.sum(1)
  np.testing.assert_allclose(a, b / np.sqrt(np.outer(d, d)), rtol=1e-6)


def test_weighted_norm(train):
  g = G.build_graph(train, U, I, weighted_norm=True)
  got = _edges(g)
  for (u, i), v in WNORM.items():
    assert got[(u, i)] == pytest.approx(v, rel=1e-6)
    assert got[(i, u)] == pytest.approx(v, rel=1e-6)


def test_self_loops(train):
  g = G.build_graph(train, U, I, self_loops=True)
  assert G.degrees(g).tolist() == [3, 3, 2, 2, 3, 3]
  got = _edges(g)
  assert len(got) == 16
  for k, d in enumerate([3, 3, 2, 2, 3, 3]):
    assert got[(k, k)] == pytest.approx(1 / d, rel=1e-6)  # 1/sqrt(d_k d_k)
  assert got[(0, 3)] == pytest.approx(1 / np.sqrt(3 * 2), rel=1e-6)
  assert got[(2, 5)] == pytest.approx(1 / np.sqrt(2 * 3), rel=1e-6)
  assert _edges(g, "weight")[(4, 4)] == 1.0
  gw = G.build_graph(train, U, I, self_loops=True, weighted_norm=True)
  # Weighted degrees + 1 for the loop: u1 2.0, i1 1.8.
  assert _edges(gw)[(0, 3)] == pytest.approx(0.8 / np.sqrt(2.0 * 1.8), rel=1e-6)


def test_social_edges(train):
  g = G.build_graph(train, U, I, social=np.array([[0, 1]]))
  assert G.degrees(g).tolist() == [3, 3, 1, 1, 2, 2]
  got = _edges(g)
  assert got[(0, 1)] == got[(1, 0)] == pytest.approx(1 / 3)
  assert got[(0, 3)] == pytest.approx(1 / np.sqrt(3 * 1))
  assert got[(2, 5)] == pytest.approx(1 / S2)  # u3 and i3 untouched
  assert _edges(g, "weight")[(0, 1)] == 1.0


def test_isolated_nodes_have_zero_norm():
  g = G.build_graph(Interactions(np.array([0]), np.array([0])), 2, 2)
  assert G.degrees(g).tolist() == [1, 0, 1, 0]
  assert G.adjacency(g).toarray()[0, 2] == 1.0 and np.isfinite(g.edges["norm"]).all()


def test_pad_graph(train):
  g = G.build_graph(train, U, I)
  p = G.pad_graph(g, n_node=8, n_edge=16)
  assert p.n_node.tolist() == [8] and p.n_edge.tolist() == [16]
  assert p.senders.shape == (16,) and p.edges["mask"].tolist() == [1.0] * 10 + [0.0] * 6
  assert p.senders[10:].tolist() == [7] * 6 and p.receivers[10:].tolist() == [7] * 6
  assert p.edges["norm"][10:].tolist() == [0.0] * 6
  np.testing.assert_array_equal(G.degrees(p)[:6], G.degrees(g))
  assert G.degrees(p)[6:].tolist() == [0, 0]
  np.testing.assert_allclose(G.adjacency(p).toarray()[:6, :6], G.adjacency(g).toarray())
  assert G.adjacency(p).sum() == pytest.approx(G.adjacency(g).sum())
  with pytest.raises(ValueError, match="cannot pad"):
    G.pad_graph(g, n_node=6, n_edge=12)  # padding edges need a padding node
  assert G.round_up(10, 8) == 16 and G.round_up(16, 8) == 16


@pytest.mark.parametrize("use_jit", [False, True])
def test_one_propagation_step_padded_equals_unpadded(train, use_jit):
  """sum_j norm_ij x_j by segment_sum (as a layer does) = A_hat @ x, with and without padding."""
  g = G.build_graph(train, U, I)
  p = G.pad_graph(g, n_node=8, n_edge=16)
  x = np.arange(16, dtype=np.float32).reshape(8, 2)

  def step(senders, receivers, norm, mask, x):
    msg = (norm * mask)[:, None] * x[senders]  # [num_edges, d]
    # num_segments from the static shape of x: jnp.sum(n_node) is not jittable.
    return jax.ops.segment_sum(msg, receivers, num_segments=x.shape[0], indices_are_sorted=True)

  f = jax.jit(step) if use_jit else step
  out = np.asarray(f(jnp.asarray(p.senders), jnp.asarray(p.receivers),
                     jnp.asarray(p.edges["norm"]), jnp.asarray(p.edges["mask"]), jnp.asarray(x)))
  expected = G.adjacency(g).toarray() @ x[:6]
  np.testing.assert_allclose(out[:6], expected, rtol=1e-6)
  np.testing.assert_array_equal(out[6:], 0.0)  # padding nodes receive nothing
  # u1 = 1/sqrt2 * x[i1] + 1/2 * x[i2], by hand.
  np.testing.assert_allclose(out[0], x[3] / S2 + x[4] / 2, rtol=1e-6)


def _reference_graph(train, num_users, num_items, social=None, self_loops=False):
  """The straightforward construction: lexsort by (receiver, sender), float64 norms, reverse
  index by binary search (`reverse_edges`)."""
  from gnnrec_jax.graph.build import reverse_edges
  s = [train.user.astype(np.int64), train.item.astype(np.int64) + num_users]
  r = [s[1], s[0]]
  if social is not None:
    s += [social[:, 0], social[:, 1]]
    r += [social[:, 1], social[:, 0]]
  n = num_users + num_items
  if self_loops:
    s.append(np.arange(n))
    r.append(np.arange(n))
  s, r = np.concatenate(s), np.concatenate(r)
  order = np.lexsort((s, r))
  s, r = s[order], r[order]
  deg = np.bincount(r, minlength=n).astype(np.float64)
  inv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1)), 0.0)
  return s, r, (inv[s] * inv[r]).astype(np.float32), reverse_edges(s, r, n)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("extra", ["none", "social", "self_loops", "social_duplicate"])
def test_build_graph_matches_the_reference_construction(seed, extra):
  rng = np.random.default_rng(seed)
  U, I = 40, 30
  key = np.unique(rng.integers(0, U * I, 300))
  perm = rng.permutation(len(key))  # rows in any order
  train = Interactions(key[perm] // I, key[perm] % I)
  social = None
  if extra.startswith("social"):
    pairs = np.unique(rng.integers(0, U, (40, 2)), axis=0)
    social = pairs[pairs[:, 0] != pairs[:, 1]]
    if extra == "social_duplicate":  # (a, b) and (b, a) both listed: each directed edge twice
      social = np.concatenate([social, social[:3, ::-1]])
  g = G.build_graph(train, U, I, social=social, self_loops=extra == "self_loops")
  s, r, norm, rev = _reference_graph(train, U, I, social, extra == "self_loops")
  np.testing.assert_array_equal(g.senders, s)
  np.testing.assert_array_equal(g.receivers, r)
  np.testing.assert_array_equal(g.edges["norm"], norm)  # bit for bit: float64, then rounded
  if extra == "social_duplicate":
    assert rev is None and "reverse" not in g.edges
  else:
    np.testing.assert_array_equal(g.edges["reverse"], rev)
