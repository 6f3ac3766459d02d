"""Training-free graph filters for collaborative filtering: GF-CF, BSPM and ChebyCF.

All three score a user by filtering the user's binary interaction row r ([I]) on the normalised
item–item graph built from the training matrix R ([U, I]):

  R~ = D_U^-1/2 R D_I^-1/2   (D_U, D_I: user and item degrees; 0 where a degree is 0)
  L  = R~^T R~               the "linear filter"; its eigenvalues are the squared singular values
                             of R~, in [0, 1], and I - L is the normalised item Laplacian
  V  = the top-k right singular vectors of R~ ([I, k]); V V^T is the ideal low-pass filter

  * GF-CF (Shen et al., CIKM 2021, "How Powerful is Graph Convolution for Recommendation?"):
    s = r L + alpha r D_I^-1/2 V V^T D_I^1/2.
  * BSPM (Choi et al., SIGIR 2023, "Blurring-Sharpening Process Models for Collaborative
    Filtering"): a blurring ODE dr/dt = r L - r and an ideal low-pass ODE dr/dt = r P - r
    (P = D_I^-1/2 V V^T D_I^1/2), merged, then a sharpening ODE dr/dt = -r L, each solved with a
    fixed-step explicit Runge–Kutta method (Euler or RK4).
  * ChebyCF (Kim et al., SIGIR 2025, "Graph Spectral Filtering with Chebyshev Interpolation for
    Recommendation"): s = (sum_k c_k T_k(L~) + alpha V V^T) (r D_I^-beta), then times D_I^beta,
    where L~ = I - 2 L is the Laplacian rescaled to [-1, 1] and the c_k interpolate a "plateau"
    low-pass response at K + 1 Chebyshev nodes.

Text in the item graph (`filter_text_weight` w > 0; no paper does this that we know of): the
linear filter L is replaced by L' = (1 - w) R~^T R~ + w S, S = G G^T the cosine matrix of the
centred item vectors scaled to spectral norm 1 (`text_similarity_factors`), so every filter above
runs unchanged on a graph whose eigenvalues stay in [0, 1]; the ideal low-pass V stays R~'s. G is
[I, d]: still no [I, I] matrix.

The equations and hyperparameters follow the papers' reference code (github.com/yshenaw/GF_CF,
github.com/jeongwhanchoi/BSPM, github.com/chanwoo0806/ChebyCF), which is what their published
numbers were produced with; where the code has a quirk, the docstring below says so.

Every filter is a linear map of r (diagonal scalings, products with fixed matrices, fixed-step
ODE solvers of linear ODEs), so a new user is scored from a history and a score decomposes
exactly over the history's items.

Host / device split. `fit_<name>(train_matrix, ...)` runs on the host once (scipy sparse
normalisation, a truncated SVD) and returns a dict of jax arrays. `apply_<name>(params, rows)` is
pure jnp, jit-traceable on CPU and GPU, and never forms an [I, I] matrix: the linear filter is
two sparse products (rows @ R~^T, then @ R~) through `gnnrec_jax.graph.propagate.weighted_sum`
(the native CSR kernels on CPU, segment sums on GPU), the low-pass parts go through [I, k]
factors.

Models. `GFCF`, `BSPM` and `ChebyCF` are `LinearItemRecommender`s (models/closed_form.py): `init`
is the fit, with the hyperparameters read from the config (`filter_alpha`, `svd_rank`,
`svd_method`, `bspm_*`, `cheby_*`; per-model defaults and each paper's values in
`gnnrec_jax/configs/<name>.py`), `apply_rows` the filter. `gnnrec-jax train --model gfcf` (bspm,
chebycf) fits, validates, tests, saves and explains them as it does EASE.

Static structure is read from array shapes (jraph's habit): the number of users from
`params["user_degree"]`, ChebyCF's order from its coefficients, BSPM's step counts and solver
stages from its time grids and Butcher tableaus. Weights (alpha, beta, ...) are scalar leaves, so
a validation grid over them reuses one compilation and one SVD.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import scipy.linalg
import scipy.linalg.blas
import scipy.sparse as sp
import scipy.sparse.linalg

from gnnrec_jax.errors import ConfigError, DataError
from gnnrec_jax.graph import propagate
from gnnrec_jax.models.closed_form import LinearItemRecommender

Params = dict[str, Any]

SVD_METHODS = ("auto", "dense", "arpack", "randomized")
SOLVERS = ("euler", "rk4")
# Below this many matrix entries (U * I) "auto" takes the exact dense SVD (ml-100k: 1.6M, under
# a second); above it the randomized subspace iteration (Gowalla: 1.2G entries).
DENSE_SVD_MAX_ENTRIES = 25_000_000


# --- host side: normalisation and the truncated SVD ----------------------------------------------
def _check_matrix(train_matrix) -> sp.csr_matrix:
  if not sp.issparse(train_matrix) or train_matrix.ndim != 2:
    raise DataError(f"train_matrix must be a scipy sparse [U, I] matrix, got "
                    f"{type(train_matrix).__name__}")
  r = sp.csr_matrix(train_matrix, dtype=np.float64, copy=True)
  r.sum_duplicates()
  r.eliminate_zeros()
  if r.nnz and (r.data != 1.0).any():
    bad = np.flatnonzero(r.data != 1.0)[0]
    row = int(np.searchsorted(r.indptr, bad, side="right") - 1)
    raise DataError(f"train_matrix must be binary; entry (user {row}, item {int(r.indices[bad])})"
                    f" is {r.data[bad]:g}")
  return r


def normalize_interactions(train_matrix) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
  """R~ = D_U^-1/2 R D_I^-1/2 of a binary [U, I] matrix (0 rows/columns stay 0).

  Returns:
    (r_tilde [U, I] float64 CSR, user_degree [U] float64, item_degree [I] float64).

  Raises:
    DataError: not a sparse matrix, or an entry other than 0/1.
  """
  r = _check_matrix(train_matrix)
  du = np.asarray(r.sum(axis=1)).ravel()
  di = np.asarray(r.sum(axis=0)).ravel()
  inv_u = np.where(du > 0, 1.0 / np.sqrt(np.maximum(du, 1.0)), 0.0)
  inv_i = np.where(di > 0, 1.0 / np.sqrt(np.maximum(di, 1.0)), 0.0)
  r_tilde = sp.diags(inv_u) @ r @ sp.diags(inv_i)
  return sp.csr_matrix(r_tilde), du, di


def _orthonormalize(y: np.ndarray, passes: int = 2) -> np.ndarray:
  """An orthonormal basis of y's columns by CholeskyQR (Gram matrix, Cholesky, triangular solve).

  All level-3 BLAS: on the 2-core development machine a Householder QR (`np.linalg.qr`) of a
  [41k, 768] float32 block took 42 s, one CholeskyQR pass about 1 s. One pass leaves an
  orthogonality error of about eps * cond(y)^2, which is small for a block that a power step
  has just multiplied by R~^T R~ (cond <= sigma_1^2 / sigma_l^2); the second pass ("CholeskyQR2")
  brings any such block to working precision. Where Cholesky fails, a diagonal shift keeps it
  defined for a numerically rank-deficient block (shifted CholeskyQR, Fukaya et al. 2020): the
  result then spans the same columns but is only near-orthonormal until the next pass.
  """
  for _ in range(passes):
    gram = (y.T @ y).astype(np.float64)
    scale = max(np.trace(gram) / gram.shape[0], 1e-300)
    shift = 0.0
    while True:
      try:
        chol = np.linalg.cholesky(gram + shift * scale * np.eye(gram.shape[0]))
        break
      except np.linalg.LinAlgError:
        shift = max(100 * shift, 10 * float(np.finfo(y.dtype).eps))
    # y <- y L^-T, i.e. y^T <- L^-1 y^T: one BLAS triangular solve on the Fortran-ordered view
    # y.T (no copy; half the flops of multiplying by an explicit inverse).
    (trsm,) = scipy.linalg.blas.get_blas_funcs(("trsm",), (y,))
    y = trsm(1.0, chol.astype(y.dtype), y.T, side=0, lower=1, trans_a=0).T
  return y


def top_singular_vectors(r_tilde: sp.spmatrix, k: int, *, method: str = "auto",
                         power_iters: int = 30, orthonormalize_every: int = 3,
                         oversample: int | None = None,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """The k largest singular values of r_tilde and their right singular vectors.

  Args:
    r_tilde: [U, I] sparse matrix.
    k: how many (1 <= k < min(U, I) for "arpack"; <= min(U, I) otherwise).
    method: "dense" (the top eigenpairs of the smaller dense Gram matrix: exact, small
      matrices only, `_dense_top_singular`), "arpack"
      (scipy.sparse.linalg.svds, the Lanczos method the papers' code uses: exact, but on
      Gowalla 71 s for k = 256 on an idle 2-core CPU and minutes for k = 512), "randomized"
      (block subspace iteration on R~^T R~ with a Rayleigh–Ritz step: Halko et al. 2011, alg.
      4.4 / 5.1), or "auto" (dense up to DENSE_SVD_MAX_ENTRIES entries, else randomized).
    power_iters: products of the "randomized" block with R~^T R~ (q).
    orthonormalize_every: the block is re-orthonormalised after this many products. Fewer
      orthonormalisations are cheaper (each costs two [I, l] x [I, l] matrix products) and
      three products in a row keep the block's condition number below (sigma_1 / sigma_l)^6,
      which float32 CholeskyQR handles. On Gowalla (k = 512, exact ARPACK vectors as the
      reference) 30 products with an orthonormalisation every 3 gave singular values within
      1e-4 and a mean principal-angle cosine of .99985 with the exact subspace, more accurate
      and faster than 20 products each followed by one (.9981).
    oversample: extra columns of "randomized" (default max(k // 2, 16)): the k-th vector's
      error falls like (sigma_{k+p+1} / sigma_k)^(2 q).
    seed: the random start block of "randomized".

  Returns:
    (s [k] descending float64, v [I, k] float64 with orthonormal columns).

  Raises:
    ConfigError: an unknown method or a k out of range.
  """
  if method not in SVD_METHODS:
    raise ConfigError(f"unknown svd_method {method!r}; choose one of {', '.join(SVD_METHODS)}")
  num_users, num_items = r_tilde.shape
  if not 1 <= k <= min(num_users, num_items):
    raise ConfigError(f"svd_rank={k} must be in [1, min(U, I) = {min(num_users, num_items)}]")
  if power_iters < 0 or orthonormalize_every < 1:
    raise ConfigError(f"need power_iters >= 0 and orthonormalize_every >= 1, got {power_iters} "
                      f"and {orthonormalize_every}")
  if method == "auto":
    method = "dense" if num_users * num_items <= DENSE_SVD_MAX_ENTRIES else "randomized"
  if method == "dense":
    return _dense_top_singular(sp.csr_matrix(r_tilde, dtype=np.float64), k)
  if method == "arpack":
    if k >= min(num_users, num_items):
      raise ConfigError(f"svd_method='arpack' needs svd_rank < min(U, I) = "
                        f"{min(num_users, num_items)}, got {k}")
    _, s, vt = scipy.sparse.linalg.svds(sp.csr_matrix(r_tilde, dtype=np.float64), k=k,
                                        solver="arpack", random_state=seed)
    order = np.argsort(-s)
    return s[order], vt[order].T.copy()
  # Randomized subspace iteration in float32: the dense [I, l] block products dominate and the
  # subspace needs ~1e-5 accuracy, not 1e-15. The sparse products R~^T R~ z go through the same
  # jitted operator as scoring (native CSR kernels on CPU: ~20x scipy's single-threaded product
  # on this block); the small Rayleigh–Ritz eigenproblem is float64.
  width = min(k + (max(k // 2, 16) if oversample is None else oversample), num_items)
  graph = _graph_params(sp.csr_matrix(r_tilde), np.ones(num_users), np.ones(num_items))
  gram_apply = lambda z: np.asarray(_linear_filter_jit(graph, jnp.asarray(z)))
  z = np.random.default_rng(seed).standard_normal((num_items, width)).astype(np.float32)
  z = _orthonormalize(z)
  for step in range(1, power_iters + 1):
    z = gram_apply(z)
    if step % orthonormalize_every == 0:
      z = _orthonormalize(z, passes=1)
  z = _orthonormalize(z)
  h = (z.T @ gram_apply(z)).astype(np.float64)   # Z^T R~^T R~ Z, [width, width]
  w, vecs = np.linalg.eigh((h + h.T) / 2)
  order = np.argsort(-w)[:k]
  v = z.astype(np.float64) @ vecs[:, order]      # [I, k]
  v /= np.linalg.norm(v, axis=0, keepdims=True)  # Z is orthonormal to float32 precision
  return np.sqrt(np.maximum(w[order], 0.0)), v


def _dense_top_singular(r_tilde: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
  """Exact top-k singular values and right vectors through the smaller Gram matrix.

  The top k eigenpairs of R~ R~^T ([U, U], when U <= I) or R~^T R~ are sigma^2 and the left or
  right singular vectors; right vectors from left ones are v = R~^T u / sigma. On ml-100k
  (943 x 1682, k = 64) this took 0.9 s against 7.1 s for numpy's full SVD (one thread, busy
  machine). Dividing by sigma is accurate for the singular values well above zero that a
  low-pass keeps; if a requested one is (numerically) zero, the full SVD is taken instead.
  """
  num_users, num_items = r_tilde.shape
  by_users = num_users <= num_items
  gram = (r_tilde @ r_tilde.T if by_users else r_tilde.T @ r_tilde).toarray()  # [m, m]
  m = gram.shape[0]
  w, q = scipy.linalg.eigh(gram, subset_by_index=(m - k, m - 1))
  order = np.argsort(-w)
  s = np.sqrt(np.maximum(w[order], 0.0))
  q = q[:, order]
  if s[-1] <= 1e-6 * max(s[0], 1e-300):
    _, s_full, vt = np.linalg.svd(r_tilde.toarray(), full_matrices=False)
    return s_full[:k], vt[:k].T.copy()
  if not by_users:
    return s, q
  v = np.asarray(r_tilde.T @ q) / s[None, :]  # [I, k]
  return s, v


def _factors(r_tilde, k: int, factors, svd: str, seed: int) -> np.ndarray:
  """V [I, k]: the first k columns of precomputed `factors`, or a new truncated SVD."""
  if k == 0:
    return np.zeros((r_tilde.shape[1], 0))
  if factors is not None:
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[0] != r_tilde.shape[1] or factors.shape[1] < k:
      raise ConfigError(f"factors has shape {factors.shape}; need [{r_tilde.shape[1]}, >= {k}]")
    return factors[:, :k]
  return top_singular_vectors(r_tilde, k, method=svd, seed=seed)[1]


def _graph_params(r_tilde: sp.csr_matrix, user_degree, item_degree) -> Params:
  """R~'s nonzeros twice, sorted by user and by item (the receivers of the two products)."""
  coo = r_tilde.tocoo()
  by_user = np.lexsort((coo.col, coo.row))
  by_item = np.lexsort((coo.row, coo.col))
  edges = lambda order, send, recv: {
      "senders": jnp.asarray(send[order], jnp.int32),
      "receivers": jnp.asarray(recv[order], jnp.int32),
      "weights": jnp.asarray(coo.data[order], jnp.float32)}
  return {
      "user_degree": jnp.asarray(user_degree, jnp.float32),  # [U]; its shape gives U to jit
      "item_degree": jnp.asarray(item_degree, jnp.float32),  # [I]
      "to_user": edges(by_user, coo.col, coo.row),           # R~ x: item -> user
      "to_item": edges(by_item, coo.row, coo.col),           # R~^T y: user -> item
  }


def _columns(rows: jax.Array) -> jax.Array:
  """[B, I] rows -> [I, B] float32 column signals (the sparse products gather rows of [N, B])."""
  return rows.astype(jnp.float32).T


_TRANSPOSE_BLOCK = 128


def _to_rows(x: jax.Array) -> jax.Array:
  """[I, B] column signals -> [B, I] scores.

  On CPU the transpose is taken as identity matmuls over blocks of 128 columns (B * 128 * I
  multiply-adds, a few percent of a filter): a plain `x.T` lets XLA:CPU fuse the filter's last
  elementwise combination (BSPM: a dozen [I, B] operands) into the transpose, which then reads
  every operand with a stride of B floats; measured on Gowalla with B = 128, BSPM took 1.7-2x
  as long as without the transpose, and an optimization barrier does not stop the fusion. A
  NaN or inf score spreads to the other users of its 128-block (0 * NaN), which the evaluator
  reports as NaN scores either way. Elsewhere (GPU; `propagate.current_platform`) it is a plain
  transpose.
  """
  if propagate.current_platform() != "cpu":
    return x.T
  blocks = [jnp.matmul(jnp.eye(min(_TRANSPOSE_BLOCK, x.shape[1] - j), dtype=x.dtype),
                       x[:, j:j + _TRANSPOSE_BLOCK].T, precision=jax.lax.Precision.HIGHEST)
            for j in range(0, x.shape[1], _TRANSPOSE_BLOCK)]
  return blocks[0] if len(blocks) == 1 else jnp.concatenate(blocks, axis=0)


def _low_pass_factors(v: np.ndarray, item_degree: np.ndarray) -> Params:
  """GF-CF's and BSPM's P = D_I^-1/2 V V^T D_I^1/2 as two [I, k] float32 factors."""
  inv = np.where(item_degree > 0, 1.0 / np.sqrt(np.maximum(item_degree, 1.0)), 0.0)[:, None]
  return {"lowpass_in": jnp.asarray(inv * v, jnp.float32),
          "lowpass_out": jnp.asarray(np.sqrt(item_degree)[:, None] * v, jnp.float32)}


def _degree_scale(item_degree: jax.Array, power) -> jax.Array:
  """d^power per item, 0 for items without training interactions (as the papers' code does)."""
  return jnp.where(item_degree > 0, jnp.maximum(item_degree, 1.0) ** power, 0.0)


def text_similarity_factors(vectors: np.ndarray) -> np.ndarray:
  """G [I, d] with S = G G^T the item vectors' similarity graph, its spectrum in [0, 1].

  The item vectors (zero rows: no text) are centred on the mean of the items with text (the
  direction every text shares says nothing about a preference: uncentred MiniLM cosines are
  0.2-0.5 between unrelated products), re-normalised to unit rows, so G G^T is their cosine
  matrix, and divided by G's largest singular value, so that S's eigenvalues lie in [0, 1] as
  those of R~^T R~ do. A convex mix (1 - w) R~^T R~ + w S then keeps its eigenvalues in [0, 1]
  (both are PSD with norm <= 1): ChebyCF's rescaled Laplacian I - 2 L' stays in [-1, 1] and
  BSPM's ODEs stay stable.
  """
  f = np.asarray(vectors, np.float64)
  has = np.linalg.norm(f, axis=1) > 0
  if not has.any():
    raise DataError("filter_text_weight > 0 but no item has a text vector")
  f = np.where(has[:, None], f - f[has].mean(axis=0, keepdims=True), 0.0)
  norm = np.linalg.norm(f, axis=1, keepdims=True)
  f = np.where(norm > 0, f / np.maximum(norm, 1e-300), 0.0)
  top = np.linalg.norm(f, ord=2)
  return f / max(top, 1e-300)


def with_text(params: Params, vectors: np.ndarray | None, weight: float) -> Params:
  """`params` with the text similarity mixed into its item graph at weight w (0: unchanged)."""
  if not 0.0 <= weight <= 1.0:
    raise ConfigError(f"filter_text_weight must be in [0, 1], got {weight}")
  if weight == 0.0:
    return params
  if vectors is None or np.asarray(vectors).shape[0] != params["item_degree"].shape[0]:
    raise ConfigError("filter_text_weight > 0 needs one text vector per item (text_features)")
  return {**params, "text": jnp.asarray(text_similarity_factors(vectors), jnp.float32),
          "text_weight": jnp.asarray(weight, jnp.float32)}


# --- device side: the shared operators (column layout: signals are [I, B]) ----------------------
def _product(x: jax.Array, edges: Params, num_nodes: int) -> jax.Array:
  """out[r] = sum_e w_e x[s_e] over one of R~'s two edge lists; x [N, B] -> [N, B]."""
  graph = jraph.GraphsTuple(nodes=None, edges=None, senders=edges["senders"],
                            receivers=edges["receivers"], globals=None,
                            n_node=jnp.array([num_nodes]),
                            n_edge=jnp.array([edges["senders"].shape[0]]))
  return propagate.weighted_sum(x, graph, edges["weights"], num_nodes=num_nodes, backend="auto")


def _linear_filter(params: Params, x: jax.Array) -> jax.Array:
  """L x = R~^T (R~ x) for x [I, B], as two sparse products (no [I, I] matrix); with text
  factors in `params` (`with_text`), L' x = (1 - w) R~^T R~ x + w G G^T x.

  The two index spaces (users, items) share one node range of size max(U, I), so both products
  are square weighted sums; rows past U or I carry zeros and receive nothing.
  """
  num_items = x.shape[0]
  num_users = params["user_degree"].shape[0]
  n = max(num_users, num_items)
  x = jnp.pad(x, ((0, n - num_items), (0, 0)))
  y = _product(x, params["to_user"], n)       # [n, B], users in [0, U)
  z = _product(y, params["to_item"], n)       # [n, B], items in [0, I)
  if "text" not in params:
    return z[:num_items]
  # L' = (1 - w) R~^T R~ + w G G^T (`text_similarity_factors`): the text part through [I, d].
  w, g = params["text_weight"], params["text"]
  dot = lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)
  return (1.0 - w) * z[:num_items] + w * dot(g, dot(g.T, x[:num_items]))


