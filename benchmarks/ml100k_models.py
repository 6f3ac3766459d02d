"""ml-100k results table: every model with its default config, plus a popularity baseline.

  GNNREC_JAX_CACHE=/tmp/h1cache python benchmarks/ml100k_models.py \
      [--models lightgcn,mf,...] [--set key=value ...] [--workdir /tmp/ml100k_runs] \
      [--log benchmarks/ml100k_runs.jsonl]

Protocol (RecBole's, our default config): random 80/10/10 split per user with seed 2020, every
rating a positive, full ranking with train items masked (train and valid at test time), the
epoch kept by valid NDCG@20. Each model runs through `gnnrec_jax.training.fit.run` with
`gnnrec_jax.configs.get_config(model)`; `--set` overrides apply to every model named in
`--models`, which is how the tuning log (benchmarks/ml100k_tuning.md) was produced, one setting
per call. Runs are sequential: the machine is shared and parallel runs only slow each other.

"pop" ranks items by their number of train interactions (no training); it is the floor every
model must clear. "MODEL+full" / "MODEL+fullcos" are prototypes of a loss the library lacks: a
softmax over the whole catalogue (1,682 items: a [B, I] matmul per step, cheaper than gathering
[B, K, d] negatives), optionally on cosine scores; see `run_full_softmax`.

Prints a human table (valid NDCG@20 of the kept epoch, test metrics @20, best epoch, epochs
run, wall seconds), then ONE JSON line last: {"dataset", "protocol", "rows": [...]}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

MODELS = ("pop", "mf", "lightgcn", "ngcf", "gat", "softmax_gnn", "ease")
# Prototypes of options the library does not have yet (measured here, proposed in the report):
# "<model>+full" trains <model> with a softmax over the whole catalogue instead of sampled
# negatives; "<model>+fullcos" also L2-normalises the final vectors (cosine scores).
PROTOTYPES = ("full", "fullcos")
METRICS = ("recall", "ndcg", "precision", "hit", "mrr", "coverage")


def pop_scores(params, users):
  """Every user gets the same scores: the items' train counts ([I]), broadcast to [B, I]."""
  import jax.numpy as jnp
  (counts,) = params
  return jnp.broadcast_to(counts, (users.shape[0], counts.shape[0]))


def run_pop(exp, ks) -> dict:
  """Popularity baseline on the experiment's split: valid and test metrics, no training."""
  from gnnrec_jax.evaluation import evaluate
  train = exp.split.train
  counts = np.bincount(train.item, minlength=exp.num_items).astype(np.float32)
  common = dict(num_users=exp.num_users, num_items=exp.num_items, ks=ks)
  valid = evaluate.evaluate_full_ranking(pop_scores, (counts,), exclude=[train],
                                         target=exp.split.valid, **common)
  test = evaluate.evaluate_full_ranking(pop_scores, (counts,), exclude=[train, exp.split.valid],
                                        target=exp.split.test, **common)
  return {"valid": valid, "test": test, "best_epoch": 0, "epochs_run": 0}


def full_softmax_loss(*, user, items, pos_item, user_ego, pos_ego, l2, temperature, mask,
                      cosine):
  """Softmax over all I items: -log softmax(u . V^T / tau)[pos], with LightGCN's L2 term.

  Args:
    user: [B, d] final user vectors; items: [I, d] final item vectors; pos_item: [B] item ids.
    user_ego, pos_ego: [B, d] layer-0 vectors of the users and positives (the L2 term).
    mask: [B], 0 for padding rows. cosine: L2-normalise `user` and `items` first.
  """
  import jax
  import jax.numpy as jnp
  if cosine:
    user = user / jnp.maximum(jnp.linalg.norm(user, axis=-1, keepdims=True), 1e-12)
    items = items / jnp.maximum(jnp.linalg.norm(items, axis=-1, keepdims=True), 1e-12)
  logits = user @ items.T / temperature                                   # [B, I]
  log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), pos_item[:, None], 1)[:, 0]
  count = jnp.maximum(jnp.sum(mask), 1.0)
  nce = -jnp.sum(mask * log_prob) / count
  reg = jnp.sum(mask * (jnp.sum(user_ego ** 2, -1) + jnp.sum(pos_ego ** 2, -1))) / 2 / count
  return nce + l2 * reg


