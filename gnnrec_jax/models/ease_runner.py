"""EASE (Steck, WWW 2019) inside the same run layout as the trained models.

EASE is a closed-form item–item model, not a GNN; it is here because it is the strongest peer on
ml-100k and any honest comparison needs it. Fit once on train, evaluate valid and test.
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from gnnrec_jax.training import checkpoint
from gnnrec_jax.models import ease
from gnnrec_jax.evaluation import evaluate
from gnnrec_jax import fileio
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.experiment import Experiment

# B is a dense [I, I] float32 matrix: 40,981 items (Gowalla) would need 6.7 GB.
MAX_ITEMS = 20_000


def ease_scores(params, users: jax.Array) -> jax.Array:
  """`scores = X[users] @ B` for `params = (X [U, I], B [I, I])`; traced by the evaluator's jit."""
  x, b = params
  return ease.ease_scores(x[users], b)


def train_matrix(exp: Experiment) -> np.ndarray:
  """Dense binary X [U, I] of the train split (the evaluator gathers rows of it on device)."""
  return ease.interaction_matrix(exp.split.train, num_users=exp.num_users,
                                 num_items=exp.num_items).toarray().astype(np.float32)


def run(exp: Experiment, workdir: str) -> dict:
  cfg = exp.config
  if exp.num_items > MAX_ITEMS:
    raise ConfigError(f"EASE needs a dense {exp.num_items}x{exp.num_items} matrix; "
                      f"this library caps it at {MAX_ITEMS} items")
  b = ease.fit_ease(exp.split.train, num_users=exp.num_users, num_items=exp.num_items,
                    l2=cfg.ease_l2)
  checkpoint.save(workdir, "best", {"B": b}, meta={"epoch": 0, "fingerprint": exp.fingerprint})
  params = (jnp.asarray(train_matrix(exp)), jnp.asarray(b))
  ks = tuple(int(k) for k in cfg.topk)
  common = dict(num_users=exp.num_users, num_items=exp.num_items, ks=ks,
                batch_size=cfg.eval_batch_size)
  result = {}
  if len(exp.split.valid):
    valid = evaluate.evaluate_full_ranking(ease_scores, params, exclude=[exp.split.train],
                                           target=exp.split.valid, **common)
    row = {"epoch": 0, "loss": 0.0, **{f"valid/{k}": v for k, v in valid.items()}}
    fileio.write_atomic(os.path.join(workdir, "history.jsonl"), json.dumps(row) + "\n")
  test = evaluate.evaluate_full_ranking(ease_scores, params, exclude=[exp.split.train, exp.split.valid],
                                        target=exp.split.test, **common)
  result.update(test)
  result.update(best_epoch=0, epochs_run=0)
  fileio.write_json(os.path.join(workdir, "metrics.json"), result)
  return result
