"""Text-aware closed forms and filters beside EASE: L3AE (and its fusions), the text-only EASE,
GF-CF / ChebyCF with the item vectors' similarity mixed into the item graph.

  nice -n 5 python benchmarks/text_closed_forms.py --dataset scientific|ml-100k \
      [--models ease,text,l3ae,additive,collective,gfcf,chebycf] [--grid MODEL:KEY=V1,V2 ...]

Protocols: `scientific` as benchmarks/scientific.py (the shipped leave-one-out split, full ranking
of 4,385 items, valid NDCG@10 selects, test histories train + valid); `ml-100k` RecBole's
(random 80/10/10 per user, seed 2020, full ranking, valid NDCG@20 selects, train histories).
Item vectors: the cached all-MiniLM-L6-v2 vectors of `text_features` (unit rows).

Every weight is chosen on valid over the grid printed with the results (each grid point's valid
figure is in the JSON line); test is read once, at the chosen point. Each fit is the library's
own (`gnnrec_jax.models.l3ae`, `graph_filters`), scored by the library's evaluator
(`evaluation.protocol.evaluate_split`; with `--cold`, its cold/warm blocks), with the interaction inverse and the text model
reused across the grid (the fits are the same functions `gnnrec-jax train --model l3ae` calls).

Prints a human table, then ONE JSON line last.
"""
from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np

