"""Property-based tests (hypothesis) of the splits and the graph builder, and numerical guards.

tests/test_splits.py and tests/test_graph.py check exact answers on hand-built examples; here the
same contracts must hold for every small input hypothesis can construct: splits partition the rows
(by RecBole's size rule, deterministically in the seed), and the graph is the symmetric
normalised adjacency whose theory (D^-1/2 A D^-1/2 sqrt(d) = sqrt(d), spectrum in [-1, 1]) holds
with or without weights, self-loops, social edges and padding.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnnrec_jax.config import Config
from gnnrec_jax.data import splits
from gnnrec_jax.data.types import Interactions
from gnnrec_jax.graph import build as G
from gnnrec_jax.models.embedding import create_model

SETTINGS = settings(max_examples=50, deadline=None)


@st.composite
def interactions(draw, max_users=12, max_items=15, timestamps=True):
  """Distinct (user, item) rows in a shuffled order; row k has weight k, so rows are traceable."""
  num_users = draw(st.integers(1, max_users))
  num_items = draw(st.integers(1, max_items))
  pairs = draw(st.sets(st.tuples(st.integers(0, num_users - 1), st.integers(0, num_items - 1)),
                       min_size=1, max_size=60))
  pairs = draw(st.permutations(sorted(pairs)))
  n = len(pairs)
  ts = (np.array(draw(st.lists(st.integers(0, 20), min_size=n, max_size=n)), np.int64)
        if timestamps else None)
  inter = Interactions(np.array([u for u, _ in pairs]), np.array([i for _, i in pairs]),
                       np.arange(n, dtype=np.float32), ts)
  return inter, num_users, num_items


RATIOS = st.sampled_from([(0.8, 0.1, 0.1), (0.7, 0.2, 0.1), (0.6, 0.2, 0.2), (0.9, 0.1, 0.0),
                          (0.5, 0.25, 0.25), (8, 1, 1), (0.34, 0.33, 0.33)])


def _row_ids(part):
  return part.weight.astype(np.int64)  # weight k marks input row k


def _assert_partition(inter, split):
  ids = [_row_ids(p) for p in (split.train, split.valid, split.test)]
  # Disjoint, and their union is every input row exactly once.
  assert sorted(np.concatenate(ids).tolist()) == list(range(len(inter)))
  for part, rows in zip((split.train, split.valid, split.test), ids):
    assert np.all(np.diff(rows) > 0)  # each part keeps the input's row order
    np.testing.assert_array_equal(part.user, inter.user[rows])  # rows travel whole
    np.testing.assert_array_equal(part.item, inter.item[rows])
    np.testing.assert_array_equal(part.timestamp, inter.timestamp[rows])


def _same(a, b):
  return all(np.array_equal(_row_ids(x), _row_ids(y))
             for x, y in ((a.train, b.train), (a.valid, b.valid), (a.test, b.test)))


# --- splits ---------------------------------------------------------------------------------------

@SETTINGS
@given(st.integers(1, 100_000), RATIOS)
def test_split_counts_sum_and_train_never_empty(n, ratios):
  counts = splits.split_counts(n, ratios)
  assert sum(counts) == n and min(counts) >= 0
  assert counts[0] >= 1  # RecBole's rule never takes a user's last training row


@SETTINGS
@given(st.integers(10, 100_000))
def test_split_counts_default_ratios_are_a_tenth_each(n):
  # The docstring's closed form for (0.8, 0.1, 0.1), n >= 10.
  assert splits.split_counts(n, (0.8, 0.1, 0.1)) == [n - 2 * (n // 10), n // 10, n // 10]


@SETTINGS
@given(interactions(), RATIOS, st.integers(0, 2**31 - 1))
def test_random_split_partitions_by_the_recbole_rule(data, ratios, seed):
  inter, num_users, _ = data
  s = splits.split_random(inter, ratios=ratios, seed=seed)
  _assert_partition(inter, s)
  per_user = [np.bincount(p.user, minlength=num_users) for p in (s.train, s.valid, s.test)]
  for u, n in enumerate(np.bincount(inter.user, minlength=num_users)):
    if n:
      assert [int(c[u]) for c in per_user] == splits.split_counts(int(n), ratios)
  assert _same(s, splits.split_random(inter, ratios=ratios, seed=seed))


@SETTINGS
@given(interactions())
def test_leave_one_out_takes_each_users_latest(data):
  inter, num_users, _ = data
  s = splits.split_leave_one_out(inter)
  _assert_partition(inter, s)
  counts = np.bincount(inter.user, minlength=num_users)
  for u in range(num_users):
    rows = np.flatnonzero(inter.user == u)
    in_valid = _row_ids(s.valid)[s.valid.user == u]
    in_test = _row_ids(s.test)[s.test.user == u]
    if counts[u] < 3:
      assert len(in_valid) == len(in_test) == 0
      continue
    assert len(in_valid) == len(in_test) == 1
    # Latest by (timestamp, row): the row order breaks timestamp ties.
    order = sorted(rows, key=lambda r: (inter.timestamp[r], r))
    assert [in_valid[0], in_test[0]] == order[-2:]


@SETTINGS
@given(interactions(), RATIOS)
def test_temporal_split_is_a_global_time_cut(data, ratios):
  inter, _, _ = data
  s = splits.split_temporal(inter, ratios=ratios)
  _assert_partition(inter, s)
  assert [len(s.train), len(s.valid), len(s.test)] == splits.split_counts(len(inter), ratios)
  parts = [p.timestamp for p in (s.train, s.valid, s.test) if len(p)]
  for early, late in zip(parts, parts[1:]):
    assert early.max() <= late.min()


@SETTINGS
@given(interactions(), st.floats(0.05, 0.95), st.integers(0, 2**31 - 1))
def test_cold_item_split_keeps_cold_items_out_of_train(data, fraction, seed):
  inter, _, num_items = data
  s = splits.split_cold_item(inter, cold_fraction=fraction, seed=seed, num_items=num_items)
  _assert_partition(inter, s)
  present = np.unique(inter.item)
  assert len(s.cold_items) == round(fraction * len(present))
  assert set(s.cold_items.tolist()) <= set(present.tolist())
  assert not np.isin(s.train.item, s.cold_items).any()
  # All interactions of a cold item sit in one part (valid or test), never in both.
  assert not set(s.valid.item[np.isin(s.valid.item, s.cold_items)].tolist()) & \
      set(s.test.item[np.isin(s.test.item, s.cold_items)].tolist())
  again = splits.split_cold_item(inter, cold_fraction=fraction, seed=seed, num_items=num_items)
  assert np.array_equal(s.cold_items, again.cold_items) and _same(s, again)


# --- graph builder --------------------------------------------------------------------------------

@st.composite
def graphs(draw):
  """(graph, inter, U, I, weighted_norm, self_loops, social): weights >= 0 (zeros included)."""
  inter, num_users, num_items = draw(interactions(max_users=8, max_items=8, timestamps=False))
  weights = np.array(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0]),
                                   min_size=len(inter), max_size=len(inter))), np.float32)
  inter = Interactions(inter.user, inter.item, weights)
  weighted_norm, self_loops = draw(st.booleans()), draw(st.booleans())
  social = None
  if num_users > 1 and draw(st.booleans()):
    pairs = draw(st.sets(st.tuples(st.integers(0, num_users - 1), st.integers(0, num_users - 1))
                         .filter(lambda p: p[0] < p[1]), min_size=1, max_size=6))
    social = np.array(sorted(pairs), np.int64)
  g = G.build_graph(inter, num_users, num_items, weighted_norm=weighted_norm,
                    self_loops=self_loops, social=social)
  return g, inter, num_users, num_items, weighted_norm, self_loops, social


def _dense(g, values="norm"):
  return G.adjacency(g, values=values).toarray()


@SETTINGS
@given(graphs())
def test_graph_has_both_directions_sorted_by_receiver(case):
  g, inter, num_users, num_items, _, self_loops, social = case
  edges = sorted(zip(g.senders.tolist(), g.receivers.tolist()))
  want = []
  for u, i in zip(inter.user.tolist(), inter.item.tolist()):
    want += [(u, num_users + i), (num_users + i, u)]
  for a, b in ([] if social is None else social.tolist()):
    want += [(a, b), (b, a)]
  if self_loops:
    want += [(k, k) for k in range(num_users + num_items)]
  assert edges == sorted(want)
  pairs = list(zip(g.receivers.tolist(), g.senders.tolist()))
  assert pairs == sorted(pairs)


@SETTINGS
@given(graphs())
def test_norm_matrix_is_symmetric_with_the_theorys_eigenvector(case):
  g, inter, num_users, num_items, weighted_norm, self_loops, social = case
  n = num_users + num_items
  a_hat = _dense(g)
  np.testing.assert_allclose(a_hat, a_hat.T, rtol=1e-6, atol=1e-7)
  # Degrees: bincount of receivers (binary), or the sum of the weights on them.
  binary = np.bincount(g.receivers, minlength=n)
  np.testing.assert_array_equal(G.degrees(g), binary)
  d = G.degrees(g, weighted=True) if weighted_norm else binary.astype(np.float64)
  np.testing.assert_allclose(G.degrees(g, weighted=True),
                             np.bincount(g.receivers, weights=g.edges["weight"], minlength=n),
                             rtol=1e-6)
  # Row sums: D^-1 A is row-stochastic, i.e. D^-1/2 A D^-1/2 sqrt(d) = sqrt(d), rows of
  # isolated nodes (and of nodes whose edges all weigh 0) are zero.
  np.testing.assert_allclose(a_hat @ np.sqrt(d), np.sqrt(d), rtol=1e-5, atol=1e-6)
  # So its spectrum lies in [-1, 1] (1 attained when a node has an edge of weight > 0).
  eig = np.linalg.eigvalsh(a_hat.astype(np.float64))
  assert eig.max() <= 1 + 1e-5 and eig.min() >= -1 - 1e-5
  if (d > 0).any():
    assert eig.max() == pytest.approx(1.0, abs=1e-5)


@SETTINGS
@given(graphs(), st.integers(1, 5), st.integers(0, 20), st.integers(0, 2**31 - 1))
def test_padding_preserves_sums(case, extra_nodes, extra_edges, seed):
  g, _, num_users, num_items, *_ = case
  n, e = num_users + num_items, g.senders.shape[0]
  p = G.pad_graph(g, n_node=n + extra_nodes, n_edge=e + extra_edges)
  np.testing.assert_array_equal(_dense(p)[:n, :n], _dense(g))
  np.testing.assert_array_equal(_dense(p)[n:], 0.0)
  np.testing.assert_array_equal(G.degrees(p)[:n], G.degrees(g))
  np.testing.assert_array_equal(G.degrees(p)[n:], 0.0)
  # One propagation step (a sum of norm-weighted messages per receiver) agrees on real nodes.
  x = np.random.default_rng(seed).normal(size=(n + extra_nodes, 3))

  def step(gr, m):
    out = np.zeros((m, 3))
    np.add.at(out, gr.receivers, x[gr.senders] * (gr.edges["norm"] * gr.edges["mask"])[:, None])
    return out

  np.testing.assert_allclose(step(p, n + extra_nodes)[:n], step(g, n), rtol=1e-6, atol=1e-9)


# --- numerical guards (models) --------------------------------------------------------------------

U, I = 5, 6


def _graph_with_isolated_nodes():
  """User 0 and item I-1 have no train edges (a cold user and a cold item)."""
  user = np.array([1, 1, 2, 3, 3, 4, 4, 2])
  item = np.array([0, 1, 1, 2, 3, 4, 0, 3])
  return jax.tree.map(jnp.asarray, G.build_graph(Interactions(user, item), U, I))


@pytest.mark.parametrize("model", ["mf", "lightgcn", "softmax_gnn", "ngcf", "gat"])
def test_nodes_without_neighbours_get_finite_vectors_and_gradients(model):
  g = _graph_with_isolated_nodes()
  m = create_model(Config(model=model, embed_dim=4, num_layers=2, heads=2), num_users=U,
                   num_items=I)
  params = jax.jit(m.init)(jax.random.key(0), g)["params"]
  final, ego = jax.jit(m.apply)({"params": params}, g)
  assert np.isfinite(final).all() and np.isfinite(ego).all()
  for node in (0, U + I - 1):
    assert np.abs(final[node]).sum() > 0  # their own layer-0 vector, not zeros
  if model == "lightgcn":  # mean of (ego, 0, 0): propagation adds nothing to an isolated node
    np.testing.assert_allclose(final[0], ego[0] / 3, rtol=1e-6)
  grads = jax.jit(jax.grad(lambda p: jnp.sum(m.apply({"params": p}, g)[0] ** 2)))(params)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(grads))


def test_softmax_gnn_alphas_stay_finite_for_huge_logits():
  g = _graph_with_isolated_nodes()
  # init_std 300 and temperature 0.1 give dot-product logits of order 1e5-1e6.
  m = create_model(Config(model="softmax_gnn", embed_dim=8, num_layers=2, init_std=300.0,
                          temperature=0.1, initial_alpha="none"), num_users=U, num_items=I)
  params = jax.jit(m.init)(jax.random.key(0), g)["params"]
  apply = jax.jit(lambda p, g: m.apply({"params": p}, g, mutable=["intermediates"]))
  (final, ego), state = apply(params, g)
  logits = (ego[g.senders] * ego[g.receivers]).sum(-1) / np.sqrt(8) / 0.1
  assert np.abs(logits).max() > 1e4
  has_in = np.bincount(np.asarray(g.receivers), minlength=U + I) > 0
  for k in range(2):
    alpha = np.asarray(state["intermediates"][f"alpha_{k}"][0])
    assert np.isfinite(alpha).all() and (alpha >= 0).all()
    sums = np.asarray(jax.ops.segment_sum(alpha[:, 0], g.receivers, num_segments=U + I))
    np.testing.assert_allclose(sums[has_in], 1.0, rtol=1e-5)
  assert np.isfinite(final).all()
  grads = jax.jit(jax.grad(lambda p: jnp.sum(m.apply({"params": p}, g)[0])))(params)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(grads))
