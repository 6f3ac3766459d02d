"""Amazon "Industrial and Scientific" as released with UniSRec / VQ-Rec: item text + a shipped split.

Files (RecBole atomic, tab-separated; `../shared/data/README.md` describes the release):
  Scientific.item2index   `ASIN<TAB>index` (no header): item i is the ASIN on the line with index i
  Scientific.user2index   `reviewer<TAB>index` (no header)
  Scientific.text         `item_id:token<TAB>text:token_seq`: each ASIN's one English text
                          (title, categories, brand; about 26 words)
  Scientific.{train,valid,test}.inter
                          `user_id:token<TAB>item_id_list:token_seq<TAB>item_id:token` with the
                          indices: a history (oldest first, at most 50 items) and the next item

The shipped split is leave-one-out by time: per user, the test row's target is the last item, the
valid row's the second to last, and the train rows are every earlier prefix. For collaborative
filtering a user's train interactions are the items of their train rows, histories and targets,
one pair per (user, item) (repeats combined by `duplicates`: max keeps one unweighted row, sum
makes the count of purchases the weight). Each pair is dated by its position in the user's
sequence (the latest position for a repeat), read by walking the user's train rows from the
bottom up (RecBole writes them latest first; each row adds its target and any history item not
seen yet), so time-ordered views (`history_text`, leave-one-out) see the real order.

Repeat purchases: 54 valid and 37 test targets are items the user already has in train, and 13
more test targets are the user's valid item. Ranking masks a user's train items (and valid items
at test time), so such a target is unreachable; as every loader does with held-out pairs already
seen (`checks.drop_train_overlap`), they are dropped with a counted warning. 8,388 valid and 8,392
test users remain (of 8,442).

The catalogue is all 4,385 items of `item2index` and all 8,442 users of `user2index`, tokens the
ASINs and reviewer ids (so `recommend --user A1SWWHE1L3XR3V --history B00TNNWMXI,...` works).
Item metadata: `item_text` (the whole text, which `gnnrec_jax.text.node_texts` encodes verbatim)
and `title` (its first sentence, up to the categories, for display).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gnnrec_jax.data import atomic, checks, files
from gnnrec_jax.data.types import Dataset, Interactions, Split, Vocab
from gnnrec_jax.errors import DataError, where

NAME = "Scientific"
# The protocol of the figures published on this split (UniSRec, VQ-Rec) and of our RESULTS: the
# valid item joins each user's history at test time (leave-one-out: the test sequence holds it),
# cut-offs 10/20/50, selection on valid NDCG@10. Without test_history=train+valid, textgnn's
# recipe gives test NDCG@10 .0528 against .0770 with it (valid .0866-.0883).
PROTOCOL = {"test_history": "train+valid", "topk": (10, 20, 50), "select_metric": "ndcg@10"}
# Every Amazon 2018 text of this release is "<title>. <categories>. <brand>. ", the categories
# starting with the top-level category: the display title is what comes before it.
_TOP_CATEGORY = ". Industrial & Scientific"


def _read_index(path: Path, what: str) -> Vocab:
  """`token<TAB>index` lines as a Vocab whose index i is the token on the line with index i.

  Raises:
    DataError: a malformed line, a repeated token or index, or indices that are not 0..n-1.
  """
  lines, nums = checks.split_lines(files.read_text(path, what=what), path)
  rows = checks.split_fields(lines, nums, path, "\t", ncols=2, expected=f"{what}<TAB>index")
  tokens = [r[0].strip() for r in rows]
  index = checks.parse_ints([r[1] for r in rows], nums, path, "index")
  checks.unique_ids(tokens, nums, path)
  order = np.argsort(index, kind="stable")
  if not np.array_equal(index[order], np.arange(len(index))):
    seen = np.zeros(len(index) + 1, bool)
    for k, i in enumerate(index):
      if i >= len(index) or seen[i]:
        raise DataError(f"{where(path, nums[k])}: index {int(i)} repeats or is beyond "
                        f"{len(index) - 1} (expected the indices 0..{len(index) - 1}, once each)")
      seen[i] = True
  return Vocab(tuple(tokens[k] for k in order))


def _indices(tokens, lines, path, what: str, size: int) -> np.ndarray:
  """Integer indices < `size`; a `DataError` naming `file:line` otherwise."""
  values = checks.parse_ints(list(tokens), lines, path, what)
  bad = values >= size
  if bad.any():
    k = int(np.argmax(bad))
    raise DataError(f"{where(path, int(lines[k]))}: {what} {int(values[k])} is beyond the "
                    f"catalogue ({size} in the index file, 0..{size - 1})")
  return values


def _read_inter(path: Path, num_users: int, num_items: int):
  """One `.inter` file: (users [n], histories: list of [m] arrays, targets [n], lines [n])."""
  table = atomic.read_atomic(path)
  if not len(table):
    raise DataError(f"{path}: no rows after the header")
  for field, typ in (("user_id", "token"), ("item_id_list", "token_seq"), ("item_id", "token")):
    table.column(field)  # names the file when the header lacks it
    if table.types[field] != typ:
      raise DataError(f"{where(path, 1)}: field {field} is {table.types[field]}, expected {typ}")
  lines = table.lines
  users = _indices(table.column("user_id"), lines, path, "user index", num_users)
  targets = _indices(table.column("item_id"), lines, path, "item index", num_items)
  raw = [str(h).split() for h in table.column("item_id_list")]
  flat = [t for h in raw for t in h]
  flat_lines = np.repeat(lines, [len(h) for h in raw])
  flat_items = _indices(flat, flat_lines, path, "history item index", num_items)
  histories = np.split(flat_items, np.cumsum([len(h) for h in raw])[:-1])
  return users, histories, targets, lines


def _train_pairs(users, histories, targets, lines) -> tuple[Interactions, np.ndarray]:
  """Every (user, item) of the train rows, dated by its position in the user's sequence.

  Walks each user's rows from the last listed (the earliest) to the first: a row adds the history
  items this user has not shown yet, then its target (see the module docstring).

  Returns:
    (interactions with repeats still in, their line numbers).
  """
  user_out, item_out, time_out, line_out = [], [], [], []
  order = np.lexsort((-np.arange(len(users)), users))  # by user, last listed row first
  bounds = np.flatnonzero(np.diff(users[order])) + 1
  for rows in np.split(order, bounds):
    seen: set[int] = set()
    position = 0
    for r in rows:
      new = [int(i) for i in histories[r] if int(i) not in seen]
      for i in new + [int(targets[r])]:
        seen.add(i)
        user_out.append(int(users[r]))
        item_out.append(i)
        time_out.append(position)
        line_out.append(int(lines[r]))
        position += 1
  return (Interactions(np.asarray(user_out), np.asarray(item_out),
                       timestamp=np.asarray(time_out, np.int64)),
          np.asarray(line_out, np.int64))


def _held_out(users, targets, train: Interactions, num_users: int) -> Interactions:
  """The valid/test pairs, dated one step after the user's last train position."""
  last = np.full(num_users, -1, np.int64)
  np.maximum.at(last, train.user.astype(np.int64), train.timestamp)
  return Interactions(users, targets, timestamp=last[users] + 1)


