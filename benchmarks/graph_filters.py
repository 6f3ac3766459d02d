"""Training-free graph filters (GF-CF, BSPM, ChebyCF) on Gowalla and ml-100k, through `fit`.

  # Gowalla, LightGCN split, each paper's published hyperparameters (PAPER_GOWALLA), measured
  # on test (the papers chose them on this test set):
  flock /work/cpu.lock python benchmarks/graph_filters.py --dataset gowalla --model gfcf
  flock /work/cpu.lock python benchmarks/graph_filters.py --dataset gowalla --model bspm
  flock /work/cpu.lock python benchmarks/graph_filters.py --dataset gowalla --model chebycf
  # Gowalla, a small grid chosen on a validation set carved from train (10% per user):
  python benchmarks/graph_filters.py --dataset gowalla --model gfcf --valid-from-train 0.1 \
      --grid filter_alpha=0.1,0.3,0.5
  # ml-100k, RecBole protocol (the default dataset and split): the grid chosen on valid NDCG@20
  python benchmarks/graph_filters.py --dataset ml-100k --model chebycf \
      --grid svd_rank=32,64,128 filter_alpha=0.1,0.3 cheby_beta=0,0.2,0.4
  # the truncated SVD alone (the bulk of a fit), for the papers' ranks:
  flock /work/cpu.lock python benchmarks/graph_filters.py --dataset gowalla --model gfcf \
      --svd-only 256,448,512
  # any config field for every setting:
  python benchmarks/graph_filters.py --dataset ml-100k --model gfcf --set svd_rank=64

Every setting is one ordinary run of the library's loop (`gnnrec_jax.training.fit.fit`) with
`gnnrec_jax.configs.get_config(model)` (on Gowalla then the paper's values, `PAPER_GOWALLA`),
`--set` and the grid point, in its own run folder
under `--workdir`: the closed-form fit (`init`), one validation when the split has a validation
set, the test evaluation. With a grid, the setting with the best validation NDCG@20 is reported
("valid-selected"); the others' test metrics are computed by `fit` but not read.

Gowalla: `load_dataset("gowalla")`, the LightGCN train/test files (no validation set unless
`--valid-from-train`). ml-100k: RecBole's random 80/10/10 split per user, seed 2020 (the default
config's split), every rating a positive.

Timings: "fit s" is the model's `init` (normalisation, truncated SVD, moving arrays to the
device; the history's `fit_s`), "run s" the whole `fit` call (plus validation, the test ranking
with its compilation, checkpoint and run files). Prints a human table, then ONE JSON line last.
"""
from __future__ import annotations

import argparse
import ast
import itertools
import json
import os
import resource
import sys
import time

K = 20
# Each paper's Gowalla hyperparameters (read from its reference code; see the docstrings of
# gnnrec_jax/configs/<model>.py), applied on Gowalla before --set and the grid.
PAPER_GOWALLA = {
    "gfcf": dict(filter_alpha=0.3, svd_rank=256),
    "bspm": dict(filter_alpha=0.2, svd_rank=448, bspm_idl_solver="euler", bspm_idl_steps=1,
                 bspm_idl_time=1.0, bspm_blur_solver="euler", bspm_blur_steps=1,
                 bspm_blur_time=1.0, bspm_sharpen_solver="rk4", bspm_sharpen_steps=1,
                 bspm_sharpen_time=2.5, bspm_early_merge=True, bspm_t_point_combination=False),
    "chebycf": dict(cheby_order=8, cheby_flatness=1.5, svd_rank=512, filter_alpha=0.2,
                    cheby_beta=0.4),
}
# Published Gowalla Recall@20 / NDCG@20 (LightGCN split).
PUBLISHED = {
    "gfcf": (0.1849, 0.1518, "BARS leaderboard / GF-CF paper"),
    "bspm": (0.1920, 0.1597, "BSPM paper, BSPM-EM"),
    "chebycf": (0.1941, 0.1616, "ChebyCF repository README"),
}


