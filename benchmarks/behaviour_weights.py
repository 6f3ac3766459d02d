"""Interaction weights in the graph (issue 15, item 1): binary vs weighted, through the CLI.

  nice -n 5 python benchmarks/behaviour_weights.py [--runs seed_binary,seed_levels,...]
      [--workdir /tmp/behaviour_runs] [--lastfm-dir ../shared/data/lastfm]

Each run is one `gnnrec-jax train` command (printed), so every figure can be reproduced by hand:

  seed_*       the seed's rule on ml-100k: `--model softmax_gnn --set attention_mix=1
               --set initial_alpha=weights` (pure softmax alpha; layer 1's alpha is the
               interaction weights normalised per receiver), with the weights
                 binary  every rating a behaviour of weight 1 (`--columns behaviour=rating
                         --set behaviour_weights=1:1,...,5:1`)
                 ratings the 1-5 stars as the weights themselves (the loader's default)
                 levels  the stars as behaviour levels, each star doubling the weight
                         (`behaviour_weights=1:1,2:2,3:4,4:8,5:16`)
  lightgcn_*   LightGCN's default config on ml-100k with weighted_norm=false (binary
               D^-1/2 A D^-1/2) or auto (the ratings weight the normalisation)
  lastfm_*     the same two on Last.fm (listening counts), validation carved from train (10%)

Protocol: ml-100k as RecBole (random 80/10/10 per user, seed 2020, full ranking), the epoch kept
by valid NDCG@20; test metrics @20. Prints a table, then ONE JSON line last.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SEED = ["--model", "softmax_gnn", "--set", "attention_mix=1", "--set", "initial_alpha=weights"]
LEVELS = ["--columns", "behaviour=rating", "--set", "behaviour_weights="]


def _levels(mapping: str) -> list[str]:
  return LEVELS[:-1] + [LEVELS[-1] + mapping]


RUNS = {
    "seed_binary": SEED + _levels("1:1,2:1,3:1,4:1,5:1"),
    "seed_ratings": SEED,
    "seed_levels": SEED + _levels("1:1,2:2,3:4,4:8,5:16"),
    "lightgcn_binary": ["--model", "lightgcn", "--set", "weighted_norm=false"],
    "lightgcn_ratings": ["--model", "lightgcn", "--set", "weighted_norm=auto"],
    "lastfm_binary": ["--model", "lightgcn", "--set", "weighted_norm=false"],
    "lastfm_counts": ["--model", "lightgcn", "--set", "weighted_norm=auto"],
}


# seed_ratings is the rule measured before (benchmarks/RESULTS.md, ml-100k table): not rerun
# by default on the shared 2-core machine.
DEFAULT_RUNS = ("seed_binary", "seed_levels", "lightgcn_binary", "lightgcn_ratings",
                "lastfm_binary", "lastfm_counts")


def best_valid(workdir: str, metric: str = "ndcg@20") -> float:
  best = float("-inf")
  with open(os.path.join(workdir, "history.jsonl")) as f:
    for line in f:
      row = json.loads(line)
      best = max(best, row.get(f"valid/{metric}", float("-inf")))
  return best


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--runs", default=",".join(DEFAULT_RUNS),
                 help=f"comma-separated from {', '.join(RUNS)}")
  p.add_argument("--workdir", default="/tmp/behaviour_runs")
  p.add_argument("--lastfm-dir", default=os.path.join("..", "shared", "data", "lastfm"))
  args = p.parse_args(argv)
  names = [n.strip() for n in args.runs.split(",") if n.strip()]
  bad = [n for n in names if n not in RUNS]
  if bad:
    p.error(f"unknown run(s) {', '.join(bad)}")
  rows = []
  for name in names:
    data = (["--dataset", "lastfm", "--data-dir", args.lastfm_dir, "--valid-from-train", "0.1"]
            if name.startswith("lastfm") else ["--dataset", "ml-100k"])
    workdir = os.path.join(args.workdir, name)
    cmd = [sys.executable, "-m", "gnnrec_jax.cli", "train", *data, *RUNS[name],
           "--workdir", workdir, "--overwrite", "--no-progress"]
    shown = "gnnrec-jax " + " ".join(cmd[3:])
    print(f"# {name}: {shown}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
      print(proc.stderr, file=sys.stderr)
      return proc.returncode
    test = json.loads(proc.stdout.strip().splitlines()[-1])
    row = {"run": name, "command": shown, "valid_ndcg@20": best_valid(workdir),
           "recall@20": test["recall@20"], "ndcg@20": test["ndcg@20"],
           "best_epoch": test["best_epoch"], "epochs_run": test["epochs_run"],
           "seconds": round(seconds, 1)}
    rows.append(row)
    print(f"# {name}: valid ndcg@20 {row['valid_ndcg@20']:.4f} test ndcg@20 "
          f"{row['ndcg@20']:.4f} ({seconds:.0f} s)", file=sys.stderr, flush=True)
  head = ("run", "valid ndcg@20", "recall@20", "ndcg@20", "best ep", "epochs", "seconds")
  print(" | ".join(head))
  for r in rows:
    print(" | ".join([r["run"], f"{r['valid_ndcg@20']:.4f}", f"{r['recall@20']:.4f}",
                      f"{r['ndcg@20']:.4f}", str(r["best_epoch"]), str(r["epochs_run"]),
                      f"{r['seconds']:.0f}"]))
  print(json.dumps({"benchmark": "behaviour_weights", "rows": rows}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
