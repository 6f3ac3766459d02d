"""Cold-start items on ml-100k: a text GNN vs content-kNN, popularity, random and ID-only LightGCN.

  GNNREC_JAX_CACHE=/tmp/h1cache python benchmarks/cold_start.py \
      [--id-dropouts 0.5,0.8] [--lr 5e-3] [--epochs 60] [--eval-every 3] [--patience 4] \
      [--negatives warm|all]

Protocol: `split=cold_item`, 20% of the items (seed 2020) never in train, half of them (with all
their ratings) in valid and half in test; the warm ratings split 80/10/10 per user. Test metrics
come in blocks (`gnnrec_jax.evaluation.coldstart`): COLD ranks only never-in-train items for the test pairs on
such items, WARM ranks only train items for the other pairs. Cold nodes are embedded with
`has_id=False` (text only).

Negatives are drawn from the train items only (`warm_first`; `--negatives all` draws them from
the whole catalogue, as the trainer does): cold items are unknown at training time.

Models: (a) LightGCN with text features (items: title/year/genres through all-MiniLM-L6-v2;
users: the mean of their train items' vectors), ID embeddings and DropoutNet id_dropout, one run
per `--id-dropouts` value; (b) ID-only LightGCN. Both use `train.make_train_step`; the loop here
is the trainer's core without checkpoints, so that validation can pass `has_id` (the trainer's
own validation does not yet). Selection uses valid only: (a) the epoch and the id_dropout with
the best mean of valid COLD and WARM NDCG@20 (both blocks are the task); (b) the epoch with the
best valid WARM NDCG@20 (the block it is compared on). Baselines need no training.

Prints a human table, then ONE JSON line last.
"""
from __future__ import annotations

import argparse
import json
import math
import time

import jax
import numpy as np

METRICS = ("recall@20", "ndcg@20")


def warm_first(exp):
  """The same experiment with items renumbered so that the items seen in train come first.

  Negatives are then drawn from the warm items only, by giving the trainer's step
  `num_items = number of warm items` (it samples uniformly in [0, num_items)). Cold items must
  not be training negatives: in a real cold start they do not exist yet, and as negatives the
  text projection learns to push their texts down, which scrambles their order in the cold block.
  Metrics do not depend on item numbering (model scores do not tie).

  Returns:
    (experiment with split="predefined" and renumbered items, number of warm items).
  """
  import dataclasses

  from gnnrec_jax.evaluation import coldstart
  from gnnrec_jax import experiment
  from gnnrec_jax.data.types import Interactions, Split, Vocab
  ds, s, u = exp.dataset, exp.split, exp.num_users
  _, item_in = coldstart.train_presence(s.train, u, exp.num_items)
  order = np.concatenate([np.flatnonzero(item_in), np.flatnonzero(~item_in)])  # new -> old
  new_of_old = np.empty_like(order)
  new_of_old[order] = np.arange(len(order))

  def remap(p):
    return Interactions(p.user, new_of_old[p.item], p.weight, p.timestamp)

  cold = None if s.cold_items is None else np.sort(new_of_old[s.cold_items]).astype(np.int32)
  split = Split(remap(s.train), remap(s.valid), remap(s.test), cold_items=cold)
  meta = None if ds.item_meta is None else {k: np.asarray(v)[order]
                                            for k, v in ds.item_meta.items()}
  dataset = dataclasses.replace(ds, items=Vocab(tuple(ds.items.tokens[o] for o in order)),
                                interactions=remap(ds.interactions), split=split, item_meta=meta)
  feats = None
  if exp.features is not None:
    feats = (np.concatenate([exp.features[:u], exp.features[u:][order]]),
             np.concatenate([exp.feature_mask[:u], exp.feature_mask[u:][order]]))
  new = experiment.prepare(exp.config.replace(split="predefined"), dataset, text_features=feats)
  return new, int(item_in.sum())


