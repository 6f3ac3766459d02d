"""In-memory dataset types shared by every loader, split, graph builder and model.

Indices are dense and 0-based: users in `[0, num_users)`, items in `[0, num_items)`. Tokens (the
ids as written in the source files) are kept in a `Vocab` so that results can be reported in the
user's own ids.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from gnnrec_jax.errors import DataError


@dataclasses.dataclass(frozen=True)
class Vocab:
  """A bijection between tokens (strings from the files) and dense indices."""

  tokens: tuple[str, ...]

  def __post_init__(self):
    index = {t: i for i, t in enumerate(self.tokens)}
    if len(index) != len(self.tokens):
      seen, dup = set(), None
      for t in self.tokens:
        if t in seen:
          dup = t
          break
        seen.add(t)
      raise DataError(f"duplicate token {dup!r} in vocabulary")
    object.__setattr__(self, "_index", index)

  def __len__(self) -> int:
    return len(self.tokens)

  def __contains__(self, token: str) -> bool:
    return token in self._index  # type: ignore[attr-defined]

  def index(self, token: str) -> int:
    """Returns the index of `token`; raises `DataError` naming it when unknown."""
    try:
      return self._index[token]  # type: ignore[attr-defined]
    except KeyError:
      shown = repr(token) if len(str(token)) <= 60 else repr(str(token)[:60]) + "..."
      raise DataError(f"unknown id {shown}") from None

  def lookup(self, tokens: Sequence[str]) -> np.ndarray:
    """Indices of many tokens, -1 where unknown."""
    get = self._index.get  # type: ignore[attr-defined]
    return np.fromiter((get(t, -1) for t in tokens), dtype=np.int64, count=len(tokens))

  @classmethod
  def from_tokens(cls, tokens) -> "Vocab":
    """Vocabulary of the distinct tokens in order of first appearance."""
    return cls(tuple(dict.fromkeys(str(t) for t in tokens)))


@dataclasses.dataclass(frozen=True)
class Interactions:
  """A set of user–item interactions as parallel arrays (one row per interaction).

  Attributes:
    user: [n] int32 user indices.
    item: [n] int32 item indices.
    weight: [n] float32 interaction weights (rating, count, ...) or None (all ones).
    timestamp: [n] int64 timestamps or None.
  """

  user: np.ndarray
  item: np.ndarray
  weight: np.ndarray | None = None
  timestamp: np.ndarray | None = None

  def __post_init__(self):
    object.__setattr__(self, "user", np.asarray(self.user, dtype=np.int32))
    object.__setattr__(self, "item", np.asarray(self.item, dtype=np.int32))
    n = self.user.shape[0]
    if self.item.shape != (n,):
      raise ValueError(f"user and item arrays differ in length: {n} vs {self.item.shape}")
    if self.weight is not None:
      object.__setattr__(self, "weight", np.asarray(self.weight, dtype=np.float32))
      if self.weight.shape != (n,):
        raise ValueError("weight must have one entry per interaction")
    if self.timestamp is not None:
      object.__setattr__(self, "timestamp", np.asarray(self.timestamp, dtype=np.int64))
      if self.timestamp.shape != (n,):
        raise ValueError("timestamp must have one entry per interaction")

  def __len__(self) -> int:
    return int(self.user.shape[0])

  def take(self, idx: np.ndarray) -> "Interactions":
    """The interactions at positions (or boolean mask) `idx`."""
    return Interactions(
        self.user[idx], self.item[idx],
        None if self.weight is None else self.weight[idx],
        None if self.timestamp is None else self.timestamp[idx])

  def weights_or_ones(self) -> np.ndarray:
    return np.ones(len(self), np.float32) if self.weight is None else self.weight

  @staticmethod
  def concat(parts: Sequence["Interactions"]) -> "Interactions":
    def cat(name):
      cols = [getattr(p, name) for p in parts]
      return None if any(c is None for c in cols) else np.concatenate(cols)
    return Interactions(cat("user"), cat("item"), cat("weight"), cat("timestamp"))


@dataclasses.dataclass(frozen=True)
class Split:
  """Train / valid / test interactions over one catalogue (same vocabularies).

  Attributes:
    cold_items: for a cold-start split, the sorted [k] int32 indices of the items withheld from
      train (their interactions are all in valid or test); None otherwise.
  """

  train: Interactions
  valid: Interactions
  test: Interactions
  cold_items: np.ndarray | None = None

  def sizes(self) -> dict[str, int]:
    return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}


@dataclasses.dataclass(frozen=True)
class Dataset:
  """One recommendation dataset in memory.

  Attributes:
    name: short name (e.g. "ml-100k").
    users: user vocabulary (token <-> index); the catalogue includes users from metadata files.
    items: item vocabulary; the catalogue includes items from metadata files.
    interactions: every interaction of the dataset (for a predefined split, the union of parts).
    split: the predefined split when the source has one (LightGCN format, --train/--valid/--test),
      else None and a split is made by `gnnrec_jax.data.splits`.
    item_meta: optional item columns, each an array aligned with item indices
      (ml-100k: "title", "year", "genres"); missing values are "" (or NaN for numbers).
    user_meta: optional user columns aligned with user indices (ml-100k: "age", "gender", ...).
    social: optional [m, 2] int32 user–user edges (undirected pairs, each listed once).
    source: where it was read from (for messages and fingerprints).
    behaviours: for behaviour-typed data, {name: {"rows": rows in the files, "weight": w}}
      (gnnrec_jax/data/behaviours.py); None when the data has no behaviour column.
  """

  name: str
  users: Vocab
  items: Vocab
  interactions: Interactions
  split: Split | None = None
  item_meta: Mapping[str, np.ndarray] | None = None
  user_meta: Mapping[str, np.ndarray] | None = None
  social: np.ndarray | None = None
  source: str = ""
  behaviours: Mapping[str, Mapping[str, float]] | None = None

  @property
  def num_users(self) -> int:
    return len(self.users)

  @property
  def num_items(self) -> int:
    return len(self.items)

  def item_title(self, index: int) -> str:
    """The item's title when metadata has one, else its token."""
    if self.item_meta and "title" in self.item_meta:
      title = str(self.item_meta["title"][index])
      if title:
        return title
    return self.items.tokens[index]
