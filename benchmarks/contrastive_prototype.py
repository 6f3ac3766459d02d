"""Prototype: LightGCN on ml-100k trained with the contrastive objectives of `gnnrec_jax.contrastive`.

  nice -n 5 python benchmarks/contrastive_prototype.py --recipe simgcl --hp lam=0.05,0.2 \
      --hp eps=0.1 [--set lr=1e-2 ...] [--log runs/contrastive.jsonl]
  python benchmarks/contrastive_prototype.py --summary runs/contrastive.jsonl

Recipes (each trains `configs.get_config("lightgcn")`, i.e. today's tuned sampled-softmax recipe,
with only the loss changed; `--set` overrides config fields, `--hp` takes comma-separated values
of the recipe's own hyperparameters and runs their Cartesian product):
  softmax   today's loss (sampled softmax, 64 negatives, tau .2, L2 1e-2): the reference.
  simgcl    softmax + lam * SimGCL InfoNCE between two noisy forward passes (hp: lam, eps, tau).
  xsimgcl   softmax on one noisy pass + lam * InfoNCE between its final vector and its layer-l*
            output (hp: lam, eps, tau, lstar).
  directau  DirectAU instead of softmax: alignment + gamma * uniformity (hp: gamma, unique=0|1:
            uniformity over unique batch users/items instead of rows). Ranks by the raw dot
            product as the reference does, or by cosine with `--set score=cosine`.
  ccl       SimpleX's CCL instead of softmax (hp: margin, w, shared): on `num_negatives`
            sampled negatives per row (shared=0), or on `shared` negatives drawn once per step
            for the whole batch (all items when shared >= I); pair with `--set score=cosine` to
            rank by cosine as trained.

Protocol: RecBole's (random 80/10/10 per user, seed 2020, full ranking, train items masked;
valid NDCG@20 every `eval_every` epochs, early stopping after `patience` evaluations without
improvement; test at the best valid epoch). Every run goes through the library's one loop
(`gnnrec_jax.training.fit.fit`) with only the model's `loss` replaced (`run_recipe`); "softmax"
is `gnnrec-jax train --model lightgcn --dataset ml-100k` unchanged.

Noise views need the layer outputs, which `LightGCN` does not return: a Flax method interceptor
(`layer_outputs`) records each `conv_k` output and adds SimGCL's noise to it, so the library's
model is used unchanged. The integration should give the layer stack a noise option and
per-layer outputs instead (benchmarks/RESULTS.md, "Contrastive objectives on ml-100k").

Prints a human table, then ONE JSON line last: {"dataset", "protocol", "rows": [...]}.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

RECIPES = {  # recipe -> default hyperparameters (the published ones where they exist)
    "softmax": {},
    "simgcl": {"lam": 0.5, "eps": 0.1, "tau": 0.2},                 # SELFRec yelp2018
    "xsimgcl": {"lam": 0.2, "eps": 0.2, "tau": 0.15, "lstar": 1},   # SELFRec yelp2018
    "directau": {"gamma": 1.0, "unique": 0},                        # authors' repository
    "ccl": {"margin": 0.9, "w": 10.0, "shared": 0},                 # RecZoo ML-1M config
}


def layer_outputs(rec, params, inputs, *, rng=None, noise_rng=None, eps: float = 0.0):
  """Training-mode forward pass returning (final [N, d], ego [N, d], [h^0, ..., h^L]).

  With `noise_rng`, SimGCL's noise (`contrastive.perturb`) is added to each layer's output
  before the next layer reads it. Works for any `_LayerStack` model (layers named conv_k).
  """
  import flax.linen as nn
  import jax

  from gnnrec_jax.training import contrastive
  layers = []

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    name = context.module.name or ""
    if context.method_name == "__call__" and name.startswith("conv_"):
      if noise_rng is not None:
        out = contrastive.perturb(jax.random.fold_in(noise_rng, len(layers)), out, eps=eps)
      layers.append(out)
    return out

  with nn.intercept_methods(interceptor):
    final, ego = rec.forward(params, inputs, train=True, rng=rng)
  return final, ego, [ego, *layers]


def recipe_loss(rec, recipe: str, hp: dict, params, inputs, batch, rng):
  """The objective of one batch under `recipe` (the signature of `Recommender.loss`)."""
  import jax

  from gnnrec_jax.training import contrastive, losses, sampling
  cfg, num_users, num_items = rec.config, rec.num_users, rec.num_items
  # The library's split (dropout key, negatives key); the noise keys come from another fold.
  drop_rng, neg_rng = jax.random.split(rng)
  noise1, noise2 = jax.random.split(jax.random.fold_in(rng, 7))
  u, p = batch["user"], batch["item"] + num_users
  mask = batch["mask"]
  noisy = recipe == "xsimgcl"
  final, ego, hs = layer_outputs(rec, params, inputs, rng=drop_rng,
                                 noise_rng=noise1 if noisy else None, eps=hp.get("eps", 0.0))
  if recipe == "directau":
    return contrastive.directau_loss(
        user=final[u], item=final[p], gamma=hp["gamma"], mask=mask,
        users=u if hp["unique"] else None, items=p if hp["unique"] else None,
        user_ego=ego[u], item_ego=ego[p], l2=cfg.l2)
  pool = inputs.get("neg_pool")  # items seen in train, when some are not (as the library)
  if recipe == "ccl" and hp["shared"]:
    # K negatives shared by the whole batch (the whole pool when K >= its size): [B, K].
    size = num_items if pool is None else pool.shape[0]  # static: the pool's length
    k = int(hp["shared"])
    items = (jax.numpy.arange(size) if k >= size else
             jax.random.choice(neg_rng, size, (k,), replace=False))
    items = (items if pool is None else pool[items]) + num_users
    return contrastive.cosine_contrastive_loss(
        user=final[u], pos=final[p], neg=final[items], margin=hp["margin"],
        negative_weight=hp["w"], mask=mask, user_ego=ego[u], pos_ego=ego[p],
        neg_ego=ego[items], l2=cfg.l2)
  neg = sampling.sample_negatives(
      neg_rng, batch_users=batch["user"],
      num_items=num_items if pool is None else pool.shape[0],
      num_negatives=cfg.num_negatives)  # [B, K]
  neg = (neg if pool is None else pool[neg]) + num_users
  if recipe == "ccl":
    return contrastive.cosine_contrastive_loss(
        user=final[u], pos=final[p], neg=final[neg], margin=hp["margin"],
        negative_weight=hp["w"], mask=mask, user_ego=ego[u], pos_ego=ego[p], neg_ego=ego[neg],
        l2=cfg.l2)
  loss, aux = losses.sampled_softmax_loss(
      user=final[u], pos=final[p], neg=final[neg], user_ego=ego[u], pos_ego=ego[p],
      neg_ego=ego[neg], l2=cfg.l2, temperature=cfg.softmax_temperature, mask=mask)
  if recipe == "simgcl":
    v1, _, _ = layer_outputs(rec, params, inputs, rng=drop_rng, noise_rng=noise1, eps=hp["eps"])
    v2, _, _ = layer_outputs(rec, params, inputs, rng=drop_rng, noise_rng=noise2, eps=hp["eps"])
  else:  # xsimgcl: the noisy pass's final vector against its layer-l* output
    v1, v2 = final, contrastive.cross_layer_view(hs, layer=int(hp["lstar"]))
  cl, cl_aux = contrastive.simgcl_loss(
      user_view1=v1[u], user_view2=v2[u], item_view1=v1[p], item_view2=v2[p], users=u,
      items=p, temperature=hp["tau"], weight=hp["lam"], mask=mask)
  return loss + cl, {**aux, **cl_aux}


def run_recipe(exp, recipe: str, hp: dict, workdir: str) -> dict:
  """Trains the experiment's model with `recipe` through the library's one loop (`fit`).

  `fit` builds its model with `gnnrec_jax.models.create`; for the length of the call that is
  replaced by a subclass of `EmbeddingRecommender` whose `loss` is the recipe's, so batches,
  optimizer, validation, early stopping and the test pass are the library's own. ("softmax"
  keeps the library's `loss` and reproduces `gnnrec-jax train --model lightgcn`.)
  """
  from gnnrec_jax import models
  from gnnrec_jax.models.embedding import EmbeddingRecommender
  from gnnrec_jax.training.fit import fit

  class RecipeRecommender(EmbeddingRecommender):
    def loss(self, params, inputs, batch, rng):
      if recipe == "softmax":
        return super().loss(params, inputs, batch, rng)
      return recipe_loss(self, recipe, hp, params, inputs, batch, rng)

  create = models.create
  models.create = RecipeRecommender
  try:
    fitted = fit(exp, workdir, overwrite=True, progress=False)
  finally:
    models.create = create
  metric = exp.config.select_metric
  valid = [row[f"valid/{metric}"] for row in fitted.history if f"valid/{metric}" in row]
  best = fitted.metrics["best_epoch"]
  best_valid = next(row[f"valid/{metric}"] for row in fitted.history if row["epoch"] == best)
  print(f"# valid {metric} per evaluation: {[round(v, 4) for v in valid]}", file=sys.stderr,
        flush=True)
  return {"test": fitted.metrics, "valid": best_valid, "best_epoch": best,
          "epochs_run": fitted.metrics["epochs_run"], "history": [round(v, 4) for v in valid]}


def parse_hp(recipe: str, items: list[str]) -> list[dict]:
  """--hp k=v1,v2 ... -> the Cartesian product over the recipe's defaults."""
  grid = {k: [v] for k, v in RECIPES[recipe].items()}
  for item in items:
    k, _, vals = item.partition("=")
    if k not in RECIPES[recipe]:
      raise SystemExit(f"--hp {k}: not a hyperparameter of {recipe} "
                       f"({', '.join(RECIPES[recipe]) or 'none'})")
    grid[k] = [float(v) for v in vals.split(",")]
  keys = list(grid)
  return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def print_table(rows: list[dict]) -> None:
  head = ("recipe", "hp", "set", "valid ndcg", "recall", "ndcg", "best ep", "epochs", "s")
  print(" | ".join(head))
  for r in rows:
    hp = ",".join(f"{k}={v:g}" for k, v in r["hp"].items()) or "-"
    print(" | ".join([r["recipe"], hp, " ".join(r["overrides"]) or "-",
                      f"{r['valid_ndcg@20']:.4f}", f"{r['recall@20']:.4f}",
                      f"{r['ndcg@20']:.4f}", str(r["best_epoch"]), str(r["epochs_run"]),
                      f"{r['seconds']:.0f}"]))
  print("(test Recall@20 / NDCG@20 at the epoch of the best valid NDCG@20)")


