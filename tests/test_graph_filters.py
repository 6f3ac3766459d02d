"""GF-CF, BSPM and ChebyCF against dense NumPy computations of the papers' formulas.

The references below build R~ = D_U^-1/2 R D_I^-1/2 densely and take an exact SVD / eigen-
decomposition with numpy, so every sparse product, low-pass factor, ODE step and Chebyshev
recursion of `gnnrec_jax.models.graph_filters` is checked against an independent computation.
"""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

from gnnrec_jax import cli, configs, models

from gnnrec_jax.data.types import Interactions
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.errors import ConfigError, DataError
from gnnrec_jax.evaluation.evaluate import evaluate_full_ranking
from gnnrec_jax.experiment import prepare
from gnnrec_jax.graph import propagate
from gnnrec_jax.models import graph_filters as gf
from gnnrec_jax.models.ease import interaction_matrix

# 6 users x 5 items, every degree >= 1; the singular values of R~ are distinct (checked below),
# so the top-k singular subspace, and with it every low-pass filter, is unique.
R = np.array([[1, 1, 0, 0, 1],
              [1, 0, 1, 0, 0],
              [0, 1, 1, 1, 0],
              [0, 0, 0, 1, 1],
              [1, 1, 1, 0, 0],
              [0, 0, 1, 1, 1]], float)


def dense_parts(r):
  """(R~, d_I, V [I, min(U, I)] by descending singular value, singular values) with numpy."""
  du, di = r.sum(1), r.sum(0)
  inv = lambda d: np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1)), 0.0)
  rt = inv(du)[:, None] * r * inv(di)[None, :]
  _, s, vt = np.linalg.svd(rt)
  return rt, di, vt.T, s


def ref_gfcf(r, rows, alpha, k):
  """GF-CF: r R~^T R~ + alpha r D_I^-1/2 V_k V_k^T D_I^1/2."""
  rt, di, v, _ = dense_parts(r)
  v = v[:, :k]
  low = np.diag(np.where(di > 0, di ** -0.5, 0)) @ v @ v.T @ np.diag(np.sqrt(di))
  return rows @ rt.T @ rt + alpha * rows @ low


def classic_rk4(y, f, h):
  k1 = f(y)
  k2 = f(y + h / 2 * k1)
  k3 = f(y + h / 2 * k2)
  k4 = f(y + h * k3)
  return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def solve(y, f, solver, steps, horizon):
  """Fixed-step solution of dy/dt = f(y); returns (last state, list of states after each step)."""
  h = horizon / steps
  states = []
  for _ in range(steps):
    y = y + h * f(y) if solver == "euler" else classic_rk4(y, f, h)
    states.append(y)
  return y, states


def ref_bspm(r, rows, *, k, beta, sharpen_solver, sharpen_steps, sharpen_time, early_merge=True,
             t_point_combination=False, blur_steps=1, blur_time=1.0):
  """BSPM (the reference code's CPU path) with numpy matrices: Euler ideal low-pass (1 step to
  T = 1), Euler blurring, sharpening by the given solver; EM or LM merge."""
  rt, di, v, _ = dense_parts(r)
  lin = rt.T @ rt
  v = v[:, :k]
  p = np.diag(np.where(di > 0, 1 / np.sqrt(np.maximum(di, 1)), 0)) @ v @ v.T @ np.diag(np.sqrt(di))
  idl, _ = solve(rows, lambda y: y @ p - y, "euler", 1, 1.0)
  blur, blur_states = solve(rows, lambda y: y @ lin - y, "euler", blur_steps, blur_time)
  if sharpen_steps == 0:
    main = np.mean(blur_states, 0) if t_point_combination else blur
    return main + beta * idl
  y0 = beta * idl + blur if early_merge else blur
  sharp, sharp_states = solve(y0, lambda y: -y @ lin, sharpen_solver, sharpen_steps, sharpen_time)
  main = np.mean(blur_states + sharp_states, 0) if t_point_combination else sharp
  return main if early_merge else main + beta * idl


