"""Linear item models: scores = x_u F, closed-form fits with no gradient steps.

x_u is user u's binary row of train interactions ([I], 1 for each distinct train item) and F an
item–item operator (EASE's B, a graph filter). A subclass gives its fit (`init`) and `apply_rows`,
the product rows @ F for a batch of rows, written so that F need never be materialised (a graph
filter applies it as sparse products and low-rank factors).

Because scores are linear in the row:
  * a new user is scored from its history without refitting: `apply_rows(params, x_new)`;
  * the explanation is exact: item j of the history contributes F[j, i] = (e_j F)[i], read off
    `apply_rows(params, one-hot rows)` (`item_item`).

Rows are built on the device from a padded [U, L] array of each user's distinct train items
(`user_histories`), so no dense [U, I] matrix exists (Gowalla's would be 4.9 GB in float32).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError, DataError
from gnnrec_jax.models import explain_terms
from gnnrec_jax.models.base import Recommender


def user_histories(train: Interactions, *, num_users: int, num_items: int) -> np.ndarray:
  """[U, L] int32: each user's distinct train items, padded with `num_items` (out of range).

  L is the largest number of distinct items of one user (at least 1).
  """
  key = np.unique(np.asarray(train.user, np.int64) * num_items + np.asarray(train.item, np.int64))
  user, item = key // num_items, key % num_items  # sorted by user, then item
  counts = np.bincount(user, minlength=num_users)
  out = np.full((num_users, max(int(counts.max(initial=0)), 1)), num_items, np.int32)
  start = np.concatenate([[0], np.cumsum(counts)[:-1]])
  out[user, np.arange(len(user)) - start[user]] = item
  return out


def user_rows(histories: jax.Array, users: jax.Array, num_items: int) -> jax.Array:
  """[B, I] float32 binary rows of `users` from `user_histories` (padding is dropped)."""
  hist = histories[users]  # [B, L]
  rows = jnp.zeros((users.shape[0], num_items), jnp.float32)
  b = jnp.broadcast_to(jnp.arange(users.shape[0])[:, None], hist.shape)
  return rows.at[b, hist].set(1.0, mode="drop")


@functools.cache
def _row_scorer(apply_rows):
  """The module-level score function of one `apply_rows` (one object per model class, so the
  evaluator's jit, which takes it as a static argument, compiles it once)."""

  def score_fn(score_params, users):
    num_items = score_params["width"].shape[1]  # static: a [0, I] array carries I in its shape
    rows = user_rows(score_params["history"], users, num_items)  # [B, I]
    return apply_rows(score_params["params"], rows)

  return score_fn


class LinearItemRecommender(Recommender):
  """Base of the linear item models; subclasses define `init` (the fit) and `apply_rows`."""

  trainable = False

  def __init__(self, exp):
    super().__init__(exp)
    # Inputs only embedding models read: refused rather than silently ignored.
    unread = [k for k in ("side_features", "social_weight") if getattr(exp.config, k)]
    if unread:
      raise ConfigError(f"{exp.config.model} reads only the interaction matrix; "
                        f"{' and '.join(unread)} would be ignored: unset "
                        f"{'them' if len(unread) > 1 else 'it'} or pick an embedding model")
    self.score_fn = _row_scorer(type(self).apply_rows)
    self._histories = None

  @staticmethod
  def apply_rows(params, rows: jax.Array) -> jax.Array:
    """rows [B, I] -> rows @ F [B, I]; pure jnp (runs under jit on any device)."""
    raise NotImplementedError

  @property
  def histories(self) -> jax.Array:
    if self._histories is None:
      self._histories = jnp.asarray(user_histories(self.exp.split.train,
                                                   num_users=self.num_users,
                                                   num_items=self.num_items))
    return self._histories

  def score_params(self, params):
    return {"params": params, "history": self.histories,
            "width": jnp.zeros((0, self.num_items), jnp.float32)}

  def _check(self, items) -> np.ndarray:
    items = np.asarray(items, np.int64).reshape(-1)
    bad = (items < 0) | (items >= self.num_items)
    if bad.any():
      raise DataError(f"item index {int(items[bad][0])} is outside the catalogue "
                      f"[0, {self.num_items})")
    return items

  def history_scores(self, params, history):
    history = self._check(history)
    if len(history) == 0:
      raise DataError("a new user needs at least one history item")
    row = np.zeros((1, self.num_items), np.float32)
    row[0, history] = 1.0
    return np.asarray(_apply_jit(type(self).apply_rows, params, jnp.asarray(row)))[0]

  def item_item(self, params, rows_items, cols_items) -> np.ndarray:
    """F[j, i] for j in `rows_items`, i in `cols_items`: [len(rows), len(cols)] float64."""
    rows_items, cols_items = self._check(rows_items), self._check(cols_items)
    onehot = np.zeros((len(rows_items), self.num_items), np.float32)
    onehot[np.arange(len(rows_items)), rows_items] = 1.0
    out = np.asarray(_apply_jit(type(self).apply_rows, params, jnp.asarray(onehot)), np.float64)
    return out[:, cols_items]

  def explain_terms(self, params, *, user, history, items):
    return explain_terms.linear_item_terms(self, params, user, history, items)


@functools.partial(jax.jit, static_argnums=0)
def _apply_jit(apply_rows, params, rows):
  return apply_rows(params, rows)
