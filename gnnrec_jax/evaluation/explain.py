"""Why was item i recommended? The exact splits of a score, labelled and printed.

The maths of each model family (per-neighbour decompositions through the layers, the split of a
linear item model, leave-one-out terms) lives beside the models, in
`gnnrec_jax.models.explain_terms`, and each model's `explain_terms` (the
`gnnrec_jax.models.base.Recommender` interface) picks its split; the module docstring there says
which split is exact and why. This module turns those terms into rows a caller can read:
`explain_user` labels every term with its item or friend, `print_explanations` prints them and
returns the same list. What a person reads (`recommend --explain`) is built on top in
`gnnrec_jax.evaluation.explain_view`: the terms that differ between the recommended items, as
shares of each item's lead, with their paths.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from gnnrec_jax.errors import DataError
from gnnrec_jax.evaluation import explain_view


def _label(dataset, node: int) -> tuple[str, int, str, str]:
  """(kind, index, token, title) of a graph node."""
  u = dataset.num_users
  if node < u:
    tok = dataset.users.tokens[node]
    return "friend", int(node), tok, f"user {tok}"
  i = node - u
  return "item", int(i), dataset.items.tokens[i], dataset.item_title(i)


def explain_user(rec, params, *, user: int | None = None, history: np.ndarray | None = None,
                 items: np.ndarray) -> list[dict[str, Any]]:
  """Per recommended item, the score split into the user's own term and one term per neighbour.

  Args:
    rec: the model (`gnnrec_jax.models.base.Recommender`); `rec.explain_terms` makes the split.
    params: its parameters.
    user: a user index; exclusive with `history`.
    history: [h] item indices of a new user.
    items: [K] recommended item indices.

  Returns:
    One dict per item, in the order given: {"rank", "item" (token), "item_index", "title",
    "score", "self", "constant", "remainder", "exact", "method", "contributions"}, where
    "contributions" is a list of {"kind": "item" | "friend", "index", "token", "title", "value"}
    sorted by value, largest first. score = self + constant + sum(values) + remainder, with
    remainder ~ 0 (float rounding) for every decomposition and the unexplained part for the
    similarity and leave-one-out attributions. Graph models split each value by layer: the
    contribution then also has "layers" ([L] values, summing to "value") and "weights" ([L]
    the edge weight w^l_uj, the attention alpha of the softmax GNN), and the row has
    "layer_weight_mean" ([L] the mean weight over the user's neighbours) and "weight_name".
  """
  if (user is None) == (history is None):
    raise DataError("explain: give exactly one of user (an index) or history (item indices)")
  ds = rec.exp.dataset
  items = np.asarray(items, np.int64)
  if history is not None:
    history = np.asarray(history, np.int64)
  res, method, exact = rec.explain_terms(params, user=user, history=history, items=items)
  layered = "layer_values" in res
  out = []
  for r, i in enumerate(items):
    vals = res["values"][:, r]
    order = np.argsort(-vals, kind="stable")
    contribs = []
    for j in order:
      kind, idx, tok, title = _label(ds, int(res["neighbours"][j]))
      c = {"kind": kind, "index": idx, "token": tok, "title": title, "value": float(vals[j])}
      if layered:
        c["layers"] = res["layer_values"][:, j, r].tolist()
        c["weights"] = res["layer_weights"][:, j].tolist()
      contribs.append(c)
    score = float(res["score"][r])
    total = float(res["self"][r] + res["constant"][r] + vals.sum())
    row = {"rank": r + 1, "item": ds.items.tokens[i], "item_index": int(i),
           "title": ds.item_title(int(i)), "score": score, "self": float(res["self"][r]),
           "constant": float(res["constant"][r]), "remainder": score - total,
           "exact": exact, "method": method, "contributions": contribs}
    if layered:
      row["layer_weight_mean"] = np.asarray(res["layer_weight_mean"]).tolist()
      row["weight_name"] = res["weight_name"]
      row["self_parts"] = res["self_parts"][:, r].tolist()  # by the item's layer m
      row["self_loop"] = float(res["self_loop"][r])
    out.append(row)
  return out




def print_explanations(rec, params, *, user: int | None, history: np.ndarray | None,
                       items: np.ndarray, top: int = 5, against: str | None = None
                       ) -> list[dict[str, Any]]:
  """Prints, per recommended item, the `top` terms that contributed most; returns the rows.

  Arguments as in `explain_user`; `top` limits the printed lines, not the returned list.
  `against=None` prints the exact terms themselves; "last" or "mean" prints what differs
  between the items (`gnnrec_jax.evaluation.explain_view.contrast`), the readable view.
  """
  rows = explain_user(rec, params, user=user, history=history, items=items)
  if not rows:
    return rows
  if against is not None and len(rows) > 1:
    explain_view.print_contrast(explain_view.contrast(rec, rows, against=against), top=top)
    return rows
  print_terms(rows, top=top)
  return rows


def print_terms(rows: list[dict[str, Any]], *, top: int = 5) -> None:
  """Prints `explain_user` rows as they are: per item, its exact split and `top` neighbours."""
  print(f"Why ({rows[0]['method']}):")
  for row in rows:
    n_items = sum(c["kind"] == "item" for c in row["contributions"])
    n_friends = len(row["contributions"]) - n_items
    parts = [f"self {row['self']:+.4f}"] if row["self"] else []
    if row["constant"]:
      parts.append(f"constant {row['constant']:+.4f}")
    parts.append(f"{n_items} items {sum(c['value'] for c in row['contributions'] if c['kind'] == 'item'):+.4f}")
    if n_friends:
      friends = sum(c["value"] for c in row["contributions"] if c["kind"] == "friend")
      parts.append(f"{n_friends} friends {friends:+.4f}")
    print(f"{row['rank']:3d}. {row['title']}  score {row['score']:.4f} = {' '.join(parts)}")
    for c in row["contributions"][:top]:
      what = f"{'your item' if c['kind'] == 'item' else 'friend'} {c['token']}"
      # Datasets without titles (Last.fm) would print the token twice.
      name = f"{c['title']}  ({what})" if c["kind"] == "item" and c["title"] != c["token"] else what
      print(f"       {c['value']:+.4f}  {name}")
    rest = row["contributions"][top:]
    if rest:
      print(f"       {sum(c['value'] for c in rest):+.4f}  ({len(rest)} more)")