def ref_chebycf(r, rows, *, order, flatness, k, alpha, beta):
  """ChebyCF through the eigen-decomposition of R~^T R~: the filter sum_k c_k T_k(x) evaluated at
  the eigenvalues x = 1 - 2 mu of L~, plus alpha V V^T, between the degree normalisations."""
  rt, di, v, _ = dense_parts(r)
  mu, q = np.linalg.eigh(rt.T @ rt)
  h = np.polynomial.chebyshev.chebval(1 - 2 * mu, gf.chebyshev_coefficients(order, flatness))
  pre = np.where(di > 0, np.maximum(di, 1) ** -beta, 0) if beta else np.ones_like(di)
  post = np.where(di > 0, np.maximum(di, 1) ** beta, 0) if beta else np.ones_like(di)
  s = rows * pre
  out = s @ q @ np.diag(h) @ q.T + alpha * s @ v[:, :k] @ v[:, :k].T
  return out * post


def test_hand_matrix_has_distinct_singular_values():
  s = dense_parts(R)[3]
  assert np.min(np.abs(np.diff(s))) > 1e-3
  np.testing.assert_allclose(s[0], 1.0, atol=1e-12)  # the normalised matrix's top value


def test_normalize_interactions_by_hand():
  rt, du, di = gf.normalize_interactions(sp.csr_matrix([[1, 1], [0, 1]]))
  np.testing.assert_array_equal(du, [2, 1])
  np.testing.assert_array_equal(di, [1, 2])
  np.testing.assert_allclose(rt.toarray(), [[1 / np.sqrt(2), 1 / 2], [0, 1 / np.sqrt(2)]])


def test_normalize_rejects_non_binary_and_dense():
  with pytest.raises(DataError, match=r"user 1, item 0\) is 3"):
    gf.normalize_interactions(sp.csr_matrix([[1, 0], [3, 1]]))
  with pytest.raises(DataError, match="scipy sparse"):
    gf.normalize_interactions(np.ones((2, 2)))


@pytest.mark.parametrize("alpha,k", [(0.3, 2), (1.0, 4), (0.0, 1)])
def test_gfcf_matches_dense_formula(alpha, k):
  params = gf.fit_gfcf(sp.csr_matrix(R), alpha=alpha, num_factors=k)
  out = jax.jit(gf.apply_gfcf)(params, jnp.asarray(R, jnp.float32))
  np.testing.assert_allclose(out, ref_gfcf(R, R, alpha, k), atol=2e-6)


def test_gfcf_by_hand_one_user():
  # One user with both items: R~ = [[1/sqrt2, 1/sqrt2]], R~^T R~ = 1/2 [[1, 1], [1, 1]]; the top
  # right singular vector is (1, 1)/sqrt2 with equal degrees, so V V^T = R~^T R~ as well and
  # r = (1, 0) scores (1/2, 1/2) * (1 + alpha).
  params = gf.fit_gfcf(sp.csr_matrix([[1.0, 1.0]]), alpha=0.5, num_factors=1)
  np.testing.assert_allclose(gf.apply_gfcf(params, jnp.array([[1.0, 0.0]])), [[0.75, 0.75]],
                             atol=1e-6)


@pytest.mark.parametrize("setting", [
    dict(k=3, beta=0.2, sharpen_solver="rk4", sharpen_steps=1, sharpen_time=2.5),  # Gowalla EM
    dict(k=2, beta=0.3, sharpen_solver="euler", sharpen_steps=3, sharpen_time=1.2,
         t_point_combination=True, blur_steps=2, blur_time=1.0),
    dict(k=2, beta=0.5, sharpen_solver="rk4", sharpen_steps=2, sharpen_time=2.2,
         early_merge=False, t_point_combination=True),                           # LM
    dict(k=4, beta=0.3, sharpen_solver="euler", sharpen_steps=0, sharpen_time=1.0,
         t_point_combination=True, blur_steps=3, blur_time=1.5),                 # no sharpening
])
def test_bspm_matches_dense_solver(setting):
  kw = dict(setting)
  k = kw.pop("k")
  params = gf.fit_bspm(sp.csr_matrix(R), num_factors=k, **kw)
  out = jax.jit(gf.apply_bspm)(params, jnp.asarray(R, jnp.float32))
  np.testing.assert_allclose(out, ref_bspm(R, R, k=k, **kw), atol=5e-6)