_linear_filter_jit = jax.jit(_linear_filter)


def _low_pass(left: jax.Array, right: jax.Array, x: jax.Array) -> jax.Array:
  """right @ (left^T @ x) for x [I, B], through the [I, k] factors.

  Full float32 precision: on GPUs XLA's default may round f32 matmul inputs to TF32 (10-bit
  mantissa), enough to reorder close scores.
  """
  dot = lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)
  return dot(right, dot(left.T, x))


# --- GF-CF ---------------------------------------------------------------------------------------
def fit_gfcf(train_matrix, *, alpha: float = 0.3, num_factors: int = 256, svd: str = "auto",
             factors: np.ndarray | None = None, seed: int = 0) -> Params:
  """Fits GF-CF (Shen et al., CIKM 2021): s = r R~^T R~ + alpha r D_I^-1/2 V V^T D_I^1/2.

  Args:
    train_matrix: scipy sparse [U, I] binary training matrix R.
    alpha: weight of the ideal low-pass filter. Paper/reference code: 0.3 (Gowalla, Yelp2018),
      0 (Amazon-book). Gowalla here: 0.3. ml-100k: chosen on valid (benchmarks/RESULTS.md).
    num_factors: k, the number of top right singular vectors of R~ in V. Paper: 256 (Gowalla
      here: 256).
    svd: `top_singular_vectors` method ("auto": exact dense SVD when small, else randomized).
    factors: optional precomputed V ([I, >= k], descending singular values) to reuse one SVD
      across a grid.
    seed: seed of the randomized SVD.

  Returns:
    params: {"user_degree" [U], "item_degree" [I], "to_user"/"to_item" (R~'s edge lists),
    "lowpass_in" [I, k] = D_I^-1/2 V, "lowpass_out" [I, k] = D_I^1/2 V, "alpha" []}.
  """
  r_tilde, du, di = normalize_interactions(train_matrix)
  v = _factors(r_tilde, num_factors if alpha != 0 else 0, factors, svd, seed)
  return {**_graph_params(r_tilde, du, di), **_low_pass_factors(v, di),
          "alpha": jnp.asarray(alpha, jnp.float32)}


