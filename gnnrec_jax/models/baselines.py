"""Training-free baselines, as `(score_fn, params)` pairs for `evaluate_full_ranking`.

  random       seeded uniform scores, a function of (seed, user, item) only: the floor.
  popularity   train interaction counts, the same list for everyone, ties broken by seeded random
               scores. Meaningful on warm items only: every cold item has count 0, so on the cold
               block it is the random ranking. (Breaking ties by item index instead, the default
               rule of `gnnrec_jax.evaluation.metrics`, is not neutral: ml-100k numbers its movies roughly in
               order of release and popularity, and index order scores cold NDCG@20 0.15 there,
               above content-kNN.)
  content_knn  a user is the mean text vector of its train history; items are scored by cosine
               with their text vectors (the pure content recommender a text GNN must beat on
               cold items).

Each `*_scores(params, users [B]) -> [B, I]` is a module-level function, so that
`evaluate_full_ranking` (which takes it as a static argument) compiles it once; the arrays it reads
travel in `params`. `evaluate_baselines` runs all three on the blocks of `gnnrec_jax.evaluation.coldstart`.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.evaluation import coldstart

NAMES = ("random", "popularity", "content_knn")


def random_params(num_items: int, seed: int) -> dict[str, jax.Array]:
  """Params of `random_scores`: the key data and an [I] index row that fixes the width."""
  return {"key": jax.random.key_data(jax.random.key(seed)),
          "items": jnp.arange(num_items, dtype=jnp.int32)}


def random_scores(params, users: jax.Array) -> jax.Array:
  """[B, I] uniform scores; user u's row is `uniform(fold_in(key(seed), u), (I,))`, so a user's
  scores do not depend on the batch it is evaluated in."""
  key = jax.random.wrap_key_data(params["key"])
  width = params["items"].shape  # static: read from the shape, not the values
  return jax.vmap(lambda u: jax.random.uniform(jax.random.fold_in(key, u), width))(users)


def popularity_params(train: Interactions, num_items: int, seed: int = 0) -> dict[str, jax.Array]:
  """Params of `popularity_scores`: [I] train interaction counts (repeats counted), tie keys."""
  counts = np.bincount(np.asarray(train.item, np.int64), minlength=num_items)[:num_items]
  return {"counts": jnp.asarray(counts, jnp.float32), "ties": random_params(num_items, seed)}


def popularity_scores(params, users: jax.Array) -> jax.Array:
  """[B, I]: the items' train counts plus a seeded tie-breaker in [0, 0.5).

  Counts are whole numbers, so the tie-breaker never reorders items with different counts.
  """
  counts = params["counts"]
  return counts[None, :] + 0.5 * random_scores(params["ties"], users)


def _unit_rows(x: np.ndarray) -> np.ndarray:
  norm = np.linalg.norm(x, axis=1, keepdims=True)
  return np.where(norm > 1e-12, x / np.maximum(norm, 1e-12), 0.0).astype(np.float32)


def content_knn_params(item_features: np.ndarray, train: Interactions,
                       num_users: int) -> dict[str, jax.Array]:
  """Params of `content_knn_scores`.

  Args:
    item_features: [I, D] item text vectors (zero rows for items without text).
    train: train interactions (each user's history; repeats count).
    num_users: U.

  Returns:
    {"user": [U, D] unit mean history vectors (zero for users without history),
     "item": [I, D] unit item vectors (zero rows stay zero and score 0 for everyone)}.
  """
  item = np.asarray(item_features, np.float32)
  counts = sp.csr_matrix((np.ones(len(train), np.float32), (train.user, train.item)),
                         shape=(num_users, item.shape[0]))  # [U, I]
  item_unit = _unit_rows(item)
  # Mean and sum point the same way; the mean of unit vectors is then normalised for cosine.
  user = _unit_rows(np.asarray(counts @ item_unit))  # [U, D]
  return {"user": jnp.asarray(user), "item": jnp.asarray(item_unit)}


def content_knn_scores(params, users: jax.Array) -> jax.Array:
  """[B, I] cosine between each user's mean history vector and every item vector."""
  return params["user"][users] @ params["item"].T


def baseline(name: str, exp, *, seed: int | None = None):
  """`(score_fn, params)` of baseline `name` on an Experiment's train split.

  Raises:
    ConfigError: an unknown name, or content_knn on an experiment without text features.
  """
  if name == "random":
    return random_scores, random_params(exp.num_items, exp.config.seed if seed is None else seed)
  if name == "popularity":
    return popularity_scores, popularity_params(exp.split.train, exp.num_items,
                                                exp.config.seed if seed is None else seed)
  if name == "content_knn":
    if exp.features is None:
      raise ConfigError("content_knn needs item text vectors: set text_features (e.g. history)")
    return content_knn_scores, content_knn_params(exp.features[exp.num_users:],
                                                  exp.split.train, exp.num_users)
  raise ConfigError(f"unknown baseline {name!r}; choose one of {', '.join(NAMES)}")


def evaluate_baselines(exp, *, target: Interactions, exclude: Sequence[Interactions],
                       names: Sequence[str] = NAMES, ks: Sequence[int] | None = None,
                       seed: int | None = None) -> dict[str, dict[str, dict[str, float]]]:
  """{baseline: {block: metrics}} on the blocks of `gnnrec_jax.evaluation.coldstart.evaluate_score_blocks`."""
  ks = tuple(int(k) for k in (ks or exp.config.topk))
  out = {}
  for name in names:
    fn, params = baseline(name, exp, seed=seed)
    out[name] = coldstart.evaluate_score_blocks(
        fn, params, train=exp.split.train, num_users=exp.num_users, num_items=exp.num_items,
        target=target, exclude=exclude, ks=ks, batch_size=exp.config.eval_batch_size)
  return out