def test_bspm_sharpening_converges_to_matrix_exponential():
  # Many RK4 steps of dr/dt = -r L solve it exactly: r(T) = r(0) expm(-T L).
  params = gf.fit_bspm(sp.csr_matrix(R), num_factors=2, beta=0.0, sharpen_solver="rk4",
                       sharpen_steps=40, sharpen_time=2.5)
  rt = dense_parts(R)[0]
  lin = rt.T @ rt
  expected = (R @ lin) @ scipy.linalg.expm(-2.5 * lin)
  np.testing.assert_allclose(gf.apply_bspm(params, jnp.asarray(R, jnp.float32)), expected,
                             atol=1e-5)


def test_chebyshev_coefficients_by_hand_and_interpolate():
  # K = 2, phi = 1: plateau values (1, 1/2, 0) at x = (-1, 0, 1), placed on the nodes
  # cos(5pi/6), 0, cos(pi/6): the interpolant is the line 1/2 - x / sqrt3.
  np.testing.assert_allclose(gf.chebyshev_coefficients(2, 1.0), [0.5, -1 / np.sqrt(3), 0],
                             atol=1e-12)
  order, phi = 8, 1.5
  c = gf.chebyshev_coefficients(order, phi)
  j = np.arange(order + 1)
  nodes = np.cos((order + 0.5 - j) / (order + 1) * np.pi)
  x = np.round(np.cos((order - j) / order * np.pi), 3)
  target = np.round(np.where(x < 0, 0.5 + 0.5 * np.abs(x) ** phi, 0.5 - 0.5 * np.abs(x) ** phi), 3)
  np.testing.assert_allclose(np.polynomial.chebyshev.chebval(nodes, c), target, atol=1e-12)


@pytest.mark.parametrize("setting", [
    dict(order=8, flatness=1.5, k=3, alpha=0.2, beta=0.4),   # the paper's Gowalla setting
    dict(order=3, flatness=15.0, k=2, alpha=0.0, beta=0.0),  # no ideal pass, no normalisation
    dict(order=1, flatness=2.0, k=4, alpha=0.5, beta=0.5),
])
def test_chebycf_matches_eigendecomposition(setting):
  kw = dict(setting)
  k = kw.pop("k")
  params = gf.fit_chebycf(sp.csr_matrix(R), num_factors=k, **kw)
  out = jax.jit(gf.apply_chebycf)(params, jnp.asarray(R, jnp.float32))
  np.testing.assert_allclose(out, ref_chebycf(R, R, k=k, **kw), atol=5e-6)


def test_zero_degree_item_scores_zero_and_user_without_items():
  r = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 0]], float)  # item 1 and user 2 have no interaction
  for name, (fit, apply) in gf.FILTERS.items():
    out = np.asarray(jax.jit(apply)(fit(sp.csr_matrix(r), num_factors=1), jnp.asarray(r)))
    assert np.isfinite(out).all(), name
    np.testing.assert_array_equal(out[:, 1], 0.0, err_msg=name)
    np.testing.assert_array_equal(out[2], 0.0, err_msg=name)


@pytest.mark.parametrize("name", list(gf.FILTERS))
def test_filters_are_linear_in_rows(name):
  fit, apply = gf.FILTERS[name]
  params = fit(sp.csr_matrix(R), num_factors=2)
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 3, 5)).astype(np.float32)
  f = jax.jit(apply)
  np.testing.assert_allclose(f(params, 2.0 * a - 3.0 * b), 2.0 * f(params, a) - 3.0 * f(params, b),
                             atol=1e-5)
  # A history's scores are the sum of its items' scores: exact per-item explanations.
  one_hot = np.eye(5, dtype=np.float32)
  np.testing.assert_allclose(f(params, R[:1].astype(np.float32))[0],
                             (R[0][:, None] * f(params, one_hot)).sum(0), atol=1e-5)


@pytest.mark.parametrize("name", list(gf.FILTERS))
def test_jit_equals_eager_and_gpu_path(name, monkeypatch):
  fit, apply = gf.FILTERS[name]
  params = fit(sp.csr_matrix(R), num_factors=2)
  rows = jnp.asarray(R, jnp.float32)
  jitted = jax.jit(apply)(params, rows)
  np.testing.assert_allclose(apply(params, rows), jitted, atol=1e-6)
  # The segment-sum path that "auto" takes on GPU/TPU, forced here on CPU.
  monkeypatch.setattr(propagate.jax, "default_backend", lambda: "gpu")
  np.testing.assert_allclose(jax.jit(apply)(params, rows), jitted, atol=1e-6)


