"""coldstart.py: blocks on a hand-made case, has_id embeddings, new users as one extra node."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gnnrec_jax import experiment, models
from gnnrec_jax.config import Config
from gnnrec_jax.data import splits
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError, DataError
from gnnrec_jax.evaluation import coldstart
from gnnrec_jax.evaluation.protocol import evaluate_split
from gnnrec_jax.models import inductive
from gnnrec_jax.text.node_texts import user_history_vectors

# Hand-made case: 3 users, 5 items. User 2 and items 3, 4 have no train interaction.
U, I = 3, 5
TRAIN = Interactions(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 2]))
#                  warm   cold   warm   cold   warm+cold user   cold+cold user
TEST = Interactions(np.array([0, 0, 1, 1, 2, 2]), np.array([2, 3, 0, 4, 1, 3]))
SCORES = np.array([[9, 9, 1, 5, 4],    # user 0 (items 0, 1 seen)
                   [2, 9, 9, 3, 1],    # user 1 (items 1, 2 seen)
                   [1, 0, 3, 0, 2]],   # user 2 (nothing seen; ties: lower index first)
                  np.float32)


def table_scores(params, users):
  return params[users]


def test_has_id_mask_marks_nodes_without_train_interactions():
  np.testing.assert_array_equal(inductive.has_id_mask(TRAIN, U, I),
                                [1, 1, 0, 1, 1, 1, 0, 0])


def test_block_pairs_by_hand():
  pairs = coldstart.block_pairs(TEST, TRAIN, num_users=U, num_items=I)
  assert set(pairs) == {"all", "warm", "cold", "cold_users"}
  np.testing.assert_array_equal(pairs["warm"], [1, 0, 1, 0, 1, 0])
  np.testing.assert_array_equal(pairs["cold"], [0, 1, 0, 1, 0, 1])
  np.testing.assert_array_equal(pairs["cold_users"], [0, 0, 0, 0, 1, 1])
  # Without cold users there is no cold_users block.
  warm_users = Interactions(TEST.user[:4], TEST.item[:4])
  assert "cold_users" not in coldstart.block_pairs(warm_users, TRAIN, num_users=U, num_items=I)


def test_blocks_rank_only_their_items_by_hand():
  out = coldstart.evaluate_score_blocks(table_scores, jnp.asarray(SCORES), train=TRAIN,
                                        num_users=U, num_items=I, target=TEST, exclude=[TRAIN],
                                        ks=(1, 2, 5))
  assert set(out) == {"all", "warm", "cold", "cold_users"}
  g3 = 1 / math.log2(3)
  # warm: items {0, 1, 2}. u0 ranks {2} -> hit; u1 ranks {0} -> hit; u2 ranks [2, 0, 1] -> item 1
  # only at rank 3.
  w = out["warm"]
  assert w["num_users"] == 3 and w["num_pairs"] == 3
  assert w["recall@1"] == pytest.approx(2 / 3) and w["recall@2"] == pytest.approx(2 / 3)
  assert w["ndcg@5"] == pytest.approx((1 + 1 + 1 / math.log2(4)) / 3)
  # cold: items {3, 4}. u0 [3, 4] target 3 -> rank 1; u1 [3, 4] target 4 -> rank 2;
  # u2 [4, 3] target 3 -> rank 2.
  c = out["cold"]
  assert c["num_users"] == 3 and c["num_pairs"] == 3
  assert c["recall@1"] == pytest.approx(1 / 3) and c["recall@2"] == pytest.approx(1.0)
  assert c["ndcg@2"] == pytest.approx((1 + 2 * g3) / 3)
  assert c["coverage@1"] == pytest.approx(2 / 2)  # items 3 and 4 both appear at rank 1
  # cold users: user 2 ranks every item: [2, 4, 0, 1, 3] (1 before 3 on the tie), targets {1, 3}.
  cu = out["cold_users"]
  assert cu["num_users"] == 1 and cu["num_pairs"] == 2
  assert cu["recall@2"] == 0.0 and cu["recall@5"] == 1.0
  assert cu["ndcg@5"] == pytest.approx((1 / math.log2(5) + 1 / math.log2(6)) / (1 + g3))
  # all: u0 [3, 4, 2] targets {2, 3}; u1 [3, 0, 4] targets {0, 4}; u2 as above.
  a = out["all"]
  assert a["num_users"] == 3 and a["num_pairs"] == 6
  assert a["recall@1"] == pytest.approx(0.5 / 3) and a["recall@2"] == pytest.approx(1 / 3)


def test_excluded_target_pairs_leave_the_block():
  # At test time valid is excluded too: a target pair also in valid is never ranked.
  valid = Interactions(np.array([0]), np.array([3]))
  out = coldstart.evaluate_score_blocks(table_scores, jnp.asarray(SCORES), train=TRAIN,
                                        num_users=U, num_items=I, target=TEST,
                                        exclude=[TRAIN, valid], ks=(1,))
  assert out["cold"]["num_pairs"] == 2 and out["cold"]["num_users"] == 2
  # u1 ranks [3, 4] (target 4 missed), u2 ranks [4, 3] (target 3 missed); u0 has no cold target.
  assert out["cold"]["recall@1"] == 0.0


# ------------------------------------------------------------------------------------------------
# Models on a small synthetic cold-item experiment.

F = 6


def make_exp(**kw):
  ds = make_synthetic(num_users=12, num_items=10, per_user=4, seed=1)
  # weighted_norm=false: the synthetic ratings would otherwise weight the normalisation (auto),
  # and a new user's history carries no weights, so only LightGCN's binary norm lets an
  # existing user re-embedded from its history equal its own vector exactly.
  cfg = Config(**{**dict(model="lightgcn", embed_dim=4, num_layers=2, split="cold_item",
                         cold_fraction=0.3, text_features="history", topk=(2, 5),
                         select_metric="ndcg@5", weighted_norm="false"), **kw})
  item_vecs = np.random.default_rng(0).normal(size=(ds.num_items, F)).astype(np.float32)
  item_vecs /= np.linalg.norm(item_vecs, axis=1, keepdims=True)
  split = splits.make_split(ds, "cold_item", seed=cfg.seed, cold_fraction=0.3)
  user_vecs, user_has = user_history_vectors(item_vecs, split.train, ds.num_users)
  feats = (np.concatenate([user_vecs, item_vecs]), np.concatenate([user_has,
                                                                  np.ones(ds.num_items, bool)]))
  if not cfg.text_features:
    feats = None
  return experiment.prepare(cfg, ds, text_features=feats)


def init(exp):
  rec = models.create(exp)
  return rec, rec.init(jax.random.key(exp.config.seed))


def random_params(params, seed=3):
  """Every leaf replaced by normal noise, so the text path and ID table are both non-trivial."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(tree, [0.3 * jax.random.normal(k, x.shape) for k, x in
                                   zip(keys, leaves)])


