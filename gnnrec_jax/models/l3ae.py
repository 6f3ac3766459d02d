"""L3AE (Moon, Park and Lee, CIKM 2025, "LLM-Enhanced Linear Autoencoders for Recommendation"):
EASE's closed form pulled toward an item–item model of the items' language-model vectors.

Notation: X the binary [U, I] train matrix, F the [I, d] item vectors (one row per item; zero
rows for items without text), P_A = (A + l I)^-1. The symbols are those of the authors' reference
code (github.com/jaewan7599/L3AE_CIKM2025, `encoder/models/linear_cf/*.py`), whose hyperparameter
names are reg_X, reg_F, reg_E (written lambda_X, lambda_F, lambda_E here; config `l3ae_reg_x`,
`l3ae_reg_f`, `l3ae_reg_e`) and alpha (`l3ae_alpha`).

  Phase 1, the text side ("ease_text"): EASE with the d text dimensions as its rows,
    C = argmin ||F^T - F^T C||^2 + lambda_F ||C||^2,  diag(C) = 0,
    C_ij = -P_ij / P_jj with P = (F F^T + lambda_F I)^-1.
  Phase 2, L3AE: EASE regularised toward C,
    B = argmin ||X - X B||^2 + lambda_X ||B||^2 + lambda_E ||B - C||^2,  diag(B) = 0,
    B = lambda_E P C - P diag((1 + lambda_E diag(P C)) / diag(P)),  then diag(B) = 0,
    with P = (X^T X + (lambda_X + lambda_E) I)^-1 (the Lagrangian's stationary point; the
    multiplier of diag(B) = 0 gives the diagonal scaling). lambda_X may be negative (the authors'
    best settings on Amazon 2023 are lambda_X -50..-100 with lambda_E 150..200): only
    lambda_X + lambda_E > 0 is needed for P to exist.
  Additive fusion: W = (1 - alpha) B_EASE(lambda_X) + alpha C(lambda_F).
  Collective fusion: EASE of the stacked matrix [X; alpha F^T], i.e. of the Gram
    X^T X + alpha^2 F F^T, with weight lambda_X.
The paper reports the two fusions beside L3AE in its Table 3 (the reference's
`script/Table3_performance_over_fusion_methods.sh`); `l3ae_variant` picks one of the four.

Memory. The text side never forms an I x I inverse: by Woodbury, with the d x d Gram F^T F,
    M = (F^T F + lambda_F I_d)^-1,  K = F M F^T  (rank d),  P = (I - K) / lambda_F,
    C_ij = K_ij / (1 - K_jj)  (i != j),
so C = F (F M / (1 - k))^T - diag(k / (1 - k)) with k = diag(K): two [I, d] factors and a diagonal
(`text_item_model`). The text-only variant ("text") is scored through them and scales to any
catalogue. The interaction side is EASE's: a dense I x I inverse and B, refused above
`ease.MAX_ITEMS` items (where `text` still runs).

Item vectors come from the experiment (`exp.features`, its item rows): the cached MiniLM vectors
of `text_features` today, or any source that fills them.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from gnnrec_jax.errors import ConfigError
from gnnrec_jax.models import ease
from gnnrec_jax.models.closed_form import LinearItemRecommender

VARIANTS = ("l3ae", "additive", "collective", "text")


def _spd_inverse(gram: np.ndarray) -> np.ndarray:
  """The inverse of a symmetric positive definite float64 matrix (Cholesky)."""
  return scipy.linalg.cho_solve(scipy.linalg.cho_factor(gram, lower=True),
                                np.eye(gram.shape[0]))


def text_item_model(vectors: np.ndarray, reg_f: float) -> dict[str, np.ndarray]:
  """Phase 1: the text-side EASE C of item vectors F, as two [I, d] factors and a diagonal.

  Args:
    vectors: F [I, d] (zero rows for items without text).
    reg_f: lambda_F > 0.

  Returns:
    {"c_in" [I, d] = F, "c_out" [I, d] = F M / (1 - k), "c_diag" [I] = k / (1 - k)} (float64),
    so that C = c_in @ c_out.T - diag(c_diag), zero on the diagonal.
  """
  if not reg_f > 0:
    raise ConfigError(f"l3ae_reg_f (lambda_F) must be > 0, got {reg_f}")
  f = np.asarray(vectors, np.float64)
  m = _spd_inverse(f.T @ f + reg_f * np.eye(f.shape[1]))  # [d, d]
  fm = f @ m                                              # [I, d]
  k = np.einsum("id,id->i", fm, f)                        # diag(K) in [0, 1)
  scale = 1.0 / (1.0 - k)
  return {"c_in": f, "c_out": fm * scale[:, None], "c_diag": k * scale}


def dense_text_item_model(c: dict[str, np.ndarray]) -> np.ndarray:
  """C as a dense [I, I] matrix (for the interaction-side fits and tests)."""
  out = c["c_in"] @ c["c_out"].T
  out[np.diag_indices(out.shape[0])] -= c["c_diag"]
  return out


def _gram(x) -> np.ndarray:
  return np.asarray((x.T @ x).toarray(), np.float64)  # [I, I]


def interaction_inverse(x, reg: float) -> np.ndarray:
  """P = (X^T X + reg I)^-1, float64 [I, I] (the interaction side's one O(I^3) step)."""
  gram = _gram(x)
  gram[np.diag_indices_from(gram)] += reg
  return _spd_inverse(gram)


def fit_l3ae(x, vectors: np.ndarray, *, reg_x: float, reg_f: float, reg_e: float,
             p: np.ndarray | None = None, c: dict | None = None) -> np.ndarray:
  """Phase 2: L3AE's B ([I, I] float32, zero diagonal) from X [U, I] (scipy sparse) and F.

  `p` (`interaction_inverse(x, reg_x + reg_e)`) and `c` (`text_item_model(vectors, reg_f)`) may
  be passed to reuse them across a grid of weights.
  """
  if not reg_x + reg_e > 0:
    raise ConfigError(f"L3AE needs l3ae_reg_x + l3ae_reg_e (lambda_X + lambda_E) > 0, got "
                      f"{reg_x} + {reg_e}")
  if reg_e < 0:
    raise ConfigError(f"l3ae_reg_e (lambda_E) must be >= 0, got {reg_e}")
  c = text_item_model(vectors, reg_f) if c is None else c
  p = interaction_inverse(x, reg_x + reg_e) if p is None else p  # [I, I]
  diag_p = np.diag(p).copy()
  # P C = (P c_in) c_out^T - P diag(c_diag), without forming C.
  pc = (p @ c["c_in"]) @ c["c_out"].T
  pc -= p * c["c_diag"][None, :]
  diag_pc = np.diag(pc).copy()
  b = reg_e * pc
  b -= p * ((1.0 + reg_e * diag_pc) / diag_p)[None, :]
  b[np.diag_indices_from(b)] = 0.0
  return b.astype(np.float32)


def ease_from_inverse(p: np.ndarray) -> np.ndarray:
  """EASE's B = -P / diag(P) with a zero diagonal, from P = (G + lambda I)^-1 (float64)."""
  b = -p / np.diag(p)[None, :]
  b[np.diag_indices_from(b)] = 0.0
  return b


def fit_ease_gram(gram: np.ndarray, reg: float) -> np.ndarray:
  """EASE's B from a Gram matrix (float64 [I, I], not modified)."""
  if not reg > 0:
    raise ConfigError(f"the EASE weight must be > 0, got {reg}")
  g = gram.copy()
  g[np.diag_indices_from(g)] += reg
  return ease_from_inverse(_spd_inverse(g))


def fit_additive(x, vectors, *, reg_x: float, reg_f: float, alpha: float) -> np.ndarray:
  """(1 - alpha) B_EASE(lambda_X) + alpha C(lambda_F), float32 [I, I]."""
  w = (1.0 - alpha) * fit_ease_gram(_gram(x), reg_x)
  w += alpha * dense_text_item_model(text_item_model(vectors, reg_f))
  return w.astype(np.float32)


def fit_collective(x, vectors, *, reg_x: float, alpha: float) -> np.ndarray:
  """EASE of [X; alpha F^T]: Gram X^T X + alpha^2 F F^T, weight lambda_X; float32 [I, I]."""
  f = np.asarray(vectors, np.float64)
  return fit_ease_gram(_gram(x) + alpha ** 2 * (f @ f.T), reg_x).astype(np.float32)


class L3AE(LinearItemRecommender):
  """L3AE and its fusions as a model: params {"B": [I, I]}, or for `l3ae_variant=text` the
  factors of C (`text_item_model`, float32), scored without an [I, I] matrix."""

  def __init__(self, exp):
    super().__init__(exp)
    if exp.features is None:
      raise ConfigError("l3ae needs item vectors: set text_features (e.g. --set "
                        "text_features=none, which encodes the items' text with text_model)")

  def item_vectors(self) -> np.ndarray:
    """F [I, d]: the experiment's item rows of its node features."""
    return np.asarray(self.exp.features[self.num_users:], np.float64)

  def init(self, key):
    del key  # closed form
    cfg = self.config
    f = self.item_vectors()
    if cfg.l3ae_variant == "text":
      c = text_item_model(f, cfg.l3ae_reg_f)
      return {k: np.asarray(v, np.float32) for k, v in c.items()}
    if self.num_items > ease.MAX_ITEMS:
      raise ConfigError(f"l3ae_variant={cfg.l3ae_variant} needs EASE's dense "
                        f"{self.num_items}x{self.num_items} matrix; this library caps it at "
                        f"{ease.MAX_ITEMS} items (l3ae_variant=text needs no such matrix)")
    x = ease.interaction_matrix(self.exp.split.train, num_users=self.num_users,
                                num_items=self.num_items)
    if cfg.l3ae_variant == "l3ae":
      b = fit_l3ae(x, f, reg_x=cfg.l3ae_reg_x, reg_f=cfg.l3ae_reg_f, reg_e=cfg.l3ae_reg_e)
    elif cfg.l3ae_variant == "additive":
      b = fit_additive(x, f, reg_x=cfg.l3ae_reg_x, reg_f=cfg.l3ae_reg_f, alpha=cfg.l3ae_alpha)
    else:
      b = fit_collective(x, f, reg_x=cfg.l3ae_reg_x, alpha=cfg.l3ae_alpha)
    return {"B": b}

  @staticmethod
  def apply_rows(params, rows):
    if "B" in params:
      return rows @ params["B"]  # [B, I] @ [I, I]
    # rows C = (rows F) (F M / (1 - k))^T - rows * diag: [B, d] products only.
    return (rows @ params["c_in"]) @ params["c_out"].T - rows * params["c_diag"][None, :]