def summary(paths: list[str]) -> int:
  """Best run per recipe by valid NDCG@20 (test shown at that run), from --log files."""
  rows = []
  for path in paths:
    with open(path) as f:
      rows += [json.loads(line) for line in f if line.strip()]
  best = {}
  for r in rows:
    if r["recipe"] not in best or r["valid_ndcg@20"] > best[r["recipe"]]["valid_ndcg@20"]:
      best[r["recipe"]] = r
  print(f"# {len(rows)} runs; the valid-selected run of each recipe:")
  print_table(list(best.values()))
  print(json.dumps({"dataset": "ml-100k", "selection": "valid ndcg@20", "runs": len(rows),
                    "best": list(best.values())}))
  return 0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--recipe", choices=sorted(RECIPES))
  parser.add_argument("--hp", action="append", default=[], metavar="KEY=V1,V2",
                      help="recipe hyperparameter values (repeatable; product of all)")
  parser.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE", help="config override (repeatable)")
  parser.add_argument("--log", default=None, help="append each row as a JSON line here")
  parser.add_argument("--workdir", default="/tmp/contrastive_runs",
                      help="fit's run folders go here (one per run, overwritten)")
  parser.add_argument("--summary", nargs="+", metavar="LOG",
                      help="print the best run per recipe from these logs and exit")
  parser.add_argument("--data-dir", default=None, help="ml-100k folder; default: the cache")
  args = parser.parse_args(argv)
  if args.summary:
    return summary(args.summary)
  if not args.recipe:
    parser.error("--recipe or --summary is required")

  import jax

  from gnnrec_jax import configs
  from gnnrec_jax.config import apply_overrides
  from gnnrec_jax.data import load_dataset
  from gnnrec_jax.experiment import prepare

  dataset = load_dataset("ml-100k", data_dir=args.data_dir)
  config = apply_overrides(configs.get_config("lightgcn"), args.overrides)
  exp = prepare(config, dataset)
  rows = []
  for n, hp in enumerate(parse_hp(args.recipe, args.hp)):
    t0 = time.perf_counter()
    out = run_recipe(exp, args.recipe, hp, os.path.join(args.workdir, f"{args.recipe}_{n}"))
    row = {"recipe": args.recipe, "hp": hp, "overrides": args.overrides,
           "valid_ndcg@20": out["valid"], "recall@20": out["test"]["recall@20"],
           "ndcg@20": out["test"]["ndcg@20"], "best_epoch": out["best_epoch"],
           "epochs_run": out["epochs_run"], "history": out["history"],
           "seconds": round(time.perf_counter() - t0, 1)}
    rows.append(row)
    print(f"# {args.recipe} {hp} {args.overrides}: valid {out['valid']:.4f} test ndcg@20 "
          f"{row['ndcg@20']:.4f} ({row['seconds']:.0f} s)", file=sys.stderr, flush=True)
    if args.log:
      with open(args.log, "a") as f:
        f.write(json.dumps(row) + "\n")
  print_table(rows)
  print(json.dumps({"dataset": "ml-100k", "protocol": "random 80/10/10 seed 2020, full ranking",
                    "device": jax.devices()[0].platform, "rows": rows}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
