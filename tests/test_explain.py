"""Explanations: the per-neighbour terms add up to the score, and match an independent reference.

Models are trained briefly with `fit` and the CPU "test" config on the planted-cluster
dataset; the LightGCN reference propagates with scipy (`graph.adjacency`), not with the model.
"""
import os

import jax
import numpy as np
import pytest

from gnnrec_jax import cli, configs, models
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.evaluation import explain
from gnnrec_jax.models import explain_terms
from gnnrec_jax.experiment import prepare
from gnnrec_jax.graph import build as graph_lib
from gnnrec_jax.models import ease, inductive
from gnnrec_jax.training.fit import fit

TOL = 1e-5
USERS = (0, 7, 33)
LASTFM = os.path.join(os.path.dirname(__file__), "data", "lastfm")


def _trained(tmp_path_factory, **overrides):
  ds = make_synthetic()
  cfg = configs.get_config("test").replace(**overrides)
  workdir = str(tmp_path_factory.mktemp(cfg.model))
  fitted = fit(prepare(cfg, ds), workdir, progress=False)
  return fitted.rec, fitted.params


def _init(exp):
  rec = models.create(exp)
  return rec, rec.init(jax.random.key(exp.config.seed))


@pytest.fixture(scope="module")
def lightgcn(tmp_path_factory):
  return _trained(tmp_path_factory, lr=0.05)


@pytest.fixture(scope="module")
def softmax_gnn(tmp_path_factory):
  return _trained(tmp_path_factory, model="softmax_gnn", lr=0.05)


def _scores(rec, params):
  user_emb, item_emb = rec.score_params(params)
  return np.asarray(user_emb, np.float64) @ np.asarray(item_emb, np.float64).T  # [U, I]


def _top_items(scores, user, k=5):
  return np.argsort(-scores[user], kind="stable")[:k]


def _check_sums(rows, scores=None, user=None):
  for row in rows:
    total = row["self"] + row["constant"] + sum(c["value"] for c in row["contributions"])
    assert abs(total - row["score"]) < TOL, (row["rank"], total, row["score"])
    assert abs(row["remainder"]) < TOL
    if scores is not None:  # the explained score is the one `recommend` ranks by
      assert abs(row["score"] - scores[user, row["item_index"]]) < TOL
    values = [c["value"] for c in row["contributions"]]
    assert values == sorted(values, reverse=True)
    if "self_parts" in row:  # graph models: the same terms split by layer, also exact
      assert abs(sum(row["self_parts"]) + row["self_loop"] - row["self"]) < TOL
      for c in row["contributions"]:
        assert abs(sum(c["layers"]) - c["value"]) < TOL


def test_lightgcn_terms_sum_to_score_and_match_scipy(lightgcn):
  rec, params = lightgcn
  exp, model = rec.exp, rec.module
  scores = _scores(rec, params)
  _, hs, _ = explain_terms.layer_outputs(model, params, rec.inputs)
  # Independent reference: h^l = A_norm^l h^0 with scipy, final = mean_l h^l (eq. 4).
  adj = graph_lib.adjacency(exp.graph)
  ref = [hs[0]]
  for _ in range(model.num_layers):
    ref.append(adj @ ref[-1])
  final = np.mean(ref, axis=0)
  a = 1.0 / (model.num_layers + 1)
  u_count = exp.num_users
  for u in USERS:
    items = _top_items(scores, u)
    rows = explain.explain_user(rec, params, user=u, items=items)
    assert all(r["exact"] for r in rows)
    _check_sums(rows, scores, u)
    train_items = set(exp.split.train.item[exp.split.train.user == u].tolist())
    for row in rows:
      i = row["item_index"]
      assert {c["index"] for c in row["contributions"]} == train_items
      assert all(c["kind"] == "item" for c in row["contributions"])
      assert abs(row["self"] - a * hs[0][u] @ final[u_count + i]) < TOL
      for c in row["contributions"]:
        j = u_count + c["index"]
        c_ref = sum(a * adj[u, j] * ref[l - 1][j] for l in range(1, model.num_layers + 1))
        assert abs(c["value"] - c_ref @ final[u_count + i]) < TOL