def _gfcf_columns(params: Params, x: jax.Array) -> jax.Array:
  """GF-CF on column signals: x [I, B] -> [I, B]."""
  out = _linear_filter(params, x)
  return out + params["alpha"] * _low_pass(params["lowpass_in"], params["lowpass_out"], x)


def apply_gfcf(params: Params, rows: jax.Array) -> jax.Array:
  """GF-CF scores of users given their interaction rows (linear in `rows`).

  Args:
    params: from `fit_gfcf`.
    rows: [B, I] float32 binary rows r.

  Returns:
    [B, I] float32 scores r L + alpha r D_I^-1/2 V V^T D_I^1/2.
  """
  return _to_rows(_gfcf_columns(params, _columns(rows)))


# --- BSPM ----------------------------------------------------------------------------------------
# Butcher tableaus (a [s, s] strictly lower, b [s]) of torchdiffeq's fixed-grid methods. Its
# "rk4" is the 3/8 rule (`rk4_alt_step_func`); for the linear ODEs here every 4-stage order-4
# method gives the same step, sum_{j<=4} (hA)^j / j!.
_TABLEAUS = {
    "euler": (np.zeros((1, 1)), np.ones(1)),
    "rk4": (np.array([[0, 0, 0, 0], [1 / 3, 0, 0, 0], [-1 / 3, 1, 0, 0], [1, -1, 1, 0]]),
            np.array([1, 3, 3, 1]) / 8),
}


