"""The training loop: one jitted `train_step`, full-ranking validation, early stopping, resume.

Shape of a run (`run(config, dataset, workdir)`):
  prepare (split, graph, features) -> init params -> for each epoch: shuffled static-shape batches
  of (user, positive item), negatives sampled on device, `train_step` -> validation every
  `eval_every` epochs (full ranking, train items masked) -> early stopping on `select_metric` ->
  the best parameters restored -> test pass with train and valid items masked.

Every epoch's randomness comes from `fold_in(key(seed), epoch)` and a host permutation seeded by
`(seed, epoch)`, so a run resumed from a checkpoint replays exactly the batches and negatives that
an uninterrupted run would have drawn.

Crash safety (a `kill -9` at any instant, then `--resume`, gives the metrics of an uninterrupted
run, bit for bit on CPU). Per epoch the order of writes is: the history row (appended, fsynced) ->
`best.ckpt` (when validation improved) -> `latest.ckpt` (params, optimizer state, step, early
stopping state). Every file but the history is replaced atomically. A resume reads the newest
intact `latest` checkpoint (falling back to `latest.prev.ckpt`, with a warning), drops history rows
of later epochs (and a row cut mid-write), and replays from the next epoch; a `best.ckpt` newer
than the checkpoint is rewritten by the replay, since the replay draws the same numbers.
"""
from __future__ import annotations

import functools
import json
import math
import os
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from tqdm.auto import tqdm

from gnnrec_jax.training import checkpoint, losses, sampling
from gnnrec_jax.evaluation import evaluate
from gnnrec_jax import fileio
from gnnrec_jax.models import embedding as models
from gnnrec_jax.config import Config
from gnnrec_jax.data.types import Dataset
from gnnrec_jax.errors import CheckpointError, TrainingError
from gnnrec_jax.experiment import Experiment, prepare


class TrainState(train_state.TrainState):
  """Params and optimizer state; the rest of the run state travels in the checkpoint meta."""


def create_optimizer(config: Config, total_steps: int) -> optax.GradientTransformation:
  """Optax optimizer from the config; raises ConfigError (via validate) for unknown names."""
  if config.lr_schedule == "constant":
    lr = config.lr
  elif config.lr_schedule == "cosine":
    lr = optax.cosine_decay_schedule(config.lr, max(total_steps, 1))
  else:  # warmup_cosine: 5% linear warm-up, a common default for Adam on embeddings
    lr = optax.warmup_cosine_decay_schedule(0.0, config.lr, max(total_steps // 20, 1),
                                            max(total_steps, 2))
  opt = {
      "adam": lambda: optax.adam(lr),
      "adamw": lambda: optax.adamw(lr, weight_decay=config.weight_decay),
      "sgd": lambda: optax.sgd(lr),
      "adagrad": lambda: optax.adagrad(lr),
  }[config.optimizer]()
  if config.grad_clip > 0:
    opt = optax.chain(optax.clip_by_global_norm(config.grad_clip), opt)
  return opt


def device_inputs(exp: Experiment) -> dict[str, Any]:
  """The arrays every jitted function reads, moved to the device once and passed as arguments.

  When some users or items have no train interaction (cold-start splits), two more arrays:
  `has_id` [U+I] bool (cold nodes are embedded without their never-trained ID vectors, in
  validation as at test time) and `neg_pool` [I_warm] int32 (negatives are drawn from items seen
  in train only: a cold item drawn as a negative would teach the text path to push every cold
  item down, which measurably hurts the cold block).
  """
  from gnnrec_jax.evaluation import coldstart
  features = None if exp.features is None else jnp.asarray(exp.features)
  feature_mask = None if exp.feature_mask is None else jnp.asarray(exp.feature_mask)
  inputs = {"graph": jax.tree.map(jnp.asarray, exp.graph), "features": features,
            "feature_mask": feature_mask, "has_id": None, "neg_pool": None}
  user_in, item_in = coldstart.train_presence(exp.split.train, exp.num_users, exp.num_items)
  if not (user_in.all() and item_in.all()):
    inputs["has_id"] = jnp.asarray(np.concatenate([user_in, item_in]))
    inputs["neg_pool"] = jnp.asarray(np.flatnonzero(item_in).astype(np.int32))
  return inputs


def _apply(model, params, inputs, *, train, rng=None):
  rngs = {"dropout": rng} if rng is not None else None
  return model.apply({"params": params}, inputs["graph"], inputs["features"],
                     feature_mask=inputs["feature_mask"], has_id=inputs.get("has_id"),
                     train=train, rngs=rngs)


def make_train_step(model, config: Config, *, num_users: int, num_items: int):
  """Returns `train_step(state, batch, inputs, rng) -> (state, metrics)`, jitted.

  `batch` holds `user`, `item` ([B] int32) and `mask` ([B] float32, 0 for padding rows of the
  last batch), so every step has the same shape and compiles once.
  """

  def loss_fn(params, batch, inputs, rng):
    drop_rng, neg_rng = jax.random.split(rng)
    final, ego = _apply(model, params, inputs, train=True, rng=drop_rng)
    pool = inputs.get("neg_pool")
    neg = sampling.sample_negatives(
        neg_rng, batch_users=batch["user"],
        num_items=num_items if pool is None else pool.shape[0],  # static: the pool's length
        num_negatives=config.num_negatives)  # [B, K]
    if pool is not None:
      neg = pool[neg]
    u, p = batch["user"], batch["item"] + num_users
    n = neg + num_users
    if config.loss == "bpr":
      return losses.bpr_loss(user=final[u], pos=final[p], neg=final[n],  # [B, K, d]
                             user_ego=ego[u], pos_ego=ego[p], neg_ego=ego[n],
                             l2=config.l2, mask=batch["mask"])
    return losses.sampled_softmax_loss(user=final[u], pos=final[p], neg=final[n],
                                       user_ego=ego[u], pos_ego=ego[p], neg_ego=ego[n],
                                       l2=config.l2, temperature=config.softmax_temperature,
                                       mask=batch["mask"])

  @functools.partial(jax.jit, donate_argnums=(0,))
  def train_step(state, batch, inputs, rng):
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, inputs, rng)
    state = state.apply_gradients(grads=grads)
    return state, {"loss": loss, **aux}

  return train_step