def test_cosine_lightgcn_terms_sum_to_the_cosine_score(tmp_path_factory):
  rec, params = _trained(tmp_path_factory, lr=0.05, score="cosine")
  scores = _scores(rec, params)
  assert np.abs(scores).max() <= 1 + 1e-6  # cosines
  for u in USERS:
    rows = explain.explain_user(rec, params, user=u, items=_top_items(scores, u))
    assert all(r["exact"] for r in rows)
    _check_sums(rows, scores, u)


def test_softmax_gnn_identity_terms_sum_to_score(softmax_gnn):
  rec, params = softmax_gnn
  assert rec.module.activation == "identity"
  scores = _scores(rec, params)
  for u in USERS:
    rows = explain.explain_user(rec, params, user=u, items=_top_items(scores, u))
    assert all(r["exact"] and r["method"].startswith("exact") for r in rows)
    _check_sums(rows, scores, u)


def test_softmax_gnn_with_norm_weights_explains_like_lightgcn(lightgcn):
  # attention_mix=0 makes every alpha LightGCN's norm: the alpha path must give the same terms.
  rec, params = lightgcn
  sg_exp = prepare(rec.config.replace(model="softmax_gnn", attention_mix=0.0,
                                      initial_alpha="none"), rec.exp.dataset)
  sg_rec = models.create(sg_exp)
  items = np.arange(6)
  ref = explain.explain_user(rec, params, user=5, items=items)
  got = explain.explain_user(sg_rec, params, user=5, items=items)
  for r, g in zip(ref, got):
    np.testing.assert_allclose([g["score"], g["self"]], [r["score"], r["self"]], atol=TOL)
    np.testing.assert_allclose(sorted(c["value"] for c in g["contributions"]),
                               sorted(c["value"] for c in r["contributions"]), atol=TOL)


@pytest.mark.parametrize("activation,heads", [("tanh", 1), ("sigmoid", 1), ("identity", 2)])
def test_softmax_gnn_nonlinear_and_multihead_still_sum(activation, heads):
  ds = make_synthetic()
  cfg = configs.get_config("test").replace(model="softmax_gnn", activation=activation,
                                           heads=heads, initial_alpha="none", init_std=0.5)
  rec, params = _init(prepare(cfg, ds))
  scores = _scores(rec, params)
  rows = explain.explain_user(rec, params, user=3, items=_top_items(scores, 3))
  _check_sums(rows, scores, 3)
  exact = activation == "identity"
  assert all(r["exact"] == exact for r in rows)
  if not exact:
    assert rows[0]["method"].startswith("approximate")
  # sigma(0) = 0.5 for the sigmoid: a constant term that no neighbour is credited with.
  assert (abs(rows[0]["constant"]) > 1e-3) == (activation == "sigmoid")


def test_softmax_gnn_default_attention_options_explain_exactly():
  # configs/softmax_gnn.py's rule (softmax over the normalised adjacency, scaled to its row
  # sums, tau 4): alpha is still a fixed weight per edge, so the terms sum to the score exactly.
  ds = make_synthetic()
  sg = configs.get_config("softmax_gnn")
  cfg = configs.get_config("test").replace(
      model="softmax_gnn", initial_alpha="none", init_std=0.5, attention_mix=sg.attention_mix,
      norm_prior=sg.norm_prior, receiver_scale=sg.receiver_scale, temperature=sg.temperature)
  assert (cfg.attention_mix, cfg.norm_prior, cfg.receiver_scale) == (1.0, 1.0, True)
  rec, params = _init(prepare(cfg, ds))
  scores = _scores(rec, params)
  rows = explain.explain_user(rec, params, user=3, items=_top_items(scores, 3))
  assert all(r["exact"] for r in rows)
  _check_sums(rows, scores, 3)


