"""Side features: numeric and categorical user/item metadata columns as node inputs, with gaps.

`config.side_features` names the columns, e.g. ml-100k's

    user.age,user.gender,user.occupation,item.year,item.genres

(`user.` / `item.` + a key of `Dataset.user_meta` / `item_meta`: ml-100k's own columns, atomic
`.user`/`.item` fields, or the columns of `--user-meta` / `--item-meta` files, TSV or CSV). Each
column becomes a block of the [U + I, S] matrix `SideFeatures.values` (users' columns on user
rows, items' on item rows, zeros elsewhere) that `gnnrec_jax.models.node_inputs.NodeInputs`
projects into the layer-0 vectors beside the ID and text vectors. Kinds, detected or forced with a
suffix (`item.year:num`, `user.zip:cat`, `item.tags:multi`):

  numeric   (every present value parses as a number) -> one column, standardised
  multi     (some value holds "|")   -> one 0/1 column per token (genres "Action|Comedy")
  categorical (anything else)        -> one-hot over the values seen, the rarest beyond
                                        `MAX_CATEGORIES` pooled into one "other" column

Gaps (FAQ 1 of the source document: fill with the mean/median, or model them): a value is
missing when it is empty, NaN, or one of `MISSING_TOKENS`. Every column gets a 0/1 missing
indicator, and the gap itself is filled by `side_numeric_impute` (numeric: "mean" or "median")
or `side_categorical_impute` ("mode": the most frequent value; "unknown": no category at all, so
the indicator acts as an "unknown" category). The policy is reported as one counted warning
naming each column with gaps, how many values were filled and with what.

No statistic sees held-out data: means, medians, standard deviations, modes and category lists
are computed over TRAIN-VISIBLE nodes only (users and items with at least one train interaction),
so a cold-start split's withheld items neither shift the scaling nor add categories; their
values are then encoded with the train statistics (a value unseen in train goes to "other").
A new user (`recommend --history`) has no metadata: `SideFeatures.new_user` is a user row with every
user column missing, encoded by the same rule.
"""
from __future__ import annotations

import dataclasses
import re
import numpy as np

from gnnrec_jax.data import checks
from gnnrec_jax.data.types import Dataset, Interactions
from gnnrec_jax.errors import ConfigError, DataError

KINDS = ("num", "cat", "multi")
NUMERIC_IMPUTE = ("mean", "median")
CATEGORICAL_IMPUTE = ("unknown", "mode")
# Spellings of "no value" in exported tables (matched case-insensitively). Not "none": it is a
# real category in ml-100k's occupations.
MISSING_TOKENS = ("", "nan", "na", "n/a", "null", "?")
# One-hot width cap: beyond it the rare values share one "other" column, so an id-like column
# (zip codes: 795 values in ml-100k) cannot blow up the input width.
MAX_CATEGORIES = 50

_SPEC = re.compile(r"^(user|item)\.([^:]+?)(?::(num|cat|multi))?$")


@dataclasses.dataclass(frozen=True)
class ColumnSpec:
  side: str    # "user" | "item"
  name: str    # the metadata key
  kind: str | None  # forced kind, or None to detect

  @property
  def label(self) -> str:
    return f"{self.side}.{self.name}"


def parse_spec(spec: str) -> list[ColumnSpec]:
  """`"user.age,item.genres:multi"` -> [ColumnSpec, ...]; `ConfigError` when malformed."""
  out, seen = [], set()
  for part in (p.strip() for p in str(spec).split(",") if p.strip()):
    m = _SPEC.match(part)
    if not m:
      raise ConfigError(f"invalid config: side_features: {part!r} should be user.COLUMN or item.COLUMN, "
                        f"optionally with :{'|:'.join(KINDS)} (e.g. user.age,item.genres)")
    col = ColumnSpec(m.group(1), m.group(2).strip(), m.group(3))
    if col.label in seen:
      raise ConfigError(f"invalid config: side_features: {col.label} is listed twice")
    seen.add(col.label)
    out.append(col)
  return out