def _ode(solver: str, steps: int, horizon: float, what: str) -> Params:
  if solver not in SOLVERS:
    raise ConfigError(f"unknown {what} solver {solver!r}; choose one of {', '.join(SOLVERS)}")
  if steps < 0 or (steps > 0 and horizon <= 0):
    raise ConfigError(f"{what}: need steps >= 0 and a positive time, got {steps} steps to "
                      f"T = {horizon}")
  a, b = _TABLEAUS[solver]
  # The reference builds its grid as torch.linspace(0, T, K + 1) in float32.
  return {"times": jnp.linspace(0.0, horizon, steps + 1, dtype=jnp.float32),
          "a": jnp.asarray(a, jnp.float32), "b": jnp.asarray(b, jnp.float32)}


def fit_bspm(train_matrix, *, num_factors: int = 448, beta: float = 0.2,
             idl_solver: str = "euler", idl_steps: int = 1, idl_time: float = 1.0,
             blur_solver: str = "euler", blur_steps: int = 1, blur_time: float = 1.0,
             sharpen_solver: str = "rk4", sharpen_steps: int = 1, sharpen_time: float = 2.5,
             early_merge: bool = True, t_point_combination: bool = False, svd: str = "auto",
             factors: np.ndarray | None = None, seed: int = 0) -> Params:
  """Fits BSPM (Choi et al., SIGIR 2023): blurring and ideal low-pass ODEs, then sharpening.

  With P = D_I^-1/2 V V^T D_I^1/2 and L = R~^T R~ (row vectors r):
    ideal low-pass:  dr/dt = r P - r,  r(0) = r,  solved to idl_time;
    blurring:        dr/dt = r L - r,  r(0) = r,  solved to blur_time;
    sharpening:      dr/dt = -r L,     solved to sharpen_time from
      EM (early merge, the reference's final_sharpening=True): beta r_idl + r_blur;
      LM (late merge): r_blur, and beta r_idl is added after sharpening.
  With t_point_combination the output is the mean of the states after every blurring and
  sharpening step instead of the last state (plus beta r_idl for LM). Zero sharpening
  steps turn sharpening off (the reference's sharpening_off). Defaults are the paper's Gowalla
  BSPM-EM setting (its README's command; the reference's argparse defaults differ where noted).

  Args:
    train_matrix: scipy sparse [U, I] binary training matrix R.
    num_factors: k of the ideal low-pass filter (reference `factor_dim`). Gowalla 448
      (argparse default 256; Yelp2018 384). Gowalla here: 448.
    beta: weight of the ideal low-pass term (`idl_beta`). Gowalla 0.2 (default 0.3).
    idl_solver, idl_steps, idl_time: the ideal low-pass ODE's method, steps K_idl and T_idl.
      Paper: euler, 1, 1 (one Euler step of size 1: r_idl = r P).
    blur_solver, blur_steps, blur_time: the blurring ODE's (K_b, T_b). Paper: euler, 1, 1
      (r_blur = r L).
    sharpen_solver, sharpen_steps, sharpen_time: the sharpening ODE's (K_s, T_s). Gowalla: rk4,
      1, 2.5 (defaults euler, 1, 1; Yelp2018 euler, 1, 1.2; Amazon-book rk4, 2, 2.2).
    early_merge: EM (True, Gowalla) or LM (False, Amazon-book).
    t_point_combination: average the ODE states (False for Gowalla; True for Yelp2018).
    svd, factors, seed: as in `fit_gfcf`.

  Returns:
    params: the graph arrays, "lowpass_in"/"lowpass_out" [I, k], "beta" [], "early_merge" [],
    "t_point_combination" [] and one ODE spec per process ({"times" [K+1], "a" [s, s],
    "b" [s]}) under "idl", "blur", "sharpen".
  """
  if blur_steps < 1 or idl_steps < 1:
    raise ConfigError(f"BSPM needs >= 1 blurring and ideal low-pass step, got blur_steps="
                      f"{blur_steps}, idl_steps={idl_steps}")
  odes = {"idl": _ode(idl_solver, idl_steps, idl_time, "idl"),
          "blur": _ode(blur_solver, blur_steps, blur_time, "blur"),
          "sharpen": _ode(sharpen_solver, sharpen_steps, sharpen_time, "sharpen")}
  r_tilde, du, di = normalize_interactions(train_matrix)
  v = _factors(r_tilde, num_factors if beta != 0 else 0, factors, svd, seed)
  params = {**_graph_params(r_tilde, du, di), **_low_pass_factors(v, di)}
  params.update(
      beta=jnp.asarray(beta, jnp.float32),
      early_merge=jnp.asarray(float(early_merge), jnp.float32),
      t_point_combination=jnp.asarray(float(t_point_combination), jnp.float32),
      **odes)
  return params


