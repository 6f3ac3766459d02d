"""Explanations a person reads: what differs between the recommended items, and by which path.

`gnnrec_jax.evaluation.explain` splits each score exactly into the user's own term ("self"),
a constant and one term per graph neighbour (or history item). Read as they are, those terms
mostly say what every recommended item shares: for ml-100k user 196 the user's own vector gives
about 0.83 of every score near 1.04, and each of the 33 items about +0.01 to every item alike.
What a person asks is why *this* item, rather than the others on the list. So every term t is
taken relative to a baseline over the list,

  score_k = base + sum_t (v_t[k] - v_t[base]),     base = the last item ("last") or the mean
                                                   over the list ("mean"),

the shared part (the baseline's own terms) is reported once, and each item lists the terms that
move it most (either way) against the baseline, each as a share of its gap score_k - base. The
split stays exact wherever the decomposition is (the shares of all terms add up to 100%); how
much of the gap the listed terms cover is printed, not assumed.

For the graph models the user's own term is split by the item's layer m (a_0 a_m h_u^0 . h_i^m:
the item's own vector, the users who had it, the items two steps away, ...), since it is the
part that differs most between items for a trained LightGCN. Each neighbour term names its
path: "your item j -> this item i" with the number of train users who had both j and i (the
co-occurrences a graph model and EASE learn from), and for the graph models the layer whose
term differs most, with that layer's edge weight w^l_uj (LightGCN's norm, the softmax GNN's
attention alpha) beside the mean weight over the user's neighbours. A friend's path says
whether the friend had the item.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from gnnrec_jax.errors import ConfigError

AGAINST = ("last", "mean")


def _terms_of(row: dict[str, Any], with_self: bool) -> dict[tuple[str, int], dict[str, Any]]:
  """The row's terms by key: self, constant, every neighbour, and the unattributed rest."""
  terms = {}
  if with_self and "self_parts" in row:  # the self term by the item's layer m
    for m, value in enumerate(row["self_parts"]):
      terms[("self", m)] = {"kind": "self", "index": m, "token": "", "title": _self_title(m),
                            "value": value}
    if row["self_loop"]:
      terms[("self", -1)] = {"kind": "self", "index": -1, "token": "",
                             "title": "your vector passed back to you (self-loops)",
                             "value": row["self_loop"]}
  elif with_self:  # not for a new user or a linear item model: they have no own vector
    terms[("self", 0)] = {"kind": "self", "index": -1, "token": "", "title": "your own vector",
                          "value": row["self"]}
  if row["constant"]:
    terms[("constant", 0)] = {"kind": "constant", "index": -1, "token": "",
                              "title": "sigma(0), the same for every neighbour",
                              "value": row["constant"]}
  if not row["exact"]:
    terms[("rest", 0)] = {"kind": "rest", "index": -1, "token": "",
                          "title": "not attributed to one item", "value": row["remainder"]}
  for c in row["contributions"]:
    terms[(c["kind"], c["index"])] = c
  return terms


def _self_title(m: int) -> str:
  """What the self part of the item's layer m matches the user's vector with."""
  if m == 0:
    return "your vector ~ this item's own vector"
  if m == 1:
    return "your vector ~ the users who had this item"
  return f"your vector ~ the {'users' if m % 2 else 'items'} {m} steps from this item"


def _co_counts(exp, nodes: list[tuple[str, int]], items: np.ndarray) -> np.ndarray:
  """[len(nodes), K] counts: train users who had both item j and item i (kind "item"), or
  whether friend v had item i (kind "friend", 0/1); 0 for other kinds."""
  train = exp.split.train
  x = sp.csr_matrix((np.ones(len(train)), (train.user, train.item)),
                    shape=(exp.num_users, exp.num_items))
  x.data[:] = 1.0  # repeated (user, item) rows count once
  out = np.zeros((len(nodes), len(items)))
  item_rows = [k for k, (kind, _) in enumerate(nodes) if kind == "item"]
  if item_rows:
    js = np.array([nodes[k][1] for k in item_rows])
    out[item_rows] = (x[:, js].T @ x[:, items]).toarray()
  friend_rows = [k for k, (kind, _) in enumerate(nodes) if kind == "friend"]
  if friend_rows:
    vs = np.array([nodes[k][1] for k in friend_rows])
    out[friend_rows] = x[vs][:, items].toarray()
  return out