def check_policy(numeric: str, categorical: str) -> None:
  if numeric not in NUMERIC_IMPUTE:
    raise ConfigError(f"invalid config: side_numeric_impute must be {'|'.join(NUMERIC_IMPUTE)}, "
                      f"got {numeric!r}")
  if categorical not in CATEGORICAL_IMPUTE:
    raise ConfigError(f"invalid config: side_categorical_impute must be "
                      f"{'|'.join(CATEGORICAL_IMPUTE)}, got {categorical!r}")


@dataclasses.dataclass(frozen=True)
class SideFeatures:
  """The encoded side features of every node.

  Attributes:
    values: [U + I, S] float32 (users first); zeros in the other side's columns.
    mask: [U + I] bool, True for nodes of a side that has columns (users when some user column
      is listed, items likewise); the model gives the others a learned default vector.
    names: [S] column names ("user.age", "user.age:missing", "item.genres=Comedy", ...).
    report: per source column, what was done ({"column", "kind", "width", "missing", "of",
      "fill"}: `missing` of `of` values were filled with `fill`), the policy line's data.
    new_user: [S] the row of a user without metadata (every user column missing).
  """

  values: np.ndarray
  mask: np.ndarray
  names: tuple[str, ...]
  report: tuple[dict, ...]
  new_user: np.ndarray


def _is_missing(v) -> bool:
  if v is None:
    return True
  if isinstance(v, (float, np.floating)):
    return bool(np.isnan(v))
  if isinstance(v, (int, np.integer)):
    return False
  return str(v).strip().lower() in MISSING_TOKENS


def _as_float(v) -> float | None:
  try:
    x = float(v)
  except (TypeError, ValueError):
    return None
  return x if np.isfinite(x) else None


def _detect(values: list, missing: np.ndarray) -> str:
  present = [v for v, m in zip(values, missing) if not m]
  if present and all(_as_float(v) is not None for v in present):
    return "num"
  if any("|" in str(v) for v in present):
    return "multi"
  return "cat"


def _tokens(v, sep: str | None) -> list[str]:
  return [t.strip() for t in str(v).split(sep) if t.strip()]


def _encode_numeric(col, vals, missing, fit, policy):
  x = np.array([np.nan if m else float(v) for v, m in zip(vals, missing)], np.float64)
  seen = x[fit & ~missing]
  if not len(seen):
    raise DataError(f"side feature {col.label}: no value among the nodes with train "
                    "interactions, so there is nothing to impute from")
  fill = float(np.mean(seen) if policy == "mean" else np.median(seen))
  mu, sd = float(np.mean(seen)), float(np.std(seen))
  sd = sd if sd > 0 else 1.0  # a constant column: centred to zero, not divided by zero
  z = (np.where(missing, fill, x) - mu) / sd
  block = np.stack([z, missing.astype(np.float64)], 1)
  names = [col.label, f"{col.label}:missing"]
  new = np.array([(fill - mu) / sd, 1.0])
  return block, names, new, f"{policy} {fill:.6g}"


