"""Last.fm with and without the trust network: item ranking, and friend recommendation.

  python benchmarks/lastfm_social.py [--data-dir ../shared/data/lastfm] [--epochs 150]

Items: LightGCN trained twice on the predefined train/test split with 10% of train carved out as
validation (`valid_from_train=0.1`, so early stopping never sees test): `social=False` vs
`social=True` (all friendships as user–user edges). Test Recall@20 / NDCG@20.

Friends: the friendships are split 80/10/10 (seeded); every user with a test friend ranks all
users (itself, train and valid friends excluded). Scorers: common neighbours and Adamic–Adar on
the train friendships; the final user vectors of the social=False item model ("item graph
only"); and of a LightGCN trained with the item BPR objective on the graph with the TRAIN
friendships as edges (the social=True model above cannot be used: its graph holds the test
friendships). See gnnrec_jax/evaluation/social.py for why no friendship loss is used.

Prints a table, then one JSON line with every number.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from gnnrec_jax.config import Config  # noqa: E402
from gnnrec_jax.data import load_dataset  # noqa: E402
from gnnrec_jax.evaluation import social  # noqa: E402
from gnnrec_jax.experiment import prepare  # noqa: E402
from gnnrec_jax.training.fit import fit  # noqa: E402


def train_lightgcn(cfg: Config, dataset, workdir: str):
  """Trains with the library's `fit`; returns (test metrics, final user vectors [U, d], seconds)."""
  t0 = time.perf_counter()
  fitted = fit(prepare(cfg, dataset), workdir, overwrite=True, progress=False)
  seconds = time.perf_counter() - t0
  user_emb, _ = fitted.rec.score_params(fitted.params)
  return fitted.metrics, np.asarray(user_emb), seconds


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--data-dir", default=None, help="Last.fm folder (default ../shared/data/lastfm)")
  p.add_argument("--workdir", default=None, help="run folders (default: a temporary folder)")
  p.add_argument("--epochs", type=int, default=150)
  p.add_argument("--lr", type=float, default=5e-3)
  p.add_argument("--eval-every", type=int, default=5)
  p.add_argument("--patience", type=int, default=5, help="evaluations without improvement")
  p.add_argument("--seed", type=int, default=2020)
  args = p.parse_args(argv)

  t_start = time.perf_counter()
  ds = load_dataset("lastfm", data_dir=args.data_dir, valid_from_train=0.1, seed=args.seed)
  root = args.workdir or tempfile.mkdtemp(prefix="lastfm_social_")
  # segment: on CPU it is ~6x faster than the dense [N, N] backend "auto" picks at N = 6,354.
  cfg = Config(model="lightgcn", split="predefined", epochs=args.epochs, lr=args.lr,
               eval_every=args.eval_every, patience=args.patience, topk=(20,),
               select_metric="ndcg@20", propagation="segment", seed=args.seed)
  ks = (20,)
  res: dict = {"dataset": "lastfm", "users": ds.num_users, "items": ds.num_items,
               "friendships": int(len(ds.social)), "split": ds.split.sizes(),
               "config": {k: cfg.to_dict()[k] for k in ("embed_dim", "num_layers", "lr", "l2",
                                                        "batch_size", "epochs", "eval_every",
                                                        "patience")}}

  # --- items, without and with the trust network ------------------------------------------
  items = {}
  user_vecs = {}
  for name, soc in (("no_social", False), ("social", True)):
    m, user_vecs[name], sec = train_lightgcn(cfg.replace(social=soc), ds,
                                             os.path.join(root, f"items_{name}"))
    items[name] = {"recall@20": m["recall@20"], "ndcg@20": m["ndcg@20"],
                   "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"], "seconds": sec}
  res["items"] = items

  # --- friends ------------------------------------------------------------------------------
  f_train, f_valid, f_test = social.split_friendships(ds.social, ratios=(0.8, 0.1, 0.1),
                                                      seed=args.seed)
  res["friend_split"] = {"train": len(f_train), "valid": len(f_valid), "test": len(f_test)}
  common = dict(train=f_train, target=f_test, also_exclude=[f_valid], ks=ks)
  friends = {}
  for method in social.NEIGHBOUR_METHODS:
    t0 = time.perf_counter()
    params = social.neighbour_score_params(f_train, ds.num_users, method=method)
    m = social.evaluate_friends(social.neighbour_scores, params, num_users=ds.num_users, **common)
    friends[method] = {"recall@20": m["recall@20"], "ndcg@20": m["ndcg@20"],
                       "num_users": m["num_users"], "seconds": time.perf_counter() - t0}
  m = social.evaluate_friend_embeddings(user_vecs["no_social"], **common)
  friends["lightgcn_item_graph_only"] = {"recall@20": m["recall@20"], "ndcg@20": m["ndcg@20"],
                                         "num_users": m["num_users"]}
  ds_train_friends = social.with_friendships(ds, f_train)
  m_items, vecs, sec = train_lightgcn(cfg.replace(social=True), ds_train_friends,
                                      os.path.join(root, "friends_social"))
  m = social.evaluate_friend_embeddings(vecs, **common)
  friends["lightgcn_train_friend_edges"] = {
      "recall@20": m["recall@20"], "ndcg@20": m["ndcg@20"], "num_users": m["num_users"],
      "item_recall@20": m_items["recall@20"], "item_ndcg@20": m_items["ndcg@20"],
      "best_epoch": m_items["best_epoch"], "seconds": sec}
  res["friends"] = friends
  res["wall_s"] = time.perf_counter() - t_start

  print(f"Last.fm: {ds.num_users} users, {ds.num_items} items, {len(ds.social)} friendships; "
        f"LightGCN d={cfg.embed_dim} L={cfg.num_layers} lr={cfg.lr}, <= {cfg.epochs} epochs, "
        f"early stop on valid NDCG@20 (patience {cfg.patience} x {cfg.eval_every} epochs)")
  print(f"\n{'items (test)':34s} {'Recall@20':>9s} {'NDCG@20':>8s} {'best ep':>7s} {'time s':>7s}")
  for name, r in items.items():
    print(f"{'LightGCN ' + name:34s} {r['recall@20']:9.4f} {r['ndcg@20']:8.4f} "
          f"{r['best_epoch']:7d} {r['seconds']:7.0f}")
  print(f"\n{'friends (test, 80/10/10 split)':34s} {'Recall@20':>9s} {'NDCG@20':>8s} {'users':>7s}")
  for name, r in friends.items():
    print(f"{name:34s} {r['recall@20']:9.4f} {r['ndcg@20']:8.4f} {r['num_users']:7d}")
  print(f"\nwall time {res['wall_s']:.0f} s")
  print(json.dumps(res, sort_keys=True, default=float))
  return 0


if __name__ == "__main__":
  sys.exit(main())