def contrast(rec, rows: list[dict[str, Any]], *, against: str = "last") -> dict[str, Any]:
  """The terms of `explain.explain_user` rows relative to a baseline over the list.

  Args:
    rec: the model the rows explain (its experiment gives train co-occurrences).
    rows: `explain.explain_user(...)` for the recommended items, in rank order (at least 2).
    against: "last" (why this item rather than the last one listed) or "mean" (the list's mean).

  Returns:
    {"method", "exact", "against", "weight_name", "baseline": {"label", "score"}, "shared":
     {"score", "self", "constant", "items", "n_items", "friends", "n_friends", "rest"},
     "items": [per row: {"rank", "item", "title", "score", "gap", "terms"}]}, where "terms"
    lists every term {"kind": "self" | "constant" | "rest" | "item" | "friend", "index",
    "token", "title", "value" (relative to the baseline), "share" (value / gap, None at gap 0),
    "absolute" (the term itself), "co_users" (items: train users who had both; friends: 1 if
    the friend had this item), and for graph models "layer" (1-based, the layer whose term
    differs most in the term's direction), "weight", "weight_mean"}, sorted by |value|,
    largest first. An item's values add up to its gap whenever the rows are exact.
  """
  if against not in AGAINST:
    raise ConfigError(f"unknown explanation baseline {against!r}; choose one of "
                      f"{', '.join(AGAINST)}")
  if len(rows) < 2:
    raise ConfigError("a contrast needs at least 2 recommended items (use -k 2 or more)")
  with_self = any(r["self"] for r in rows)
  per_row = [_terms_of(r, with_self) for r in rows]
  keys = list(dict.fromkeys(k for terms in per_row for k in terms))
  values = np.array([[t[k]["value"] if k in t else 0.0 for k in keys]
                     for t in per_row])  # [K, T]
  layered = "layer_weight_mean" in rows[0]
  num_layers = len(rows[0]["layer_weight_mean"]) if layered else 0
  layers = np.zeros((len(rows), len(keys), num_layers))  # [K, T, L]
  if layered:
    for r, terms in enumerate(per_row):
      for t, k in enumerate(keys):
        if "layers" in terms.get(k, {}):
          layers[r, t] = terms[k]["layers"]
  scores = np.array([r["score"] for r in rows])
  if against == "last":
    base, base_layers, base_score = values[-1], layers[-1], scores[-1]
    label = f"#{rows[-1]['rank']} {rows[-1]['title']}"
  else:
    base, base_layers, base_score = values.mean(0), layers.mean(0), scores.mean()
    label = "their mean"
  items = np.array([r["item_index"] for r in rows])
  co = _co_counts(rec.exp, keys, items)  # [T, K]
  kinds = [k[0] for k in keys]
  shared = {"score": float(base_score),
            "self": float(sum(b for b, kd in zip(base, kinds) if kd == "self")),
            "constant": float(sum(b for b, kd in zip(base, kinds) if kd == "constant")),
            "rest": float(sum(b for b, kd in zip(base, kinds) if kd == "rest")),
            "items": float(sum(b for b, kd in zip(base, kinds) if kd == "item")),
            "n_items": kinds.count("item"),
            "friends": float(sum(b for b, kd in zip(base, kinds) if kd == "friend")),
            "n_friends": kinds.count("friend")}
  out_items = []
  for r, row in enumerate(rows):
    gap = float(scores[r] - base_score)
    rel = values[r] - base  # [T]
    rel_layers = layers[r] - base_layers  # [T, L]
    terms = []
    for t in np.argsort(-np.abs(rel), kind="stable"):
      src = per_row[r].get(keys[t]) or next(p[keys[t]] for p in per_row if keys[t] in p)
      term = {"kind": src["kind"], "index": int(src["index"]), "token": src["token"],
              "title": src["title"], "value": float(rel[t]),
              "share": float(rel[t] / gap) if abs(gap) > 1e-12 else None,
              "absolute": float(values[r, t])}
      if src["kind"] in ("item", "friend"):
        term["co_users"] = int(co[t, r])
      if layered and src["kind"] in ("item", "friend"):
        l = int(np.argmax(np.sign(rel[t]) * rel_layers[t]))  # the layer moving it that way
        term.update(layer=l + 1, weight=float(src["weights"][l]),
                    weight_mean=float(row["layer_weight_mean"][l]))
      terms.append(term)
    out_items.append({"rank": row["rank"], "item": row["item"], "title": row["title"],
                      "score": float(scores[r]), "gap": gap, "terms": terms})
  return {"method": rows[0]["method"], "exact": rows[0]["exact"], "against": against,
          "baseline": {"label": label, "score": float(base_score)}, "shared": shared,
          "weight_name": rows[0].get("weight_name"), "items": out_items}


