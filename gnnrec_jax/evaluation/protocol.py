"""What is evaluated: which held-out part, which items are masked, and when cold-start blocks.

  valid: rank every item for each user with a valid item, train items masked.
  test:  the same with train and valid items masked (a valid item is never a recommendation).

The users' histories at test time (config `test_history`): "train" scores the model as trained;
"train+valid" adds each user's valid items to its history without retraining, each model reading
it the way it reads a history (`Recommender.at_test_time`): by default the graph and the users'
text are rebuilt from train + valid (`experiment.with_test_history`), so graph models propagate
over the valid edges and a closed-form model (EASE) reads the valid item in x_u with B as fitted;
the text-first GNN re-embeds every user from train + valid by its new-user rule, items as
trained. Parameters never change (MF, whose user vector is its trained ID vector alone, cannot
use the valid item). This is the protocol of
sequential leave-one-out benchmarks (UniSRec, VQ-Rec), whose test sequence holds the valid item.

Cold-start blocks (`gnnrec_jax.evaluation.coldstart`: warm items, cold items, cold users) are
reported as flat keys ("warm/ndcg@20", "cold/recall@20", "cold_users/...") when the split
withholds items on purpose (`split=cold_item`) or when the part's cold pairs (pairs whose user
or item has no train interaction) are at least `COLD_SHARE` of its rankable pairs; a handful of
cold pairs on an ordinary random split would otherwise print blocks that look like results.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from gnnrec_jax.errors import ConfigError
from gnnrec_jax.evaluation import coldstart, evaluate
from gnnrec_jax.models.inductive import train_presence

PARTS = ("valid", "test")
HISTORIES = ("train", "train+valid")
COLD_SHARE = 0.01  # blocks from 1% cold pairs up


def part_of(split, part: str):
  """(target, exclude) of a held-out part: valid masks train; test masks train and valid."""
  if part == "valid":
    return split.valid, [split.train]
  if part == "test":
    return split.test, [split.train, split.valid]
  raise ValueError(f"part must be one of {PARTS}, got {part!r}")


def cold_share(split, target, *, num_users: int, num_items: int) -> float:
  """Fraction of `target`'s pairs whose user or item has no train interaction."""
  if not len(target):
    return 0.0
  user_in, item_in = train_presence(split.train, num_users, num_items)
  cold = ~user_in[np.asarray(target.user, np.int64)] | ~item_in[np.asarray(target.item, np.int64)]
  return float(cold.mean())


def wants_blocks(config, split, target, *, num_users: int, num_items: int) -> bool:
  """True when cold-start blocks are reported (see the module docstring)."""
  if config.split == "cold_item":
    return True
  return cold_share(split, target, num_users=num_users, num_items=num_items) >= COLD_SHARE


def at_test_time(rec, history: str):
  """The model whose test pass reads `history` ("train": `rec` itself; "train+valid":
  `rec.at_test_time(valid)`, built once and kept on `rec`)."""
  if history not in HISTORIES:
    raise ConfigError(f"test_history must be one of {', '.join(HISTORIES)}, got {history!r}")
  if history == "train" or not len(rec.exp.split.valid):
    return rec
  cached = getattr(rec, "_test_time_model", None)
  if cached is None:
    cached = rec.at_test_time(rec.exp.split.valid)
    rec._test_time_model = cached
  return cached


def evaluate_split(rec, params, part: str = "test", *, score_params: Any = None,
                   blocks: bool | None = None, return_per_user: bool = False,
                   history: str | None = None):
  """Full-ranking metrics of a model on one held-out part of its experiment's split.

  Args:
    rec: the model (`gnnrec_jax.models.base.Recommender`).
    params: its parameters.
    part: "valid" or "test".
    score_params: `rec.score_params(params)` when the caller already has it.
    blocks: report cold-start blocks; None: by the rule of the module docstring.
    return_per_user: also return the per-user arrays of `evaluate_full_ranking` (all pairs).
    history: the test pass's user histories, "train" or "train+valid" (module docstring);
      None: `config.test_history`. Validation always reads train.

  Returns:
    {"recall@K", "ndcg@K", ..., "num_users"} plus "BLOCK/metric@K" keys when blocks are
    reported; with `return_per_user`, (metrics, per_user).
  """
  if part == "test":
    model = at_test_time(rec, history or rec.config.test_history)
    if model is not rec:
      rec, score_params = model, None  # the caller's score_params are those of train
  exp, cfg = rec.exp, rec.config
  target, exclude = part_of(exp.split, part)
  sp = rec.score_params(params) if score_params is None else score_params
  common = dict(num_users=exp.num_users, num_items=exp.num_items, exclude=exclude,
                target=target, ks=tuple(int(k) for k in cfg.topk),
                batch_size=cfg.eval_batch_size)
  if blocks is None:
    blocks = wants_blocks(cfg, exp.split, target, num_users=exp.num_users,
                          num_items=exp.num_items)
  if not blocks:
    return evaluate.evaluate_full_ranking(rec.score_fn, sp, **common,
                                          return_per_user=return_per_user)
  out = coldstart.evaluate_score_blocks(rec.score_fn, sp, train=exp.split.train, **common)
  metrics = out.pop("all")
  metrics.pop("num_pairs", None)
  metrics.update({f"{b}/{k}": v for b, m in out.items() for k, v in m.items()})
  if return_per_user:
    _, per_user = evaluate.evaluate_full_ranking(rec.score_fn, sp, **common,
                                                 return_per_user=True)
    return metrics, per_user
  return metrics