def make_embed_fn(model, *, num_users: int, num_items: int):
  """Returns jitted `embed(params, inputs) -> (user_emb [U, d], item_emb [I, d])` for ranking."""

  @jax.jit
  def embed(params, inputs):
    final, _ = _apply(model, params, inputs, train=False)
    return final[:num_users], final[num_users:num_users + num_items]

  return embed


def epoch_batches(train, *, batch_size: int, seed: int, epoch: int):
  """Yields shuffled static-shape batches of (user, item) positives with a padding mask."""
  n = len(train)
  order = np.random.default_rng([seed, epoch]).permutation(n)
  steps = math.ceil(n / batch_size)
  pad = steps * batch_size - n
  order = np.concatenate([order, np.zeros(pad, order.dtype)])
  mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
  for s in range(steps):
    sl = slice(s * batch_size, (s + 1) * batch_size)
    idx = order[sl]
    yield {"user": train.user[idx], "item": train.item[idx], "mask": mask[sl]}


def _append_line(path: str, row: dict) -> None:
  # fsynced before the epoch's checkpoint is written, so a checkpoint never survives a power
  # loss that its history rows do not (a plain kill loses nothing already written).
  with open(path, "a") as f:
    f.write(json.dumps(row) + "\n")
    f.flush()
    os.fsync(f.fileno())


def _read_history(path: str, upto_epoch: int) -> list[dict]:
  if not os.path.exists(path):
    return []
  rows = []
  with open(path) as f:
    for line in f:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        break  # a line cut by a crash: everything after it is redone
      if row.get("epoch", 0) <= upto_epoch:
        rows.append(row)
  return rows


def _check_workdir(workdir: str, exp: Experiment, resume: bool, overwrite: bool) -> None:
  """Refuses to mix runs: a workdir holds one dataset+config (compared by fingerprint).

  Raises:
    CheckpointError: `resume` without a run, a run of another dataset or config, or this run
      again without `resume` or `overwrite`.
  """
  run_path = os.path.join(workdir, "run.json")
  if not os.path.exists(run_path):
    if resume:
      raise CheckpointError(f"--resume: {workdir} holds no run to resume (no run.json)")
    return
  if overwrite:
    return
  try:
    with open(run_path) as f:
      old = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise CheckpointError(f"{run_path}: unreadable ({e}); pass --overwrite to start over"
                          ) from None
  if old.get("fingerprint") != exp.fingerprint:
    # Through JSON, as run.json stores it: tuples become lists and compare equal.
    old_cfg, new_cfg = old.get("config", {}), json.loads(json.dumps(exp.config.to_dict()))
    diff = sorted(k for k in set(old_cfg) | set(new_cfg) if old_cfg.get(k) != new_cfg.get(k))
    what = f"config keys differ: {', '.join(diff)}" if diff else (
        f"dataset differs ({old.get('dataset')} vs {exp.dataset.name}, or another split)")
    raise CheckpointError(f"{workdir} belongs to a different run ({what}); "
                          "use another --workdir or pass --overwrite")
  if not resume:
    raise CheckpointError(f"{workdir} already holds this run; pass --resume to continue it "
                          "or --overwrite to start over")


