"""Social helpers: neighbour scores by hand, friend splits, friend-ranking metrics, social graph.

The hand-made 5-user friendship graph used throughout:

    0 - 1        N(0) = {1, 2}     N(1) = {0, 2}     N(2) = {0, 1, 3}
     \\ /         N(3) = {2, 4}     N(4) = {3}
      2 - 3 - 4
"""
import numpy as np
import pytest

from gnnrec_jax import configs
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import DataError
from gnnrec_jax.evaluation import social
from gnnrec_jax.experiment import prepare
from gnnrec_jax.graph import build as graph_lib

PAIRS = np.array([[0, 1], [2, 0], [1, 2], [2, 3], [4, 3]])  # one pair written backwards


def _scores(method):
  params = social.neighbour_score_params(PAIRS, 5, method=method)
  return np.asarray(social.neighbour_scores(params, np.arange(5)))


def test_common_neighbours_by_hand():
  expected = np.array([  # |N(a) ∩ N(b)|, the diagonal is the degree
      [2, 1, 1, 1, 0],
      [1, 2, 1, 1, 0],
      [1, 1, 3, 0, 1],
      [1, 1, 0, 2, 0],
      [0, 0, 1, 0, 1],
  ], np.float32)
  np.testing.assert_array_equal(_scores("common_neighbours"), expected)


def test_adamic_adar_by_hand():
  l2, l3 = 1 / np.log(2), 1 / np.log(3)  # 1/log deg of the common neighbour
  got = _scores("adamic_adar")
  assert got[0, 3] == pytest.approx(l3)          # via 2 (degree 3)
  assert got[0, 1] == pytest.approx(l3)          # via 2
  assert got[0, 2] == pytest.approx(l2)          # via 1 (degree 2)
  assert got[2, 4] == pytest.approx(l2)          # via 3 (degree 2)
  assert got[1, 4] == 0.0
  assert got[2, 2] == pytest.approx(2 * l2 + l2)  # via 0, 1, 3 (all degree 2)


def test_friend_ranking_excludes_self_and_train_friends():
  # Hold out 0-3. User 0's candidates are 3 (CN 1) and 4 (CN 0): a hit at rank 1. User 3's are
  # 0 and 1 (CN 1 each; ties rank the lower index first): a hit at rank 1.
  train = np.array([[0, 1], [0, 2], [1, 2], [2, 3], [3, 4]])
  test = np.array([[0, 3]])
  params = social.neighbour_score_params(train, 5)
  m = social.evaluate_friends(social.neighbour_scores, params, num_users=5, train=train,
                              target=test, ks=(1, 2))
  assert m["num_users"] == 2
  assert m["recall@1"] == 1.0 and m["ndcg@1"] == 1.0
  # With train friends rankable, user 0 lists friend 1 (CN 1, lower index) before 3.
  no_excl = social.evaluate_friends(social.neighbour_scores, params, num_users=5,
                                    train=np.zeros((0, 2)), target=test, ks=(1,))
  assert no_excl["recall@1"] < 1.0


def test_friend_ranking_with_embeddings_and_valid_exclusion():
  # User vectors on a line: score(a, b) = x_a x_b, so user 4 ranks 3 > 2 > 1 > 0.
  emb = np.arange(5, dtype=np.float32)[:, None]
  train = np.array([[3, 4]])
  valid = np.array([[2, 4]])
  test = np.array([[1, 4]])
  m = social.evaluate_friend_embeddings(emb, train=train, target=test, also_exclude=[valid],
                                        ks=(1, 2))
  # User 4: 3 and 2 excluded, 1 is first -> hit. User 1: ranks 4 first (3 and 2 are not
  # excluded for user 1, but 4 scores highest) -> hit.
  assert m["num_users"] == 2 and m["recall@1"] == 1.0
  m = social.evaluate_friend_embeddings(emb, train=train, target=test, ks=(1, 2))
  # Valid not excluded: user 4 ranks 2 (valid friend) first and finds 1 at rank 2.
  assert m["recall@1"] == 0.5 and m["recall@2"] == 1.0
  assert m["ndcg@2"] == pytest.approx((1.0 + 1 / np.log2(3)) / 2)


def test_split_is_disjoint_complete_and_seeded():
  rng = np.random.default_rng(0)
  a = rng.integers(0, 200, 3000)
  b = rng.integers(0, 200, 3000)
  pairs = np.stack([a, b], 1)[a != b]
  canon = social.canonical_pairs(pairs)
  parts = social.split_friendships(pairs, ratios=(0.8, 0.1, 0.1), seed=7)
  sizes = [len(p) for p in parts]
  assert sum(sizes) == len(canon)
  assert sizes[1] == sizes[2] == len(canon) // 10
  keys = [set(map(tuple, p.tolist())) for p in parts]
  assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
  assert set().union(*keys) == set(map(tuple, canon.tolist()))
  again = social.split_friendships(pairs[::-1], ratios=(0.8, 0.1, 0.1), seed=7)
  for p, q in zip(parts, again):  # same seed, input order irrelevant
    np.testing.assert_array_equal(p, q)
  other = social.split_friendships(pairs, ratios=(0.8, 0.1, 0.1), seed=8)
  assert not np.array_equal(parts[2], other[2])
  two = social.split_friendships(pairs, ratios=(0.9, 0.1), seed=7)
  assert len(two) == 2 and len(two[1]) == len(canon) // 10


def test_bad_pairs_are_refused():
  with pytest.raises(DataError, match=r"\(3, 3\)"):
    social.canonical_pairs([[1, 2], [3, 3]])
  with pytest.raises(DataError, match="out of range"):
    social.friend_matrix(np.array([[0, 5]]), 5)


def test_graph_with_social_edges_has_the_right_degrees():
  # 3 users, 2 items: u0-i0, u1-i0, u1-i1, u2-i1; friends u0-u1, u1-u2.
  train = Interactions(np.array([0, 1, 1, 2]), np.array([0, 0, 1, 1]))
  g = graph_lib.build_graph(train, 3, 2, social=np.array([[0, 1], [1, 2]]))
  np.testing.assert_array_equal(graph_lib.degrees(g), [2, 4, 2, 2, 2])
  adj = graph_lib.adjacency(g)
  assert adj[0, 1] == pytest.approx(1 / np.sqrt(2 * 4))  # friend edge, D^-1/2 A D^-1/2
  assert adj[1, 3] == pytest.approx(1 / np.sqrt(4 * 2))  # u1 <- i0
  assert adj[0, 2] == 0.0                                 # friends of friends: no edge


def test_only_train_friendships_enter_the_graph():
  ds = make_synthetic(num_users=12, num_items=8)
  pairs = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 7], [7, 8], [8, 9],
                    [9, 10]])
  f_train, f_test = social.split_friendships(pairs, ratios=(0.8, 0.2), seed=0)
  cfg = configs.get_config("test").replace(social=True)
  exp = prepare(cfg, social.with_friendships(ds, f_train))
  s, r = np.asarray(exp.graph.senders), np.asarray(exp.graph.receivers)
  uu = (s < ds.num_users) & (r < ds.num_users)
  got = social.canonical_pairs(np.stack([s[uu], r[uu]], 1))
  np.testing.assert_array_equal(got, f_train)
  assert not set(map(tuple, f_test.tolist())) & set(map(tuple, got.tolist()))
  base = prepare(cfg.replace(social=False), ds)
  np.testing.assert_array_equal(
      graph_lib.degrees(exp.graph)[:ds.num_users] - graph_lib.degrees(base.graph)[:ds.num_users],
      np.bincount(f_train.ravel(), minlength=ds.num_users))
