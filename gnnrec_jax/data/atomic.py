"""RecBole atomic files: `NAME.inter` (required), `NAME.item` and `NAME.user` (optional).

Tab-separated with a typed header, e.g. `user_id:token	item_id:token	rating:float	timestamp:float`
(RecBole 1.2.1 docs, "Atomic Files"). Types: `token` (kept as str), `float` (float64, "" -> NaN),
`token_seq` and `float_seq` (kept as the raw space-separated str). The user/item id columns are
`user_id`/`item_id` unless named otherwise; `rating` becomes the interaction weight and
`timestamp` the time when present (parsed exactly when written as integers). A behaviour field
(`behaviours.BEHAVIOUR_FIELDS`, e.g. `behavior_type:token`, or one named with `behaviour_field`)
gives each row a weight through `behaviour_weights` (see `gnnrec_jax/data/behaviours.py`), times
the rating when there is one. Repeated (user, item) rows are combined by `duplicates` (max by
default). Lines made only of tabs or whitespace are skipped with a counted warning.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gnnrec_jax.data import behaviours, checks, files
from gnnrec_jax.data.types import Dataset, Vocab
from gnnrec_jax.errors import DataError, where

TYPES = ("token", "float", "token_seq", "float_seq")


@dataclasses.dataclass(frozen=True)
class AtomicTable:
  """One atomic file: columns by name (without the type), their types, and source line numbers.

  `raw` holds the stripped text of the float columns ("nan" where empty), so that timestamps can
  be parsed exactly as integers rather than through float64.
  """

  path: Path
  columns: dict[str, np.ndarray]
  types: dict[str, str]
  lines: np.ndarray  # [n] 1-based line numbers of the rows
  raw: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def __len__(self) -> int:
    return len(self.lines)

  def column(self, name: str) -> np.ndarray:
    if name not in self.columns:
      raise DataError(f"{where(self.path, 1)}: no column {name!r} in the header "
                      f"(found {', '.join(self.columns)})")
    return self.columns[name]


def read_atomic(path, *, encoding: str = "utf-8") -> AtomicTable:
  """Reads one atomic file; `DataError` for a bad header, column count, or float value."""
  path = Path(path)
  text = files.read_text(path, encoding=encoding, what="atomic file")
  lines, numbers = checks.split_lines(text, path, "\t")
  header = lines[0].split("\t")
  names, types = [], {}
  for field in header:
    name, _, typ = field.strip().partition(":")
    if typ not in TYPES:
      raise DataError(f"{where(path, numbers[0])}: header field {field!r} should be NAME:TYPE "
                      f"with TYPE one of {', '.join(TYPES)}")
    if name in types:
      raise DataError(f"{where(path, numbers[0])}: column {name!r} appears twice in the header")
    names.append(name)
    types[name] = typ
  rows = checks.split_fields(lines[1:], numbers[1:], path, "\t", ncols=len(names),
                             expected="tab-separated, as many fields as the header")
  body_numbers = numbers[1:]
  columns, raw_floats = {}, {}
  for k, name in enumerate(names):
    raw = [r[k].strip() if types[name] != "token_seq" else r[k] for r in rows]
    if types[name] == "float":
      vals = np.array([t if t else "nan" for t in raw], dtype=np.str_)
      columns[name] = checks.parse_floats(vals, body_numbers, path, name)
      raw_floats[name] = vals
    else:
      columns[name] = np.array(raw, dtype=object)
  return AtomicTable(path, columns, types, np.asarray(body_numbers, np.int64), raw_floats)


def find_atomic(data_dir, name: str | None = None) -> tuple[Path, str]:
  """The `NAME.inter` file of `data_dir` (NAME defaults to the folder's name, else the only one)."""
  d = files.require_dir(data_dir, "atomic data folder")
  explicit = name is not None
  name = name or d.name
  if (d / f"{name}.inter").exists():  # not is_file(): read_text names a FIFO or a folder
    return d, name
  found = sorted(d.glob("*.inter"))
  if len(found) == 1 and not explicit:
    return d, found[0].stem
  raise DataError(f"{d / (name + '.inter')}: atomic interaction file not found "
                  f"(found {', '.join(p.name for p in found) or 'no .inter file'}; pass --name)")


def meta_columns(table: AtomicTable | None, id_field: str, vocab: Vocab) -> dict[str, np.ndarray]:
  """Metadata columns aligned with `vocab` indices; "" (str) or NaN (float) where missing."""
  if table is None:
    return {}
  idx = vocab.lookup([str(t) for t in table.column(id_field)])
  out = {}
  for name, col in table.columns.items():
    if name == id_field:
      continue
    if table.types[name] == "float":
      full = np.full(len(vocab), np.nan)
    else:
      full = np.full(len(vocab), "", dtype=object)
    full[idx[idx >= 0]] = col[idx >= 0]
    out[name] = full
  return out


def load_atomic(data_dir, name: str | None = None, *, user_field: str = "user_id",
                item_field: str = "item_id", weight_field: str = "rating",
                timestamp_field: str = "timestamp", behaviour_field: str | None = None,
                behaviour_weights: str | None = None, duplicates: str = "max",
                encoding: str = "utf-8") -> Dataset:
  """Loads RecBole atomic files into a `Dataset` (no predefined split).

  The catalogue is the ids of `.user`/`.item` (file order) followed by any further ids of `.inter`
  in order of appearance, so metadata-only users and items are kept. A rating that is NaN,
  infinite, negative or beyond float32 is a `DataError`.

  Args:
    weight_field: the float field read as the weight ("" for none).
    behaviour_field: the field read as the behaviour; None: the first of
      `behaviours.BEHAVIOUR_FIELDS` in the header, if any ("" for none).
    behaviour_weights: behaviour -> weight, "click:1,cart:2" (None: the documented defaults).
    duplicates: how repeated (user, item) rows combine: "max", "sum" or "last".
  """
  d, name = find_atomic(data_dir, name)
  inter = read_atomic(d / f"{name}.inter", encoding=encoding)
  # exists(), not is_file(): a FIFO or device here is refused by name, not silently skipped.
  item_t = read_atomic(d / f"{name}.item", encoding=encoding) if (d / f"{name}.item").exists() \
      else None
  user_t = read_atomic(d / f"{name}.user", encoding=encoding) if (d / f"{name}.user").exists() \
      else None
  if not len(inter):
    raise DataError(f"{inter.path}: no interactions after the header")
  for t, f in ((item_t, item_field), (user_t, user_field)):
    if t is not None:
      checks.unique_ids([str(x) for x in t.column(f)], t.lines, t.path)
  u_tok = [str(x) for x in inter.column(user_field)]
  i_tok = [str(x) for x in inter.column(item_field)]
  for tok, field in ((u_tok, user_field), (i_tok, item_field)):
    if "" in tok:
      k = tok.index("")
      raise DataError(f"{where(inter.path, int(inter.lines[k]))}: empty {field}")
  users = checks.catalogue([] if user_t is None else user_t.column(user_field), u_tok)
  items = checks.catalogue([] if item_t is None else item_t.column(item_field), i_tok)
  weight = inter.columns.get(weight_field) if inter.types.get(weight_field) == "float" else None
  ts = None
  if inter.types.get(timestamp_field) == "float":
    ts = checks.parse_timestamps(inter.raw[timestamp_field], inter.lines, inter.path)
  if behaviour_field is None:
    behaviour_field = next((f for f in behaviours.BEHAVIOUR_FIELDS if f in inter.columns), "")
  behaviour_rows = None
  if behaviour_field:
    b_weight, behaviour_rows = behaviours.behaviour_weights(
        inter.column(behaviour_field), inter.lines, inter.path, behaviour_weights)
    weight = b_weight if weight is None else b_weight * weight
  interactions = checks.to_interactions(inter.path, "train", u_tok, i_tok, weight, ts,
                                        inter.lines, users, items, duplicates=duplicates)
  return Dataset(name=name, users=users, items=items, interactions=interactions,
                 item_meta=meta_columns(item_t, item_field, items) or None,
                 user_meta=meta_columns(user_t, user_field, users) or None,
                 source=f"atomic:{d / name}",
                 behaviours=None if behaviour_rows is None else
                 behaviours.summary(behaviour_rows, behaviour_weights))