def evaluate_params(embed, params, inputs, exp: Experiment, *, target,
                    exclude) -> dict[str, float]:
  user_emb, item_emb = embed(params, inputs)
  return evaluate.evaluate_embeddings(
      user_emb, item_emb, num_users=exp.num_users, num_items=exp.num_items, exclude=exclude,
      target=target, ks=tuple(int(k) for k in exp.config.topk),
      batch_size=exp.config.eval_batch_size)


def evaluate_test(model, embed, params, inputs, exp: Experiment):
  """Test metrics (train and valid items masked) and, when the test set holds items or users
  never seen in train, the cold-start blocks as flat keys ("warm/ndcg@20", "cold/recall@20",
  "cold_users/..."). Cold nodes are then embedded without their (untrained) ID vectors, in
  "all" too; see `gnnrec_jax.evaluation.coldstart`.
  """
  from gnnrec_jax.evaluation import coldstart
  test_part, exclude = exp.split.test, [exp.split.train, exp.split.valid]
  user_in, item_in = coldstart.train_presence(exp.split.train, exp.num_users, exp.num_items)
  if user_in[test_part.user].all() and item_in[test_part.item].all():
    return evaluate_params(embed, params, inputs, exp, target=test_part, exclude=exclude), {}
  blocks = coldstart.evaluate_blocks(exp, model, params, inputs, target=test_part,
                                     exclude=exclude)
  test = blocks.pop("all")
  test.pop("num_pairs", None)
  return test, {f"{b}/{k}": v for b, m in blocks.items() for k, v in m.items()}


def init_model(exp: Experiment):
  """Creates the model and its initial parameters (deterministic in `config.seed`)."""
  cfg = exp.config
  feature_dim = None if exp.features is None else int(exp.features.shape[1])
  model = models.create_model(cfg, num_users=exp.num_users, num_items=exp.num_items,
                              feature_dim=feature_dim)
  inputs = device_inputs(exp)
  init_key = jax.random.fold_in(jax.random.key(cfg.seed), -1 & 0x7FFFFFFF)
  variables = model.init({"params": init_key, "dropout": init_key}, inputs["graph"],
                         inputs["features"], feature_mask=inputs["feature_mask"], train=False)
  return model, variables["params"], inputs


def _cold_user_warning(exp: Experiment) -> None:
  """Warns about evaluated users without train interactions (documented policy: kept).

  Such users (possible with predefined splits that list them in user metadata, or cold_item
  splits) have no edges, so their final vector is their layer-0 vector alone: finite, but an ID
  vector that never appears in a batch keeps its random initialisation (chance-level ranking);
  text features (`text_features=item+user_profile`) give them signal. They stay in the
  evaluation because a cold user is a real user; a benchmark that must exclude them (as
  protocols where every user has train data do) filters its split first.
  """
  has_train = np.zeros(exp.num_users, bool)
  has_train[exp.split.train.user] = True
  held_out = [p.user for p in (exp.split.valid, exp.split.test) if len(p)]
  if not held_out:
    return
  cold = np.unique(np.concatenate(held_out))
  cold = cold[~has_train[cold]]
  if len(cold):
    token = exp.dataset.users.tokens[int(cold[0])]
    warnings.warn(f"{len(cold)} valid/test users have no train interactions (e.g. user "
                  f"{token!r}); they are evaluated from their layer-0 vectors alone",
                  stacklevel=3)


def _clear_run_files(workdir: str) -> None:
  """Removes a previous run's outputs, so that a fresh run can never fall back to them."""
  for name in ("latest", "best"):
    for path in checkpoint.checkpoint_paths(workdir, name):
      path.unlink()
  for name in ("metrics.json", "history.jsonl", "curves.png"):
    path = os.path.join(workdir, name)
    if os.path.exists(path):
      os.remove(path)


