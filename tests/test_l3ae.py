"""L3AE (models/l3ae.py) against dense NumPy computations on a hand-made matrix: the Woodbury text
side equals the dense I x I inverse, B equals the reference's closed form and a per-column
brute-force ridge toward C, and the fusions equal their dense definitions."""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from gnnrec_jax import experiment, models
from gnnrec_jax.config import Config, validate
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.models import l3ae

# 6 users x 5 items, by hand; item 4 has no interactions.
X = np.array([[1, 1, 0, 0, 0],
              [1, 0, 1, 0, 0],
              [0, 1, 1, 1, 0],
              [1, 1, 1, 0, 0],
              [0, 0, 1, 1, 0],
              [0, 1, 0, 1, 0]], np.float64)
# 5 items x 3 text dimensions; item 2 has no text (a zero row).
F = np.array([[1.0, 0.0, 0.5],
              [0.8, 0.3, 0.0],
              [0.0, 0.0, 0.0],
              [0.0, 1.0, 0.2],
              [0.1, 0.9, 0.4]])


def dense_ease(gram, reg):
  p = np.linalg.inv(gram + reg * np.eye(len(gram)))
  b = p / -np.diag(p)
  np.fill_diagonal(b, 0.0)
  return b


def dense_c(f, reg_f):
  """The reference's phase 1: an I x I inverse of F F^T + lambda_F I."""
  return dense_ease(f @ f.T, reg_f)


@pytest.mark.parametrize("reg_f", [0.3, 5.0])
def test_woodbury_text_side_equals_dense_inverse(reg_f):
  c = l3ae.text_item_model(F, reg_f)
  assert c["c_in"].shape == c["c_out"].shape == (5, 3)  # [I, d]: no [I, I] array inside
  np.testing.assert_allclose(l3ae.dense_text_item_model(c), dense_c(F, reg_f), atol=1e-12)
  # The no-text item neither predicts nor is predicted.
  dense = l3ae.dense_text_item_model(c)
  np.testing.assert_array_equal(dense[2], 0.0)
  np.testing.assert_array_equal(dense[:, 2], 0.0)


def test_text_variant_scores_rows_through_the_factors():
  c = {k: jnp.asarray(v, jnp.float32) for k, v in l3ae.text_item_model(F, 0.7).items()}
  got = l3ae.L3AE.apply_rows(c, jnp.asarray(X, jnp.float32))
  np.testing.assert_allclose(got, X @ dense_c(F, 0.7), atol=1e-5)


@pytest.mark.parametrize("reg_x,reg_f,reg_e", [(2.0, 0.5, 3.0), (-1.0, 1.0, 4.0), (1.0, 1.0, 0.0)])
def test_l3ae_equals_reference_form_and_brute_force(reg_x, reg_f, reg_e):
  b = l3ae.fit_l3ae(sp.csr_matrix(X), F, reg_x=reg_x, reg_f=reg_f, reg_e=reg_e)
  assert b.dtype == np.float32
  # The reference's closed form, all dense.
  c = dense_c(F, reg_f)
  p = np.linalg.inv(X.T @ X + (reg_x + reg_e) * np.eye(5))
  pc = p @ c
  ref = reg_e * pc - p * ((1 + reg_e * np.diag(pc)) / np.diag(p))
  np.fill_diagonal(ref, 0.0)
  np.testing.assert_allclose(b, ref, atol=1e-5)
  # The problem it solves, column by column: min |x_j - X_-j b|^2 + lX |b|^2 + lE |b - c_-j,j|^2.
  for j in range(5):
    o = [k for k in range(5) if k != j]
    xo = X[:, o]
    col = np.linalg.solve(xo.T @ xo + (reg_x + reg_e) * np.eye(4), xo.T @ X[:, j] + reg_e * c[o, j])
    np.testing.assert_allclose(b[o, j], col, atol=1e-5)
  if reg_e == 0:  # no pull: EASE with lambda_X
    np.testing.assert_allclose(b, dense_ease(X.T @ X, reg_x), atol=1e-5)