def _encode_categorical(col, vals, missing, fit, policy, multi: bool):
  sep = None
  if multi:  # "|" when the column uses it (genres), else whitespace (atomic token_seq)
    sep = "|" if any("|" in str(v) for v, m in zip(vals, missing) if not m) else None
  sets = [[] if m else (_tokens(v, sep) if multi else [str(v).strip()])
          for v, m in zip(vals, missing)]
  counts: dict[str, int] = {}
  for s, f in zip(sets, fit):
    if f:
      for t in s:
        counts[t] = counts.get(t, 0) + 1
  if not counts:
    raise DataError(f"side feature {col.label}: no value among the nodes with train "
                    "interactions, so there is nothing to encode")
  ranked = sorted(counts, key=lambda t: (-counts[t], t))
  vocab = {t: k for k, t in enumerate(ranked[:MAX_CATEGORIES])}
  rare = [s for s in sets if any(t not in vocab for t in s)]
  other = len(rare) > 0  # values beyond the cap, or seen only on nodes outside train
  width = len(vocab) + (1 if other else 0)
  fill_set: list[str] = []
  fill_text = "unknown (the indicator alone)"
  if policy == "mode":
    rows = [tuple(s) for s, f, m in zip(sets, fit, missing) if f and not m]
    values, freq = np.unique(np.array(["\x1f".join(r) for r in rows], object), return_counts=True)
    best = values[np.lexsort((values, -freq))[0]]  # most frequent, ties by value
    fill_set = best.split("\x1f") if best else []
    fill_text = f"mode {'|'.join(fill_set)!r}"

  def encode(s):
    row = np.zeros(width + 1)
    for t in s:
      row[vocab.get(t, width - 1)] = 1.0  # width - 1: the "other" column when present
    return row

  block = np.stack([encode(fill_set if m else s) for s, m in zip(sets, missing)])
  block[:, width] = missing
  names = [f"{col.label}={t}" for t in vocab] + ([f"{col.label}=<other>"] if other else [])
  names.append(f"{col.label}:missing")
  new = encode(fill_set)
  new[width] = 1.0
  return block, names, new, fill_text


def build(dataset: Dataset, train: Interactions, spec: str, *, numeric: str = "median",
          categorical: str = "unknown", warn: bool = True) -> SideFeatures:
  """Encodes the listed metadata columns of every node (see the module docstring).

  Args:
    dataset: its `user_meta` / `item_meta` hold the columns.
    train: the train interactions: nodes in them are "train-visible" (statistics come from
      them only).
    spec: `config.side_features`.
    numeric: "mean" | "median" for gaps in numeric columns.
    categorical: "unknown" | "mode" for gaps in categorical and multi-valued columns.
    warn: report the gaps and how they were filled as one counted `DataWarning`.

  Raises:
    ConfigError: a malformed spec or policy. DataError: a column the dataset does not have
      (naming the available ones), a column forced numeric with a non-number, or a column with
      no value on any train-visible node.
  """
  cols = parse_spec(spec)
  check_policy(numeric, categorical)
  if not cols:
    raise ConfigError("side_features is empty")
  u, i = dataset.num_users, dataset.num_items
  visible = {
      "user": np.bincount(np.asarray(train.user, np.int64), minlength=u)[:u] > 0,
      "item": np.bincount(np.asarray(train.item, np.int64), minlength=i)[:i] > 0}
  offset = {"user": 0, "item": u}
  size = {"user": u, "item": i}
  blocks, names, report, new_parts, sides = [], [], [], [], set()
  for col in cols:
    meta = dataset.user_meta if col.side == "user" else dataset.item_meta
    if not meta or col.name not in meta:
      have = ", ".join(f"{col.side}.{k}" for k in (meta or {})) or "none"
      raise DataError(f"side feature {col.label}: dataset {dataset.name!r} has no {col.side} "
                      f"column {col.name!r} (it has: {have}; --{col.side}-meta FILE adds columns)")
    vals = list(np.asarray(meta[col.name], dtype=object))
    if len(vals) != size[col.side]:
      raise DataError(f"side feature {col.label}: {len(vals)} values for {size[col.side]} "
                      f"{col.side}s")
    missing = np.array([_is_missing(v) for v in vals], bool)
    kind = col.kind or _detect(vals, missing)
    if kind == "num":
      bad = [v for v, m in zip(vals, missing) if not m and _as_float(v) is None]
      if bad:
        raise DataError(f"side feature {col.label}: value {str(bad[0])[:40]!r} is not a number "
                        "(drop :num to read the column as categorical)")
      block, cnames, new, fill = _encode_numeric(col, vals, missing, visible[col.side], numeric)
    else:
      block, cnames, new, fill = _encode_categorical(col, vals, missing, visible[col.side],
                                                     categorical, multi=(kind == "multi"))
    full = np.zeros((u + i, block.shape[1]))
    full[offset[col.side]:offset[col.side] + size[col.side]] = block
    blocks.append(full)
    names += cnames
    new_parts.append(new if col.side == "user" else np.zeros_like(new))
    sides.add(col.side)
    report.append({"column": col.label, "kind": {"num": "numeric", "cat": "categorical",
                                                 "multi": "multi-valued"}[kind],
                   "width": block.shape[1], "missing": int(missing.sum()),
                   "of": size[col.side], "fill": fill})
  mask = np.zeros(u + i, bool)
  for side in sides:
    mask[offset[side]:offset[side] + size[side]] = True
  if warn:
    gaps = [r for r in report if r["missing"]]
    if gaps:
      full = [r["column"] for r in report if not r["missing"]]
      checks.warn("side features: filled " + "; ".join(
          f"{r['missing']:,} of {r['of']:,} {r['column']} ({r['kind']}) with {r['fill']}"
          for r in gaps) + " (statistics of train nodes; each column also gets a missing "
          "indicator)" + (f"; no gaps in {', '.join(full)}" if full else ""))
  return SideFeatures(np.concatenate(blocks, 1).astype(np.float32), mask, tuple(names),
                      tuple(report), np.concatenate(new_parts).astype(np.float32))


