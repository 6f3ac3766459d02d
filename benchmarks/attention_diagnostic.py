"""Why the softmax GNN's attention is flat: logits, alphas and degree in a trained ml-100k run.

  python benchmarks/attention_diagnostic.py RUN_DIR [RUN_DIR ...] [--user 196]

RUN_DIR is a softmax_gnn run folder written by `fit` (e.g. `benchmarks/ml100k_models.py
--models softmax_gnn --workdir DIR` writes DIR/softmax_gnn). For every softmax layer it prints:
the mean norm of the layer's input vectors; the spread of the logits over a receiver's incoming
edges (standard deviation, mean over receivers); max/min alpha within a receiver; the entropy of
alpha relative to the uniform distribution's (1 = a plain mean); the correlation between a
user's alpha on item j and log deg_j (LightGCN's norm has correlation -1 with it); the weight
share that users put on the 10% most popular items against LightGCN's norm's share; and the
given user's alpha range (notebook 04's heatmap). Prints ONE JSON line last.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def layer_stats(rec, params, user_token: str) -> dict:
  from gnnrec_jax.evaluation.explain import layer_outputs
  from gnnrec_jax.graph.build import degrees
  exp = rec.exp
  graph = exp.graph
  _, hs, weights = layer_outputs(rec.module, params, rec.inputs)
  s, r = np.asarray(graph.senders), np.asarray(graph.receivers)
  norm = np.asarray(graph.edges["norm"], np.float64)
  deg = degrees(graph)
  u_count = exp.num_users
  user_edges = r < u_count  # receiver a user, sender an item
  popular = deg[s] >= np.quantile(deg[u_count:][deg[u_count:] > 0], 0.9)
  uid = exp.dataset.users.tokens.index(user_token) if user_token in exp.dataset.users.tokens \
      else None
  rows = []
  for k, alpha in enumerate(weights):
    a = alpha[:, 0]
    h = hs[k]
    logit = np.sum(h[r] * h[s], axis=1)  # the raw dot (before scaling): its spread is the point
    by = np.bincount(r, minlength=len(deg))
    mean_r = np.bincount(r, weights=logit, minlength=len(deg)) / np.maximum(by, 1)
    var_r = np.bincount(r, weights=(logit - mean_r[r]) ** 2, minlength=len(deg)) / np.maximum(
        by, 1)
    amax = np.zeros(len(deg))
    amin = np.full(len(deg), np.inf)
    np.maximum.at(amax, r, a)
    np.minimum.at(amin, r, a)
    has = by > 1
    p = a / np.maximum(np.bincount(r, weights=a, minlength=len(deg))[r], 1e-30)
    ent = -np.bincount(r, weights=p * np.log(np.maximum(p, 1e-30)), minlength=len(deg))
    rel_ent = ent[has] / np.log(by[has])
    ue = user_edges
    row = {
        "layer": k + 1,
        "input_norm": float(np.mean(np.linalg.norm(h[:len(deg)], axis=1))),
        "raw_logit_std": float(np.mean(np.sqrt(var_r[has]))),
        "alpha_max_over_min": float(np.median(amax[has] / np.maximum(amin[has], 1e-30))),
        "relative_entropy": float(np.mean(rel_ent)),
        "corr_alpha_logdeg_users": float(np.corrcoef(np.log(p[ue]) - np.log(
            1.0 / by[r[ue]]), np.log(deg[s[ue]]))[0, 1]) if np.std(p[ue]) > 0 else 0.0,
        "popular_share": float(np.sum(p[ue & popular]) / np.sum(p[ue])),
        "popular_share_norm": float(np.sum((norm / np.bincount(r, weights=norm,
                                    minlength=len(deg))[r])[ue & popular]) / np.sum(
                                        (norm / np.bincount(r, weights=norm,
                                         minlength=len(deg))[r])[ue])),
    }
    if uid is not None:
      mine = r == uid
      row["user_alpha_range"] = [float(a[mine].min()), float(a[mine].max())]
      row["user_neighbours"] = int(mine.sum())
    rows.append(row)
  return {"layers": rows}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("runs", nargs="+")
  parser.add_argument("--user", default="196", help="a user token (notebook 04's user 196)")
  parser.add_argument("--data-dir", default=None)
  args = parser.parse_args(argv)
  from gnnrec_jax.data import load_dataset
  from gnnrec_jax.training.workdir import load
  dataset = load_dataset("ml-100k", data_dir=args.data_dir)
  out = []
  for path in args.runs:
    _, rec, params = load(path, dataset=dataset)
    stats = layer_stats(rec, params, args.user)
    print(f"## {path}")
    print("layer |h| logit-std max/min-alpha rel-entropy corr(alpha,log deg) "
          "popular-share (norm's) user-range")
    for row in stats["layers"]:
      print(f"{row['layer']} {row['input_norm']:.3f} {row['raw_logit_std']:.4f} "
            f"{row['alpha_max_over_min']:.3f} {row['relative_entropy']:.4f} "
            f"{row['corr_alpha_logdeg_users']:+.3f} {row['popular_share']:.3f} "
            f"({row['popular_share_norm']:.3f}) {row.get('user_alpha_range')}")
    out.append({"run": path, **stats})
  print(json.dumps({"dataset": "ml-100k", "runs": out}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
