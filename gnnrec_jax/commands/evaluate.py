"""`gnnrec-jax evaluate --workdir DIR`: test metrics of a trained run (JSON last line).

Also writes the per-user metrics (`per_user_test.npz`, or `per_user_valid.npz` with
`--split valid`) that `gnnrec-jax compare` reads, and a table on stderr. On a dataset with a
social network, an embedding model's friend-ranking metrics on the held-out friendships of the
same part are added as `friends/recall@K`, ... (`evaluation.social`).
"""
from __future__ import annotations

import json
import sys


def add_arguments(p):
  p.add_argument("--workdir", required=True)
  p.add_argument("--split", choices=("test", "valid"), default="test")
  p.add_argument("--no-table", action="store_true", help="no table on stderr (for scripts)")


def run(args) -> int:
  from gnnrec_jax.evaluation.protocol import evaluate_split
  from gnnrec_jax.evaluation.report import metrics_table
  from gnnrec_jax.training import workdir

  _, rec, params = workdir.load(args.workdir)
  # The test pass is exactly the trainer's (cold-start blocks by the same rule); valid as
  # validation during training saw it.
  metrics, per_user = evaluate_split(rec, params, args.split,
                                     blocks=None if args.split == "test" else False,
                                     return_per_user=True)
  workdir.write_per_user(args.workdir, rec.exp, per_user, args.split)
  if rec.exp.friends is not None and hasattr(rec, "embed"):
    from gnnrec_jax.evaluation import social
    friends = social.evaluate_model_friends(rec, params, args.split)
    metrics.update({f"friends/{k}": v for k, v in friends.items()})
  if not args.no_table:
    print(metrics_table(metrics, title=f"{args.split} metrics ({rec.config.model}, "
                                       f"{args.workdir})"), file=sys.stderr)
  print(json.dumps(metrics, sort_keys=True))
  return 0
