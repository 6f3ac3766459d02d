"""Text features on the ordinary ml-100k split: LightGCN with history / profile / both vs ID-only.

  GNNREC_JAX_CACHE=/tmp/h1cache python benchmarks/text_features.py \
      [--modes id,history,profile,both] [--lr 5e-3] [--epochs 60] [--eval-every 3] [--patience 4]

Protocol: random 80/10/10 split per user (seed 2020, RecBole's RS), every rating a positive, full
ranking with seen items masked. Items always get their text vector (all-MiniLM-L6-v2 of
"Title (year). Genres: ..."); users get, per mode, the mean of their train items' vectors
("history"), their profile sentence ("A 24-year-old male technician.", "profile"), the mean of
both ("both"), or nothing ("id": the ID-only LightGCN). Text models keep their ID vectors
(id_dropout 0: every test node is warm here). The loop is the library's `fit`; the epoch is
kept by valid NDCG@20, test is reported once.

Prints a human table, then ONE JSON line last.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

MODES = ("id", "history", "profile", "both")


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--modes", default=",".join(MODES))
  p.add_argument("--lr", type=float, default=5e-3)
  p.add_argument("--epochs", type=int, default=60)
  p.add_argument("--eval-every", type=int, default=3)
  p.add_argument("--patience", type=int, default=4)
  p.add_argument("--data-dir", default=None)
  p.add_argument("--workdir", default=None, help="run folders (default: a temporary folder)")
  args = p.parse_args(argv)
  modes = [m.strip() for m in args.modes.split(",") if m.strip()]
  bad = sorted(set(modes) - set(MODES))
  if bad:
    p.error(f"unknown modes {bad}; choose from {', '.join(MODES)}")

  from gnnrec_jax import experiment
  from gnnrec_jax.config import Config
  from gnnrec_jax.data import load_dataset
  from gnnrec_jax.training.fit import fit

  ds = load_dataset("ml-100k", data_dir=args.data_dir)
  base = Config(model="lightgcn", split="random", seed=2020, lr=args.lr, epochs=args.epochs,
                topk=(10, 20, 50), eval_every=args.eval_every, patience=args.patience)
  root = args.workdir or tempfile.mkdtemp(prefix="text_features_")
  rows = []
  for mode in modes:
    cfg = base if mode == "id" else base.replace(text_features=mode)
    t0 = time.perf_counter()
    exp = experiment.prepare(cfg, ds)
    prep_s = time.perf_counter() - t0
    print(f"LightGCN, users' text: {mode} (features {prep_s:.0f}s)")
    t0 = time.perf_counter()
    fitted = fit(exp, f"{root}/{mode}", overwrite=True, progress=False)
    test = fitted.metrics
    valid = max(r["valid/ndcg@20"] for r in fitted.history if "valid/ndcg@20" in r)
    rows.append({"mode": mode, "valid_ndcg@20": valid, "best_epoch": test["best_epoch"],
                 "epochs_run": test["epochs_run"], "wall_s": time.perf_counter() - t0 + prep_s,
                 "test": {k: test[k] for k in ("recall@20", "ndcg@20", "num_users")}})

  ref = next((r for r in rows if r["mode"] == "id"), None)
  print(f"\n{'users text':10s} {'valid N@20':>10s} {'test R@20':>9s} {'test N@20':>9s} "
        f"{'vs id':>7s} {'epoch':>5s} {'wall_s':>6s}")
  for r in rows:
    rel = (f"{100 * (r['test']['ndcg@20'] / ref['test']['ndcg@20'] - 1):+6.1f}%"
           if ref else "")
    print(f"{r['mode']:10s} {r['valid_ndcg@20']:10.4f} {r['test']['recall@20']:9.4f} "
          f"{r['test']['ndcg@20']:9.4f} {rel:>7s} {r['best_epoch']:5d} {r['wall_s']:6.0f}")
  print(json.dumps({"benchmark": "text_features", "dataset": "ml-100k", "split": "random",
                    "seed": 2020, "lr": args.lr, "eval_every": args.eval_every,
                    "patience": args.patience, "rows": rows}))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