def fit(exp, *, select, eval_every: int, patience: int, negative_items: int | None = None,
        log=print):
  """Trains `exp.config` with the trainer's step; keeps the params with the best `select(valid)`.

  Args:
    exp: a prepared Experiment.
    select: {block: metrics} of valid -> float, higher is better.
    eval_every: epochs between validations.
    patience: validations without improvement before stopping.
    negative_items: negatives are drawn from items [0, negative_items) (see `warm_first`);
      None: every item.

  Returns:
    {"params", "model", "inputs", "embed", "best_epoch", "epochs_run", "valid", "wall_s"}.
  """
  from gnnrec_jax.evaluation import coldstart
  from gnnrec_jax.training import fit as train
  t0 = time.perf_counter()
  cfg = exp.config
  model, params, inputs = train.init_model(exp)
  steps = math.ceil(len(exp.split.train) / cfg.batch_size)
  state = train.TrainState.create(apply_fn=model.apply, params=params,
                                  tx=train.create_optimizer(cfg, steps * cfg.epochs))
  step_fn = train.make_train_step(model, cfg, num_users=exp.num_users,
                                  num_items=negative_items or exp.num_items)
  embed = coldstart.make_embed_fn(model, num_users=exp.num_users, num_items=exp.num_items)
  key = jax.random.key(cfg.seed)
  best = {"score": -math.inf, "epoch": 0, "params": state.params, "valid": None}
  bad = epoch = 0
  for epoch in range(1, cfg.epochs + 1):
    ek = jax.random.fold_in(key, epoch)
    for s, batch in enumerate(train.epoch_batches(exp.split.train, batch_size=cfg.batch_size,
                                                  seed=cfg.seed, epoch=epoch)):
      state, m = step_fn(state, batch, inputs, jax.random.fold_in(ek, s))
    if epoch % eval_every:
      continue
    valid = coldstart.evaluate_blocks(exp, model, state.params, inputs, target=exp.split.valid,
                                      exclude=[exp.split.train], embed=embed)
    score = select(valid)
    log(f"  epoch {epoch:3d} loss {float(m['loss']):.4f} select {score:.4f} (valid N@20 "
        + " ".join(f"{b} {v['ndcg@20']:.4f}" for b, v in valid.items())
        + f") {time.perf_counter() - t0:.0f}s")
    if score > best["score"]:
      # The train step donates its state: keep a copy, not a view of buffers reused later.
      best = {"score": score, "epoch": epoch, "valid": valid,
              "params": jax.tree.map(lambda x: x.copy(), state.params)}
      bad = 0
    else:
      bad += 1
      if bad >= patience:
        break
  return {"params": best["params"], "model": model, "inputs": inputs, "embed": embed,
          "best_epoch": best["epoch"], "epochs_run": epoch, "valid": best["valid"],
          "select": best["score"], "wall_s": time.perf_counter() - t0}


def test_blocks(exp, run) -> dict:
  from gnnrec_jax.evaluation import coldstart
  return coldstart.evaluate_blocks(exp, run["model"], run["params"], run["inputs"],
                                   target=exp.split.test,
                                   exclude=[exp.split.train, exp.split.valid], embed=run["embed"])


def cold_warm_mean(blocks) -> float:
  return 0.5 * (blocks["cold"]["ndcg@20"] + blocks["warm"]["ndcg@20"])