def parse_value(raw: str):
  try:
    return ast.literal_eval(raw)
  except (ValueError, SyntaxError):
    return raw  # a string such as svd_method=arpack


def parse_grid(items: list[str]) -> dict[str, list]:
  out = {}
  for item in items:
    key, _, raw = item.partition("=")
    out[key] = [parse_value(v) for v in raw.split(",")]
  return out


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(args):
  from gnnrec_jax.data.registry import load_dataset
  if args.dataset == "gowalla":
    kw = {"data_dir": args.data_dir} if args.data_dir else {}
    if args.valid_from_train:
      kw["valid_from_train"] = args.valid_from_train
    return load_dataset("gowalla", **kw)
  return load_dataset("ml-100k")


def time_svd(args, ranks: list[int]) -> int:
  """Seconds of `normalize_interactions` and `top_singular_vectors` (the bulk of a fit)."""
  from gnnrec_jax.configs import get_config
  from gnnrec_jax.models import graph_filters as gf
  from gnnrec_jax.models.ease import interaction_matrix
  ds = load(args)
  train = ds.split.train if ds.split is not None else ds.interactions
  matrix = interaction_matrix(train, num_users=ds.num_users, num_items=ds.num_items)
  method = get_config(args.model).svd_method
  t0 = time.perf_counter()
  r_tilde = gf.normalize_interactions(matrix)[0]
  rows = [{"step": "normalise", "s": time.perf_counter() - t0}]
  for k in ranks:
    t0 = time.perf_counter()
    gf.top_singular_vectors(r_tilde, k, method=method, seed=2020)
    rows.append({"step": f"svd k={k} ({method})", "s": time.perf_counter() - t0})
  for r in rows:
    print(f"| {r['step']} | {r['s']:.1f} s |")
  print(json.dumps({"benchmark": "graph_filters_svd", "dataset": args.dataset, "rows": rows,
                    "loadavg": os.getloadavg()}))
  return 0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", choices=("gowalla", "ml-100k"), required=True)
  parser.add_argument("--model", choices=tuple(PUBLISHED), required=True)
  parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                      help="config fields for every setting, e.g. svd_method=arpack")
  parser.add_argument("--grid", nargs="*", default=[], metavar="KEY=V1,V2",
                      help="config fields to choose on valid NDCG@20 (all combinations)")
  parser.add_argument("--data-dir", default=None, help="the Gowalla folder")
  parser.add_argument("--valid-from-train", type=float, default=None,
                      help="Gowalla: carve this per-user fraction of train into valid")
  parser.add_argument("--workdir", default="/tmp/graph_filters_runs")
  parser.add_argument("--svd-only", default=None, metavar="K1,K2",
                      help="only time the normalisation and the truncated SVD (config "
                      "svd_method, seed 2020) of the train matrix (ml-100k: all "
                      "interactions) for these ranks; no fit, no evaluation")
  args = parser.parse_args(argv)
  if args.svd_only:
    return time_svd(args, [int(k) for k in args.svd_only.split(",")])
  if args.grid and args.dataset == "gowalla" and not args.valid_from_train:
    parser.error("a Gowalla grid needs --valid-from-train (never select on test)")

  from gnnrec_jax.configs import get_config
  from gnnrec_jax.experiment import prepare
  from gnnrec_jax.training.fit import fit

  overrides = {k: parse_value(v) for k, _, v in (s.partition("=") for s in args.set)}
  paper = PAPER_GOWALLA[args.model] if args.dataset == "gowalla" else {}
  if args.dataset == "gowalla":
    # [I, B] column signals: B = 128 users per ranking step (the BSPM/ChebyCF intermediates
    # stay within a few hundred MB on Gowalla's 41k items).
    overrides.setdefault("eval_batch_size", 128)
  grid = parse_grid(args.grid)
  settings = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
  t_all = time.perf_counter()
  ds = load(args)
  rows = []
  for n, setting in enumerate(settings):
    cfg = get_config(args.model).replace(topk=(K,), **{**paper, **overrides, **setting})
    if ds.split is not None:  # Gowalla's own train/test files, as `gnnrec-jax train` does
      cfg = cfg.replace(split="predefined")
    exp = prepare(cfg, ds)
    t0 = time.perf_counter()
    fitted = fit(exp, os.path.join(args.workdir, f"{args.dataset}-{args.model}-{n}"),
                 overwrite=True, progress=False)
    hist = fitted.history[0]
    rows.append({"setting": setting, "valid_ndcg": hist.get(f"valid/ndcg@{K}"),
                 "valid_recall": hist.get(f"valid/recall@{K}"),
                 "test_recall": fitted.metrics[f"recall@{K}"],
                 "test_ndcg": fitted.metrics[f"ndcg@{K}"],
                 "fit_s": hist["fit_s"], "run_s": time.perf_counter() - t0})
    print(f"setting {n + 1}/{len(settings)} {setting or 'no grid'}: valid NDCG@{K} "
          f"{rows[-1]['valid_ndcg']}, fit {hist['fit_s']:.1f} s", file=sys.stderr, flush=True)
  has_valid = rows[0]["valid_ndcg"] is not None
  if len(rows) > 1:
    best = max(rows, key=lambda r: r["valid_ndcg"])
    selection = f"valid NDCG@{K} over {len(rows)} settings"
  else:
    best = rows[0]
    changed = sorted(k for k in overrides if k in paper and overrides[k] != paper[k])
    selection = ("no selection" if has_valid or not paper else
                 "published hyperparameters, test-measured" if not changed else
                 f"published hyperparameters except {', '.join(changed)} (--set), test-measured")
  base = get_config(args.model).replace(**{**paper, **overrides})
  print(f"{args.dataset} {args.model}: {ds.num_users} users, {ds.num_items} items; {selection}")
  if len(rows) > 1:
    print(f"| setting | valid NDCG@{K} | valid Recall@{K} | fit s |")
    for r in sorted(rows, key=lambda r: -r["valid_ndcg"]):
      print(f"| {r['setting']} | {r['valid_ndcg']:.4f} | {r['valid_recall']:.4f} | "
            f"{r['fit_s']:.1f} |")
  pub = PUBLISHED[args.model] if args.dataset == "gowalla" else None
  print(f"| model | setting | test Recall@{K} | test NDCG@{K} | published | fit s | run s | "
        "peak RSS MB |")
  print(f"| {args.model} | {best['setting'] or overrides or 'defaults'} | "
        f"{best['test_recall']:.4f} | {best['test_ndcg']:.4f} | "
        + (f"{pub[0]:.4f} / {pub[1]:.4f} ({pub[2]}; Recall gap {best['test_recall'] - pub[0]:+.4f})"
           if pub else "-")
        + f" | {best['fit_s']:.1f} | {best['run_s']:.1f} | {peak_rss_mb():.0f} |")
  print(json.dumps({
      "benchmark": "graph_filters", "dataset": args.dataset, "model": args.model,
      "selection": selection, "overrides": overrides, "setting": best["setting"],
      "config": {k: v for k, v in base.replace(**best["setting"]).to_dict().items()
                 if k in ("filter_alpha", "svd_rank", "svd_method", "eval_batch_size")
                 or k.startswith({"bspm": "bspm_", "chebycf": "cheby_"}.get(args.model, "-"))},
      f"recall@{K}": best["test_recall"], f"ndcg@{K}": best["test_ndcg"],
      "valid_ndcg": best["valid_ndcg"], "fit_s": best["fit_s"], "run_s": best["run_s"],
      "published": ({"recall": pub[0], "ndcg": pub[1], "source": pub[2],
                     "recall_gap": best["test_recall"] - pub[0]} if pub else None),
      "grid": [{**r["setting"], "valid_ndcg": r["valid_ndcg"]} for r in rows] if grid else None,
      "valid_from_train": args.valid_from_train, "wall_s": time.perf_counter() - t_all,
      "peak_rss_mb": peak_rss_mb(), "loadavg": os.getloadavg()}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