def policy_line(side: SideFeatures) -> str:
  """One line describing every column: kind, width, gaps and fill (for `train`'s summary)."""
  return "side features: " + "; ".join(
      f"{r['column']} {r['kind']} ({r['width']} inputs, {r['missing']} missing"
      + (f" -> {r['fill']}" if r["missing"] else "") + ")" for r in side.report)


# ------------------------------------------------------------------------------------------------
# Metadata files for any dataset (`--item-meta` / `--user-meta`)


def attach_meta(dataset: Dataset, *, item_meta=None, user_meta=None) -> Dataset:
  """Adds the columns of metadata files (header, id first; TSV, or CSV by a `.csv` suffix) to
  `dataset.item_meta` / `user_meta`, aligned with its catalogue.

  Ids the catalogue lacks are dropped with a counted warning (a node cannot be added after the
  split); catalogue entries without a row get missing values (""). A column that already exists
  is replaced, with a warning.
  """
  from gnnrec_jax.data import tabular
  out = {}
  for side, path in (("item", item_meta), ("user", user_meta)):
    if path is None:
      continue
    vocab = dataset.items if side == "item" else dataset.users
    ids, cols = tabular.read_meta(path)
    idx = vocab.lookup(ids)
    if (idx < 0).any():
      checks.warn(f"{path}: dropped {int((idx < 0).sum())} rows whose {side} id is not in the "
                  f"catalogue of {dataset.name!r} (e.g. {ids[int(np.argmax(idx < 0))]!r})")
    meta = dict((dataset.item_meta if side == "item" else dataset.user_meta) or {})
    clash = sorted(set(cols) & set(meta))
    if clash:
      checks.warn(f"{path}: columns {', '.join(clash)} replace the dataset's own")
    keep = idx >= 0
    for name, vals in cols.items():
      full = np.full(len(vocab), "", dtype=object)
      full[idx[keep]] = np.asarray(vals, dtype=object)[keep]
      meta[name] = full
    out[f"{side}_meta"] = meta
  return dataclasses.replace(dataset, **out) if out else dataset


__all__ = ["CATEGORICAL_IMPUTE", "KINDS", "MAX_CATEGORIES", "MISSING_TOKENS", "NUMERIC_IMPUTE",
           "SideFeatures", "attach_meta", "build", "check_policy", "parse_spec", "policy_line"]
