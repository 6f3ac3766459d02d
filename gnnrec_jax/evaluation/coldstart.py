"""Cold-start evaluation blocks: warm items, cold items and cold users of one held-out set.

A node is *cold* when it has no train interaction (`gnnrec_jax.models.inductive`); models embed
cold nodes without their untrained ID vectors, and these blocks say how well they rank them.

Blocks of one held-out set (`evaluate_score_blocks`):
  all         every target pair, every item rankable (the ordinary full ranking).
  warm        target pairs whose item occurs in train; only such items are ranked.
  cold        target pairs whose item never occurs in train; only such items are ranked
              (the cold-item protocol of DropoutNet, Volkovs et al. 2017, and CLCRec).
  cold_users  (only when some exist) target pairs of users without train interactions, every
              item ranked.
Item blocks keep every user; items a user has seen (`exclude`) are never ranked, as usual.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from gnnrec_jax.data.types import Interactions
from gnnrec_jax.evaluation import evaluate
from gnnrec_jax.models.inductive import train_presence

BLOCKS = ("all", "warm", "cold", "cold_users")


def block_pairs(target: Interactions, train: Interactions, *, num_users: int,
                num_items: int) -> dict[str, np.ndarray]:
  """Which target rows land in which block: {"all", "warm", "cold", "cold_users"?} -> [n] bool.

  "cold_users" is present only when some target user has no train interaction.
  """
  user_in, item_in = train_presence(train, num_users, num_items)
  warm = item_in[np.asarray(target.item, np.int64)]
  out = {"all": np.ones(len(target), bool), "warm": warm, "cold": ~warm}
  cold_user = ~user_in[np.asarray(target.user, np.int64)]
  if cold_user.any():
    out["cold_users"] = cold_user
  return out


def evaluate_score_blocks(score_fn: evaluate.ScoreFn, params: Any, *, train: Interactions,
                          num_users: int, num_items: int, target: Interactions,
                          exclude: Sequence[Interactions], ks: Sequence[int] = (10, 20, 50),
                          batch_size: int = 512) -> dict[str, dict[str, float]]:
  """Full-ranking metrics of `score_fn` on the blocks of the module docstring.

  Args:
    score_fn: `score_fn(params, user_ids [B]) -> [B, I]` (see `evaluate_full_ranking`).
    params: the pytree `score_fn` reads.
    train: the train interactions (they define which items and users are warm).
    num_users: U.
    num_items: I.
    target: held-out interactions (valid or test).
    exclude: interactions never ranked for their user (train; train and valid at test time).
    ks: cut-offs.
    batch_size: users per ranking step.

  Returns:
    {block: metrics} with the keys of `evaluate_full_ranking` plus "num_pairs" (target pairs of
    the block that are rankable, i.e. not excluded); "cold_users" only when such users exist.
    A block without pairs has zero metrics and `num_users == 0`.
  """
  user_in, item_in = train_presence(train, num_users, num_items)
  pairs = block_pairs(target, train, num_users=num_users, num_items=num_items)
  seen = _pair_keys(exclude, num_items)
  key = np.asarray(target.user, np.int64) * num_items + np.asarray(target.item, np.int64)
  rankable_pair = ~np.isin(key, seen)
  common = dict(num_users=num_users, num_items=num_items, exclude=exclude, target=target, ks=ks,
                batch_size=batch_size)
  setups = {"all": {}, "warm": {"item_mask": item_in}, "cold": {"item_mask": ~item_in}}
  if "cold_users" in pairs:
    setups["cold_users"] = {"user_subset": np.flatnonzero(~user_in)}
  out = {}
  for name, extra in setups.items():
    metrics = evaluate.evaluate_full_ranking(score_fn, params, **common, **extra)
    metrics["num_pairs"] = int(len(np.unique(key[pairs[name] & rankable_pair])))
    out[name] = metrics
  return out


def _pair_keys(parts: Sequence[Interactions], num_items: int) -> np.ndarray:
  if not parts:
    return np.zeros(0, np.int64)
  return np.unique(np.concatenate([np.asarray(p.user, np.int64) * num_items
                                   + np.asarray(p.item, np.int64) for p in parts]))
