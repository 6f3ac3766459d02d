"""Behaviour-typed interactions: a click, a cart and a purchase weigh differently (seed §3.3).

A loader with a behaviour column turns each row's behaviour into its weight with the config field
`behaviour_weights` ("click:1,cart:2,purchase:4"):

  csv          `--columns user=U,item=I,behaviour=B` (any CSV/TSV)
  predefined   a `behaviour` (or `behavior`) header column in `--train/--valid/--test`
  atomic       a field named in `BEHAVIOUR_FIELDS` (e.g. Taobao's `behavior_type:token`), or
               `--columns behaviour=FIELD`
  ml-100k      `--columns behaviour=rating`: the 1-5 stars act as behaviour levels "1".."5"
               (e.g. `--set behaviour_weights=1:1,2:1,3:2,4:3,5:4`)

Policy:
  * names match case-insensitively, surrounding spaces ignored; a number-valued column (ml-100k's
    ratings) gives the names "%g" writes ("4", "4.5");
  * a behaviour the mapping lacks is a `DataError` naming its file:line and the known names;
  * weights are finite, > 0 and within float32: a behaviour that should not count is a row to
    filter out, not an edge of weight 0 that still counts as a positive in training;
  * a file that also has a weight column gets behaviour weight x that column (a count of
    purchases, say);
  * repeated (user, item) rows are then combined by the config field `duplicates`
    (`checks.combine_duplicates`: max, sum or last).
The loaded `Dataset.behaviours` counts the rows of each behaviour, for `gnnrec-jax data`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from gnnrec_jax.data.checks import FLOAT32_MAX, show
from gnnrec_jax.errors import ConfigError, DataError, where

# 1 : 2 : 4 for browsing : intent : buying, the ratio of the example (each step of intent
# doubles the weight), under the names of the public behaviour datasets: Taobao UserBehavior
# (pv, fav, cart, buy), Retailrocket (view, addtocart, transaction) and the plain English ones.
DEFAULT_BEHAVIOUR_WEIGHTS = ("click:1,view:1,pv:1,like:2,fav:2,cart:2,addtocart:2,"
                             "purchase:4,buy:4,transaction:4")
# Atomic-file fields read as the behaviour when present (RecBole's behaviour datasets name it so).
BEHAVIOUR_FIELDS = ("behaviour", "behavior", "behaviour_type", "behavior_type")


def behaviour_name(token) -> str:
  """The matching key of a behaviour token: stripped, lower case; numbers as "%g" writes them."""
  if isinstance(token, (float, np.floating)):
    return f"{float(token):g}"
  return str(token).strip().lower()


def parse_behaviour_weights(spec: str | None, source: str = "behaviour_weights"
                            ) -> dict[str, float]:
  """`"click:1,cart:2"` -> {"click": 1.0, "cart": 2.0}; None or "" -> the defaults.

  Raises:
    ConfigError: an entry that is not NAME:WEIGHT, a name given twice, or a weight that is not a
      finite number > 0 within float32.
  """
  spec = DEFAULT_BEHAVIOUR_WEIGHTS if spec is None or not str(spec).strip() else str(spec)
  out: dict[str, float] = {}
  for entry in (e.strip() for e in spec.split(",")):
    if not entry:
      continue
    name, colon, value = entry.rpartition(":")  # rpartition: a name may contain ':'
    name = behaviour_name(name)
    if not colon or not name:
      raise ConfigError(f"{source}: {entry!r} should be NAME:WEIGHT, e.g. click:1,purchase:4")
    try:
      weight = float(value)
    except ValueError:
      weight = float("nan")
    if not (np.isfinite(weight) and 0 < weight <= FLOAT32_MAX):
      raise ConfigError(f"{source}: weight {value!r} of {name!r} must be a number > 0 "
                        "(a behaviour that should not count is a row to filter out)")
    if name in out:
      raise ConfigError(f"{source}: behaviour {name!r} is given twice")
    out[name] = weight
  if not out:
    raise ConfigError(f"{source}: no NAME:WEIGHT pairs in {spec!r}")
  return out


def behaviour_weights(tokens: Sequence, numbers: Sequence[int], path, spec: str | None
                      ) -> tuple[np.ndarray, dict[str, int]]:
  """Each row's weight from its behaviour.

  Args:
    tokens: [n] behaviour of every row (strings, or numbers for a numeric column).
    numbers: [n] 1-based line numbers, for messages.
    spec: the `behaviour_weights` string (None or "": `DEFAULT_BEHAVIOUR_WEIGHTS`).

  Returns:
    (weights [n] float64, rows per behaviour name in order of first appearance).

  Raises:
    DataError: a behaviour without a weight (naming its file:line), or an empty one.
  """
  mapping = parse_behaviour_weights(spec)
  names = np.array([behaviour_name(t) for t in tokens], dtype=object)
  if not len(names):
    return np.zeros(0, np.float64), {}
  uniq, first, inverse, counts = np.unique(names.astype(str), return_index=True,
                                           return_inverse=True, return_counts=True)
  for k in np.argsort(first, kind="stable"):
    if uniq[k] not in mapping:
      line = where(path, int(numbers[first[k]]))
      if not uniq[k]:
        raise DataError(f"{line}: empty behaviour (expected one of {', '.join(mapping)})")
      token = tokens[first[k]]
      raise DataError(f"{line}: behaviour {show(token if isinstance(token, str) else uniq[k])} "
                      "has no weight in "
                      f"behaviour_weights (known: {', '.join(mapping)}); add it, e.g. "
                      f"--set behaviour_weights=...,{uniq[k]}:1")
  w = np.array([mapping[str(u)] for u in uniq], np.float64)[inverse.reshape(-1)]
  rows = {str(uniq[k]): int(counts[k]) for k in np.argsort(first, kind="stable")}
  return w, rows


def summary(rows: dict[str, int], spec: str | None) -> dict[str, dict]:
  """`Dataset.behaviours`: {name: {"rows": count, "weight": w}} in order of first appearance."""
  mapping = parse_behaviour_weights(spec)
  return {name: {"rows": n, "weight": mapping[name]} for name, n in rows.items()}


def merge_rows(*parts: dict[str, int]) -> dict[str, int]:
  """Row counts of several files added up (predefined train/valid/test)."""
  out: dict[str, int] = {}
  for p in parts:
    for name, n in p.items():
      out[name] = out.get(name, 0) + n
  return out
