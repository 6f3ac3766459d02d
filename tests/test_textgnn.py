"""The text-first GNN (models/textgnn.py): a NumPy reference of its forward pass, new users and cold
items from text alone, and the test-time history protocol (evaluation/protocol.py)."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gnnrec_jax import experiment, models
from gnnrec_jax.config import Config, apply_overrides
from gnnrec_jax.data import splits
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.errors import ConfigError, DataError
from gnnrec_jax.evaluation import evaluate
from gnnrec_jax.evaluation.protocol import evaluate_split
from gnnrec_jax.models import closed_form, ease
from gnnrec_jax.text.node_texts import user_history_vectors
from gnnrec_jax.training.fit import fit

F = 8  # text vector width


def _features(ds, train, seed=0, cluster_signal=0.0):
  """Unit item vectors (optionally pulled towards a per-group direction) and users' history means."""
  rng = np.random.default_rng(seed)
  items = rng.normal(size=(ds.num_items, F))
  if cluster_signal:
    groups = np.arange(ds.num_items) % 4
    items += cluster_signal * np.eye(F)[groups]
  items = (items / np.linalg.norm(items, axis=1, keepdims=True)).astype(np.float32)
  users, has = user_history_vectors(items, train, ds.num_users)
  return np.concatenate([users, items]), np.concatenate([has, np.ones(ds.num_items, bool)])


def make_exp(split="random", cluster_signal=0.0, **kw):
  ds = make_synthetic(num_users=12, num_items=10, per_user=4, seed=1)
  # Unweighted: a new user's history carries no ratings, so the softmax rule's first layer
  # (alpha from the weights) treats a re-embedded user as the graph does only without them.
  ds = dataclasses.replace(ds, interactions=dataclasses.replace(ds.interactions, weight=None))
  # weighted_norm=false: a new user's history carries no ratings, so only the binary norm lets an
  # existing user re-embedded from its history equal its own vector exactly.
  cfg = Config(**{**dict(model="textgnn", text_features="history", use_id_embedding=False,
                         embed_dim=4, num_layers=2, score="cosine", split=split,
                         cold_fraction=0.3, topk=(2, 5), select_metric="ndcg@5",
                         weighted_norm="false", loss="softmax", num_negatives=4, l2=0.0),
                  **kw})
  s = splits.make_split(ds, split, seed=cfg.seed, cold_fraction=0.3)
  return experiment.prepare(cfg, ds, text_features=_features(ds, s.train,
                                                             cluster_signal=cluster_signal))


def random_params(params, seed=3):
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(tree, [0.5 * jax.random.normal(k, x.shape)
                                   for k, x in zip(keys, leaves)])


def build(exp):
  rec = models.create(exp)
  return rec, random_params(rec.init(jax.random.key(0)))


def reference_embed(exp, params, user_input="history"):
  """NumPy: E0 = (users, Z_items W), E^(k+1) = D^-1/2 A D^-1/2 E^k, mean of 3 layers, unit rows."""
  u, i = exp.num_users, exp.num_items
  z = np.asarray(exp.features, np.float64)
  w = np.asarray(params["mlp"]["linear"]["kernel"], np.float64)  # [F, d]
  items0 = z[u:] @ w
  a = np.zeros((u, i))
  a[exp.split.train.user, exp.split.train.item] = 1.0
  deg_u, deg_i = a.sum(1), a.sum(0)
  if user_input == "history":
    users0 = np.divide(a @ items0, deg_u[:, None], out=np.zeros((u, w.shape[1])),
                       where=deg_u[:, None] > 0)
  else:
    users0 = z[:u] @ w
    users0[~exp.feature_mask[:u]] = np.asarray(params["default_text"])
  inv = lambda d: np.divide(1.0, np.sqrt(d), out=np.zeros_like(d), where=d > 0)
  norm = inv(deg_u)[:, None] * a * inv(deg_i)[None, :]  # [U, I]
  hs = [np.concatenate([users0, items0])]
  for _ in range(2):
    h = hs[-1]
    hs.append(np.concatenate([norm @ h[u:], norm.T @ h[:u]]))
  final = np.mean(hs, axis=0)
  n = np.linalg.norm(final, axis=1, keepdims=True)
  final = np.divide(final, n, out=np.zeros_like(final), where=n > 0)
  return final[:u], final[u:]