def test_more_items_than_users():
  # R has more users than items (6 x 5); its transpose exercises the other padding of the shared
  # node range (I > U, as in Gowalla).
  r = R.T.copy()
  for alpha in (0.0, 0.3):
    params = gf.fit_gfcf(sp.csr_matrix(r), alpha=alpha, num_factors=2)
    np.testing.assert_allclose(gf.apply_gfcf(params, jnp.asarray(r, jnp.float32)),
                               ref_gfcf(r, r, alpha, 2), atol=2e-6)


@pytest.mark.parametrize("method", ["arpack", "randomized"])
def test_top_singular_vectors_match_dense_svd(method):
  rng = np.random.default_rng(1)
  # A matrix with a clear gap after the 6th singular value: rank-6 signal plus small noise.
  a = rng.normal(size=(120, 6)) @ rng.normal(size=(6, 90)) + 0.01 * rng.normal(size=(120, 90))
  a = sp.csr_matrix(a)
  s, v = gf.top_singular_vectors(a, 6, method=method)
  s_ref, v_ref = gf.top_singular_vectors(a, 6, method="dense")
  np.testing.assert_allclose(s, s_ref, rtol=1e-5)
  np.testing.assert_allclose(np.abs(v.T @ v_ref), np.eye(6), atol=1e-4)  # same vectors up to sign
  assert np.all(np.diff(s) <= 0)


def test_factors_are_reused_and_checked():
  r_tilde = gf.normalize_interactions(sp.csr_matrix(R))[0]
  v = gf.top_singular_vectors(r_tilde, 4, method="dense")[1]
  a = gf.fit_gfcf(sp.csr_matrix(R), num_factors=2, factors=v)
  b = gf.fit_gfcf(sp.csr_matrix(R), num_factors=2)
  np.testing.assert_allclose(gf.apply_gfcf(a, jnp.asarray(R, jnp.float32)),
                             gf.apply_gfcf(b, jnp.asarray(R, jnp.float32)), atol=1e-6)
  with pytest.raises(ConfigError, match="factors has shape"):
    gf.fit_gfcf(sp.csr_matrix(R), num_factors=5, factors=v)


def test_bad_settings_raise_config_errors():
  m = sp.csr_matrix(R)
  with pytest.raises(ConfigError, match="sharpen solver 'rk5'"):
    gf.fit_bspm(m, num_factors=2, sharpen_solver="rk5")
  with pytest.raises(ConfigError, match="blur_steps=0"):
    gf.fit_bspm(m, num_factors=2, blur_steps=0)
  with pytest.raises(ConfigError, match="svd_rank=9"):
    gf.fit_gfcf(m, num_factors=9)
  with pytest.raises(ConfigError, match="unknown svd_method"):
    gf.fit_chebycf(m, num_factors=2, svd="lanczos")


def test_batches_wider_than_one_transpose_block():
  # 300 rows: the [I, B] -> [B, I] transpose runs in blocks of 128 columns (128, 128, 44).
  params = gf.fit_gfcf(sp.csr_matrix(R), alpha=0.3, num_factors=2)
  rows = (np.random.default_rng(2).random((300, 5)) < 0.5).astype(np.float32)
  np.testing.assert_allclose(jax.jit(gf.apply_gfcf)(params, jnp.asarray(rows)),
                             ref_gfcf(R, rows, 0.3, 2), atol=2e-6)


# --- the filters as models of the library (config -> init -> score_fn, CLI) ---------------------
# name -> (config overrides, the dense reference of the same setting).
MODEL_CASES = {
    "gfcf": (dict(filter_alpha=0.4, svd_rank=4),
             lambda r, rows: ref_gfcf(r, rows, 0.4, 4)),
    "bspm": (dict(filter_alpha=0.3, svd_rank=4, bspm_sharpen_solver="euler",
                  bspm_sharpen_steps=3, bspm_sharpen_time=1.5, bspm_blur_steps=2),
             lambda r, rows: ref_bspm(r, rows, k=4, beta=0.3, sharpen_solver="euler",
                                      sharpen_steps=3, sharpen_time=1.5, blur_steps=2)),
    "chebycf": (dict(filter_alpha=0.2, svd_rank=4, cheby_order=5, cheby_flatness=2.0,
                     cheby_beta=0.3),
                lambda r, rows: ref_chebycf(r, rows, order=5, flatness=2.0, k=4, alpha=0.2,
                                            beta=0.3)),
}