def test_l3ae_with_a_strong_pull_tends_to_c():
  b = l3ae.fit_l3ae(sp.csr_matrix(X), F, reg_x=1.0, reg_f=0.5, reg_e=1e7)
  np.testing.assert_allclose(b, dense_c(F, 0.5), atol=1e-4)


def test_fusions_equal_their_dense_definitions():
  w = l3ae.fit_additive(sp.csr_matrix(X), F, reg_x=2.0, reg_f=0.5, alpha=0.3)
  np.testing.assert_allclose(w, 0.7 * dense_ease(X.T @ X, 2.0) + 0.3 * dense_c(F, 0.5), atol=1e-6)
  w = l3ae.fit_collective(sp.csr_matrix(X), F, reg_x=2.0, alpha=1.5)
  stacked = np.vstack([X, 1.5 * F.T])  # [U + d, I]
  np.testing.assert_allclose(w, dense_ease(stacked.T @ stacked, 2.0), atol=1e-6)


def test_bad_weights_are_refused():
  with pytest.raises(ConfigError, match="lambda_X \\+ lambda_E"):
    l3ae.fit_l3ae(sp.csr_matrix(X), F, reg_x=-5.0, reg_f=1.0, reg_e=5.0)
  with pytest.raises(ConfigError, match="lambda_F"):
    l3ae.text_item_model(F, 0.0)
  with pytest.raises(ConfigError, match="l3ae needs item vectors"):
    validate(Config(model="l3ae"))


def _exp(variant, **kw):
  ds = make_synthetic(num_users=12, num_items=10, per_user=4, seed=1)
  ds = dataclasses.replace(ds, interactions=dataclasses.replace(ds.interactions, weight=None))
  rng = np.random.default_rng(0)
  items = rng.normal(size=(ds.num_items, 4))
  items = (items / np.linalg.norm(items, axis=1, keepdims=True)).astype(np.float32)
  feats = np.concatenate([np.zeros((ds.num_users, 4), np.float32), items])
  mask = np.concatenate([np.zeros(ds.num_users, bool), np.ones(ds.num_items, bool)])
  cfg = validate(Config(model="l3ae", text_features="none", l3ae_variant=variant, topk=(2, 5),
                        select_metric="ndcg@5",
                        **kw))
  return experiment.prepare(cfg, ds, text_features=(feats, mask)), items


@pytest.mark.parametrize("variant", l3ae.VARIANTS)
def test_model_scores_are_history_rows_times_its_matrix(variant):
  exp, items = _exp(variant, l3ae_reg_x=1.0, l3ae_reg_f=0.5, l3ae_reg_e=2.0, l3ae_alpha=0.4)
  rec = models.create(exp)
  params = rec.init(None)
  x = l3ae.ease.interaction_matrix(exp.split.train, num_users=exp.num_users,
                                   num_items=exp.num_items)
  fits = {"l3ae": lambda: l3ae.fit_l3ae(x, items, reg_x=1.0, reg_f=0.5, reg_e=2.0),
          "additive": lambda: l3ae.fit_additive(x, items, reg_x=1.0, reg_f=0.5, alpha=0.4),
          "collective": lambda: l3ae.fit_collective(x, items, reg_x=1.0, alpha=0.4),
          "text": lambda: dense_c(items.astype(np.float64), 0.5)}
  w = np.asarray(fits[variant](), np.float64)
  got = rec.score_fn(rec.score_params(params), jnp.arange(exp.num_users))
  np.testing.assert_allclose(got, x.toarray() @ w, atol=1e-4)
  # A new user from a history: the same linear map, (e_0 + e_3) W.
  np.testing.assert_allclose(rec.history_scores(params, [0, 3]), w[0] + w[3], atol=1e-4)


def test_interaction_side_refuses_above_ease_limit(monkeypatch):
  exp, _ = _exp("l3ae")
  monkeypatch.setattr(l3ae.ease, "MAX_ITEMS", 5)
  with pytest.raises(ConfigError, match="caps it at 5 items .*l3ae_variant=text"):
    models.create(exp).init(None)
  exp, _ = _exp("text")
  models.create(exp).init(None)  # the text side has no item limit