def run_full_softmax(config, exp, *, cosine: bool) -> dict:
  """Trains `config.model` with `full_softmax_loss`; early stopping as the trainer does it.

  Same batches (`train.epoch_batches`), optimizer, evaluation and stopping rule (valid
  `select_metric` every `eval_every` epochs, `patience` evaluations) as `gnnrec_jax.training.fit.run`;
  only the loss differs. The best parameters are kept in memory (no checkpoints).
  """
  import functools
  import math

  import jax
  import optax

  from gnnrec_jax.training import fit as train
  cfg = exp.config
  model, params, inputs = train.init_model(exp)
  steps = math.ceil(len(exp.split.train) / cfg.batch_size)
  tx = train.create_optimizer(cfg, steps * cfg.epochs)
  opt_state = tx.init(params)
  num_users, num_items = exp.num_users, exp.num_items

  def loss_fn(params, batch, inputs, rng):
    final, ego = train._apply(model, params, inputs, train=True, rng=rng)
    u, p = batch["user"], batch["item"] + num_users
    return full_softmax_loss(user=final[u], items=final[num_users:num_users + num_items],
                             pos_item=batch["item"], user_ego=ego[u], pos_ego=ego[p],
                             l2=cfg.l2, temperature=cfg.softmax_temperature,
                             mask=batch["mask"], cosine=cosine)

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, opt_state, batch, inputs, rng):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch, inputs, rng)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  embed = train.make_embed_fn(model, num_users=num_users, num_items=num_items)
  if cosine:  # rank by cosine, as trained
    base_embed = embed
    def embed(params, inputs):
      import jax.numpy as jnp
      us, its = base_embed(params, inputs)
      return (us / jnp.maximum(jnp.linalg.norm(us, axis=-1, keepdims=True), 1e-12),
              its / jnp.maximum(jnp.linalg.norm(its, axis=-1, keepdims=True), 1e-12))
  key = jax.random.key(cfg.seed)
  best, best_epoch, best_params, bad, epoch = -1.0, 0, params, 0, 0
  history = []
  for epoch in range(1, cfg.epochs + 1):
    for s, batch in enumerate(train.epoch_batches(exp.split.train, batch_size=cfg.batch_size,
                                                  seed=cfg.seed, epoch=epoch)):
      params, opt_state, loss = step(params, opt_state, batch, inputs,
                                     jax.random.fold_in(jax.random.fold_in(key, epoch), s))
    if epoch % cfg.eval_every:
      continue
    valid = train.evaluate_params(embed, params, inputs, exp, target=exp.split.valid,
                                  exclude=[exp.split.train])
    history.append(round(valid[cfg.select_metric], 4))
    if valid[cfg.select_metric] > best:
      best, best_epoch, bad = valid[cfg.select_metric], epoch, 0
      best_params = jax.tree.map(lambda x: x.copy(), params)
    else:
      bad += 1
      if bad >= cfg.patience:
        break
  print(f"# valid {cfg.select_metric} per evaluation: {history}", file=sys.stderr, flush=True)
  test = train.evaluate_params(embed, best_params, inputs, exp, target=exp.split.test,
                               exclude=[exp.split.train, exp.split.valid])
  return {"test": test, "valid": best, "best_epoch": best_epoch, "epochs_run": epoch}


def best_valid(workdir: str, metric: str) -> float | None:
  """The best valid `metric` in a run's history.jsonl (the epoch the trainer kept)."""
  path = os.path.join(workdir, "history.jsonl")
  if not os.path.exists(path):
    return None
  values = []
  with open(path) as f:
    for line in f:
      row = json.loads(line)
      if f"valid/{metric}" in row:
        values.append(row[f"valid/{metric}"])
  return max(values) if values else None


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default=",".join(MODELS),
                      help=f"comma-separated, from {', '.join(MODELS)}; MODEL+full or "
                      "MODEL+fullcos for the full-softmax prototypes")
  parser.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE", help="config override for every model (repeatable)")
  parser.add_argument("--workdir", default="/tmp/ml100k_runs", help="one subfolder per model")
  parser.add_argument("--data-dir", default=None, help="ml-100k folder; default: the cache")
  parser.add_argument("--log", default=None, help="append each row as a JSON line here")
  args = parser.parse_args(argv)
  names = [m.strip() for m in args.models.split(",") if m.strip()]
  unknown = sorted(n for n in names if n.split("+")[0] not in MODELS
                   or ("+" in n and n.split("+", 1)[1] not in PROTOTYPES))
  if unknown:
    parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")

  import jax

  from gnnrec_jax import configs
  from gnnrec_jax.training import fit as train
  from gnnrec_jax.config import apply_overrides
  from gnnrec_jax.data import load_dataset
  from gnnrec_jax.experiment import prepare

  dataset = load_dataset("ml-100k", data_dir=args.data_dir)
  rows = []
  for name in names:
    base, _, proto = name.partition("+")
    config = apply_overrides(configs.get_config("lightgcn" if base == "pop" else base),
                             args.overrides)
    workdir = os.path.join(args.workdir, name)
    t0 = time.perf_counter()
    if base == "pop":
      exp = prepare(config, dataset)
      out = run_pop(exp, tuple(int(k) for k in config.topk))
      test, valid = out["test"], out["valid"]["ndcg@20"]
    elif proto:
      out = run_full_softmax(config, prepare(config, dataset), cosine=proto == "fullcos")
      test, valid = out["test"], out["valid"]
    else:
      test = train.run(config, dataset, workdir, overwrite=True, progress=False)
      out = test
      valid = best_valid(workdir, "ndcg@20")
    seconds = time.perf_counter() - t0
    row = {"model": name, "overrides": args.overrides, "valid_ndcg@20": valid,
           **{f"{m}@20": test[f"{m}@20"] for m in METRICS},
           "best_epoch": out["best_epoch"], "epochs_run": out["epochs_run"],
           "seconds": round(seconds, 1)}
    rows.append(row)
    print(f"# {name}: valid ndcg@20 {valid:.4f} test ndcg@20 {test['ndcg@20']:.4f} "
          f"({seconds:.0f} s)", file=sys.stderr, flush=True)
    if args.log:
      with open(args.log, "a") as f:
        f.write(json.dumps(row) + "\n")

  head = ("model", "valid ndcg", *METRICS, "best ep", "epochs", "seconds")
  print(" ".join(f"{h:>11}" for h in head))
  for r in rows:
    cells = [r["model"], f"{r['valid_ndcg@20']:.4f}",
             *(f"{r[f'{m}@20']:.4f}" for m in METRICS),
             str(r["best_epoch"]), str(r["epochs_run"]), f"{r['seconds']:.0f}"]
    print(" ".join(f"{c:>11}" for c in cells))
  print("(test metrics @20; valid ndcg = valid NDCG@20 of the kept epoch)")
  print(json.dumps({"dataset": "ml-100k", "protocol": "random 80/10/10 seed 2020, full ranking",
                    "device": jax.devices()[0].platform, "overrides": args.overrides,
                    "rows": rows}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
