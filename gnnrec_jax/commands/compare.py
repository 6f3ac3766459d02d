"""`gnnrec-jax compare RUN_A RUN_B [RUN_C ...]`: does model B really beat model A?

    gnnrec-jax compare runs/mf runs/lgcn
    gnnrec-jax compare runs/mf runs/lgcn runs/sgnn --metrics ndcg@20,recall@20 --plot diff.png
    gnnrec-jax compare runs/mf-seeds runs/lgcn-seeds   # `train --seeds` groups: per-user means

Reads each run's per-user metrics (`per_user_test.npz`, written by `train` and `evaluate`),
refuses runs evaluated on different splits (naming the part that differs), and prints for each
metric@K the two means, the paired difference with a bootstrap 95% interval, paired t-test and
Wilcoxon p-values with Holm's correction across every test shown, and the users better / worse
/ tied; then a replay A/B simulation (`gnnrec_jax.evaluation.compare`). Every run after the first
is compared with the first. The table is on stdout, the last stdout line is JSON.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np

from gnnrec_jax.errors import CheckpointError, ConfigError


def add_arguments(p):
  p.add_argument("runs", nargs="+", metavar="RUN",
                 help="workdirs of finished runs (or `train --seeds` groups); the first is A")
  p.add_argument("--split", choices=("test", "valid"), default="test",
                 help="which per-user file to compare (valid: written by evaluate --split valid)")
  p.add_argument("--metrics", default=None,
                 help="comma-separated metric@K to show and test (default: every one)")
  p.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples")
  p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and of the A/B arms")
  p.add_argument("--ab-k", type=int, default=None,
                 help="list length of the replay A/B simulation (default 20, or the first K)")
  p.add_argument("--plot", default=None, metavar="FILE",
                 help="PNG of the per-user difference distributions")


@dataclasses.dataclass
class Side:
  """One side of a comparison: a run, or a seeds group averaged per user."""

  path: str
  label: str
  split: dict
  users: np.ndarray
  table: dict[str, np.ndarray]


def _run_side(path: str, part: str) -> tuple[str, dict, np.ndarray, dict]:
  from gnnrec_jax.evaluation import per_user
  from gnnrec_jax.training import workdir
  run = workdir.read_run(path)  # a missing folder or a folder without a run: one line
  if not os.path.exists(os.path.join(path, "metrics.json")):
    raise CheckpointError(f"{path}: the run is unfinished (no metrics.json); finish it with "
                          "`gnnrec-jax train ... --resume` first")
  file = os.path.join(path, per_user.file_name(part))
  if not os.path.exists(file):
    extra = " --split valid" if part == "valid" else ""
    raise CheckpointError(f"{path}: no per-user {part} metrics ({per_user.file_name(part)}); "
                          f"write them with `gnnrec-jax evaluate --workdir {path}{extra}`")
  meta, arrays = per_user.load(file)
  if meta["part"] != part:
    raise CheckpointError(f"{file}: holds {meta['part']!r} metrics, not {part!r}")
  model = meta.get("model") or run["config"].get("model", "?")
  users = arrays.pop("user")
  return str(model), meta["split"], users, arrays


def load_side(path: str, part: str) -> Side:
  """A run, or a `train --seeds` group whose per-user metrics are averaged over its seeds."""
  from gnnrec_jax.evaluation.compare import split_difference
  from gnnrec_jax.training import seeds
  if not seeds.is_group(path):
    model, split, users, table = _run_side(path, part)
    return Side(path, model, split, users, table)
  group = seeds.read_group(path)
  runs = [(s, *_run_side(seeds.seed_dir(path, s), part)) for s in group["seeds"]]
  s0, model, split, users, _ = runs[0]
  for s, _, split_s, users_s, _ in runs[1:]:
    why = split_difference(split, split_s)
    if why:
      raise CheckpointError(f"{path}: seed {s} was evaluated on another split than seed {s0} "
                            f"({why})")
    if not np.array_equal(users, users_s):
      raise CheckpointError(f"{path}: seed {s} evaluated other users than seed {s0}")
  keys = set.intersection(*(set(r[4]) for r in runs))
  table = {k: np.mean([r[4][k].astype(np.float64) for r in runs], axis=0) for k in keys}
  return Side(path, f"{model} ×{len(runs)} seeds", split, users, table)


def _metric_keys(table: dict, wanted: str | None) -> list[str]:
  from gnnrec_jax.evaluation.report import COLUMNS
  order = {name: j for j, (name, _) in enumerate(COLUMNS)}
  present = sorted((k for k in table if "@" in k and k.split("@")[0] in order),
                   key=lambda k: (int(k.split("@")[1]), order[k.split("@")[0]]))
  if wanted is None:
    return present
  keys = [k.strip() for k in wanted.split(",") if k.strip()]
  unknown = [k for k in keys if k not in table]
  if unknown or not keys:
    raise ConfigError(f"--metrics: {', '.join(unknown) or 'nothing given'} not among the "
                      f"per-user metrics ({', '.join(present)})")
  return keys


def _f(x: float, signed: bool = False) -> str:
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return "-"
  return f"{x:+.4f}" if signed else f"{x:.4f}"


def _p(x: float) -> str:
  if x is None or math.isnan(x):
    return "-"
  return f"{x:.2g}" if x < 0.001 else f"{x:.3f}"


def format_comparison(a: Side, b: Side, res: dict, ab: dict | None) -> str:
  lines = [f"A = {a.path} ({a.label})", f"B = {b.path} ({b.label})",
           f"{'metric':<13}{'A':>8}{'B':>8}{'B - A':>9}  {'95% CI (bootstrap)':<20}"
           f"{'p t-test':>9}{'p Wilcox':>9}{'Holm t':>8}{'Holm W':>8}  better/worse/tied"]
  for m, r in res.items():
    star = "*" if r["p_t_holm"] < 0.05 and r["p_wilcoxon_holm"] < 0.05 else " "
    ci = f"[{_f(r['ci'][0], True)}, {_f(r['ci'][1], True)}]"
    lines.append(f"{m:<13}{_f(r['mean_a']):>8}{_f(r['mean_b']):>8}{_f(r['diff'], True):>9}  "
                 f"{ci:<20}{_p(r['p_t']):>9}{_p(r['p_wilcoxon']):>9}{_p(r['p_t_holm']):>8}"
                 f"{_p(r['p_wilcoxon_holm']):>8}{star} {r['better']}/{r['worse']}/{r['tied']}")
  lines.append("* both Holm-adjusted p-values < 0.05 (Holm across every test shown; the "
               "intervals are not adjusted)")
  if ab is not None:
    arm_a, arm_b = ab["arms"]["A"], ab["arms"]["B"]
    lines.append(f"Replay A/B at K={ab['k']}: a SIMULATION on held-out interactions, not an "
                 f"online test. Users split by a seeded hash (seed {ab['seed']}): arm A "
                 f"{arm_a['users']} users served A's top-{ab['k']}, arm B {arm_b['users']} "
                 f"served B's.")
    for name, label in (("hit_rate", "hit rate"), ("ctr", "CTR")):
      ra, rb = arm_a, arm_b
      lines.append(
          f"  {label:<9} A {_f(ra[name])} [{_f(ra[name + '_ci'][0])}, {_f(ra[name + '_ci'][1])}]"
          f"   B {_f(rb[name])} [{_f(rb[name + '_ci'][0])}, {_f(rb[name + '_ci'][1])}]"
          f"   B - A {_f(ab[name + '_diff'], True)} [{_f(ab[name + '_diff_ci'][0], True)}, "
          f"{_f(ab[name + '_diff_ci'][1], True)}]  p {_p(ab[name + '_p'])} (Welch, unpaired)")
  return "\n".join(lines)


def plot_differences(pairs, keys: list[str], path: str) -> str:
  """Histograms of the per-user differences B - A, one row per comparison, one panel per key."""
  from matplotlib.figure import Figure  # not pyplot: no display needed
  fig = Figure(figsize=(3.2 * len(keys), 2.8 * len(pairs)))
  axes = np.atleast_2d(fig.subplots(len(pairs), len(keys), squeeze=False))
  for row, (a, b) in enumerate(pairs):
    for col, key in enumerate(keys):
      ax = axes[row, col]
      d = b.table[key].astype(np.float64) - a.table[key].astype(np.float64)
      ax.hist(d, bins=41, color="tab:blue", alpha=0.8)
      ax.axvline(0.0, color="black", lw=0.8)
      ax.axvline(float(d.mean()), color="tab:red", lw=1.2, label=f"mean {d.mean():+.4f}")
      ax.set_title(f"{key}: B - A", fontsize=8)
      if col == 0:
        ax.set_ylabel(f"B = {b.label}\nA = {a.label}\nusers (log)", fontsize=7)
      ax.set_xlabel(f"per-user difference ({(d > 0).sum()} better, {(d < 0).sum()} worse, "
                    f"{(d == 0).sum()} tied)", fontsize=7)
      ax.set_yscale("log")
      ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  return path


def _clean(x):
  """NaN -> None, so that the JSON line is valid JSON."""
  if isinstance(x, float) and math.isnan(x):
    return None
  if isinstance(x, dict):
    return {k: _clean(v) for k, v in x.items()}
  if isinstance(x, list):
    return [_clean(v) for v in x]
  return x


def run(args) -> int:
  from gnnrec_jax.evaluation import compare

  if len(args.runs) < 2:
    raise ConfigError("compare needs at least two runs: RUN_A RUN_B [RUN_C ...]")
  if len(set(map(os.path.abspath, args.runs))) != len(args.runs):
    raise ConfigError("a run is listed twice (compare a run with itself through a copy)")
  if args.resamples < 100:
    raise ConfigError(f"--resamples must be >= 100, got {args.resamples}")
  sides = [load_side(p, args.split) for p in args.runs]
  a = sides[0]
  for b in sides[1:]:
    why = compare.split_difference(a.split, b.split)
    if why:
      raise CheckpointError(f"cannot compare {a.path} and {b.path}: they were evaluated on "
                            f"different splits: {why}")
    if not np.array_equal(a.users, b.users):
      raise CheckpointError(f"cannot compare {a.path} and {b.path}: they evaluated different "
                            "users (per-user files of another version?)")
  keys = _metric_keys(a.table, args.metrics)
  for b in sides[1:]:
    missing = [k for k in keys if k not in b.table]
    if missing:
      raise CheckpointError(f"{b.path}: no per-user {', '.join(missing)} (other topk?)")
  ks = sorted({int(k.split("@")[1]) for k in a.table if "@" in k})
  ab_k = args.ab_k if args.ab_k is not None else (20 if 20 in ks else ks[0])
  if ab_k not in ks or any(f"hit@{ab_k}" not in s.table for s in sides):
    raise ConfigError(f"--ab-k {ab_k}: the runs have per-user metrics at K in {ks}")

  results, abs_ = [], []
  for b in sides[1:]:
    results.append(compare.compare_paired(a.table, b.table, keys,
                                          num_resamples=args.resamples, seed=args.seed))
    abs_.append(compare.replay_ab(a.users, a.table, b.table, k=ab_k, seed=args.seed))
  compare.holm_across(results)
  s = a.split
  print(f"compare on {args.split} ({s['dataset']}, {len(a.users):,} users with a held-out item; "
        f"paired: each user ranked by both models)")
  for b, res, ab in zip(sides[1:], results, abs_):
    print(format_comparison(a, b, res, ab))
  if args.plot:
    names = ("recall", "ndcg", "precision", "hit", "mrr")
    plot_keys = [f"{n}@{ab_k}" for n in names if f"{n}@{ab_k}" in keys] or keys[:5]
    plot_differences([(a, b) for b in sides[1:]], plot_keys, args.plot)
    print(f"plot: {args.plot}")
  out = {"part": args.split, "dataset": s["dataset"], "users": int(len(a.users)),
         "runs": args.runs, "labels": [x.label for x in sides],
         "comparisons": [{"a": a.path, "b": b.path, "metrics": res, "replay_ab": ab}
                         for b, res, ab in zip(sides[1:], results, abs_)]}
  print(json.dumps(_clean(out), sort_keys=True))
  return 0
