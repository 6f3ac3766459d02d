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


def test_blend_scores_by_hand():
  """(1 - b) z(model) + b z(AA), each standardised per row; b = 0 and 1 are the two alone."""
  emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [0.0, 0.0]], np.float32)
  users = np.arange(5, dtype=np.int32)
  aa = _scores("adamic_adar").astype(np.float64)
  dots = emb.astype(np.float64) @ emb.T.astype(np.float64)
  z = lambda x: (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
  # Row 4 of `dots` is all zeros: a constant row standardises to zeros, not NaN.
  z_dots = np.zeros_like(dots)
  z_dots[:4] = z(dots[:4])
  for b in (0.0, 0.3, 1.0):
    got = np.asarray(social.blend_scores(social.blend_score_params(emb, PAIRS, 5, b), users))
    np.testing.assert_allclose(got, (1 - b) * z_dots + b * z(aa), rtol=1e-5, atol=1e-6)
  # User 0 by hand at b = 0.5: AA row [2/ln2... ] and dots row [1, 0, 1, 2, 0].
  row_aa = np.array([1 / np.log(2) + 1 / np.log(3), 1 / np.log(3), 1 / np.log(2),
                     1 / np.log(3), 0.0])
  row_dot = np.array([1.0, 0.0, 1.0, 2.0, 0.0])
  zz = lambda r: (r - r.mean()) / r.std()
  got = np.asarray(social.blend_scores(social.blend_score_params(emb, PAIRS, 5, 0.5),
                                       np.array([0], np.int32)))[0]
  np.testing.assert_allclose(got, 0.5 * zz(row_dot) + 0.5 * zz(row_aa), rtol=1e-5)


def test_a_closed_form_model_refuses_what_it_would_ignore():
  from gnnrec_jax import models
  from gnnrec_jax.errors import ConfigError
  ds = social.with_friendships(make_synthetic(num_users=24, num_items=8),
                               np.stack([np.arange(23), np.arange(1, 24)], 1))
  cfg = configs.get_config("ease")
  with pytest.raises(ConfigError, match="ease reads only the interaction matrix; social_weight "
                     "would be ignored"):
    models.create(prepare(cfg.replace(social_weight=0.1), ds))


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


def test_the_experiment_splits_friendships_and_only_train_pairs_enter_the_graph():
  ds = make_synthetic(num_users=24, num_items=8)
  pairs = np.stack([np.arange(23), np.arange(1, 24)], 1)  # a chain of 23 friendships
  ds = social.with_friendships(ds, pairs)
  cfg = configs.get_config("test").replace(social=True)
  exp = prepare(cfg, ds)
  fr = exp.friends
  assert fr.sizes() == {"train": 19, "valid": 2, "test": 2}  # split_counts(23, .8/.1/.1)
  parts = [set(map(tuple, p.tolist())) for p in (fr.train, fr.valid, fr.test)]
  assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
  np.testing.assert_array_equal(fr.all_pairs(), social.canonical_pairs(pairs))
  # The same split as split_friendships with the config's ratios and seed.
  for got, want in zip((fr.train, fr.valid, fr.test),
                       social.split_friendships(pairs, ratios=cfg.friend_split, seed=cfg.seed)):
    np.testing.assert_array_equal(got, want)
  s, r = np.asarray(exp.graph.senders), np.asarray(exp.graph.receivers)
  uu = (s < ds.num_users) & (r < ds.num_users)
  np.testing.assert_array_equal(social.canonical_pairs(np.stack([s[uu], r[uu]], 1)), fr.train)
  base = prepare(cfg.replace(social=False), ds)
  assert base.friends is not None  # split even when training ignores it: friend evaluation
  np.testing.assert_array_equal(
      graph_lib.degrees(exp.graph)[:ds.num_users] - graph_lib.degrees(base.graph)[:ds.num_users],
      np.bincount(fr.train.ravel(), minlength=ds.num_users))
  # A run that reads friendships is tied to its train pairs; another seed splits differently.
  other = prepare(cfg.replace(friend_split=(0.6, 0.2, 0.2)), ds)
  assert other.fingerprint != exp.fingerprint
  assert prepare(cfg.replace(social=False, social_weight=1.0), ds).fingerprint != \
      base.fingerprint


def test_friendship_options_without_a_social_network_are_refused():
  ds = make_synthetic(num_users=12, num_items=8)
  cfg = configs.get_config("test")
  assert prepare(cfg, ds).friends is None
  for bad in (dict(social=True), dict(social_weight=0.5)):
    with pytest.raises(DataError, match="has no user-user edges"):
      prepare(cfg.replace(**bad), ds)


@pytest.mark.parametrize("bad, message", [
    ("social_weight=-1", "social_weight must be a finite number >= 0"),
    ("social_loss=hinge", r"social_loss must be one of bpr \| softmax"),
    ("friend_split=0.5,0.1,0.1", "friend_split must be three"),
    ("friend_split=0,0.5,0.5", "friend_split must be three"),
])
def test_friendship_config_is_checked(bad, message):
  from gnnrec_jax.config import Config, apply_overrides
  from gnnrec_jax.errors import ConfigError
  with pytest.raises(ConfigError, match=message):
    apply_overrides(Config(), [bad])


def _friendship_reference(a, f, n, kind, tau, mask):
  """NumPy: per-row BPR mean over negatives, or -log softmax of the friend among them."""
  pos = (a * f).sum(-1)
  neg = np.einsum("bd,bkd->bk", a, n)
  if kind == "bpr":
    per_row = np.log1p(np.exp(-(pos[:, None] - neg))).mean(-1)
  else:
    logits = np.concatenate([pos[:, None], neg], 1) / tau
    per_row = -(logits[:, 0] - np.log(np.exp(logits).sum(-1)))
  return (mask * per_row).sum() / mask.sum()


@pytest.mark.parametrize("kind", ["bpr", "softmax"])
def test_friendship_loss_matches_numpy(kind):
  from gnnrec_jax.objectives import losses
  rng = np.random.default_rng(0)
  a, f = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
  n = rng.normal(size=(6, 3, 4))
  mask = np.array([1, 1, 1, 1, 0, 1], np.float64)
  cast = lambda x: np.asarray(x, np.float32)
  got, aux = losses.friendship_loss(user=cast(a), friend=cast(f), neg=cast(n), weight=0.5,
                                    kind=kind, temperature=0.2, mask=cast(mask))
  want = _friendship_reference(a, f, n, kind, 0.2, mask)
  assert float(aux["friend"]) == pytest.approx(want, rel=1e-5)
  assert float(got) == pytest.approx(0.5 * want, rel=1e-5)
  # The L2 term is LightGCN's rule on the rows' layer-0 vectors, inside the weight.
  ego = [cast(rng.normal(size=x.shape)) for x in (a, f, n)]
  with_l2, aux = losses.friendship_loss(user=cast(a), friend=cast(f), neg=cast(n), weight=0.5,
                                        kind=kind, temperature=0.2, mask=cast(mask),
                                        user_ego=ego[0], friend_ego=ego[1], neg_ego=ego[2],
                                        l2=0.1)
  sq = lambda x: (np.asarray(x, np.float64) ** 2).reshape(len(x), -1).sum(-1)
  reg = 0.1 * (mask * (sq(ego[0]) + sq(ego[1]) + sq(ego[2]))).sum() / 2 / mask.sum()
  assert float(aux["friend_reg"]) == pytest.approx(reg, rel=1e-5)
  assert float(with_l2) == pytest.approx(0.5 * (want + reg), rel=1e-5)


def test_the_model_loss_adds_the_friendship_term_exactly():
  """loss(social_weight=w) = loss(0) + w-weighted friendship_loss over the drawn friendships."""
  import jax
  from gnnrec_jax import models
  from gnnrec_jax.objectives import losses
  ds = make_synthetic(num_users=24, num_items=8)
  ds = social.with_friendships(ds, np.stack([np.arange(23), np.arange(1, 24)], 1))
  cfg = configs.get_config("test").replace(social=True, num_negatives=2, l2=1e-3)
  rec0 = models.create(prepare(cfg, ds))
  rec1 = models.create(prepare(cfg.replace(social_weight=0.7), ds))
  params = rec0.init(jax.random.key(0))
  batch = {"user": np.array([0, 1, 2, 3], np.int32), "item": np.array([0, 1, 2, 3], np.int32),
           "mask": np.ones(4, np.float32)}
  key = jax.random.key(5)
  l0, aux0 = rec0.loss(params, rec0.inputs, batch, key)
  l1, aux1 = rec1.loss(params, rec1.inputs, batch, key)
  assert float(aux1["bpr"]) == pytest.approx(float(aux0["bpr"]), rel=1e-6)  # same item draws
  # Redraw the friendships the model drew (fold_in 13, then pick / negative keys).
  pick, neg_key = jax.random.split(jax.random.fold_in(key, 13))
  pairs = np.asarray(rec1.inputs["friends"])
  assert len(pairs) == 2 * len(rec1.exp.friends.train)
  rows = pairs[np.asarray(jax.random.randint(pick, (4,), 0, len(pairs)))]
  neg = np.asarray(jax.random.randint(neg_key, (4, 2), 0, ds.num_users))
  final, ego = rec1.forward(params, rec1.inputs, train=True,
                            rng=jax.random.split(key)[0])
  final, ego = np.asarray(final, np.float64), np.asarray(ego, np.float64)
  term = _friendship_reference(final[rows[:, 0]], final[rows[:, 1]], final[neg], "bpr", 1.0,
                               np.ones(4))
  sq = lambda x: (x ** 2).reshape(len(x), -1).sum(-1)
  reg = 1e-3 * (sq(ego[rows[:, 0]]) + sq(ego[rows[:, 1]]) + sq(ego[neg])).sum() / 2 / 4
  assert float(aux1["friend"]) == pytest.approx(term, rel=1e-5)
  assert float(l1 - l0) == pytest.approx(0.7 * (term + reg), rel=1e-4)
  assert "friend" not in aux0


def _clustered_friends(num_users=48, clusters=4, seed=0):
  """Friendships inside 4 user clusters that the items do not reveal (items are random)."""
  rng = np.random.default_rng(seed)
  ds = make_synthetic(num_users=num_users, num_items=30, in_cluster=0.25, seed=seed)
  group = rng.permutation(num_users) % clusters  # not the item clusters
  pairs = [(a, b) for a in range(num_users) for b in range(a + 1, num_users)
           if group[a] == group[b] and rng.random() < 0.5]
  return social.with_friendships(ds, np.array(pairs))


def test_the_friendship_objective_learns_held_out_friends(tmp_path):
  """With friendships unrelated to the items, the item model ranks friends near chance; the
  friendship term (no friendship edges) finds the held-out ones."""
  from gnnrec_jax.training.fit import fit
  ds = _clustered_friends()
  cfg = configs.get_config("test").replace(epochs=30, embed_dim=16, lr=0.02, patience=100,
                                           friend_split=(0.7, 0.15, 0.15))
  res = {}
  for w in (0.0, 1.0):
    fitted = fit(prepare(cfg.replace(social_weight=w), ds), str(tmp_path / f"w{w}"),
                 progress=False)
    res[w] = social.evaluate_model_friends(fitted.rec, fitted.params, "test", ks=(5,))
  # 48 users, 11 same-cluster candidates of 47: chance Recall@5 is about 5/47 = .11 (measured:
  # .148 without the term, .549 with it).
  assert res[0.0]["recall@5"] < 0.3
  assert res[1.0]["recall@5"] > max(0.45, 2 * res[0.0]["recall@5"])


def _lastfm_folder(path, ds):
  """`ds` written in the Last.fm layout (1-based ids): every interaction in data1.txt, a few in
  test1.txt, the friendships in trustnetwork.txt."""
  inter = ds.interactions
  rows = [f"{u + 1}\t{i + 1}\t{w:g}\n" for u, i, w in zip(inter.user, inter.item, inter.weight)]
  path.mkdir()
  (path / "data1.txt").write_text("".join(rows[5:]))
  (path / "test1.txt").write_text("".join(rows[:5]))
  (path / "trustnetwork.txt").write_text("".join(f"{a + 1}\t{b + 1}\n" for a, b in ds.social))
  return path


def test_recommend_friends_from_the_command_line(tmp_path):
  import json
  from test_cli import FAST, _main
  ds = _clustered_friends()
  data = _lastfm_folder(tmp_path / "lastfm", ds)
  w = tmp_path / "run"
  code, _, err = _main("train", "--dataset", "lastfm", "--data-dir", data, "--workdir", w,
                       *FAST, "--set", "social_weight=1", "--set", "social=true")
  assert code == 0, err
  code, out, err = _main("recommend", "--workdir", w, "--friends", "1", "-k", "5", "--explain")
  assert code == 0, err
  lines = out.strip().splitlines()
  assert lines[0].startswith("Top 5 friends for user 1 (lightgcn, lastfm; ")
  res = json.loads(lines[-1])
  assert res["friends_of"] == "1" and len(res["recommendations"]) == 5
  # Users are the files' ids; user "1" is index 0 (ids sorted). Known friends (every pair of
  # the file, held-out ones too) and the user itself are never suggested.
  known = {int(b) + 1 for a, b in ds.social if a == 0} | {int(a) + 1 for a, b in ds.social
                                                          if b == 0}
  got = [int(r["user"]) for r in res["recommendations"]]
  assert not set(got) & (known | {1})
  scores = [r["score"] for r in res["recommendations"]]
  assert scores == sorted(scores, reverse=True)
  for r in res["recommendations"]:  # common friends by hand
    theirs = {int(b) + 1 for a, b in ds.social if a + 1 == int(r["user"])} | {
        int(a) + 1 for a, b in ds.social if b + 1 == int(r["user"])}
    assert sorted(int(c) for c in r["common_friends"]) == sorted(known & theirs)
    assert f"{len(known & theirs)} friends in common" in out
  # evaluate adds the friend metrics of the held-out friendships.
  from gnnrec_jax.training import workdir
  code, out, err = _main("evaluate", "--workdir", w)
  assert code == 0, err
  got = json.loads(out.strip().splitlines()[-1])
  _, rec, params = workdir.load(str(w))
  want = social.evaluate_model_friends(rec, params, "test")
  assert got["friends/recall@10"] == pytest.approx(want["recall@10"])
  assert got["friends/num_users"] == want["num_users"] > 0
  # --blend 1 ranks by Adamic-Adar on the train friendships alone; the blend chosen on valid
  # is the grid's best valid Recall@20, and its test metrics are the blended scorer's.
  code, out, err = _main("recommend", "--workdir", w, "--friends", "1", "-k", "5", "--blend",
                         "1")
  assert code == 0, err
  got = [int(r["user"]) - 1 for r in json.loads(out.strip().splitlines()[-1])["recommendations"]]
  aa = np.array(social.neighbour_scores(
      social.neighbour_score_params(rec.exp.friends.train, 48, method="adamic_adar"),
      np.array([0], np.int32)))[0]
  aa[[0, *(k - 1 for k in known)]] = -np.inf
  assert got == list(np.argsort(-aa, kind="stable")[:5])
  best, grid = social.choose_blend(rec, params, grid=(0.0, 0.5, 1.0), metric="recall@10")
  assert grid[best]["recall@10"] == max(g["recall@10"] for g in grid.values())
  assert grid[0.0]["recall@10"] == pytest.approx(
      social.evaluate_model_friends(rec, params, "valid", ks=(10,))["recall@10"])
  code, _, err = _main("recommend", "--workdir", w, "--friends", "1", "--blend", "1.5")
  assert code == 2 and "--blend must be in [0, 1]" in err
  code, _, err = _main("recommend", "--workdir", w, "--friends", "1", "-k", "47")
  assert code == 2 and f"the user and its {len(known)} friends are excluded" in err
  code, _, err = _main("recommend", "--workdir", w, "--friends", "1", "--user", "1")
  assert code == 2 and "exactly one of --user" in err


def test_recommend_friends_needs_a_social_network(tmp_path):
  from test_cli import FAST, _main
  w = tmp_path / "run"
  code, _, err = _main("train", "--dataset", "lightgcn", "--data-dir", "tests/data/lightgcn",
                       "--workdir", w, *FAST, "--set", "topk=2,5", "--set",
                       "select_metric=ndcg@5")
  assert code == 0, err
  code, _, err = _main("recommend", "--workdir", w, "--friends", "0")
  assert code == 2 and "has no social network" in err and len(err.strip().splitlines()) == 1