def run(config: Config, dataset: Dataset, workdir: str, *, resume: bool = False,
        overwrite: bool = False, progress: bool = True, exp: Experiment | None = None,
        extra_meta: dict | None = None) -> dict[str, Any]:
  """Trains (or fits) `config.model` on `dataset`, writing everything into `workdir`.

  Writes `config.json`, `run.json` (fingerprint, dataset, extra_meta such as the CLI's dataset
  arguments), `history.jsonl` (one line per epoch), `latest.ckpt` (+ `.prev`), `best.ckpt`,
  `metrics.json` and `curves.png`. Returns the test metrics (keys like "recall@20").

  Args:
    resume: continue the run in `workdir` from its newest intact `latest` checkpoint (from
      epoch 1 when it holds none yet); the result equals an uninterrupted run's.
    overwrite: start over in a workdir that holds another (or this) run, deleting its outputs.

  Raises:
    CheckpointError: the workdir holds another run, or this one without `resume`/`overwrite`;
      no intact checkpoint to resume from (each unusable file is named).
    TrainingError: a non-finite loss (the message names the epoch and step; `latest.ckpt`
      stays at the last good epoch).
  """
  exp = exp or prepare(config, dataset)
  cfg = exp.config
  os.makedirs(workdir, exist_ok=True)
  _check_workdir(workdir, exp, resume, overwrite)
  if resume and not checkpoint.checkpoint_paths(workdir, "latest"):
    # Killed before the first checkpoint: nothing to lose by starting over.
    warnings.warn(f"--resume: {workdir} holds no checkpoint yet; starting from epoch 1",
                  stacklevel=2)
    resume = False
  if not resume:
    _clear_run_files(workdir)
  fileio.write_json(os.path.join(workdir, "config.json"), cfg.to_dict())
  fileio.write_json(os.path.join(workdir, "run.json"), {
      "fingerprint": exp.fingerprint, "dataset": dataset.name, "config": cfg.to_dict(),
      "num_users": exp.num_users, "num_items": exp.num_items,
      "split_sizes": exp.split.sizes(), **(extra_meta or {})})
  _cold_user_warning(exp)
  if cfg.model == "ease":
    from gnnrec_jax.models import ease_runner  # closed form: no epochs, no optimizer
    return ease_runner.run(exp, workdir)

  model, params, inputs = init_model(exp)
  train = exp.split.train
  steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
  tx = create_optimizer(cfg, steps_per_epoch * max(cfg.epochs, 1))
  state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
  target = {"params": state.params, "opt_state": state.opt_state, "step": state.step}
  early = {"best": -math.inf, "best_epoch": 0, "bad_evals": 0, "stopped": False}
  start_epoch = 1
  history_path = os.path.join(workdir, "history.jsonl")
  history: list[dict] = []
  if resume:
    saved, meta = checkpoint.load_latest_good(workdir, "latest", target,
                                              fingerprint=exp.fingerprint)
    state = state.replace(params=saved["params"], opt_state=saved["opt_state"],
                          step=saved["step"])
    early, start_epoch = meta["early_stopping"], int(meta["epoch"]) + 1
    history = _read_history(history_path, int(meta["epoch"]))
  # Rewritten atomically: drops the rows of epochs after the checkpoint (a resume replays them).
  fileio.write_atomic(history_path, "".join(json.dumps(r) + "\n" for r in history))
  last_saved = start_epoch - 1  # the epoch of the newest intact `latest` checkpoint

  train_step = make_train_step(model, cfg, num_users=exp.num_users, num_items=exp.num_items)
  embed = make_embed_fn(model, num_users=exp.num_users, num_items=exp.num_items)
  has_valid = len(exp.split.valid) > 0
  base_key = jax.random.key(cfg.seed)
  metric = cfg.select_metric
  bar = tqdm(range(start_epoch, cfg.epochs + 1), disable=not progress, desc=cfg.model,
             unit="epoch", initial=start_epoch - 1, total=cfg.epochs)
  last_epoch = start_epoch - 1
  for epoch in bar:
    if early["stopped"]:
      break
    t0 = time.perf_counter()
    epoch_key = jax.random.fold_in(base_key, epoch)
    step_losses = []
    for step, batch in enumerate(epoch_batches(train, batch_size=cfg.batch_size,
                                               seed=cfg.seed, epoch=epoch)):
      state, m = train_step(state, batch, inputs, jax.random.fold_in(epoch_key, step))
      step_losses.append(m["loss"])  # kept on device: no host sync per step
    # Checked once per epoch, not per step: a host sync per step stalls the dispatch pipeline,
    # and a NaN wastes at most the rest of its epoch.
    step_losses = np.asarray(jax.device_get(step_losses), np.float64)  # [steps]
    if not np.isfinite(step_losses).all():
      # Nothing of this epoch has been written: latest.ckpt stays at the last good epoch.
      bad = int(np.argmax(~np.isfinite(step_losses)))
      kept = (f"the last good checkpoint (epoch {last_saved}) is {workdir}/latest.ckpt"
              if last_saved else "no checkpoint was written before it")
      raise TrainingError(
          f"non-finite loss ({step_losses[bad]}) at epoch {epoch}, step {bad}; training stopped "
          f"and {kept} (try a lower lr, grad_clip or temperature)")
    row = {"epoch": epoch, "loss": float(step_losses.mean()), "train_s": time.perf_counter() - t0}
    if has_valid and epoch % cfg.eval_every == 0:
      t1 = time.perf_counter()
      valid = evaluate_params(embed, state.params, inputs, exp, target=exp.split.valid,
                              exclude=[train])
      row["eval_s"] = time.perf_counter() - t1
      row.update({f"valid/{k}": v for k, v in valid.items()})
      if valid[metric] > early["best"]:
        early.update(best=float(valid[metric]), best_epoch=epoch, bad_evals=0)
        # Before `latest`: a checkpoint whose early-stopping state names epoch e as the best
        # must never exist without best.ckpt holding epoch e.
        checkpoint.save(workdir, "best", {"params": state.params}, keep=1,
                        meta={"epoch": epoch, "fingerprint": exp.fingerprint, "valid": valid})
      else:
        early["bad_evals"] += 1
        early["stopped"] = early["bad_evals"] >= cfg.patience
      bar.set_postfix(loss=f"{row['loss']:.4f}", **{metric: f"{valid[metric]:.4f}"})
    elif not has_valid and epoch % cfg.eval_every == 0:
      # No validation data (the LightGCN protocol): record the test curve, never select on it.
      t1 = time.perf_counter()
      test_now = evaluate_params(embed, state.params, inputs, exp, target=exp.split.test,
                                 exclude=[train])
      row["eval_s"] = time.perf_counter() - t1
      row.update({f"test/{k}": v for k, v in test_now.items()})
      bar.set_postfix(loss=f"{row['loss']:.4f}", **{f"test_{metric}": f"{test_now[metric]:.4f}"})
    else:
      bar.set_postfix(loss=f"{row['loss']:.4f}")
    history.append(row)
    _append_line(history_path, row)
    last_epoch = epoch
    if epoch % cfg.checkpoint_every == 0 or early["stopped"] or epoch == cfg.epochs:
      checkpoint.save(workdir, "latest",
                      {"params": state.params, "opt_state": state.opt_state, "step": state.step},
                      meta={"epoch": epoch, "early_stopping": early,
                            "fingerprint": exp.fingerprint})
      last_saved = epoch
  bar.close()

  if has_valid and early["best_epoch"] > 0:
    best, best_meta = checkpoint.load(workdir, "best", {"params": state.params},
                                      fingerprint=exp.fingerprint)
    if int(best_meta["epoch"]) != int(early["best_epoch"]):
      raise CheckpointError(
          f"{best_meta['path']} holds epoch {best_meta['epoch']} but the run's best epoch is "
          f"{early['best_epoch']} (was it replaced by hand?); retrain with --overwrite")
    params = best["params"]
  else:  # no validation data (e.g. the LightGCN protocol): the last epoch's parameters
    params = state.params
    checkpoint.save(workdir, "best", {"params": params}, keep=1,
                    meta={"epoch": last_epoch, "fingerprint": exp.fingerprint})
  test, blocks = evaluate_test(model, embed, params, inputs, exp)
  result = {**test, **blocks, "best_epoch": early["best_epoch"] if has_valid else last_epoch,
            "epochs_run": last_epoch}
  fileio.write_json(os.path.join(workdir, "metrics.json"), result)
  try:
    from gnnrec_jax.training import plots
    plots.plot_history(history, os.path.join(workdir, "curves.png"), select_metric=metric)
  except ImportError:
    pass
  return result