@pytest.mark.parametrize("user_input", ["history", "text"])
def test_forward_matches_numpy_reference(user_input):
  exp = make_exp(user_input=user_input)
  rec, params = build(exp)
  assert "embedding" not in str(jax.tree_util.tree_structure(params))  # no ID tables
  user_emb, item_emb = rec.score_params(params)
  ref_u, ref_i = reference_embed(exp, params, user_input)
  np.testing.assert_allclose(np.asarray(user_emb), ref_u, atol=2e-5)
  np.testing.assert_allclose(np.asarray(item_emb), ref_i, atol=2e-5)


def test_cold_items_are_their_mapped_text():
  exp = make_exp(split="cold_item")
  rec, params = build(exp)
  _, item_emb = rec.score_params(params)
  w = np.asarray(params["mlp"]["linear"]["kernel"])
  for i in exp.split.cold_items:  # no edges: final = mean(E0, 0, 0), unit length
    x = exp.features[exp.num_users + i] @ w
    np.testing.assert_allclose(np.asarray(item_emb)[i], x / np.linalg.norm(x), atol=1e-5)


@pytest.mark.parametrize("kw", [
    dict(user_input="history"),
    dict(user_input="text"),
    dict(user_input="history", self_loops=True),
    dict(user_input="history", conv="softmax", qk_proj=True, attention_mix=0.5),
    dict(user_input="text", conv="softmax", initial_alpha="weights", mlp_hidden=6),
    dict(user_input="history", use_id_embedding=True),
])
def test_user_in_graph_rescored_from_its_history_is_exact(kw):
  exp = make_exp(**kw)
  rec, params = build(exp)
  train = exp.split.train
  checked = 0
  for u in range(exp.num_users):
    hist = np.unique(train.item[train.user == u])
    if len(hist):
      np.testing.assert_allclose(rec.history_scores(params, hist), rec.scores(params, [u])[0],
                                 atol=2e-5)
      checked += 1
  assert checked == exp.num_users


def test_new_user_closed_form_and_bad_histories():
  exp = make_exp()
  rec, params = build(exp)
  _, item_emb = (np.asarray(x, np.float64) for x in rec.score_params(params))
  # By hand: a new user with one item j: E0 = e_j^0, E^(k+1) = h_j^k / sqrt(deg_j) (its only
  # neighbour), so final is the mean of those three vectors.
  hs = rec.module.apply({"params": params}, rec.inputs["graph"], rec.inputs["features"],
                        rec.inputs["feature_mask"], method=type(rec.module).layers)
  j = int(exp.split.train.item[0])
  deg = float((exp.split.train.item == j).sum())
  node = exp.num_users + j
  final = (np.asarray(hs[0][node]) + np.asarray(hs[0][node]) / np.sqrt(deg)
           + np.asarray(hs[1][node]) / np.sqrt(deg)) / 3
  np.testing.assert_allclose(rec.history_scores(params, [j]),
                             item_emb @ (final / np.linalg.norm(final)), atol=2e-5)
  with pytest.raises(DataError, match="at least one history item"):
    rec.history_scores(params, [])
  with pytest.raises(DataError, match="outside the catalogue"):
    rec.history_scores(params, [exp.num_items])


def test_known_user_explained_by_exact_leave_one_out():
  exp = make_exp()
  rec, params = build(exp)
  items = np.array([0, 1, 2])
  terms, method, exact = rec.explain_terms(params, user=0, history=None, items=items)
  assert "leave-one-out" in method and not exact
  np.testing.assert_allclose(terms["score"], rec.scores(params, [0])[0][items], atol=2e-5)