@pytest.mark.parametrize("name", list(MODEL_CASES))
def test_filter_models_from_config_match_dense_reference(name):
  overrides, reference = MODEL_CASES[name]
  exp = prepare(configs.get_config("test").replace(model=name, **overrides), make_synthetic())
  rec = models.create(exp)
  assert not rec.trainable and type(rec).__name__.lower() == name
  params = rec.init(jax.random.key(0))
  r = interaction_matrix(exp.split.train, num_users=exp.num_users,
                         num_items=exp.num_items).toarray()
  users = np.array([0, 7, 31, 7])
  np.testing.assert_allclose(rec.scores(params, users), reference(r, r[users]), atol=2e-5)
  # A new user with user 7's history scores as user 7; F[j, i] is the one-hot row's score.
  hist = np.flatnonzero(r[7])
  np.testing.assert_allclose(rec.history_scores(params, hist), reference(r, r[7:8])[0],
                             atol=2e-5)
  np.testing.assert_allclose(rec.item_item(params, [2, 5], [0, 9]),
                             reference(r, np.eye(exp.num_items)[[2, 5]])[:, [0, 9]], atol=2e-5)


@pytest.mark.parametrize("name", list(MODEL_CASES))
def test_train_evaluate_recommend_each_filter_through_the_cli(name, tmp_path, capsys):
  # The embedded default dataset (ml-100k, RecBole's split), as a user would run it.
  wd = str(tmp_path / "run")
  assert cli.main(["train", "--model", name, "--workdir", wd, "--no-progress",
                   "--set", "svd_rank=16", "--set", "eval_batch_size=1024"]) == 0
  metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  for f in ("config.json", "run.json", "history.jsonl", "best.ckpt", "metrics.json",
            "per_user_test.npz"):
    assert (tmp_path / "run" / f).exists(), f
  history = [json.loads(line) for line in open(tmp_path / "run" / "history.jsonl")]
  assert [h["epoch"] for h in history] == [0] and history[0]["fit_s"] > 0
  assert history[0]["valid/ndcg@20"] > 0.2  # far above popularity (about .15) on ml-100k
  assert metrics["ndcg@20"] > 0.2
  # `evaluate` reloads the checkpoint (raw arrays, no refit) and reproduces the test metrics.
  assert cli.main(["evaluate", "--workdir", wd, "--no-table"]) == 0
  again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert again["ndcg@20"] == pytest.approx(metrics["ndcg@20"], abs=1e-6)
  assert cli.main(["recommend", "--workdir", wd, "--user", "196", "-k", "3", "--explain"]) == 0
  out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert len(out["recommendations"]) == 3 and out["explanation"]["exact"]


@pytest.mark.parametrize("shape", [(40, 70), (70, 40)])
def test_dense_top_singular_vectors_match_numpy_svd(shape):
  # Both sides of the Gram trick (U <= I: right vectors from left ones; U > I: directly), and a
  # rank-deficient matrix (a zero row and column), whose requested zero singular value falls
  # back to the full SVD.
  rng = np.random.default_rng(4)
  a = (rng.random(shape) < 0.2).astype(float)
  a[0], a[:, 0] = 0.0, 0.0
  _, s_ref, vt_ref = np.linalg.svd(a, full_matrices=False)
  s, v = gf.top_singular_vectors(sp.csr_matrix(a), 10, method="dense")
  np.testing.assert_allclose(s, s_ref[:10], rtol=1e-10)
  np.testing.assert_allclose(np.abs(v.T @ vt_ref[:10].T), np.eye(10), atol=1e-8)
  rank = min(shape) - 1
  s, v = gf.top_singular_vectors(sp.csr_matrix(a), rank + 1, method="dense")
  assert s[-1] < 1e-10 and np.isfinite(v).all()
  np.testing.assert_allclose(v.T @ v, np.eye(rank + 1), atol=1e-10)
