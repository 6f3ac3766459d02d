"""`gnnrec-jax data`: load a dataset, split it, print statistics; the last line is JSON.

    gnnrec-jax data --dataset ml-100k --split random --seed 2020
    gnnrec-jax data --dataset gowalla            # predefined LightGCN split
    gnnrec-jax data --dataset lastfm --valid-from-train 0.1
    gnnrec-jax data --dataset csv --data-dir events.csv --columns user=u,item=i,behaviour=b \
        --set behaviour_weights=click:1,cart:2,purchase:4 --set duplicates=sum
"""
from __future__ import annotations

import json

import numpy as np

PERCENTILES = (25, 50, 75, 90)


def add_arguments(parser) -> None:
  from gnnrec_jax.data.cli_args import add_dataset_arguments
  from gnnrec_jax.data.splits import METHODS
  add_dataset_arguments(parser)
  parser.add_argument("--split", choices=METHODS, default=None,
                      help="how to split (default: the dataset's predefined split if it has "
                           "one, else random)")
  parser.add_argument("--seed", type=int, default=2020, help="split seed (RecBole's default 2020)")
  parser.add_argument("--ratios", default="0.8,0.1,0.1",
                      help="train,valid,test ratios for random/temporal/cold_item splits")
  parser.add_argument("--cold-fraction", type=float, default=0.2,
                      help="cold_item split: fraction of items withheld from train")


def _ratios(text: str) -> tuple[float, ...]:
  from gnnrec_jax.errors import ConfigError
  try:
    return tuple(float(x) for x in text.split(","))
  except ValueError:
    raise ConfigError(f"--ratios must be comma-separated numbers, got {text!r}") from None


def _degree_summary(degrees: np.ndarray) -> dict[str, float]:
  out = {"min": int(degrees.min())}
  for p in PERCENTILES:
    out[f"p{p}"] = round(float(np.percentile(degrees, p)), 4)
  out["max"] = int(degrees.max())
  out["mean"] = round(float(degrees.mean()), 4)
  return out


def statistics(dataset, split) -> dict:
  """Every number `gnnrec-jax data` prints, as a JSON-ready dict."""
  inter = dataset.interactions
  u, i, n = dataset.num_users, dataset.num_items, len(inter)
  stats = {
      "dataset": dataset.name, "source": dataset.source,
      "users": u, "items": i, "interactions": n,
      "density": n / (u * i) if u and i else 0.0,
      "split": split.sizes(),
      # Over the catalogue, so users/items without interactions show as degree 0.
      "user_degree": _degree_summary(np.bincount(inter.user, minlength=u)),
      "item_degree": _degree_summary(np.bincount(inter.item, minlength=i)),
  }
  if inter.weight is None:
    stats["weights"] = None
  else:
    w = inter.weight.astype(np.float64)
    stats["weights"] = {"min": float(w.min()), "mean": round(float(w.mean()), 4),
                        "median": float(np.median(w)), "max": float(w.max())}
    values, counts = np.unique(w, return_counts=True)
    if len(values) <= 10:
      stats["weights"]["counts"] = {f"{v:g}": int(c) for v, c in zip(values, counts)}
  if dataset.behaviours is not None:
    stats["behaviours"] = {k: dict(v) for k, v in dataset.behaviours.items()}
  if inter.timestamp is not None and n:
    stats["timestamps"] = {"min": int(inter.timestamp.min()), "max": int(inter.timestamp.max())}
  if split.cold_items is not None:
    stats["cold_items"] = int(len(split.cold_items))
  if dataset.social is not None:
    s = dataset.social
    stats["social"] = {"pairs": int(len(s)), "users_with_friends": int(len(np.unique(s)))}
  if dataset.item_meta:
    stats["item_meta"] = sorted(dataset.item_meta)
  if dataset.user_meta:
    stats["user_meta"] = sorted(dataset.user_meta)
  return stats


def _fmt_degree(d: dict) -> str:
  return " ".join(f"{k}={v:,.0f}" if k != "mean" else f"{k}={v:,.2f}" for k, v in d.items())


def format_statistics(s: dict) -> str:
  lines = [
      f"dataset      {s['dataset']} ({s['source']})",
      f"size         {s['users']:,} users, {s['items']:,} items, {s['interactions']:,} interactions",
      f"density      {100 * s['density']:.4f}%",
      "split        " + ", ".join(f"{k} {v:,}" for k, v in s["split"].items()),
      f"user degree  {_fmt_degree(s['user_degree'])}",
      f"item degree  {_fmt_degree(s['item_degree'])}",
  ]
  w = s["weights"]
  if w is None:
    lines.append("weights      none (every interaction counts 1)")
  else:
    text = f"min={w['min']:g} mean={w['mean']:g} median={w['median']:g} max={w['max']:g}"
    if "counts" in w:
      text += " (" + ", ".join(f"{k}: {v:,}" for k, v in w["counts"].items()) + ")"
    lines.append(f"weights      {text}")
  if "behaviours" in s:
    lines.append("behaviours   " + ", ".join(f"{k} x{v['rows']:,} (weight {v['weight']:g})"
                                             for k, v in s["behaviours"].items()))
  if "timestamps" in s:
    lines.append(f"timestamps   {s['timestamps']['min']} .. {s['timestamps']['max']}")
  if "cold_items" in s:
    lines.append(f"cold items   {s['cold_items']:,} (never in train)")
  if "social" in s:
    lines.append(f"social       {s['social']['pairs']:,} undirected pairs among "
                 f"{s['social']['users_with_friends']:,} users")
  for key in ("item_meta", "user_meta"):
    if key in s:
      lines.append(f"{key:<12} {', '.join(s[key])}")
  return "\n".join(lines)


def run(args) -> int:
  from gnnrec_jax.data.checks import one_line_warnings
  from gnnrec_jax.data.cli_args import dataset_from_args
  from gnnrec_jax.data.splits import make_split

  with one_line_warnings("gnnrec-jax data"):
    dataset = dataset_from_args(args)
    method = args.split or ("predefined" if dataset.split is not None else "random")
    split = make_split(dataset, method, ratios=_ratios(args.ratios), seed=args.seed,
                       cold_fraction=args.cold_fraction)
  stats = statistics(dataset, split)
  stats["split_method"] = method
  stats["seed"] = args.seed
  print(format_statistics(stats))
  print(json.dumps(stats, sort_keys=True))
  return 0