def test_config_checks():
  with pytest.raises(ConfigError, match="textgnn needs text_features"):
    apply_overrides(Config(), ["model=textgnn"])
  with pytest.raises(ConfigError, match="user_input must be"):
    apply_overrides(Config(), ["user_input=mean"])
  with pytest.raises(ConfigError, match="test_history must be"):
    apply_overrides(Config(), ["test_history=all"])
  with pytest.raises(ConfigError, match="cold_view and warm_text are textgnn fields"):
    apply_overrides(Config(), ["cold_view=1"])


def test_trains_and_ranks_cold_items_from_text(tmp_path):
  """Items of a group share a text direction: after a few epochs, never-trained items of the
  user's group rank above the others (the cold block far above a random ranking's)."""
  from gnnrec_jax.models import baselines
  ds = make_synthetic(num_users=80, num_items=80, per_user=8, seed=0)
  cfg = Config(model="textgnn", text_features="history", use_id_embedding=False, embed_dim=8,
               mlp_hidden=16, score="cosine", loss="softmax", num_negatives=8,
               softmax_temperature=0.2, l2=0.0, lr=1e-2, batch_size=64, epochs=6,
               eval_every=3, patience=2, split="cold_item", cold_fraction=0.25, topk=(5,),
               select_metric="warm/ndcg@5", weighted_norm="false")
  s = splits.make_split(ds, "cold_item", seed=cfg.seed, cold_fraction=0.25)
  exp = experiment.prepare(cfg, ds, text_features=_features(ds, s.train, cluster_signal=3.0))
  fitted = fit(exp, str(tmp_path / "run"), progress=False)
  losses = [r["loss"] for r in fitted.history]
  assert losses[-1] < losses[0]
  rand = baselines.evaluate_baselines(exp, target=s.test, exclude=[s.train, s.valid],
                                      names=["random"])["random"]
  assert fitted.metrics["cold/ndcg@5"] > 1.5 * rand["cold"]["ndcg@5"]


# --- test-time histories (evaluation/protocol.py) -----------------------------------------------

def test_with_test_history_adds_valid_to_graph_not_to_training():
  exp = make_exp()
  t = experiment.with_test_history(exp)
  s = exp.split
  assert len(t.split.train) == len(s.train) + len(s.valid)
  assert t.trained is s.train and t.fingerprint == exp.fingerprint
  assert int(np.asarray(t.graph.n_edge)[0]) == 2 * (len(s.train) + len(s.valid))


def test_test_history_ease_reads_valid_in_rows_with_b_from_train():
  ds = make_synthetic(num_users=30, num_items=20, per_user=8, seed=2)
  cfg = Config(model="ease", ease_l2=5.0, topk=(2, 5), select_metric="ndcg@5")
  exp = experiment.prepare(cfg, ds)
  rec = models.create(exp)
  params = rec.init(jax.random.key(0))
  s = exp.split
  b = ease.fit_ease(s.train, num_users=exp.num_users, num_items=exp.num_items, l2=5.0)
  np.testing.assert_array_equal(np.asarray(params["B"]), b)
  hist = jnp.asarray(closed_form.user_histories(
      s.train.concat([s.train, s.valid]), num_users=exp.num_users, num_items=exp.num_items))
  rows = np.asarray(closed_form.user_rows(hist, jnp.arange(exp.num_users), exp.num_items))
  table = jnp.asarray(rows @ b)  # [U, I]: x_u (train + valid) B (train)
  want = evaluate.evaluate_full_ranking(lambda p, users: p[users], table,
                                        num_users=exp.num_users, num_items=exp.num_items,
                                        exclude=[s.train, s.valid], target=s.test, ks=(2, 5))
  got = evaluate_split(rec, params, "test", history="train+valid")
  for k in ("recall@2", "ndcg@5", "num_users"):
    assert got[k] == pytest.approx(want[k], abs=1e-6)
  plain = evaluate_split(rec, params, "test", history="train")
  assert plain["ndcg@5"] != pytest.approx(got["ndcg@5"])  # the valid items do change the rows
  assert evaluate_split(rec, params, "test")["ndcg@5"] == plain["ndcg@5"]  # config: train


