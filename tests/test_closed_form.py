"""Linear item models through the model interface (closed_form.py), with EASE as the example."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gnnrec_jax import configs, models
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import DataError
from gnnrec_jax.evaluation import explain
from gnnrec_jax.evaluation.evaluate import evaluate_full_ranking
from gnnrec_jax.evaluation.metrics import metrics_numpy
from gnnrec_jax.experiment import prepare
from gnnrec_jax.models.closed_form import user_histories, user_rows
from gnnrec_jax.models.ease import fit_ease, interaction_matrix


def test_user_histories_and_rows_by_hand():
  # User 0: items 2, 0, 2 (a repeat); user 1: none; user 2: item 1.
  train = Interactions(np.array([0, 0, 0, 2]), np.array([2, 0, 2, 1]))
  hist = user_histories(train, num_users=3, num_items=4)
  np.testing.assert_array_equal(hist, [[0, 2], [4, 4], [1, 4]])  # padded with I = 4
  for jit in (False, True):
    fn = jax.jit(user_rows, static_argnums=2) if jit else user_rows
    rows = fn(jnp.asarray(hist), jnp.asarray([2, 0, 1, 0]), 4)
    np.testing.assert_array_equal(rows, [[0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0],
                                         [1, 0, 1, 0]])


@pytest.fixture(scope="module")
def ease_model():
  cfg = configs.get_config("test").replace(model="ease", ease_l2=10.0)
  exp = prepare(cfg, make_synthetic())
  rec = models.create(exp)
  return rec, rec.init(jax.random.key(0))


def test_ease_recommender_scores_are_x_times_b(ease_model):
  rec, params = ease_model
  exp = rec.exp
  assert not rec.trainable
  x = interaction_matrix(exp.split.train, num_users=exp.num_users,
                         num_items=exp.num_items).toarray()
  b = fit_ease(exp.split.train, num_users=exp.num_users, num_items=exp.num_items, l2=10.0)
  np.testing.assert_array_equal(params["B"], b)
  users = np.array([0, 5, 17, 5])
  np.testing.assert_allclose(rec.scores(params, users), x[users] @ b, atol=1e-5)
  # A new user with user 5's history scores exactly as user 5.
  hist = np.flatnonzero(x[5])
  np.testing.assert_allclose(rec.history_scores(params, hist), x[5] @ b, atol=1e-5)
  np.testing.assert_allclose(rec.item_item(params, [3, 1], [0, 2]), b[np.ix_([3, 1], [0, 2])],
                             atol=1e-6)
  with pytest.raises(DataError, match="outside the catalogue"):
    rec.history_scores(params, [exp.num_items])
  with pytest.raises(DataError, match="at least one"):
    rec.history_scores(params, [])


def test_ease_evaluation_through_the_interface_matches_numpy(ease_model):
  rec, params = ease_model
  exp = rec.exp
  x = interaction_matrix(exp.split.train, num_users=exp.num_users,
                         num_items=exp.num_items).toarray()
  scores = x @ np.asarray(params["B"], np.float64)
  truth = [set() for _ in range(exp.num_users)]
  seen = [set() for _ in range(exp.num_users)]
  for u, i in zip(exp.split.valid.user, exp.split.valid.item):
    truth[u].add(int(i))
  for u, i in zip(exp.split.train.user, exp.split.train.item):
    seen[u].add(int(i))
  ref = metrics_numpy(scores, truth, seen, ks=(5, 10))
  got = evaluate_full_ranking(rec.score_fn, rec.score_params(params), num_users=exp.num_users,
                              num_items=exp.num_items, exclude=[exp.split.train],
                              target=exp.split.valid, ks=(5, 10), batch_size=16)
  for k in ("recall@5", "ndcg@10", "mrr@10"):
    assert got[k] == pytest.approx(ref[k], abs=1e-6)
  # One compiled score function per model class: a second model reuses it.
  assert models.create(exp).score_fn is rec.score_fn


def test_linear_item_explanations_are_exact(ease_model):
  rec, params = ease_model
  items = np.array([3, 0, 9])
  rows = explain.explain_user(rec, params, user=4, items=items)
  scores = rec.scores(params, [4])[0]
  train = rec.exp.split.train
  hist = set(np.unique(train.item[train.user == 4]).tolist())
  for row in rows:
    assert row["exact"] and row["self"] == 0.0
    assert {c["index"] for c in row["contributions"]} == hist
    assert row["score"] == pytest.approx(float(scores[row["item_index"]]), abs=1e-5)
    assert abs(row["remainder"]) < 1e-5
