"""`gnnrec-jax evaluate --workdir DIR`: test metrics of a trained run (JSON last line).

On a dataset with a social network, an embedding model's friend-ranking metrics on the held-out
friendships of the same part are added as `friends/recall@K`, ... (`evaluation.social`).
"""
from __future__ import annotations

import json


def add_arguments(p):
  p.add_argument("--workdir", required=True)
  p.add_argument("--split", choices=("test", "valid"), default="test")


def run(args) -> int:
  from gnnrec_jax.evaluation.protocol import evaluate_split
  from gnnrec_jax.training import workdir

  _, rec, params = workdir.load(args.workdir)
  # The test pass is exactly the trainer's (cold-start blocks by the same rule); valid as
  # validation during training saw it.
  metrics = evaluate_split(rec, params, args.split,
                           blocks=None if args.split == "test" else False)
  if rec.exp.friends is not None and hasattr(rec, "embed"):
    from gnnrec_jax.evaluation import social
    friends = social.evaluate_model_friends(rec, params, args.split)
    metrics.update({f"friends/{k}": v for k, v in friends.items()})
  print(json.dumps(metrics, sort_keys=True))
  return 0