GRIDS = {
    "scientific": {
        "ease": {"reg_x": (10, 30, 100, 300)},
        "text": {"reg_f": (0.3, 1, 3, 10, 30)},
        # lambda_X = total - lambda_E (negative where lambda_E > total, as in the authors' runs)
        "l3ae": {"total": (10, 30, 100), "reg_e": (10, 30, 100, 300), "reg_f": (1, 3, 10)},
        "additive": {"reg_x": (30, 100), "reg_f": (1, 3, 10), "alpha": (0.1, 0.2, 0.4, 0.6)},
        "collective": {"reg_x": (30, 100, 300), "alpha": (0.5, 1, 2, 5)},
        "gfcf": {"w": (0, 0.1, 0.2, 0.3, 0.5, 0.7), "alpha": (0.1, 0.3), "svd_rank": (64, 256)},
        "chebycf": {"w": (0, 0.1, 0.2, 0.3, 0.5, 0.7), "flatness": (1.5, 15.0)},
    },
    "ml-100k": {
        "ease": {"reg_x": (100, 250, 350, 500)},
        "text": {"reg_f": (0.3, 1, 3, 10)},
        "l3ae": {"total": (250, 350, 500), "reg_e": (30, 100, 300, 1000), "reg_f": (1, 3, 10)},
        "additive": {"reg_x": (350,), "reg_f": (1, 3, 10), "alpha": (0.05, 0.1, 0.2, 0.4)},
        "collective": {"reg_x": (250, 350, 500), "alpha": (0.5, 1, 2, 5)},
        "gfcf": {"w": (0, 0.1, 0.2, 0.3, 0.5), "alpha": (0.3,), "svd_rank": (64,)},
        "chebycf": {"w": (0, 0.1, 0.2, 0.3, 0.5), "flatness": (15.0,)},
    },
}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--dataset", choices=tuple(GRIDS), default="scientific")
  p.add_argument("--models", default="ease,text,l3ae,additive,collective,gfcf,chebycf")
  p.add_argument("--cold", action="store_true",
                 help="ml-100k: benchmarks/cold_start.py's split (20%% of the items, seed 2020, "
                 "never in train), selection on the mean of valid COLD and WARM NDCG@20")
  p.add_argument("--grid", action="append", default=[], metavar="MODEL:KEY=V1,V2",
                 help="replace one axis of a model's grid (repeatable)")
  args = p.parse_args(argv)

  import jax.numpy as jnp

  from gnnrec_jax import configs, experiment, models
  from gnnrec_jax.data import load_dataset
  from gnnrec_jax.evaluation.protocol import evaluate_split
  from gnnrec_jax.models import graph_filters as gf
  from gnnrec_jax.models import l3ae
  from gnnrec_jax.models.ease import interaction_matrix

  t_all = time.perf_counter()
  grids = {k: dict(v) for k, v in GRIDS[args.dataset].items()}
  for g in args.grid:
    name, _, kv = g.partition(":")
    key, _, values = kv.partition("=")
    grids[name][key] = tuple(float(v) for v in values.split(","))
  ds = load_dataset(args.dataset)
  if args.dataset == "scientific":
    common = dict(split="predefined", topk=(10, 20, 50), select_metric="ndcg@10",
                  test_history="train+valid")
    shown = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "recall@50", "ndcg@50")
  elif args.cold:
    common = dict(split="cold_item", cold_fraction=0.2, split_seed=2020)
    shown = ("recall@20", "ndcg@20", "cold/recall@20", "cold/ndcg@20", "warm/recall@20",
             "warm/ndcg@20")
  else:
    common = {}
    shown = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "recall@50", "ndcg@50")
  cfg = configs.get_config("ease").replace(model="l3ae", text_features="none", **common)
  exp = experiment.prepare(cfg, ds)
  rec = models.create(exp)
  select = "mean(cold,warm)/ndcg@20" if args.cold else cfg.select_metric
  score = ((lambda m: 0.5 * (m["cold/ndcg@20"] + m["warm/ndcg@20"])) if args.cold else
           (lambda m: m[select]))
  f = np.asarray(exp.features[exp.num_users:], np.float64)
  x = interaction_matrix(exp.split.train, num_users=exp.num_users, num_items=exp.num_items)
  print(f"{args.dataset}: {exp.num_users} users, {exp.num_items} items, {f.shape[1]}-d item "
        f"vectors ({int(exp.feature_mask[exp.num_users:].sum())} with text); select {select}",
        flush=True)

  inverses, texts = {}, {}

  def inverse(reg):
    if reg not in inverses:
      inverses[reg] = l3ae.interaction_inverse(x, reg)
    return inverses[reg]

  def text(reg_f):
    if reg_f not in texts:
      texts[reg_f] = l3ae.text_item_model(f, reg_f)
    return texts[reg_f]

  filter_recs = {}

  def filter_rec(name):
    if name not in filter_recs:
      base = configs.get_config(name).replace(text_features="none", **common)
      filter_recs[name] = models.create(experiment.prepare(
          base, ds, text_features=(exp.features, exp.feature_mask)))
    return filter_recs[name]

  svds = {}

  def fit_point(name, point):
    """(the model that scores, its params) at one grid point."""
    if name == "ease":
      return rec, {"B": l3ae.ease_from_inverse(inverse(point["reg_x"])).astype(np.float32)}
    if name == "text":
      return rec, {k: v.astype(np.float32) for k, v in text(point["reg_f"]).items()}
    if name == "l3ae":
      reg_x = point["total"] - point["reg_e"]
      return rec, {"B": l3ae.fit_l3ae(x, f, reg_x=reg_x, reg_f=point["reg_f"],
                                      reg_e=point["reg_e"], p=inverse(point["total"]),
                                      c=text(point["reg_f"]))}
    if name == "additive":
      w = (1 - point["alpha"]) * l3ae.ease_from_inverse(inverse(point["reg_x"]))
      w += point["alpha"] * l3ae.dense_text_item_model(text(point["reg_f"]))
      return rec, {"B": w.astype(np.float32)}
    if name == "collective":
      return rec, {"B": l3ae.fit_collective(x, f, reg_x=point["reg_x"], alpha=point["alpha"])}
    fr = filter_rec(name)
    c = fr.config
    if name == "gfcf":
      k = int(point["svd_rank"])
      if k not in svds:
        r_tilde, _, _ = gf.normalize_interactions(x)
        svds[k] = gf.top_singular_vectors(r_tilde, k, method=c.svd_method, seed=c.seed)[1]
      params = gf.fit_gfcf(x, alpha=point["alpha"], num_factors=k, factors=svds[k])
    else:
      k = c.svd_rank
      if k not in svds:
        r_tilde, _, _ = gf.normalize_interactions(x)
        svds[k] = gf.top_singular_vectors(r_tilde, k, method=c.svd_method, seed=c.seed)[1]
      params = gf.fit_chebycf(x, order=c.cheby_order, flatness=point["flatness"],
                              num_factors=k, alpha=c.filter_alpha, beta=c.cheby_beta,
                              factors=svds[k])
    return fr, gf.with_text(params, f, point["w"])

  rows = []
  for name in [m.strip() for m in args.models.split(",") if m.strip()]:
    grid = grids[name]
    keys = list(grid)
    points = [dict(zip(keys, v)) for v in itertools.product(*grid.values())]
    t0 = time.perf_counter()
    tried = []
    best = None
    for point in points:
      t1 = time.perf_counter()
      model, params = fit_point(name, point)
      params = {k: (jnp.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in params.items()}
      valid = score(evaluate_split(model, params, "valid"))
      tried.append({**point, "valid": valid, "s": time.perf_counter() - t1})
      print(f"  {name} {point}: valid {select} {valid:.4f} ({tried[-1]['s']:.1f} s)", flush=True)
      if best is None or valid > best[0]:
        best = (valid, point, model, params)
    valid, point, model, params = best
    test = evaluate_split(model, params, "test")
    rows.append({"model": name, "chosen": point, "valid": valid,
                 "test": {k: test[k] for k in shown}, "grid": tried,
                 "wall_s": time.perf_counter() - t0})
    print(f"{name}: chosen {point} valid {valid:.4f} test "
          + " ".join(f"{k} {test[k]:.4f}" for k in shown), flush=True)

  print(f"\n{'model':11s} {'valid':>7s}  " + " ".join(f"{k:>9s}" for k in shown) + "  chosen")
  for r in rows:
    print(f"{r['model']:11s} {r['valid']:7.4f}  " + " ".join(f"{r['test'][k]:9.4f}"
                                                         for k in shown) + f"  {r['chosen']}")
  print(f"(total {time.perf_counter() - t_all:.0f} s)")
  print(json.dumps({"benchmark": "text_closed_forms", "dataset": args.dataset,
                    "select": select, "protocol": common, "rows": rows}, default=float))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
