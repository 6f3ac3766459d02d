"""Zero-shot items: a run trained without a set of items, those items scored from text alone.

  gnnrec-jax train --model textgnn --dataset ml-100k --workdir RUN --set split=cold_item ...
  python benchmarks/zero_shot.py RUN [--k 20] [--dataset ml-100k (a run fitted by a script)]

The run's split withholds `cold_fraction` of the items from training (`split=cold_item`): they
have no edges and no trained ID vector, so a model scores them from their text alone. This
script scores them the way `gnnrec-jax recommend --user` does (`Recommender.scores`, one row per
user, the run's parameters as saved), ranks only the withheld items for each test user with a
withheld test item (the user's valid items masked, as the protocol masks them), and computes
Recall/NDCG@K with NumPy: the "cold" block of `evaluation/protocol.py`, which it must equal. It
also reports where the withheld items land in the one mixed ranking that `recommend` prints.

Prints a human summary, then ONE JSON line last.
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("workdir")
  p.add_argument("--k", type=int, default=20)
  p.add_argument("--dataset", default=None,
                 help="the dataset's name, for a run fitted by a script (benchmarks/cold_start.py)")
  args = p.parse_args(argv)

  from gnnrec_jax.models.inductive import train_presence
  from gnnrec_jax.training import workdir

  if args.dataset:
    from gnnrec_jax.data import load_dataset
    _, rec, params = workdir.load(args.workdir, dataset=load_dataset(args.dataset))
  else:
    _, rec, params = workdir.load(args.workdir)
  exp, k = rec.exp, args.k
  s = exp.split
  # Withheld = never in train: the split's cold items and any item whose every interaction
  # fell outside train (the protocol's cold block ranks them all).
  _, item_in = train_presence(s.train, exp.num_users, exp.num_items)
  is_cold = ~item_in
  cold = np.flatnonzero(is_cold)
  on_cold = is_cold[s.test.item]
  users = np.unique(s.test.user[on_cold])
  targets = {u: set() for u in users}
  for u, i in zip(s.test.user[on_cold], s.test.item[on_cold]):
    targets[u].add(int(i))
  masked = {u: set() for u in users}
  for part in (s.train, s.valid):
    for u, i in zip(part.user, part.item):
      if u in masked:
        masked[u].add(int(i))

  recall, ndcg, mixed_hits, mixed_rank = [], [], 0, []
  discount = 1.0 / np.log2(np.arange(2, k + 2))
  for start in range(0, len(users), 256):
    batch = users[start:start + 256]
    scores = rec.scores(params, batch)  # [B, I], as `recommend --user` scores
    for u, row in zip(batch, scores):
      row = np.asarray(row, np.float64).copy()
      row[list(masked[u])] = -np.inf
      mixed = np.argsort(-row, kind="stable")
      mixed_hits += int(is_cold[mixed[:k]].sum())
      mixed_rank.append(int(np.flatnonzero(is_cold[mixed])[0]) + 1)  # first withheld item
      row[~is_cold] = -np.inf
      top = np.argsort(-row, kind="stable")[:k]
      hit = np.array([int(i) in targets[u] for i in top], np.float64)
      n = len(targets[u])
      recall.append(hit.sum() / n)
      ndcg.append((hit * discount).sum() / discount[:min(n, k)].sum())
  with open(f"{args.workdir}/metrics.json") as fh:
    saved = json.load(fh)
  out = {"withheld_items": int(len(s.cold_items)), "never_in_train": int(len(cold)), "users": int(len(users)),
         f"recall@{k}": float(np.mean(recall)), f"ndcg@{k}": float(np.mean(ndcg)),
         f"protocol_cold/recall@{k}": saved.get(f"cold/recall@{k}"),
         f"protocol_cold/ndcg@{k}": saved.get(f"cold/ndcg@{k}"),
         f"withheld_share_of_mixed_top{k}": mixed_hits / (k * len(users)),
         "median_rank_of_first_withheld_in_mixed": float(np.median(mixed_rank))}
  print(f"{len(cold)} items never in train ({len(s.cold_items)} withheld by the split), "
        f"{len(users)} test users with one of them")
  print(f"scored as `recommend` scores them, ranked among the withheld items: Recall@{k} "
        f"{out[f'recall@{k}']:.4f}, NDCG@{k} {out[f'ndcg@{k}']:.4f} (protocol's cold block: "
        f"{out[f'protocol_cold/recall@{k}']:.4f}, {out[f'protocol_cold/ndcg@{k}']:.4f})")
  print(f"in recommend's one mixed ranking: {100 * out[f'withheld_share_of_mixed_top{k}']:.1f}% "
        f"of the top {k} are withheld items; the first one is at median rank "
        f"{out['median_rank_of_first_withheld_in_mixed']:.0f}")
  print(json.dumps({"benchmark": "zero_shot", "workdir": args.workdir, **out}))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