def test_cold_nodes_do_not_read_their_id_vectors():
  exp = make_exp(id_dropout=0.5)
  assert len(exp.split.cold_items) == 3
  rec, params = init(exp)
  params = random_params(params)
  has_id = jnp.asarray(inductive.has_id_mask(exp.split.train, exp.num_users, exp.num_items))
  np.testing.assert_array_equal(rec.inputs["has_id"], has_id)  # the model's own mask

  def embed(params, has_id):
    return rec.embed(params, {**rec.inputs, "has_id": has_id})

  _, items = embed(params, has_id)
  # Changing a cold item's ID row changes nothing; a warm item's row changes its own vector.
  cold = int(exp.split.cold_items[0])
  warm = int(np.flatnonzero(np.asarray(has_id)[exp.num_users:])[0])
  for item, changes in ((cold, False), (warm, True)):
    table = params["inputs"]["embedding"].at[exp.num_users + item].add(1.0)
    p2 = {**params, "inputs": {**params["inputs"], "embedding": table}}
    _, items2 = embed(p2, has_id)
    assert (not np.allclose(items2[item], items[item])) == changes
  # With every ID used the cold item does read its row.
  _, items_all = embed(params, jnp.ones_like(has_id))
  assert not np.allclose(items_all[cold], items[cold])
  # The test pass reports the blocks of a cold-item split.
  metrics = evaluate_split(rec, params, "test")
  assert metrics["cold/num_pairs"] > 0 and metrics["warm/num_pairs"] > 0


