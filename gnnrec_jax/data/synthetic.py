"""A small planted-cluster dataset: known structure, generated in milliseconds.

Users and items are split into `num_clusters` groups; each user interacts mostly with items of
its own group (`in_cluster` of the time). A model that learns anything ranks same-group items
first, so end-to-end tests can assert quality (beats popularity) without real data.
"""
from __future__ import annotations

import numpy as np

from gnnrec_jax.data.types import Dataset, Interactions, Vocab


def make_synthetic(*, num_users: int = 60, num_items: int = 40, num_clusters: int = 4,
                   per_user: int = 10, in_cluster: float = 0.9, seed: int = 0) -> Dataset:
  """Builds the planted-cluster dataset (weights 1..5, increasing timestamps, titles, genres)."""
  rng = np.random.default_rng(seed)
  user_c = np.arange(num_users) % num_clusters
  item_c = np.arange(num_items) % num_clusters
  users, items = [], []
  for u in range(num_users):
    own = np.flatnonzero(item_c == user_c[u])
    other = np.flatnonzero(item_c != user_c[u])
    n_own = min(len(own), int(round(per_user * in_cluster)))
    chosen = np.concatenate([rng.choice(own, n_own, replace=False),
                             rng.choice(other, min(len(other), per_user - n_own), replace=False)])
    users += [u] * len(chosen)
    items += list(chosen)
  n = len(users)
  inter = Interactions(np.array(users), np.array(items),
                       weight=rng.integers(1, 6, n).astype(np.float32),
                       timestamp=np.arange(n, dtype=np.int64))
  genres = np.array([f"genre{c}" for c in item_c], dtype=object)
  return Dataset(
      name="synthetic",
      users=Vocab(tuple(f"u{u}" for u in range(num_users))),
      items=Vocab(tuple(f"i{i}" for i in range(num_items))),
      interactions=inter,
      item_meta={"title": np.array([f"Item {i} of group {c}" for i, c in enumerate(item_c)],
                                   dtype=object),
                 "genres": genres},
      user_meta={"group": user_c},
      source="synthetic",
  )