def _solve(f, y0: jax.Array, ode: Params) -> tuple[jax.Array, jax.Array]:
  """Fixed-grid explicit Runge–Kutta solution of dy/dt = f(y) on ode["times"].

  Returns:
    (the state at the last time, the sum of the states after each step).
  """
  a, b = ode["a"], ode["b"]
  stages = b.shape[0]  # static: 1 for Euler, 4 for RK4

  def step(carry, h):
    y, total = carry
    ks = []
    for i in range(stages):
      yi = y
      for j in range(i):
        yi = yi + (h * a[i, j]) * ks[j]
      ks.append(f(yi))
    y = y + h * sum(b[i] * ks[i] for i in range(stages))
    return (y, total + y), None

  (y, total), _ = jax.lax.scan(step, (y0, jnp.zeros_like(y0)), jnp.diff(ode["times"]))
  return y, total


def _bspm_columns(params: Params, x: jax.Array) -> jax.Array:
  """BSPM on column signals: x [I, B] -> [I, B]."""
  left, right, beta = params["lowpass_in"], params["lowpass_out"], params["beta"]
  linear = lambda y: _linear_filter(params, y)
  idl, _ = _solve(lambda y: _low_pass(left, right, y) - y, x, params["idl"])
  blur, blur_sum = _solve(lambda y: linear(y) - y, x, params["blur"])
  blur_steps = params["blur"]["times"].shape[0] - 1
  sharpen_steps = params["sharpen"]["times"].shape[0] - 1
  tpc = params["t_point_combination"]
  if sharpen_steps == 0:  # sharpening off: blurred (or its time average) + beta r_idl
    return (1 - tpc) * blur + tpc * blur_sum / blur_steps + beta * idl
  merge = params["early_merge"]
  sharp, sharp_sum = _solve(lambda y: -linear(y), blur + merge * beta * idl, params["sharpen"])
  mean = (blur_sum + sharp_sum) / (blur_steps + sharpen_steps)
  return (1 - tpc) * sharp + tpc * mean + (1 - merge) * beta * idl