def _drop_seen(part: Interactions, seen: Interactions, path, why: str) -> Interactions:
  """Drops the pairs of `part` that are in `seen` (masked at ranking, so unreachable), with a
  counted warning saying `why`."""
  if not len(part) or not len(seen):
    return part
  m = int(max(seen.item.max(), part.item.max())) + 1
  known = np.sort(seen.user.astype(np.int64) * m + seen.item)
  key = part.user.astype(np.int64) * m + part.item
  hit = known[np.minimum(np.searchsorted(known, key), len(known) - 1)] == key
  if hit.any():
    checks.warn(f"{path}: dropped {int(hit.sum())} rows whose target {why}; ranking masks it, "
                "so no model could recommend it (repeat purchases)")
    return part.take(~hit)
  return part


def display_title(text: str) -> str:
  """The title part of a "<title>. <categories>. <brand>." text (the whole text when the
  categories cannot be found)."""
  text = text.strip()
  cut = text.find(_TOP_CATEGORY)
  return text[:cut] if cut > 0 else text.rstrip(".").strip()


def _item_texts(path: Path, items: Vocab) -> np.ndarray:
  """[I] object array of item texts ("" where the file has none), from `Scientific.text`."""
  table = atomic.read_atomic(path)
  tokens = [str(t).strip() for t in table.column("item_id")]
  checks.unique_ids(tokens, table.lines, path)
  texts = table.column("text")
  idx = items.lookup(tokens)
  unknown = idx < 0
  if unknown.any():
    k = int(np.argmax(unknown))
    checks.warn(f"{path}: skipped {int(unknown.sum())} texts of items not in the item index "
                f"(first at {where(path, int(table.lines[k]))}: {checks.show(tokens[k])})")
  out = np.full(len(items), "", dtype=object)
  out[idx[~unknown]] = [str(t).strip() for t in np.asarray(texts, object)[~unknown]]
  missing = int((out == "").sum())
  if missing:
    checks.warn(f"{path}: {missing} of {len(items)} items have no text; they are embedded "
                "without one (a learned default vector)")
  return out


def load_scientific(data_dir, *, duplicates: str = "max") -> Dataset:
  """Loads the release (see the module docstring) with its split as `Dataset.split`.

  Args:
    data_dir: the folder holding the `Scientific.*` files.
    duplicates: how a user's repeated train items combine (`checks.combine_duplicates`).

  Raises:
    DataError: a missing or malformed file (naming file:line), an index beyond the catalogue.
  """
  d = files.require_dir(data_dir, f"{NAME} data folder (Scientific.item2index, .text, .inter)")
  items = _read_index(d / f"{NAME}.item2index", "ASIN")
  users = _read_index(d / f"{NAME}.user2index", "reviewer id")
  parts = {}
  for name in ("train", "valid", "test"):
    parts[name] = _read_inter(d / f"{NAME}.{name}.inter", len(users), len(items))
  path = d / f"{NAME}.train.inter"
  train_rows, train_lines = _train_pairs(*parts["train"])
  train, _ = checks.combine_duplicates(train_rows, path, train_lines, duplicates)
  held = {}
  for name in ("valid", "test"):
    u, _, t, lines = parts[name]
    held[name], _ = checks.combine_duplicates(_held_out(u, t, train, len(users)),
                                              d / f"{NAME}.{name}.inter", lines, duplicates)
  valid = _drop_seen(held["valid"], train, d / f"{NAME}.valid.inter",
                     "is one of the user's train items")
  test = _drop_seen(held["test"], train, d / f"{NAME}.test.inter",
                    "is one of the user's train items")
  # The user's valid item (also when it repeated a train item) is masked at test time too.
  test = _drop_seen(test, held["valid"], d / f"{NAME}.test.inter", "is the user's valid item")
  text = _item_texts(d / f"{NAME}.text", items)
  title = np.array([display_title(t) for t in text], dtype=object)
  return Dataset(name="scientific", users=users, items=items,
                 interactions=Interactions.concat([train, valid, test]),
                 split=Split(train, valid, test),
                 item_meta={"title": title, "item_text": text}, source=f"scientific:{d}")