def _users_with_history(exp):
  return [u for u in range(exp.num_users) if (exp.split.train.user == u).any()]


@pytest.mark.parametrize("kw", [dict(use_id_embedding=False), dict(use_id_embedding=False,
                                                                     self_loops=True),
                                dict(use_id_embedding=False, layer_combine="concat"),
                                dict(use_id_embedding=False, model="mf")])
def test_existing_user_as_new_equals_its_vector_without_ids(kw):
  """A user in the graph, embedded "as new" from its train history, is its real vector exactly
  when the model has no ID vectors: its text is the same history mean and every propagated layer
  reads the same item vectors with the same normalisation."""
  exp = make_exp(**kw)
  rec, params = init(exp)
  params = random_params(params)
  users, _ = rec.embed(params, rec.inputs)
  for u in _users_with_history(exp):
    hist = exp.split.train.item[exp.split.train.user == u]
    new = inductive.embed_new_user(rec, params, hist)
    np.testing.assert_allclose(new, users[u], rtol=1e-5, atol=1e-6)


def test_existing_user_as_new_lacks_only_its_id_vector():
  """With ID vectors (LightGCN, mean of L + 1 layers) the only difference is the user's own
  layer-0 ID vector: real - new = id_u / (L + 1); so the new user's scores are a shifted copy of
  the real ones, and rankings agree wherever id_u . item is small."""
  exp = make_exp(id_dropout=0.5)
  rec, params = init(exp)
  params = random_params(params)
  users, items = rec.embed(params, rec.inputs)
  table = np.asarray(params["inputs"]["embedding"])
  for u in _users_with_history(exp):
    hist = exp.split.train.item[exp.split.train.user == u]
    new = inductive.embed_new_user(rec, params, hist)
    np.testing.assert_allclose(users[u] - new, table[u] / 3, rtol=1e-4, atol=1e-5)
  # With the ID table zeroed the new-user vector is the real one and ranks items identically.
  p0 = {**params, "inputs": {**params["inputs"], "embedding": jnp.zeros_like(table)}}
  users0, items0 = rec.embed(p0, rec.inputs)
  u = _users_with_history(exp)[0]
  new = inductive.embed_new_user(rec, p0, exp.split.train.item[exp.split.train.user == u])
  np.testing.assert_array_equal(np.argsort(-(np.asarray(items0) @ new)),
                                np.argsort(-(np.asarray(items0) @ np.asarray(users0[u]))))


def test_new_user_of_id_only_model_is_the_mean_of_its_items():
  exp = make_exp(text_features="")
  rec, params = init(exp)
  _, items = rec.embed(params, rec.inputs)
  new = inductive.embed_new_user(rec, params, np.array([1, 4, 4]))
  np.testing.assert_allclose(new, (items[1] + 2 * items[4]) / 3, rtol=1e-5)


def test_new_user_with_cold_history_item_and_bad_input():
  exp = make_exp()
  rec, params = init(exp)
  cold = int(exp.split.cold_items[0])
  vec = inductive.embed_new_user(rec, params, np.array([cold]))
  assert vec.shape == (4,) and np.all(np.isfinite(vec))
  with pytest.raises(DataError, match="at least one"):
    inductive.embed_new_user(rec, params, np.array([], np.int64))
  with pytest.raises(DataError, match="outside the catalogue"):
    inductive.embed_new_user(rec, params, np.array([exp.num_items]))
  gat = experiment.prepare(exp.config.replace(model="gat"), exp.dataset,
                           text_features=(exp.features, exp.feature_mask))
  grec, gparams = init(gat)
  with pytest.raises(ConfigError, match="no inductive form"):
    inductive.embed_new_user(grec, gparams, np.array([0]))
