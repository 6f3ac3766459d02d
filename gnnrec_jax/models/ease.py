"""EASE^R (Steck, WWW 2019): a closed-form item–item linear autoencoder.

  min_B |X - X B|_F^2 + l2 |B|_F^2   subject to diag(B) = 0

has the solution (eq. 8 of the paper)

  G = X^T X + l2 I,   P = G^-1,   B_ij = -P_ij / P_jj  (i != j),   B_jj = 0,

and a user's scores are x_u B. Column j of B is the ridge regression of item j's column on all
other items' columns, which is how `tests/test_ease.py` checks it. The solve runs in float64
(G's entries are co-occurrence counts, P can be ill-conditioned for small l2) and B is returned
as float32 for ranking.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.models.closed_form import LinearItemRecommender

# B is a dense [I, I] float32 matrix: 40,981 items (Gowalla) would need 6.7 GB.
MAX_ITEMS = 20_000


def interaction_matrix(train: Interactions, *, num_users: int, num_items: int) -> sp.csr_matrix:
  """The binary [U, I] user–item matrix X (duplicates count once; weights are ignored, as in
  the paper and RecBole's EASE)."""
  x = sp.csr_matrix((np.ones(len(train), np.float64), (train.user, train.item)),
                    shape=(num_users, num_items))
  x.data[:] = 1.0  # duplicates were summed by the constructor
  return x


def fit_ease(train: Interactions, *, num_users: int, num_items: int, l2: float) -> np.ndarray:
  """Fits EASE's item–item weights.

  Args:
    train: training interactions.
    num_users: U.
    num_items: I (the solve is O(I^3) time and O(I^2) memory: fine up to ~20k items).
    l2: the L2 weight lambda (> 0; RecBole uses 250 on ml-100k).

  Returns:
    B: [I, I] float32 with a zero diagonal.
  """
  if l2 <= 0:
    raise ConfigError(f"ease_l2 must be > 0, got {l2}")
  x = interaction_matrix(train, num_users=num_users, num_items=num_items)
  gram = (x.T @ x).toarray()  # [I, I] float64
  gram[np.diag_indices(num_items)] += l2
  # G is symmetric positive definite (X^T X is PSD, + l2 I), so Cholesky is exact and 2x faster
  # than a general inverse.
  p = scipy.linalg.cho_solve(scipy.linalg.cho_factor(gram, lower=True),
                             np.eye(num_items))
  b = -p / np.diag(p)[None, :]
  b[np.diag_indices(num_items)] = 0.0
  return b.astype(np.float32)


class EASE(LinearItemRecommender):
  """EASE as a model of the library: params {"B": [I, I]}, scores x_u B (config `ease_l2`)."""

  def init(self, key):
    del key  # closed form: nothing random
    if self.num_items > MAX_ITEMS:
      raise ConfigError(f"EASE needs a dense {self.num_items}x{self.num_items} matrix; this "
                        f"library caps it at {MAX_ITEMS} items")
    return {"B": fit_ease(self.exp.split.train, num_users=self.num_users,
                          num_items=self.num_items, l2=self.config.ease_l2)}

  @staticmethod
  def apply_rows(params, rows):
    return rows @ params["B"]  # [B, I] @ [I, I]