def apply_bspm(params: Params, rows: jax.Array) -> jax.Array:
  """BSPM scores of users given their interaction rows (linear in `rows`).

  Args:
    params: from `fit_bspm`.
    rows: [B, I] float32 binary rows.

  Returns:
    [B, I] float32 scores.
  """
  return _to_rows(_bspm_columns(params, _columns(rows)))


# --- ChebyCF -------------------------------------------------------------------------------------
def chebyshev_coefficients(order: int, flatness: float) -> np.ndarray:
  """ChebyCF's interpolation coefficients c_0..c_K of its plateau low-pass response.

  As the reference code computes them: the target values are the plateau function
  h(x) = 1/2 + 1/2 |x|^phi (x < 0), 1/2 - 1/2 x^phi (x >= 0) at x_j = cos((K - j) pi / K),
  j = 0..K (rounded to 3 decimals, as the reference rounds), assigned to the Chebyshev nodes
  z_n = cos((K + 1/2 - n) pi / (K + 1)), n = 0..K, in the same ascending order; then
  c_k = 2 / (K + 1) sum_n h_n T_k(z_n), with c_0 halved, so that sum_k c_k T_k(z_n) = h_n.
  x = -1 is the lowest graph frequency (L~ = I - 2 R~^T R~ has eigenvalue 1 - 2 sigma^2).

  Returns:
    [K + 1] float64.
  """
  if order < 0:
    raise ConfigError(f"ChebyCF order K must be >= 0, got {order}")
  if order == 0:
    return np.ones(1)  # the reference's cheby() returns the signal unchanged for K = 0
  j = np.arange(order + 1)
  x = np.round(np.cos((order - j) / order * np.pi), 3)
  target = np.where(x < 0, 0.5 + 0.5 * np.abs(x) ** flatness, 0.5 - 0.5 * np.abs(x) ** flatness)
  target = np.round(target, 3)
  nodes = np.cos((order + 0.5 - j) / (order + 1) * np.pi)
  basis = np.polynomial.chebyshev.chebvander(nodes, order)   # [n, k] = T_k(z_n)
  coeffs = basis.T @ target * (2.0 / (order + 1))
  coeffs[0] /= 2
  return coeffs


