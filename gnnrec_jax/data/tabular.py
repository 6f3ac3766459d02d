"""User-supplied tables: a predefined train/valid/test split, or any CSV/TSV with a column mapping.

Predefined split (`--train F [--valid F] [--test F] [--item-meta F] [--user-meta F]`): each part is
tab-separated with a header naming `user_id` and `item_id`, optionally `rating` or `weight` (the
interaction weight), `timestamp` (a number) and `behaviour` (or `behavior`: a behaviour type whose
weight comes from `behaviour_weights`, see gnnrec_jax/data/behaviours.py); other columns are
ignored with a warning. Ids are tokens (any string). Metadata files have a header and the id in
the first column, tab-separated (CSV when the name ends in `.csv`).

CSV (`--dataset csv --columns user=U,item=I[,weight=W][,timestamp=T][,behaviour=B]`): standard
quoting for `,` and `;` (a field may be quoted to hold the separator; a quote inside it is
doubled). Malformed quoting is an error naming the line where the field opened: a quote that
never closes, text after a closing quote, or a quoted field running over several lines (which
would swallow the rows in between). TSV has no quoting, so a quote character is plain text.

Rows: empty lines are skipped silently; rows made only of separators or whitespace are skipped
with a counted warning. Repeated (user, item) rows are combined by `duplicates` (max by default,
see `checks.combine_duplicates`), with a counted warning.

Catalogue policy: the users and items of the metadata files (file order) and of train (order of
appearance). Rows of valid/test naming an id outside the catalogue are DROPPED with a counted
warning, never added: a model cannot score an id it has no node for. Valid/test pairs that are
also in train are dropped too (ranking excludes train items, so they could never be hit).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Mapping

import numpy as np

from gnnrec_jax.data import behaviours, checks, files
from gnnrec_jax.data.types import Dataset, Interactions, Split, Vocab
from gnnrec_jax.errors import ConfigError, DataError, where

ROLES = ("user", "item", "weight", "timestamp", "behaviour")
_SPLIT_COLUMNS = {"user_id": "user", "item_id": "item", "rating": "weight", "weight": "weight",
                  "timestamp": "timestamp", "behaviour": "behaviour", "behavior": "behaviour"}


def _read_rows(path, sep: str) -> tuple[list[list[str]], list[int]]:
  """Rows of a delimited file and their 1-based line numbers (csv quoting rules for `,`/`;`)."""
  text = files.read_text(path)
  if sep == "\t":  # TSV: no quoting, so a title with a quote character stays intact
    lines, nums = checks.split_lines(text, path, sep)
    return [line.split("\t") for line in lines], nums
  rows, nums, blank = [], [], []
  # strict: text after a closing quote, or a quote left open at the end, raises instead of being
  # merged into the field.
  reader = csv.reader(io.StringIO(text), delimiter=sep, strict=True)
  start = 1  # the line where the current row begins
  try:
    for row in reader:
      if reader.line_num > start:  # a quoted field held line breaks: it swallowed lines
        raise DataError(f"{where(path, start)}: malformed quoting: a quoted field opened on this "
                        f"line runs on to line {reader.line_num} (a quote that never closes?); "
                        "fields may not span lines")
      if any(f.strip() for f in row):
        rows.append(row)
        nums.append(start)
      elif row:  # separators or whitespace only (an empty line gives no fields: silent)
        blank.append(start)
      start = reader.line_num + 1
  except csv.Error as e:
    if str(e) == "unexpected end of data":
      why = ("malformed quoting: a quoted field opened on this line never closes (the file ended "
             "inside it)")
    elif "expected after" in str(e):
      why = (f"malformed quoting: {e} (on line {reader.line_num}); a field that opens a quote "
             "must close it, and a quote inside it is written twice")
    else:
      why = f"malformed CSV: {e} (on line {reader.line_num})"
    raise DataError(f"{where(path, start)}: {why}") from None
  if blank:
    checks.warn_blank(path, blank)
  return rows, nums


class _Part:
  """One parsed interaction file: tokens, optional weight/timestamp, line numbers."""

  def __init__(self, path, rows, nums, roles: Mapping[str, int], width: int | None, *,
               behaviour_weights: str | None = None, duplicates: str = "max"):
    self.path = Path(path)
    self.duplicates = duplicates
    for r, n in zip(rows, nums):
      if width is not None and len(r) != width:
        raise DataError(f"{where(path, n)}: expected {width} columns (as in the header), "
                        f"found {len(r)}")
    need = max(roles.values()) + 1
    for r, n in zip(rows, nums):
      if len(r) < need:
        raise DataError(f"{where(path, n)}: expected at least {need} columns, found {len(r)}")
    self.numbers = np.asarray(nums, np.int64)
    self.users = [r[roles["user"]].strip() for r in rows]
    self.items = [r[roles["item"]].strip() for r in rows]
    for toks, what in ((self.users, "user id"), (self.items, "item id")):
      if "" in toks:
        raise DataError(f"{where(path, nums[toks.index('')])}: empty {what}")
    self.weight = self.timestamp = self.behaviour_rows = None
    if "weight" in roles:
      self.weight = checks.parse_floats([r[roles["weight"]].strip() for r in rows], nums, path,
                                        "weight")
    if "timestamp" in roles:
      self.timestamp = checks.parse_timestamps([r[roles["timestamp"]] for r in rows], nums, path)
    if "behaviour" in roles:
      b_weight, self.behaviour_rows = behaviours.behaviour_weights(
          [r[roles["behaviour"]] for r in rows], nums, path, behaviour_weights)
      if self.weight is not None:
        checks.check_weights(self.weight, nums, path)  # name a bad weight before multiplying
      self.weight = b_weight if self.weight is None else b_weight * self.weight

  def interactions(self, users: Vocab, items: Vocab, part: str) -> Interactions:
    return checks.to_interactions(self.path, part, self.users, self.items, self.weight,
                                  self.timestamp, self.numbers, users, items,
                                  duplicates=self.duplicates)


def _read_split_part(path, **options) -> _Part:
  rows, nums = _read_rows(path, "\t")
  header = [h.strip() for h in rows[0]]
  roles, ignored = {}, []
  for k, h in enumerate(header):
    role = _SPLIT_COLUMNS.get(h)
    if role is None:
      ignored.append(h)
    elif role in roles:
      raise DataError(f"{where(path, nums[0])}: two columns give the {role} ({h!r})")
    else:
      roles[role] = k
  if "user" not in roles or "item" not in roles:
    raise DataError(f"{where(path, nums[0])}: header {header} must name user_id and item_id "
                    "(tab-separated; optional rating|weight, timestamp)")
  if ignored:
    checks.warn(f"{path}: ignored columns {', '.join(map(repr, ignored))} (known: "
                f"{', '.join(_SPLIT_COLUMNS)})")
  return _Part(path, rows[1:], nums[1:], roles, len(header), **options)


def read_meta(path) -> tuple[list[str], dict[str, list[str]]]:
  """A metadata file: a header, the id first; tab-separated, or CSV (quoted) for `.csv` files."""
  rows, nums = _read_rows(path, "," if Path(path).suffix.lower() == ".csv" else "\t")
  header = [h.strip() for h in rows[0]]
  ids, cols = [], {h: [] for h in header[1:]}
  for r, n in zip(rows[1:], nums[1:]):
    if len(r) != len(header):
      raise DataError(f"{where(path, n)}: expected {len(header)} columns (as in the header), "
                      f"found {len(r)}")
    ids.append(r[0].strip())
    for h, v in zip(header[1:], r[1:]):
      cols[h].append(v)
  checks.unique_ids(ids, nums[1:], path)
  return ids, cols


def _align(ids: list[str], cols: dict[str, list[str]], vocab: Vocab) -> dict[str, np.ndarray]:
  idx = vocab.lookup(ids)
  out = {}
  for h, vals in cols.items():
    full = np.full(len(vocab), "", dtype=object)
    full[idx] = np.array(vals, dtype=object)
    out[h] = full
  return out


def load_predefined(train, valid=None, test=None, *, item_meta=None, user_meta=None,
                    name: str | None = None, behaviour_weights: str | None = None,
                    duplicates: str = "max") -> Dataset:
  """A dataset from predefined split files (see the module docstring for format and policy).

  Missing `valid` or `test` give empty parts. Repeated (user, item) rows within a part are
  combined by `duplicates`; a `behaviour` column is weighted by `behaviour_weights`.
  """
  options = dict(behaviour_weights=behaviour_weights, duplicates=duplicates)
  tr = _read_split_part(train, **options)
  parts = {"valid": _read_split_part(valid, **options) if valid else None,
           "test": _read_split_part(test, **options) if test else None}
  if not len(tr.users):
    raise DataError(f"{train}: no interactions after the header")
  for p in parts.values():
    if p is not None and ((p.weight is None) != (tr.weight is None) or
                          (p.timestamp is None) != (tr.timestamp is None) or
                          (p.behaviour_rows is None) != (tr.behaviour_rows is None)):
      raise DataError(f"{p.path}: expected the same optional columns as {tr.path} "
                      "(rating|weight, timestamp and behaviour present in all parts or in none)")
  um = read_meta(user_meta) if user_meta else ([], {})
  im = read_meta(item_meta) if item_meta else ([], {})
  users = checks.catalogue(um[0], tr.users)
  items = checks.catalogue(im[0], tr.items)
  train_i = tr.interactions(users, items, "train")
  out = {}
  for part, p in parts.items():
    if p is None:
      out[part] = Interactions(np.zeros(0, np.int32), np.zeros(0, np.int32),
                               None if tr.weight is None else np.zeros(0, np.float32),
                               None if tr.timestamp is None else np.zeros(0, np.int64))
    else:
      out[part] = checks.drop_train_overlap(train_i, p.interactions(users, items, part), p.path,
                                            part)
  split = Split(train_i, out["valid"], out["test"])
  rows = None
  if tr.behaviour_rows is not None:
    rows = behaviours.summary(behaviours.merge_rows(
        *(p.behaviour_rows for p in (tr, *parts.values()) if p is not None)), behaviour_weights)
  return Dataset(name=name or Path(train).parent.name or "predefined", users=users, items=items,
                 interactions=Interactions.concat([split.train, split.valid, split.test]),
                 split=split, item_meta=_align(*im, items) if item_meta else None,
                 user_meta=_align(*um, users) if user_meta else None,
                 source=f"predefined:{train}", behaviours=rows)


def parse_columns(spec: str | Mapping[str, str], *, need_ids: bool = True) -> dict[str, str]:
  """`"user=uid,item=iid,weight=rating"` -> {"user": "uid", ...}; `ConfigError` when malformed.

  Roles: user, item, weight, timestamp, behaviour (also spelt behavior). `need_ids`: user and item
  must be mapped (CSV; atomic files have default id fields).
  """
  if isinstance(spec, Mapping):
    mapping = dict(spec)
  else:
    mapping = {}
    for part in (p.strip() for p in str(spec).split(",") if p.strip()):
      role, eq, col = part.partition("=")
      if not eq or not col.strip():
        raise ConfigError(f"--columns: {part!r} should be ROLE=COLUMN, e.g. user=uid")
      role = "behaviour" if role.strip() == "behavior" else role.strip()
      mapping[role] = col.strip()
  unknown = set(mapping) - set(ROLES)
  if unknown:
    raise ConfigError(f"--columns: unknown role(s) {sorted(unknown)}; expected {', '.join(ROLES)}")
  if need_ids and ("user" not in mapping or "item" not in mapping):
    raise ConfigError("--columns must map both user and item, e.g. user=uid,item=iid")
  return mapping


def load_csv(path, *, columns, sep: str = ",", header: bool = True,
             name: str | None = None, behaviour_weights: str | None = None,
             duplicates: str = "max") -> Dataset:
  """Any delimited file with a column mapping (no split; make one with `gnnrec_jax.data.splits`).

  Args:
    path: the file.
    columns: `{"user": col, "item": col[, "weight": col][, "timestamp": col][, "behaviour":
      col]}` or the string form `"user=uid,item=iid"`; columns are header names, or 0-based
      positions with `header=False` (positions also work with a header).
    sep: the delimiter (`","`, `"\\t"`, `";"`, ...); "tab" and "\\t" mean a tab.
    behaviour_weights: behaviour -> weight ("click:1,cart:2"; None: the documented defaults of
      `behaviours.DEFAULT_BEHAVIOUR_WEIGHTS`), read when a behaviour column is mapped.
    duplicates: how repeated (user, item) rows combine: "max", "sum" or "last".
  """
  mapping = parse_columns(columns)
  sep = "\t" if sep in ("tab", "\\t", "TAB") else sep
  if len(sep) != 1:
    raise ConfigError(f"--sep must be one character, got {sep!r}")
  rows, nums = _read_rows(path, sep)
  names = [h.strip() for h in rows[0]] if header else None
  roles = {}
  for role, col in mapping.items():
    if names is not None and col in names:
      roles[role] = names.index(col)
    elif col.isdigit():
      roles[role] = int(col)
    else:
      have = f"the header has {names}" if names is not None else "with --no-header use positions"
      raise DataError(f"{where(path, nums[0])}: no column {col!r} for {role} ({have})")
  body, body_nums = (rows[1:], nums[1:]) if header else (rows, nums)
  width = len(names) if names is not None else len(rows[0])
  part = _Part(path, body, body_nums, roles, width, behaviour_weights=behaviour_weights,
               duplicates=duplicates)
  if not len(part.users):
    raise DataError(f"{path}: no interactions")
  users, items = checks.catalogue(part.users), checks.catalogue(part.items)
  return Dataset(name=name or Path(path).stem, users=users, items=items,
                 interactions=part.interactions(users, items, "train"), source=f"csv:{path}",
                 behaviours=None if part.behaviour_rows is None else
                 behaviours.summary(part.behaviour_rows, behaviour_weights))