# --- training without the target edge (target_out) ----------------------------------------------

def test_edge_position_finds_every_training_edge():
  from gnnrec_jax.models.textgnn import edge_position
  exp = make_exp()
  g = jax.tree.map(jnp.asarray, exp.graph)
  u = jnp.asarray(exp.split.train.user)
  t = jnp.asarray(exp.split.train.item + exp.num_users)
  pos = np.asarray(edge_position(g, u, t))
  np.testing.assert_array_equal(np.asarray(g.receivers)[pos], np.asarray(u))
  np.testing.assert_array_equal(np.asarray(g.senders)[pos], np.asarray(t))
  # Items receive too: the reverse direction is found the same way.
  pos = np.asarray(edge_position(g, t, u))
  np.testing.assert_array_equal(np.asarray(g.senders)[pos], np.asarray(u))


def test_target_out_users_match_a_user_that_never_received_the_target():
  """NumPy: user u's layers over the train graph with the edge t -> u alone removed (every other
  node's layers unchanged, norms unchanged), as the docstring of `target_out_users` states."""
  from gnnrec_jax.models.textgnn import TextGNN, target_out_users
  exp = make_exp()
  rec, params = build(exp)
  inputs = rec.inputs
  hs = rec.module.apply({"params": params}, inputs["graph"], inputs["features"],
                        inputs["feature_mask"], method=TextGNN.layers)
  train, nu = exp.split.train, exp.num_users
  rows = np.arange(0, len(train), 3)
  got = np.asarray(target_out_users(hs, inputs["graph"], jnp.asarray(train.user[rows]),
                                    jnp.asarray(train.item[rows] + nu), num_users=nu,
                                    combine="mean", score="cosine", mean_layer0=True))
  h = [np.asarray(x, np.float64) for x in hs]
  deg_i = np.bincount(train.item, minlength=exp.num_items).astype(float)
  for r, want in zip(rows, got):
    u, t = train.user[r], train.item[r]
    others = np.setdiff1d(train.item[train.user == u], [t])
    norm = 1 / np.sqrt((len(others) + 1) * deg_i[others])  # degrees of the full graph
    layers = [h[0][nu + others].mean(0) if len(others) else np.zeros(h[0].shape[1])]
    layers += [norm @ h[k - 1][nu + others] for k in (1, 2)]
    final = np.mean(layers, axis=0)
    np.testing.assert_allclose(want, final / np.linalg.norm(final), atol=2e-5)


def test_target_out_trains_and_needs_lightgcn(tmp_path):
  exp = make_exp(target_out=True, loss="full_softmax", epochs=2, batch_size=16, lr=1e-2,
                 eval_every=1)
  fitted = fit(exp, str(tmp_path / "run"), progress=False)
  assert np.isfinite([r["loss"] for r in fitted.history]).all()
  with pytest.raises(ConfigError, match="target_out needs conv=lightgcn"):
    models.create(make_exp(target_out=True, conv="softmax"))


def _numpy_target_out_user(h, train, u, t, nu, deg_i):
  """[d] user u's final vector (mean of 3 layers, unit length) without the edge from item t."""
  others = np.setdiff1d(train.item[train.user == u], [t])
  norm = 1 / np.sqrt((len(others) + 1) * deg_i[others])  # degrees of the full graph
  layers = [h[0][nu + others].mean(0) if len(others) else np.zeros(h[0].shape[1])]
  layers += [norm @ h[k - 1][nu + others] for k in (1, 2)]
  final = np.mean(layers, axis=0)
  return final / np.linalg.norm(final)