def test_ease_terms_are_b_entries():
  ds = make_synthetic()
  cfg = configs.get_config("test").replace(model="ease", ease_l2=10.0)
  exp = prepare(cfg, ds)
  rec, params = _init(exp)
  b = ease.fit_ease(exp.split.train, num_users=exp.num_users, num_items=exp.num_items, l2=10.0)
  np.testing.assert_array_equal(params["B"], b)
  x = ease.interaction_matrix(exp.split.train, num_users=exp.num_users,
                              num_items=exp.num_items).toarray()
  scores = x @ b.astype(np.float64)
  for u in USERS:
    items = _top_items(scores, u)
    rows = explain.explain_user(rec, params, user=u, items=items)
    _check_sums(rows, scores, u)
    hist = np.flatnonzero(x[u])
    for row in rows:
      assert row["self"] == 0.0 and row["exact"]
      got = {c["index"]: c["value"] for c in row["contributions"]}
      assert sorted(got) == hist.tolist()
      for j, v in got.items():
        assert v == pytest.approx(float(b[j, row["item_index"]]), abs=1e-6)


def test_new_user_history_fold_in(lightgcn):
  rec, params = lightgcn
  _, item_emb = (np.asarray(a, np.float64) for a in rec.score_params(params))
  hist = np.array([0, 4, 8])
  query = item_emb[hist].mean(axis=0)  # what `recommend --history` ranks by
  np.testing.assert_allclose(rec.history_scores(params, hist), item_emb @ query, atol=TOL)
  items = np.argsort(-(item_emb @ query))[:4]
  rows = explain.explain_user(rec, params, history=hist, items=items)
  _check_sums(rows)
  for row in rows:
    assert row["score"] == pytest.approx(float(item_emb[row["item_index"]] @ query), abs=TOL)
    assert sorted(c["index"] for c in row["contributions"]) == hist.tolist()


def test_print_explanations_names_titles(lightgcn, capsys):
  rec, params = lightgcn
  scores = _scores(rec, params)
  items = _top_items(scores, 7, k=3)
  rows = explain.print_explanations(rec, params, user=7, history=None, items=items, top=2)
  out = capsys.readouterr().out
  assert out.startswith("Why (exact")
  for row in rows:
    assert row["title"] in out
    for c in row["contributions"][:2]:
      assert c["title"] in out and f"{c['value']:+.4f}" in out
    assert f"({len(row['contributions']) - 2} more)" in out


def test_user_or_history_required(lightgcn):
  rec, params = lightgcn
  with pytest.raises(Exception, match="exactly one"):
    explain.explain_user(rec, params, items=np.arange(2))


def test_recommend_explain_cli_credits_friends(tmp_path, capsys):
  # Tiny Last.fm with the trust network in the graph: friends appear among the contributors.
  wd = str(tmp_path / "run")
  common = ["--dataset", "lastfm", "--data-dir", LASTFM]
  sets = ["--set", "social=true", "--set", "topk=1", "--set", "select_metric=ndcg@1",
          "--set", "epochs=2"]
  assert cli.main(["train", "--config", "test", "--workdir", wd, "--no-progress",
                   *common, *sets]) == 0
  capsys.readouterr()
  assert cli.main(["recommend", "--workdir", wd, "--user", "3", "-k", "1", "--explain"]) == 0
  out = capsys.readouterr().out
  assert "Why (exact" in out and "friend" in out


