"""`gnnrec-jax recommend --workdir DIR --user TOKEN -k 10`: top-k items for one user.

Items the user has interacted with anywhere in the dataset (train, valid or test) are excluded:
they are "seen". Titles are shown where the dataset has them. The last stdout line is JSON
(with `--explain`, it carries the explanation's data under "explanation").
`--explain` prints what moves each item above the last one listed (`--explain-against mean`: the
list's mean; `none`: the exact terms themselves), see `gnnrec_jax.evaluation.explain_view`.
Unknown users or items, and a `-k` larger than the items left to recommend, are errors (exit 2).

`--friends USER` (datasets with a social network) ranks users instead: by the model's final user
vectors (final_a . final_b), or with `--blend B` by that score blended with Adamic-Adar's on the
train friendships (each standardised per user; B = Adamic-Adar's share), the user and everyone
already its friend excluded; `--explain` adds the friends each suggestion shares with the user
(`gnnrec_jax.evaluation.social`).
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np

from gnnrec_jax.errors import DataError


def add_arguments(p):
  p.add_argument("--workdir", required=True)
  p.add_argument("--user", help="user id as written in the data files")
  p.add_argument("--history", help="comma-separated item ids: recommend for a new user "
                 "with this history, without retraining")
  p.add_argument("--friends", metavar="USER",
                 help="recommend users to befriend for this user id (datasets with a social "
                 "network), ranked by the model's user vectors")
  p.add_argument("--blend", type=float, default=0.0, metavar="B",
                 help="with --friends: Adamic-Adar's share of the friend score, 0 (the model's "
                 "vectors alone, default) to 1 (Adamic-Adar alone); benchmarks/lastfm_social.py "
                 "chooses it on the valid friendships")
  p.add_argument("-k", type=int, default=10, help="how many items (default 10)")
  p.add_argument("--score", default=None, metavar="dot|cosine|pearson",
                 help="rank by another similarity of the final vectors than the run was trained "
                      "with: between cosine and pearson (both scale-free) for a run trained with "
                      "normalised vectors")
  p.add_argument("--explain", action="store_true",
                 help="why each item: the terms (the user's own vector by path, their items, "
                 "friends) that move it most against the last item listed, as shares of its "
                 "lead, with paths")
  p.add_argument("--explain-against", choices=("last", "mean", "none"), default="last",
                 help="what --explain compares each item with: the last item listed (default), "
                 "the list's mean, or none (the exact terms themselves, mostly shared)")
  p.add_argument("--explain-top", type=int, default=5, metavar="N",
                 help="terms listed per item with --explain (default 5)")


def seen_items(exp, user: int) -> np.ndarray:
  parts = [exp.split.train, exp.split.valid, exp.split.test]
  return np.unique(np.concatenate([p.item[p.user == user] for p in parts]))


def with_score(rec, score: str):
  """The run's model ranking by `score` instead of the score it was trained with.

  Allowed only between "cosine" and "pearson" (or to the trained score itself): both are
  invariant to a vector's length, so a model trained under one has learned directions that the
  other reads. A dot-product model's lengths carry part of its score (popularity, confidence), and
  a normalised model's lengths were never trained, so switching to or from "dot" would rank by
  something the model never learned.
  """
  from gnnrec_jax import models
  from gnnrec_jax.config import check_field, field_specs
  from gnnrec_jax.errors import ConfigError
  msg = check_field(field_specs()["score"], score)
  if msg:
    raise ConfigError(f"--score: {msg}")
  trained = rec.config.score
  if score == trained:
    return rec
  if not rec.rescorable:
    raise ConfigError(f"--score {score}: {rec.config.model} scores are not similarities of two "
                      "vectors (a closed-form item model), so there is nothing to switch")
  normalised = ("cosine", "pearson")
  if trained not in normalised or score not in normalised:
    raise ConfigError(f"--score {score}: the run was trained with score={trained}; --score "
                      "switches only between cosine and pearson, for runs trained with "
                      "normalised vectors (vector lengths were "
                      f"{'part of the score' if trained == 'dot' else 'never trained'})")
  exp = dataclasses.replace(rec.exp, config=rec.config.replace(score=score))
  return models.create(exp)


def run(args) -> int:
  from gnnrec_jax.evaluation import ranking
  from gnnrec_jax.training import workdir

  if sum(bool(a) for a in (args.user, args.history, args.friends)) != 1:
    raise DataError("recommend needs exactly one of --user TOKEN, --history ITEM,ITEM,... or "
                    "--friends USER")
  if args.k <= 0:
    raise DataError(f"-k must be positive, got {args.k}")
  _, rec, params = workdir.load(args.workdir)
  if args.score is not None:
    rec = with_score(rec, args.score)
  if args.friends:
    return _friends(args, rec, params)
  exp = rec.exp
  ds = exp.dataset
  if args.user:
    if args.user not in ds.users:
      raise DataError(f"unknown user {args.user!r}: not in the catalogue of dataset {ds.name!r} "
                      f"({ds.num_users} users, e.g. {ds.users.tokens[0]!r})")
    u = ds.users.index(args.user)
    seen = seen_items(exp, u)
    who = f"user {args.user}"
  else:
    tokens = [t.strip() for t in args.history.split(",") if t.strip()]
    unknown = [t for t in tokens if t not in ds.items]
    if unknown:
      raise DataError(f"--history: unknown item ids {', '.join(map(repr, unknown[:5]))}")
    seen = np.array(sorted({ds.items.index(t) for t in tokens}), np.int64)
    who = f"a new user with {len(seen)} items"
  if args.k > exp.num_items - len(seen):
    raise DataError(f"-k {args.k} is larger than the {exp.num_items - len(seen)} items left to "
                    f"recommend to {who} (catalogue of {exp.num_items}, {len(seen)} seen)")
  # A known user's scores are the ones evaluation ranks; a new user is scored from its history
  # without retraining (each model's inductive rule: `Recommender.history_scores`).
  scores = rec.scores(params, [u])[0] if args.user else rec.history_scores(params, seen)
  items, top = ranking.recommend(scores, None, exclude_items=seen, k=args.k)
  items, top = np.asarray(items), np.asarray(top)
  print(f"Top {args.k} for {who} ({exp.config.model}, {ds.name}):")
  rows = []
  for rank, (i, s) in enumerate(zip(items, top), 1):
    title = ds.item_title(int(i))
    print(f"{rank:3d}. {title}  [item {ds.items.tokens[i]}]  score {s:.4f}")
    rows.append({"rank": rank, "item": ds.items.tokens[i], "title": title, "score": float(s)})
  out = {"user": args.user, "recommendations": rows}
  if args.explain:
    out["explanation"] = _explain(args, rec, params, user=u if args.user else None,
                                  history=seen if not args.user else None, items=items)
  print(json.dumps(out))
  return 0


def _explain(args, rec, params, *, user, history, items) -> dict:
  """Prints the explanation and returns its data for the JSON line (listed terms only)."""
  from gnnrec_jax.evaluation import explain, explain_view
  top = max(args.explain_top, 1)
  rows = explain.explain_user(rec, params, user=user, history=history, items=items)
  if args.explain_against == "none" or len(rows) < 2:
    explain.print_terms(rows, top=top)
    return {"method": rows[0]["method"], "exact": rows[0]["exact"], "against": "none",
            "items": [{"rank": r["rank"], "item": r["item"], "score": r["score"],
                       "self": r["self"], "constant": r["constant"],
                       "remainder": r["remainder"],
                       "terms": [{k: c[k] for k in ("kind", "token", "title", "value")}
                                 for c in r["contributions"][:top]]} for r in rows]}
  view = explain_view.contrast(rec, rows, against=args.explain_against)
  explain_view.print_contrast(view, top=top)
  for it in view["items"]:
    shown, rest = explain_view.listed(it, top)
    it["terms"] = shown
    it["rest"] = {"count": len(rest), "value": sum(t["value"] for t in rest)}
  return view


def _friends(args, rec, params) -> int:
  """`--friends USER`: users ranked by the model's vectors, known friends excluded."""
  from gnnrec_jax.evaluation import social
  exp = rec.exp
  ds = exp.dataset
  if exp.friends is None:
    raise DataError(f"--friends: dataset {ds.name!r} has no social network (user-user "
                    "friendships, e.g. Last.fm's trustnetwork.txt)")
  if args.friends not in ds.users:
    raise DataError(f"unknown user {args.friends!r}: not in the catalogue of dataset "
                    f"{ds.name!r} ({ds.num_users} users, e.g. {ds.users.tokens[0]!r})")
  u = ds.users.index(args.friends)
  if not 0.0 <= args.blend <= 1.0:
    raise DataError(f"--blend must be in [0, 1], got {args.blend}")
  top = social.recommend_friends(rec, params, u, k=args.k, blend=args.blend)
  tok = ds.users.tokens
  how = ("your vector . theirs" if not args.blend else
         f"{1 - args.blend:g} x your vector . theirs + {args.blend:g} x Adamic-Adar, each "
         "standardised")
  print(f"Top {args.k} friends for user {args.friends} ({exp.config.model}, {ds.name}; "
        f"score = {how}; your {top['known_friends']} friends excluded):")
  rows = []
  for rank, (v, s, common) in enumerate(zip(top["users"], top["scores"], top["common"]), 1):
    print(f"{rank:3d}. user {tok[v]}  score {s:.4f}")
    row = {"rank": rank, "user": tok[v], "score": float(s)}
    if args.explain:
      shown = ", ".join(tok[c] for c in common[:args.explain_top])
      more = f" and {len(common) - args.explain_top} more" if len(common) > args.explain_top else ""
      print(f"       {len(common)} friends in common" + (f": {shown}{more}" if common else ""))
      row["common_friends"] = [tok[c] for c in common]
    rows.append(row)
  print(json.dumps({"friends_of": args.friends, "recommendations": rows}))
  return 0
