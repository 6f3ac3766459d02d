"""Graph filters with the item vectors' similarity mixed into the item graph
(`filter_text_weight`, models/graph_filters.py: L' = (1 - w) R~^T R~ + w S) against dense NumPy."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from gnnrec_jax import experiment, models
from gnnrec_jax.config import Config, validate
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.models import graph_filters as gf

R = np.array([[1, 1, 0, 0, 1],
              [1, 0, 1, 0, 0],
              [0, 1, 1, 1, 0],
              [0, 0, 0, 1, 1],
              [1, 1, 1, 0, 0],
              [0, 0, 1, 1, 1]], float)
# Item 2 has no text.
F = np.array([[1.0, 0.0, 0.5],
              [0.8, 0.3, 0.0],
              [0.0, 0.0, 0.0],
              [0.0, 1.0, 0.2],
              [0.1, 0.9, 0.4]])


def dense_text_graph(f):
  """S by its definition: cosine matrix of the centred (text items only) vectors, / its norm."""
  has = np.linalg.norm(f, axis=1) > 0
  c = f.copy()
  c[has] -= f[has].mean(0)
  c[has] /= np.linalg.norm(c[has], axis=1, keepdims=True)
  cos = c @ c.T
  return cos / np.linalg.eigvalsh(cos).max()


def dense_mixed(r, f, w):
  du, di = r.sum(1), r.sum(0)
  rt = r / np.sqrt(du)[:, None] / np.sqrt(di)[None, :]
  return (1 - w) * rt.T @ rt + w * dense_text_graph(f), rt, di


def test_text_graph_by_hand_and_its_spectrum():
  s = dense_text_graph(F)
  g = gf.text_similarity_factors(F)
  np.testing.assert_allclose(g @ g.T, s, atol=1e-12)
  np.testing.assert_array_equal(s[2], 0.0)  # no text: no text edges
  mixed, _, _ = dense_mixed(R, F, 0.4)
  eig = np.linalg.eigvalsh(mixed)
  assert eig.min() > -1e-12 and eig.max() <= 1 + 1e-12


@pytest.mark.parametrize("w", [0.0, 0.3, 1.0])
def test_gfcf_with_text_matches_dense(w):
  mixed, rt, di = dense_mixed(R, F, w)
  _, _, vt = np.linalg.svd(rt)
  v = vt.T[:, :2]
  low = np.diag(di ** -0.5) @ v @ v.T @ np.diag(np.sqrt(di))
  params = gf.with_text(gf.fit_gfcf(sp.csr_matrix(R), alpha=0.3, num_factors=2), F, w)
  assert ("text" in params) == (w > 0)
  out = jax.jit(gf.apply_gfcf)(params, jnp.asarray(R, jnp.float32))
  np.testing.assert_allclose(out, R @ mixed + 0.3 * R @ low, atol=5e-6)


def test_chebycf_with_text_matches_eigendecomposition():
  w, order, flatness, beta, alpha, k = 0.5, 4, 2.0, 0.3, 0.2, 2
  mixed, rt, di = dense_mixed(R, F, w)
  _, _, vt = np.linalg.svd(rt)
  v = vt.T[:, :k]
  mu, q = np.linalg.eigh(mixed)
  h = np.polynomial.chebyshev.chebval(1 - 2 * mu, gf.chebyshev_coefficients(order, flatness))
  s = R * di ** -beta
  want = (s @ q @ np.diag(h) @ q.T + alpha * s @ v @ v.T) * di ** beta
  params = gf.with_text(gf.fit_chebycf(sp.csr_matrix(R), order=order, flatness=flatness,
                                       num_factors=k, alpha=alpha, beta=beta), F, w)
  out = jax.jit(gf.apply_chebycf)(params, jnp.asarray(R, jnp.float32))
  np.testing.assert_allclose(out, want, atol=5e-6)


def test_filter_model_reads_the_experiments_item_vectors():
  ds = make_synthetic(num_users=12, num_items=10, per_user=4, seed=1)
  rng = np.random.default_rng(0)
  items = rng.normal(size=(ds.num_items, 4)).astype(np.float32)
  feats = np.concatenate([np.zeros((ds.num_users, 4), np.float32), items])
  mask = np.concatenate([np.zeros(ds.num_users, bool), np.ones(ds.num_items, bool)])
  cfg = validate(Config(model="gfcf", text_features="none", filter_text_weight=0.5, svd_rank=3,
                        topk=(2, 5), select_metric="ndcg@5"))
  exp = experiment.prepare(cfg, ds, text_features=(feats, mask))
  params = models.create(exp).init(None)
  np.testing.assert_allclose(params["text"], gf.text_similarity_factors(items), atol=1e-6)
  with pytest.raises(ConfigError, match="filter_text_weight > 0 needs a graph filter"):
    validate(Config(model="gfcf", filter_text_weight=0.5))
  with pytest.raises(ConfigError, match="filter_text_weight > 0 needs a graph filter"):
    validate(Config(model="ease", text_features="none", filter_text_weight=0.5))