def _text_lightgcn():
  """Untrained LightGCN with text features on a cold-item split (3 items never in train)."""
  from gnnrec_jax.config import Config
  from gnnrec_jax.data import splits
  from gnnrec_jax.text.node_texts import user_history_vectors
  ds = make_synthetic(num_users=12, num_items=10, per_user=4, seed=1)
  cfg = Config(model="lightgcn", embed_dim=4, num_layers=2, split="cold_item", cold_fraction=0.3,
               text_features="history", topk=(2, 5), select_metric="ndcg@5")
  item_vecs = np.random.default_rng(0).normal(size=(ds.num_items, 6)).astype(np.float32)
  split = splits.make_split(ds, "cold_item", seed=cfg.seed, cold_fraction=0.3)
  user_vecs, user_has = user_history_vectors(item_vecs, split.train, ds.num_users)
  feats = (np.concatenate([user_vecs, item_vecs]),
           np.concatenate([user_has, np.ones(ds.num_items, bool)]))
  rec, params = _init(prepare(cfg, ds, text_features=feats))
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(3), len(leaves))
  params = jax.tree.unflatten(tree, [0.3 * jax.random.normal(k, x.shape)
                                     for k, x in zip(keys, leaves)])
  return rec, params


def test_text_model_explains_the_scores_recommend_ranks_by():
  # recommend embeds cold items without their (untrained) ID vectors; so must the explanation.
  rec, params = _text_lightgcn()
  exp, model, inputs = rec.exp, rec.module, rec.inputs
  has_id = inductive.has_id_mask(exp.split.train, exp.num_users, exp.num_items)
  np.testing.assert_array_equal(inputs["has_id"], has_id)
  scores = _scores(rec, params)
  cold = exp.split.cold_items.astype(np.int64)
  user = int(exp.split.train.user[0])
  rows = explain.explain_user(rec, params, user=user, items=cold)
  _check_sums(rows, scores, user)
  # Every ID vector used (what explain read before) scores the cold items differently.
  final, _ = model.apply({"params": params}, inputs["graph"], inputs["features"],
                         feature_mask=inputs["feature_mask"], has_id=None)
  final = np.asarray(final, np.float64)
  all_ids = final[user] @ final[exp.num_users + cold].T
  assert not np.allclose(all_ids, scores[user, cold])
  # A new user of a text model: the score is the inductive one recommend uses, not the mean.
  hist = np.array([int(i) for i in np.unique(exp.split.train.item)[:3]])
  query = inductive.embed_new_user(rec, params, hist)
  _, item_emb = (np.asarray(a, np.float64) for a in rec.score_params(params))
  rows = explain.explain_user(rec, params, history=hist, items=cold)
  for row in rows:
    assert not row["exact"] and row["method"].startswith("not a decomposition")
    assert row["score"] == pytest.approx(float(item_emb[row["item_index"]] @ query), abs=TOL)
    total = row["self"] + row["constant"] + sum(c["value"] for c in row["contributions"])
    assert row["remainder"] == pytest.approx(row["score"] - total, abs=1e-9)


def test_text_model_new_user_is_explained_by_leave_one_out():
  # Not linear in the history (normalised text mean, 1/sqrt(|H|) degrees): each item's term is
  # the exact drop in score without it, recomputed here with the inductive embedding.
  rec, params = _text_lightgcn()
  exp = rec.exp
  _, item_emb = (np.asarray(a, np.float64) for a in rec.score_params(params))
  hist = np.array([int(i) for i in np.unique(exp.split.train.item)[:3]])
  items = exp.split.cold_items.astype(np.int64)
  full = item_emb[items] @ inductive.embed_new_user(rec, params, hist)
  rows = explain.explain_user(rec, params, history=hist, items=items)
  for k, row in enumerate(rows):
    assert "leave-one-out" in row["method"] and not row["exact"]
    got = {c["index"]: c["value"] for c in row["contributions"]}
    assert sorted(got) == hist.tolist()
    for j in hist:
      without = item_emb[items[k]] @ inductive.embed_new_user(rec, params, hist[hist != j])
      assert got[j] == pytest.approx(full[k] - without, abs=TOL)
    assert row["remainder"] == pytest.approx(full[k] - sum(got.values()), abs=TOL)
  # One history item: without it there is no user, so it is credited with the whole score.
  rows = explain.explain_user(rec, params, history=hist[:1], items=items)
  for row in rows:
    assert row["contributions"][0]["value"] == pytest.approx(row["score"], abs=TOL)
