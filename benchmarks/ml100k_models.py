"""ml-100k results table: every model with its default config, plus a popularity baseline.

  GNNREC_JAX_CACHE=/tmp/h1cache python benchmarks/ml100k_models.py \
      [--models lightgcn,mf,...] [--set key=value ...] [--workdir /tmp/ml100k_runs] \
      [--log benchmarks/ml100k_runs.jsonl]

Protocol (RecBole's, our default config): random 80/10/10 split per user with seed 2020, every
rating a positive, full ranking with train items masked (train and valid at test time), the
epoch kept by valid NDCG@20. Each model runs through the library's one loop
(`gnnrec_jax.training.fit.fit`) with `gnnrec_jax.configs.get_config(model)`; `--set` overrides
apply to every model named in `--models`, which is how the tuning log
(benchmarks/ml100k_tuning.md) was produced, one setting per call. Runs are sequential: the
machine is shared and parallel runs only slow each other.

"seed" is `gnnrec_jax/configs/seed.py`, the seed document's literal rule (a softmax_gnn);
it is accepted by `--models` but not in the default list.

"pop" ranks items by their number of train interactions (no training); it is the floor every
model must clear. "MODEL+full" / "MODEL+fullcos" are the names the tuning log used for
`--set loss=full_softmax` (a softmax over the whole catalogue) and the same with
`score=cosine`; they are kept as shorthands.

Prints a human table (valid NDCG@20 of the kept epoch, test metrics @20, best epoch, epochs
run, wall seconds), then ONE JSON line last: {"dataset", "protocol", "rows": [...]}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

MODELS = ("pop", "mf", "lightgcn", "ngcf", "gat", "softmax_gnn", "ease")
# Named configs that are not a model's default (gnnrec_jax/configs/): accepted, not run by default.
EXTRA_CONFIGS = ("seed",)
# Shorthands of the tuning log: "<model>+full" is loss=full_softmax, "+fullcos" adds score=cosine.
PROTOTYPES = {"full": ["loss=full_softmax"], "fullcos": ["loss=full_softmax", "score=cosine"]}
METRICS = ("recall", "ndcg", "precision", "hit", "mrr", "coverage")


def pop_scores(params, users):
  """Every user gets the same scores: the items' train counts ([I]), broadcast to [B, I]."""
  import jax.numpy as jnp
  (counts,) = params
  return jnp.broadcast_to(counts, (users.shape[0], counts.shape[0]))


def run_pop(exp, ks) -> dict:
  """Popularity baseline on the experiment's split: valid and test metrics, no training."""
  from gnnrec_jax.evaluation import evaluate
  train = exp.split.train
  counts = np.bincount(train.item, minlength=exp.num_items).astype(np.float32)
  common = dict(num_users=exp.num_users, num_items=exp.num_items, ks=ks)
  valid = evaluate.evaluate_full_ranking(pop_scores, (counts,), exclude=[train],
                                         target=exp.split.valid, **common)
  test = evaluate.evaluate_full_ranking(pop_scores, (counts,), exclude=[train, exp.split.valid],
                                        target=exp.split.test, **common)
  return {"valid": valid, "test": test, "best_epoch": 0, "epochs_run": 0}


def best_valid(workdir: str, metric: str) -> float | None:
  """The best valid `metric` in a run's history.jsonl (the epoch the trainer kept)."""
  path = os.path.join(workdir, "history.jsonl")
  if not os.path.exists(path):
    return None
  values = []
  with open(path) as f:
    for line in f:
      row = json.loads(line)
      if f"valid/{metric}" in row:
        values.append(row[f"valid/{metric}"])
  return max(values) if values else None


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default=",".join(MODELS),
                      help=f"comma-separated, from {', '.join(MODELS + EXTRA_CONFIGS)}; MODEL+full or "
                      "MODEL+fullcos for the full-softmax prototypes")
  parser.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE", help="config override for every model (repeatable)")
  parser.add_argument("--workdir", default="/tmp/ml100k_runs", help="one subfolder per model")
  parser.add_argument("--data-dir", default=None, help="ml-100k folder; default: the cache")
  parser.add_argument("--log", default=None, help="append each row as a JSON line here")
  args = parser.parse_args(argv)
  names = [m.strip() for m in args.models.split(",") if m.strip()]
  unknown = sorted(n for n in names if n.split("+")[0] not in MODELS + EXTRA_CONFIGS
                   or ("+" in n and n.split("+", 1)[1] not in PROTOTYPES))
  if unknown:
    parser.error(f"unknown model(s) {', '.join(unknown)}; choose from "
                 f"{', '.join(MODELS + EXTRA_CONFIGS)}")

  import jax

  from gnnrec_jax import configs
  from gnnrec_jax.config import apply_overrides
  from gnnrec_jax.data import load_dataset
  from gnnrec_jax.experiment import prepare
  from gnnrec_jax.training.fit import fit

  dataset = load_dataset("ml-100k", data_dir=args.data_dir)
  rows = []
  for name in names:
    base, _, proto = name.partition("+")
    config = apply_overrides(configs.get_config("lightgcn" if base == "pop" else base),
                             PROTOTYPES.get(proto, []) + args.overrides)
    workdir = os.path.join(args.workdir, name)
    t0 = time.perf_counter()
    if base == "pop":
      exp = prepare(config, dataset)
      out = run_pop(exp, tuple(int(k) for k in config.topk))
      test, valid = out["test"], out["valid"]["ndcg@20"]
    else:
      test = fit(prepare(config, dataset), workdir, overwrite=True, progress=False).metrics
      out = test
      valid = best_valid(workdir, "ndcg@20")
    seconds = time.perf_counter() - t0
    row = {"model": name, "overrides": args.overrides, "valid_ndcg@20": valid,
           **{f"{m}@20": test[f"{m}@20"] for m in METRICS},
           "best_epoch": out["best_epoch"], "epochs_run": out["epochs_run"],
           "seconds": round(seconds, 1)}
    rows.append(row)
    print(f"# {name}: valid ndcg@20 {valid:.4f} test ndcg@20 {test['ndcg@20']:.4f} "
          f"({seconds:.0f} s)", file=sys.stderr, flush=True)
    if args.log:
      with open(args.log, "a") as f:
        f.write(json.dumps(row) + "\n")

  head = ("model", "valid ndcg", *METRICS, "best ep", "epochs", "seconds")
  print(" ".join(f"{h:>11}" for h in head))
  for r in rows:
    cells = [r["model"], f"{r['valid_ndcg@20']:.4f}",
             *(f"{r[f'{m}@20']:.4f}" for m in METRICS),
             str(r["best_epoch"]), str(r["epochs_run"]), f"{r['seconds']:.0f}"]
    print(" ".join(f"{c:>11}" for c in cells))
  print("(test metrics @20; valid ndcg = valid NDCG@20 of the kept epoch)")
  print(json.dumps({"dataset": "ml-100k", "protocol": "random 80/10/10 seed 2020, full ranking",
                    "device": jax.devices()[0].platform, "overrides": args.overrides,
                    "rows": rows}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