def test_target_out_full_softmax_loss_matches_numpy_reference():
  """NumPy: for each row (u, t), the user without edge t -> u, cosine scores / tau, a softmax over
  t and every item the user does not have in train (its other train items are masked, as
  ranking masks them), mean negative log-likelihood over unmasked rows."""
  from gnnrec_jax.models.textgnn import TextGNN
  tau = 0.3
  exp = make_exp(target_out=True, loss="full_softmax", softmax_temperature=tau)
  rec, params = build(exp)
  inputs = rec.inputs
  train, nu = exp.split.train, exp.num_users
  rows = np.arange(0, len(train), 2)[:8]
  batch = {"user": jnp.asarray(train.user[rows]), "item": jnp.asarray(train.item[rows]),
           "mask": jnp.asarray(np.r_[np.ones(len(rows) - 1), 0.0], jnp.float32)}  # last: padding
  loss, aux = rec.loss(params, inputs, batch, jax.random.key(0))
  hs = rec.module.apply({"params": params}, inputs["graph"], inputs["features"],
                        inputs["feature_mask"], method=TextGNN.layers)
  h = [np.asarray(x, np.float64) for x in hs]
  _, items = reference_embed(exp, params)  # [I, d] unit rows
  deg_i = np.bincount(train.item, minlength=exp.num_items).astype(float)
  nll = []
  for r in rows[:-1]:
    u, t = train.user[r], train.item[r]
    s = items @ _numpy_target_out_user(h, train, u, t, nu, deg_i) / tau  # [I]
    keep = np.ones(exp.num_items, bool)
    keep[train.item[train.user == u]] = False
    keep[t] = True
    nll.append(np.log(np.exp(s[keep]).sum()) - s[t])
  np.testing.assert_allclose(float(aux["nll"]), np.mean(nll), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(float(loss), np.mean(nll), rtol=1e-5, atol=1e-6)  # l2 = 0


def test_target_out_sampled_softmax_masks_the_users_items():
  """NumPy, same negatives (the loss draws them from the second half of its key): logits are
  the positive and the sampled items the user does not have in train, over tau."""
  from gnnrec_jax.models.textgnn import TextGNN
  from gnnrec_jax.objectives import sampling
  tau = 0.5
  exp = make_exp(target_out=True, loss="softmax", num_negatives=6, softmax_temperature=tau)
  rec, params = build(exp)
  inputs = rec.inputs
  train, nu = exp.split.train, exp.num_users
  rows = np.arange(1, len(train), 3)[:6]
  users = jnp.asarray(train.user[rows])
  batch = {"user": users, "item": jnp.asarray(train.item[rows]),
           "mask": jnp.ones(len(rows), jnp.float32)}
  key = jax.random.key(7)
  loss, _ = rec.loss(params, inputs, batch, key)
  _, neg_key = jax.random.split(key)
  cand = np.asarray(sampling.sample_negatives(neg_key, batch_users=users,
                                              num_items=exp.num_items, num_negatives=6))
  hs = rec.module.apply({"params": params}, inputs["graph"], inputs["features"],
                        inputs["feature_mask"], method=TextGNN.layers)
  h = [np.asarray(x, np.float64) for x in hs]
  _, items = reference_embed(exp, params)
  deg_i = np.bincount(train.item, minlength=exp.num_items).astype(float)
  nll, masked = [], 0
  for r, c in zip(rows, cand):
    u, t = train.user[r], train.item[r]
    user = _numpy_target_out_user(h, train, u, t, nu, deg_i)
    seen = set(train.item[train.user == u].tolist())
    negs = [j for j in c if j not in seen]
    masked += len(c) - len(negs)
    s = np.r_[items[t] @ user, items[negs] @ user] / tau
    nll.append(np.log(np.exp(s).sum()) - s[0])
  assert masked > 0  # the case under test occurs
  np.testing.assert_allclose(float(loss), np.mean(nll), rtol=1e-5, atol=1e-6)


# --- the cold-item view (cold_view) --------------------------------------------------------------

def test_cold_view_scores_items_as_cold_items_are_scored():
  """`text_only_items` is each item as a never-trained item is embedded (its rows for the cold
  items equal the model's), and the cold-view loss is a softmax of the users' ordinary vectors
  over the train items' text-only vectors (NumPy reference)."""
  from gnnrec_jax.models.textgnn import TextGNN
  tau = 0.4
  exp = make_exp(split="cold_item", use_id_embedding=True, cold_view=0.5,
                 softmax_temperature=tau)
  rec, params = build(exp)
  inputs = rec.inputs
  users, items = (np.asarray(x) for x in rec.score_params(params))
  text_only = np.asarray(rec.module.apply({"params": params}, inputs["features"],
                                          inputs["feature_mask"],
                                          method=TextGNN.text_only_items))
  cold = exp.split.cold_items
  assert len(cold)
  np.testing.assert_allclose(text_only[cold], items[cold], atol=1e-5)
  z = np.asarray(exp.features[exp.num_users:], np.float64)
  x = z @ np.asarray(params["mlp"]["linear"]["kernel"], np.float64)
  np.testing.assert_allclose(text_only, x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-5)
  warm = np.setdiff1d(np.arange(exp.num_items), cold)
  assert not np.allclose(text_only[warm], items[warm], atol=1e-3)  # warm items keep their IDs

  train = exp.split.train
  rows = np.arange(0, len(train), 3)[:6]
  batch = {"user": jnp.asarray(train.user[rows]), "item": jnp.asarray(train.item[rows]),
           "mask": jnp.ones(len(rows), jnp.float32)}
  got = float(rec.cold_view_loss(params, inputs, batch, jax.random.key(0)))
  nll = []
  for r in rows:
    s = text_only[warm] @ users[train.user[r]] / tau  # the softmax runs over train items only
    pos = text_only[train.item[r]] @ users[train.user[r]] / tau
    nll.append(np.log(np.exp(s).sum()) - pos)
  np.testing.assert_allclose(got, np.mean(nll), rtol=1e-5, atol=1e-6)
  main, _ = rec.__class__.__mro__[1].loss(rec, params, inputs, batch, jax.random.key(0))
  total, aux = rec.loss(params, inputs, batch, jax.random.key(0))
  np.testing.assert_allclose(float(total), float(main) + 0.5 * got, rtol=1e-5)
  assert "cold_view" in aux


def test_warm_text_false_keeps_the_warm_model_id_only():
  """warm_text=False: users and warm items do not depend on the text map, cold items are their
  mapped text, and the cold view's gradient reaches the text map only."""
  exp = make_exp(split="cold_item", use_id_embedding=True, warm_text=False, user_input="table",
                 score="dot", cold_view=1.0)
  rec, params = build(exp)
  users, items = (np.asarray(x) for x in rec.score_params(params))
  moved = jax.tree.map(lambda x: x, params)
  moved["mlp"] = jax.tree.map(lambda x: x + 1.0, params["mlp"])
  users2, items2 = (np.asarray(x) for x in rec.score_params(moved))
  cold = exp.split.cold_items
  warm = np.setdiff1d(np.arange(exp.num_items), cold)
  np.testing.assert_allclose(users2, users, atol=1e-6)
  np.testing.assert_allclose(items2[warm], items[warm], atol=1e-6)
  assert not np.allclose(items2[cold], items[cold], atol=1e-3)
  z = np.asarray(exp.features[exp.num_users:], np.float64)
  x = z @ np.asarray(params["mlp"]["linear"]["kernel"], np.float64)
  np.testing.assert_allclose(items[cold], x[cold] / 3, atol=1e-5)  # mean of E0 and two zeros
  train = exp.split.train
  batch = {"user": jnp.asarray(train.user[:8]), "item": jnp.asarray(train.item[:8]),
           "mask": jnp.ones(8, jnp.float32)}
  grads = jax.grad(lambda p: rec.cold_view_loss(p, rec.inputs, batch, jax.random.key(0)))(params)
  assert float(jnp.abs(grads["user_embedding"]).max()) == 0.0
  assert float(jnp.abs(grads["item_embedding"]).max()) == 0.0
  assert float(jnp.abs(grads["mlp"]["linear"]["kernel"]).max()) > 0.0
