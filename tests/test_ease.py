"""EASE against a brute-force per-column ridge regression (Steck 2019, §3)."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.models.ease import EASE, fit_ease, interaction_matrix


def tiny_train(seed=0, users=8, items=5, n=20):
  rng = np.random.default_rng(seed)
  return Interactions(rng.integers(0, users, n), rng.integers(0, items, n),
                      weight=rng.uniform(1, 5, n))


def brute_force_ease(x, l2):
  """Column j of B = argmin_b |x_j - X_{-j} b|^2 + l2 |b|^2, B_jj = 0 (the constrained problem
  separates by column)."""
  items = x.shape[1]
  b = np.zeros((items, items))
  for j in range(items):
    others = [k for k in range(items) if k != j]
    xo = x[:, others]
    b[others, j] = np.linalg.solve(xo.T @ xo + l2 * np.eye(items - 1), xo.T @ x[:, j])
  return b


@pytest.mark.parametrize("l2", [0.5, 10.0])
def test_fit_ease_matches_brute_force_ridge(l2):
  train = tiny_train()
  x = interaction_matrix(train, num_users=8, num_items=5).toarray()
  b = fit_ease(train, num_users=8, num_items=5, l2=l2)
  assert b.dtype == np.float32 and b.shape == (5, 5)
  np.testing.assert_array_equal(np.diag(b), 0.0)
  np.testing.assert_allclose(b, brute_force_ease(x, l2), atol=1e-6)


def test_interaction_matrix_is_binary():
  # (0, 1) appears twice with weights 3 and 4: X stores 1 (EASE ignores weights).
  train = Interactions(np.array([0, 0, 1]), np.array([1, 1, 2]), weight=np.array([3.0, 4.0, 2.0]))
  x = interaction_matrix(train, num_users=2, num_items=3).toarray()
  np.testing.assert_array_equal(x, [[0, 1, 0], [0, 0, 1]])


def test_fit_ease_by_hand_two_items():
  # Two items always co-consumed by one user: X = [[1, 1]], G = [[1+l, 1], [1, 1+l]].
  # Ridge of x_1 on x_0: b = (x0.x1) / (x0.x0 + l) = 1 / (1 + l) = 0.25 for l = 3.
  train = Interactions(np.array([0, 0]), np.array([0, 1]))
  b = fit_ease(train, num_users=1, num_items=2, l2=3.0)
  np.testing.assert_allclose(b, [[0.0, 0.25], [0.25, 0.0]], rtol=1e-6)


def test_ease_apply_rows_is_x_times_b():
  train = tiny_train(1)
  x = interaction_matrix(train, num_users=8, num_items=5)
  b = fit_ease(train, num_users=8, num_items=5, l2=2.0)
  expected = x.toarray() @ b.astype(np.float64)
  got = EASE.apply_rows({"B": jnp.asarray(b)}, jnp.asarray(x.toarray()[:3], jnp.float32))
  np.testing.assert_allclose(got, expected[:3], atol=1e-5)


def test_fit_ease_rejects_non_positive_l2():
  with pytest.raises(ConfigError, match="ease_l2"):
    fit_ease(tiny_train(), num_users=8, num_items=5, l2=0.0)