def fit_chebycf(train_matrix, *, order: int = 8, flatness: float = 1.5, num_factors: int = 512,
                alpha: float = 0.2, beta: float = 0.4, svd: str = "auto",
                factors: np.ndarray | None = None, seed: int = 0) -> Params:
  """Fits ChebyCF (Kim et al., SIGIR 2025): s = D^beta [sum_k c_k T_k(L~) + alpha V V^T] D^-beta r.

  Defaults are the paper's Gowalla setting (its repository's config/chebycf_gowalla.yml).

  Args:
    train_matrix: scipy sparse [U, I] binary training matrix R.
    order: K, the Chebyshev polynomial degree. Gowalla 8 (Last.fm 8). Gowalla here: 8.
    flatness: phi, the plateau's flatness. Gowalla 1.5 (Last.fm 15).
    num_factors: eta, the ideal pass filter's number of singular vectors. Gowalla 512 (Last.fm
      256).
    alpha: weight of the ideal pass filter (0 turns it off). Gowalla 0.2 (Last.fm 0.1).
    beta: power of the item-degree normalisation (0 turns it off). Gowalla 0.4 (Last.fm 0.2).
    svd, factors, seed: as in `fit_gfcf`.

  Returns:
    params: the graph arrays, "coeffs" [K + 1], "ideal" [I, eta] = V, "alpha" [], "beta" [].
  """
  r_tilde, du, di = normalize_interactions(train_matrix)
  k = num_factors if alpha > 0 else 0
  v = _factors(r_tilde, k, factors, svd, seed)
  params = _graph_params(r_tilde, du, di)
  params.update(coeffs=jnp.asarray(chebyshev_coefficients(order, flatness), jnp.float32),
                ideal=jnp.asarray(v, jnp.float32),
                alpha=jnp.asarray(alpha, jnp.float32),
                beta=jnp.asarray(beta, jnp.float32))
  return params


