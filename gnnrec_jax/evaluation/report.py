"""Readable tables of metrics: what `train`, `evaluate`, `tune` and `train --seeds` print on stderr.

The flat metric dicts ("ndcg@20", "warm/recall@10", ...) become one row per K and one column per
metric. Cold-start blocks appear only when the dict has them, which `evaluation.protocol` decides
(a split that withholds items on purpose, or cold pairs >= 1% of the part).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

COLUMNS = (("recall", "Recall"), ("ndcg", "NDCG"), ("precision", "Precision"), ("hit", "Hit"),
           ("mrr", "MRR"), ("coverage", "Coverage"))
BLOCK_TITLES = {"": "all users and items", "warm": "warm items (seen in train)",
                "cold": "cold items (never in train)", "cold_users": "cold users (no train data)"}


def blocks_and_ks(metrics: Mapping[str, object]) -> tuple[list[str], list[int]]:
  """The blocks ("" for all) and the cut-offs K present in a flat metric dict."""
  names = {n for n, _ in COLUMNS}
  blocks, ks = [], set()
  for key in metrics:
    block, _, name_k = key.rpartition("/")
    name, at, k = name_k.partition("@")
    if at and name in names and k.isdigit():
      ks.add(int(k))
      if block not in blocks:
        blocks.append(block)
  order = list(BLOCK_TITLES)
  blocks.sort(key=lambda b: order.index(b) if b in order else len(order))
  return blocks, sorted(ks)


def _cell(value, width: int) -> str:
  if value is None:
    return " " * (width - 1) + "-"
  return f"{value:>{width}.4f}"


def metrics_table(metrics: Mapping[str, object], *, title: str = "",
                  spread: Mapping[str, float] | None = None) -> str:
  """One table per block: rows K, columns Recall, NDCG, Precision, Hit, MRR, Coverage.

  Args:
    metrics: flat dict as `evaluate_split` returns (other keys are ignored).
    title: a first line.
    spread: optional dict of the same keys (e.g. standard deviations across seeds), shown as
      "mean ± spread".
  """
  blocks, ks = blocks_and_ks(metrics)
  width = 17 if spread else 9
  lines = [title] if title else []
  for block in blocks:
    prefix = f"{block}/" if block else ""
    n = metrics.get(f"{prefix}num_users")
    head = BLOCK_TITLES.get(block, block)
    if isinstance(n, (int, float)) and not isinstance(n, bool):
      head += f", {int(n):,} users"
    if len(blocks) > 1 or block:
      lines.append(head)
    lines.append("    K" + "".join(f"{label:>{width + 1}}" for _, label in COLUMNS))
    for k in ks:
      cells = []
      for name, _ in COLUMNS:
        key = f"{prefix}{name}@{k}"
        v = metrics.get(key)
        if spread is not None and v is not None:
          s = spread.get(key, math.nan)
          cells.append(f"{v:.4f} ± {s:.4f}".rjust(width))
        else:
          cells.append(_cell(v, width))
      lines.append(f"{k:>5}" + "".join(f" {c}" for c in cells))
  return "\n".join(lines)


def mean_std(rows: Sequence[Mapping[str, object]]) -> tuple[dict[str, float], dict[str, float]]:
  """Per key (numeric keys common to every row): the mean and the sample standard deviation
  (ddof = 1; 0 for one row)."""
  keys = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
          and all(isinstance(r.get(k), (int, float)) for r in rows)]
  mean, std = {}, {}
  for k in keys:
    vals = [float(r[k]) for r in rows]
    m = sum(vals) / len(vals)
    mean[k] = m
    std[k] = (math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
              if len(vals) > 1 else 0.0)
  return mean, std
