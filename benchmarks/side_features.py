"""ml-100k with and without side features (user age/gender/occupation, item year/genres).

  python benchmarks/side_features.py [--models lightgcn,mf] [--cold] [--gaps 0.3]

Each row is one run of the library's `fit` on RecBole's protocol (random 80/10/10 per user, seed
2020, full ranking), the epoch kept by valid NDCG@20; the same as

  gnnrec-jax train --dataset ml-100k --model MODEL [--set side_features=SPEC] --workdir W

`--cold`: also the cold-item split (`split=cold_item`, 20% of items withheld from train), where
an ID-only model has nothing for a withheld item but its never-trained vector and the side
features give it year and genres (cold NDCG@20, selected on valid overall NDCG@20 as the CLI
does).
`--gaps F`: also runs where a fraction F of the users' ages, genders and occupations and the
items' years and genres is blanked (seeded), under each imputation policy, to show what the
missing indicators and the fill rule do when gaps are common.

Prints a table, then one JSON line with every number.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from gnnrec_jax import configs  # noqa: E402
from gnnrec_jax.data import load_dataset  # noqa: E402
from gnnrec_jax.experiment import prepare  # noqa: E402
from gnnrec_jax.training.fit import fit  # noqa: E402

SPEC = "user.age,user.gender,user.occupation,item.year,item.genres"


def with_gaps(ds, fraction: float, seed: int = 0):
  """The dataset with `fraction` of each listed metadata value blanked ("" / NaN), seeded."""
  rng = np.random.default_rng(seed)
  meta = {"user": dict(ds.user_meta), "item": dict(ds.item_meta)}
  for col in SPEC.split(","):
    side, name = col.split(".")
    vals = np.array(meta[side][name], dtype=object if name != "year" else float)
    if name == "age":
      vals = vals.astype(object)
    drop = rng.random(len(vals)) < fraction
    vals[drop] = np.nan if name == "year" else ""
    meta[side][name] = vals
  return dataclasses.replace(ds, user_meta=meta["user"], item_meta=meta["item"])


def run(name, cfg, ds, root, cold: bool) -> dict:
  t0 = time.perf_counter()
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    exp = prepare(cfg, ds)
  policy = [str(w.message) for w in caught if "side features" in str(w.message)]
  fitted = fit(exp, os.path.join(root, name.replace(" ", "_").replace(",", "")), overwrite=True,
               progress=False)
  m = fitted.metrics
  best = next(r for r in fitted.history if r["epoch"] == m["best_epoch"])
  out = {"valid_ndcg@20": best["valid/ndcg@20"], "test_ndcg@20": m["ndcg@20"],
         "test_recall@20": m["recall@20"], "best_epoch": m["best_epoch"],
         "epochs_run": m["epochs_run"], "seconds": time.perf_counter() - t0,
         "side_inputs": 0 if exp.side is None else int(exp.side.values.shape[1]),
         "policy": policy}
  if cold:
    out["cold_test_ndcg@20"] = m.get("cold/ndcg@20")
    out["warm_test_ndcg@20"] = m.get("warm/ndcg@20")
  if exp.side is not None:  # every column's kind, width and fill, then the gap warning if any
    from gnnrec_jax.data.side_features import policy_line
    out["policy"] = [policy_line(exp.side), *policy]
  for line in out["policy"]:
    print(f"  {name}: {line}", flush=True)
  print(f"  {name}: valid {out['valid_ndcg@20']:.4f}, test NDCG@20 {out['test_ndcg@20']:.4f}"
        + (f", cold {out['cold_test_ndcg@20']:.4f}" if cold else "")
        + f" ({out['seconds']:.0f} s)", flush=True)
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--models", default="lightgcn,mf")
  p.add_argument("--cold", action="store_true", help="also the cold-item split (lightgcn)")
  p.add_argument("--gaps", type=float, default=0.0,
                 help="also runs with this fraction of metadata values blanked (lightgcn)")
  p.add_argument("--workdir", default=None)
  args = p.parse_args(argv)
  t_start = time.perf_counter()
  ds = load_dataset("ml-100k")
  root = args.workdir or tempfile.mkdtemp(prefix="side_features_")
  res: dict = {"dataset": "ml-100k", "spec": SPEC, "runs": {}}
  runs = res["runs"]
  for model in filter(None, args.models.split(",")):  # --models "": only --cold / --gaps runs
    base = configs.get_config(model)
    runs[f"{model}, ID only"] = run(f"{model} id", base, ds, root, False)
    runs[f"{model}, ID + side"] = run(f"{model} side", base.replace(side_features=SPEC), ds,
                                      root, False)
  if args.cold:
    base = configs.get_config("lightgcn").replace(split="cold_item")
    runs["lightgcn cold_item, ID only"] = run("cold id", base, ds, root, True)
    runs["lightgcn cold_item, ID + side"] = run("cold side", base.replace(side_features=SPEC),
                                                ds, root, True)
  if args.gaps:
    gappy = with_gaps(ds, args.gaps)
    base = configs.get_config("lightgcn").replace(side_features=SPEC)
    for num, cat in (("median", "unknown"), ("mean", "mode")):
      runs[f"lightgcn, {args.gaps:.0%} gaps, {num}/{cat}"] = run(
          f"gaps {num} {cat}", base.replace(side_numeric_impute=num,
                                            side_categorical_impute=cat), gappy, root, False)
  res["wall_s"] = time.perf_counter() - t_start

  print(f"\nml-100k, side features {SPEC}; valid-selected (valid NDCG@20)")
  print(f"{'run':44s} {'inputs':>6s} {'valid':>7s} {'test R@20':>9s} {'test N@20':>9s} "
        f"{'cold N@20':>9s} {'best':>5s}")
  for name, r in runs.items():
    cold = r.get("cold_test_ndcg@20")
    print(f"{name:44s} {r['side_inputs']:6d} {r['valid_ndcg@20']:7.4f} "
          f"{r['test_recall@20']:9.4f} {r['test_ndcg@20']:9.4f} "
          f"{'' if cold is None else f'{cold:.4f}':>9s} {r['best_epoch']:5d}")
  print(f"wall time {res['wall_s']:.0f} s")
  print(json.dumps(res, sort_keys=True, default=float))
  return 0


if __name__ == "__main__":
  sys.exit(main())