def _chebycf_columns(params: Params, x: jax.Array) -> jax.Array:
  """ChebyCF on column signals: x [I, B] -> [I, B]."""
  degree, beta = params["item_degree"], params["beta"]
  # beta = 0 means no normalisation at all (the reference skips the module), not a 0/1 mask.
  pre = jnp.where(beta == 0, 1.0, _degree_scale(degree, -beta))[:, None]     # [I, 1]
  post = jnp.where(beta == 0, 1.0, _degree_scale(degree, beta))[:, None]
  s = pre * x                                                                 # [I, B]
  coeffs = params["coeffs"]
  rescaled = lambda y: y - 2.0 * _linear_filter(params, y)                    # L~ y
  prev, cur = s, rescaled(s) if coeffs.shape[0] > 1 else s
  out = coeffs[0] * prev + (coeffs[1] * cur if coeffs.shape[0] > 1 else 0.0)
  for k in range(2, coeffs.shape[0]):  # T_k = 2 L~ T_{k-1} - T_{k-2}
    prev, cur = cur, 2.0 * rescaled(cur) - prev
    out = out + coeffs[k] * cur
  out = out + params["alpha"] * _low_pass(params["ideal"], params["ideal"], s)
  return post * out


def apply_chebycf(params: Params, rows: jax.Array) -> jax.Array:
  """ChebyCF scores of users given their interaction rows (linear in `rows`).

  Args:
    params: from `fit_chebycf`.
    rows: [B, I] float32 binary rows.

  Returns:
    [B, I] float32 scores.
  """
  return _to_rows(_chebycf_columns(params, _columns(rows)))


# --- the filters as models of the library --------------------------------------------------------
class _GraphFilter(LinearItemRecommender):
  """Shared part of the three filter models: the binary train matrix and the SVD settings."""

  def _matrix(self) -> sp.csr_matrix:
    from gnnrec_jax.models.ease import interaction_matrix
    return interaction_matrix(self.exp.split.train, num_users=self.num_users,
                              num_items=self.num_items)

  def _svd(self) -> dict:
    cfg = self.config
    return {"num_factors": cfg.svd_rank, "svd": cfg.svd_method, "seed": cfg.seed}

  def _text(self, params: Params) -> Params:
    """The fitted filter with `filter_text_weight` of the item vectors' similarity mixed in."""
    w = self.config.filter_text_weight
    if w == 0:
      return params
    if self.exp.features is None:
      raise ConfigError("filter_text_weight > 0 needs item vectors: set text_features (e.g. "
                        "--set text_features=none)")
    return with_text(params, np.asarray(self.exp.features[self.num_users:]), w)


class GFCF(_GraphFilter):
  """GF-CF as a model (config: `filter_alpha`, `svd_rank`, `svd_method`)."""

  def init(self, key):
    del key  # closed form; the randomized SVD takes the config's seed
    return self._text(fit_gfcf(self._matrix(), alpha=self.config.filter_alpha, **self._svd()))

  apply_rows = staticmethod(apply_gfcf)


class BSPM(_GraphFilter):
  """BSPM as a model (config: `filter_alpha` = idl_beta, `svd_rank`, `svd_method`, `bspm_*`)."""

  def init(self, key):
    del key
    cfg = self.config
    return self._text(fit_bspm(
        self._matrix(), beta=cfg.filter_alpha,
        idl_solver=cfg.bspm_idl_solver, idl_steps=cfg.bspm_idl_steps,
        idl_time=cfg.bspm_idl_time,
        blur_solver=cfg.bspm_blur_solver, blur_steps=cfg.bspm_blur_steps,
        blur_time=cfg.bspm_blur_time,
        sharpen_solver=cfg.bspm_sharpen_solver, sharpen_steps=cfg.bspm_sharpen_steps,
        sharpen_time=cfg.bspm_sharpen_time,
        early_merge=cfg.bspm_early_merge, t_point_combination=cfg.bspm_t_point_combination,
        **self._svd()))

  apply_rows = staticmethod(apply_bspm)


class ChebyCF(_GraphFilter):
  """ChebyCF as a model (config: `filter_alpha`, `svd_rank`, `svd_method`, `cheby_*`)."""

  def init(self, key):
    del key
    cfg = self.config
    return self._text(fit_chebycf(self._matrix(), order=cfg.cheby_order,
                                  flatness=cfg.cheby_flatness, alpha=cfg.filter_alpha,
                                  beta=cfg.cheby_beta, **self._svd()))

  apply_rows = staticmethod(apply_chebycf)


# name -> (fit, apply): the three filters as functions (tests, benchmarks reusing one SVD).
FILTERS = {
    "gfcf": (fit_gfcf, apply_gfcf),
    "bspm": (fit_bspm, apply_bspm),
    "chebycf": (fit_chebycf, apply_chebycf),
}