def _describe(term: dict[str, Any], weight_name: str | None) -> str:
  """One term's label and path, e.g. "your item Heat (1995) -> this: 41 users had both"."""
  kind = term["kind"]
  if kind in ("self", "constant", "rest"):
    return term["title"]
  if kind == "friend":
    had = "had this item" if term["co_users"] else "did not have it"
    text = f"friend {term['token']} ({had})"
  else:
    name = term["title"] if term["title"] == term["token"] else (
        f"{term['title']} [{term['token']}]")
    n = term["co_users"]
    text = f"your item {name} -> this: {n} user{'' if n == 1 else 's'} had both"
  if "layer" in term:
    text += (f"; mostly layer {term['layer']} ({weight_name} {term['weight']:.4f}, "
             f"mean {term['weight_mean']:.4f})")
  return text


def listed(item: dict[str, Any], top: int) -> tuple[list[dict], list[dict]]:
  """(the `top` terms that move the item most, either way, the rest)."""
  return item["terms"][:top], item["terms"][top:]


def print_contrast(view: dict[str, Any], *, top: int = 5) -> None:
  """Prints `contrast`'s view: the shared part once, then per item what differs, with shares."""
  sh, base = view["shared"], view["baseline"]
  print(f"Why ({view['method']}):")
  parts = []
  if sh["self"]:
    parts.append(f"your own vector {sh['self']:+.4f}")
  if sh["constant"]:
    parts.append(f"constant {sh['constant']:+.4f}")
  parts.append(f"your {sh['n_items']} items {sh['items']:+.4f}")
  if sh["n_friends"]:
    parts.append(f"{sh['n_friends']} friends {sh['friends']:+.4f}")
  if sh["rest"]:
    parts.append(f"not attributed {sh['rest']:+.4f}")
  whose = "the score of " if view["against"] == "last" else ""
  print(f"Shared by all {len(view['items'])}: {whose}{base['label']} {base['score']:.4f} = "
        f"{', '.join(parts)}.")
  what = "above #%d" % view["items"][-1]["rank"] if view["against"] == "last" else (
      "off the list's mean")
  print(f"What moves each item {what}: the terms that differ most (either way), as shares "
        "of the gap")
  for it in view["items"]:
    head = f"{it['rank']:3d}. {it['title']}  {it['score']:.4f}"
    if view["against"] == "last" and it is view["items"][-1]:
      print(f"{head}  (the baseline)")
      continue
    ref = f"#{view['items'][-1]['rank']}" if view["against"] == "last" else "mean"
    print(f"{head} = {ref} {it['gap']:+.4f}")
    shown, rest = listed(it, top)
    for t in shown:
      print(f"       {t['value']:+.4f} {_pct(t['share'])}  "
            f"{_describe(t, view['weight_name'])}")
    if rest:
      value = sum(t["value"] for t in rest)
      share = value / it["gap"] if abs(it["gap"]) > 1e-12 else None
      print(f"       {value:+.4f} {_pct(share)}  {len(rest)} more terms")
    if abs(it["gap"]) > 1e-12:
      net, moved = coverage(it, top)
      print(f"       (the {len(shown)} listed: {net:.0%} of the gap, {moved:.0%} of all the "
            "terms' movement)")


def coverage(item: dict[str, Any], top: int) -> tuple[float, float]:
  """How much of an item's gap its `top` listed terms explain: (their sum / the gap, their
  absolute sum / every term's absolute sum). Terms of both signs make the first exceed 100%;
  the second says how much of all the movement between the two items is listed."""
  shown = item["terms"][:top]
  total = sum(abs(t["value"]) for t in item["terms"])
  net = sum(t["value"] for t in shown) / item["gap"] if item["gap"] else float("nan")
  return net, (sum(abs(t["value"]) for t in shown) / total if total else float("nan"))


def _pct(share: float | None) -> str:
  return "    -" if share is None else f"{share:5.0%}"