def warm_ndcg(blocks) -> float:
  return blocks["warm"]["ndcg@20"]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--id-dropouts", default="0.5,0.8")
  p.add_argument("--lr", type=float, default=5e-3)
  p.add_argument("--epochs", type=int, default=60)
  p.add_argument("--eval-every", type=int, default=3)
  p.add_argument("--patience", type=int, default=4)
  p.add_argument("--negatives", choices=("warm", "all"), default="warm",
                 help="draw BPR negatives from train items only (default), or from every item")
  p.add_argument("--data-dir", default=None)
  args = p.parse_args(argv)

  from gnnrec_jax.models import baselines
  from gnnrec_jax import experiment
  from gnnrec_jax.config import Config
  from gnnrec_jax.data import load_dataset

  t_all = time.perf_counter()
  ds = load_dataset("ml-100k", data_dir=args.data_dir)
  base = Config(model="lightgcn", split="cold_item", cold_fraction=0.2, seed=2020, lr=args.lr,
                epochs=args.epochs, topk=(10, 20, 50))
  text_cfg = base.replace(text_features="history")
  text_exp = experiment.prepare(text_cfg, ds)
  features = (text_exp.features, text_exp.feature_mask)
  s = text_exp.split
  print(f"ml-100k cold_item: train {len(s.train)}, valid {len(s.valid)}, test {len(s.test)}, "
        f"{len(s.cold_items)} cold items; negatives from {args.negatives} items")

  def prepared(cfg, feats=None):
    exp = experiment.prepare(cfg, ds, text_features=feats)
    if args.negatives == "all":
      return exp, None
    return warm_first(exp)

  rows = []
  # (a) the text GNN, id_dropout selected on valid.
  runs = {}
  for p_drop in [float(x) for x in args.id_dropouts.split(",") if x.strip()]:
    exp, n_neg = prepared(text_cfg.replace(id_dropout=p_drop), features)
    print(f"text LightGCN, id_dropout={p_drop}")
    runs[p_drop] = (exp, fit(exp, select=cold_warm_mean, eval_every=args.eval_every,
                             patience=args.patience, negative_items=n_neg))
  chosen = max(runs, key=lambda k: runs[k][1]["select"])
  for p_drop, (exp, run) in runs.items():
    rows.append({"model": f"text_lightgcn(id_dropout={p_drop})", "selected": p_drop == chosen,
                 "valid_select": run["select"], "best_epoch": run["best_epoch"],
                 "epochs_run": run["epochs_run"], "wall_s": run["wall_s"],
                 "test": test_blocks(exp, run)})
  eval_exp = runs[chosen][0]  # baselines see the same item numbering and text vectors

  # (b) ID-only LightGCN.
  exp_id, n_neg = prepared(base)
  print("ID-only LightGCN")
  run = fit(exp_id, select=warm_ndcg, eval_every=args.eval_every, patience=args.patience,
            negative_items=n_neg)
  rows.append({"model": "lightgcn(id only)", "selected": True, "valid_select": run["select"],
               "best_epoch": run["best_epoch"], "epochs_run": run["epochs_run"],
               "wall_s": run["wall_s"], "test": test_blocks(exp_id, run)})

  es = eval_exp.split
  for name in baselines.NAMES:
    t0 = time.perf_counter()
    res = baselines.evaluate_baselines(eval_exp, target=es.test, exclude=[es.train, es.valid],
                                       names=[name])[name]
    rows.append({"model": name, "selected": True, "valid_select": None, "best_epoch": 0,
                 "epochs_run": 0, "wall_s": time.perf_counter() - t0, "test": res})

  print(f"\n{'model':32s} {'sel':>3s} {'epoch':>5s} {'wall_s':>6s}   "
        f"{'COLD R@20':>9s} {'COLD N@20':>9s}   {'WARM R@20':>9s} {'WARM N@20':>9s}   "
        f"{'ALL N@20':>8s}")
  for r in rows:
    t = r["test"]
    print(f"{r['model']:32s} {'*' if r['selected'] else '':>3s} {r['best_epoch']:5d} "
          f"{r['wall_s']:6.0f}   {t['cold']['recall@20']:9.4f} {t['cold']['ndcg@20']:9.4f}   "
          f"{t['warm']['recall@20']:9.4f} {t['warm']['ndcg@20']:9.4f}   "
          f"{t['all']['ndcg@20']:8.4f}")
  by = {r["model"]: r for r in rows if r["selected"]}
  text = next(r for r in rows if r["selected"] and r["model"].startswith("text"))
  ido = by["lightgcn(id only)"]
  summary = {
      "cold_ndcg@20": {"text_gnn": text["test"]["cold"]["ndcg@20"],
                       "content_knn": by["content_knn"]["test"]["cold"]["ndcg@20"],
                       "random": by["random"]["test"]["cold"]["ndcg@20"]},
      "warm_ndcg@20": {"text_gnn": text["test"]["warm"]["ndcg@20"],
                       "id_only": ido["test"]["warm"]["ndcg@20"],
                       "popularity": by["popularity"]["test"]["warm"]["ndcg@20"]},
  }
  summary["warm_relative_change"] = (summary["warm_ndcg@20"]["text_gnn"]
                                     / summary["warm_ndcg@20"]["id_only"] - 1.0)
  summary["cold_gain_over_content_knn"] = (summary["cold_ndcg@20"]["text_gnn"]
                                           / summary["cold_ndcg@20"]["content_knn"] - 1.0)
  print(f"\ncold NDCG@20: text GNN {summary['cold_ndcg@20']['text_gnn']:.4f} vs content-kNN "
        f"{summary['cold_ndcg@20']['content_knn']:.4f} "
        f"({100 * summary['cold_gain_over_content_knn']:+.1f}%); warm NDCG@20: text GNN vs "
        f"ID-only {100 * summary['warm_relative_change']:+.2f}%  "
        f"(total {time.perf_counter() - t_all:.0f}s)")
  keep = ("recall@20", "ndcg@20", "num_users", "num_pairs")
  print(json.dumps({
      "benchmark": "cold_start", "dataset": "ml-100k", "split": "cold_item", "cold_fraction": 0.2,
      "seed": 2020, "lr": args.lr, "negatives": args.negatives, "eval_every": args.eval_every, "patience": args.patience,
      "summary": summary,
      "rows": [{**{k: v for k, v in r.items() if k != "test"},
                "test": {b: {k: m[k] for k in keep} for b, m in r["test"].items()}}
               for r in rows]}))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
