"""The one training loop: `fit(exp, workdir)` for every model, trained or closed-form.

Shape of a run:
  claim the workdir (`workdir.RunDir`: ownership, one writer, same run) -> the model
  (`gnnrec_jax.models.create`) -> trained models: for each epoch, shuffled static-shape batches
  of (user, positive item), one jitted `train_step` each (`rec.loss`, negatives sampled on
  device), validation every `eval_every` epochs (full ranking, train items masked), early stopping
  on `select_metric`, the best parameters restored; closed-form models: the fit (`rec.init`) and
  one validation, recorded as epoch 0 -> the test pass with train and valid items masked
  (`gnnrec_jax.evaluation.protocol`) -> metrics.json, curves.png.

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

import dataclasses
import math
import time
import warnings
from typing import Any, Callable

import jax
import numpy as np
import optax
from flax.training import train_state
from tqdm.auto import tqdm

from gnnrec_jax import models
from gnnrec_jax.config import Config
from gnnrec_jax.errors import CheckpointError, TrainingError
from gnnrec_jax.evaluation.protocol import evaluate_split
from gnnrec_jax.experiment import Experiment
from gnnrec_jax.models.base import Recommender
from gnnrec_jax.training import checkpoint, parallel
from gnnrec_jax.training.step import make_train_step
from gnnrec_jax.training.workdir import RunDir


class TrainState(train_state.TrainState):
  """Params and optimizer state; the rest of the run state travels in the checkpoint meta."""


@dataclasses.dataclass
class Fitted:
  """What `fit` returns: the model, its selected parameters, test metrics and the history."""

  rec: Recommender
  params: Any
  metrics: dict[str, Any]
  history: list[dict]


OPTIMIZERS = ("adam", "adamw", "sgd", "adagrad")
LR_SCHEDULES = ("constant", "cosine", "warmup_cosine")


def create_optimizer(config: Config, total_steps: int) -> optax.GradientTransformation:
  """Optax optimizer from the config (names are validated by `config.validate`)."""
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


def fit(exp: Experiment, workdir: str, *, resume: bool = False, overwrite: bool = False,
        progress: bool = True, extra_meta: dict | None = None,
        select: Callable[[dict], float] | None = None, devices: int = 1,
        model_parallel: int = 1) -> Fitted:
  """Trains (or fits) `exp.config.model` on `exp`, writing everything into `workdir`.

  Writes `config.json`, `run.json`, `history.jsonl` (one line per epoch), `latest.ckpt`
  (+ `.prev`), `best.ckpt`, `per_user_test.npz`, `metrics.json` and `curves.png`
  (`gnnrec_jax.training.workdir`).

  Args:
    exp: the prepared experiment (`gnnrec_jax.experiment.prepare`).
    workdir: the run folder (created; a folder that holds files of no gnnrec-jax run is refused).
    resume: continue the run in `workdir` from its newest intact `latest` checkpoint (from
      epoch 1 when it holds none yet); the result equals an uninterrupted run's.
    overwrite: start over in a workdir that holds another (or this) run, deleting its outputs.
    progress: show a progress bar.
    extra_meta: more fields for run.json (e.g. the CLI's dataset arguments).
    select: the early-stopping criterion, a function of the validation metrics (higher is
      better; keys as in `evaluate_split`, e.g. "warm/ndcg@20" when blocks are reported);
      default: `config.select_metric`. A library hook for benchmarks (the CLI uses the config).
    devices: train data-parallel over the first `devices` of `jax.devices()`
      (`gnnrec_jax.training.parallel`: global batches split over a mesh, receiver-partitioned
      propagation); 1 trains on the default device. Not part of the run's identity: a run may
      be resumed on another device count (the checkpoints hold host arrays).
    model_parallel: with devices > 1, row-shard the embedding tables and their optimizer state
      over this many devices (1: replicated).

  Returns:
    `Fitted(rec, params, metrics, history)`; metrics are the test metrics (keys like
    "recall@20", cold-start blocks as "cold/recall@20") plus "best_epoch" and "epochs_run".

  Raises:
    CheckpointError: the workdir is not ours, is in use, holds another run, or this one
      without `resume`/`overwrite`; no intact checkpoint to resume from (each file named).
    TrainingError: a non-finite loss (the message names the epoch and step; `latest.ckpt`
      stays at the last good epoch).
  """
  mesh = None
  if devices > 1:
    mesh = parallel.make_mesh(parallel.check_devices(devices, model_parallel),
                              model_parallel=model_parallel)
  # The saved config and fingerprint stay the experiment's own; only the graph layout differs.
  rec = models.create(exp if mesh is None else parallel.for_mesh(exp, mesh))
  with RunDir.open(workdir, exp, resume=resume, overwrite=overwrite,
                   extra_meta=extra_meta) as run, parallel.mesh_context(mesh):
    if resume and not checkpoint.checkpoint_paths(workdir, "latest"):
      # Killed before the first checkpoint: nothing to lose by starting over.
      warnings.warn(f"--resume: {workdir} holds no checkpoint yet; starting from epoch 1",
                    stacklevel=2)
      resume = False
    if not resume:
      run.clear()
    _cold_user_warning(exp)
    if rec.trainable:
      params, history, best_epoch, last_epoch = _train(rec, run, resume=resume,
                                                       progress=progress, select=select,
                                                       mesh=mesh)
    else:
      params, history = _fit_closed_form(rec, run)
      best_epoch = last_epoch = 0
    test, per_user = evaluate_split(rec, params, "test", return_per_user=True)
    metrics = {**test, "best_epoch": best_epoch, "epochs_run": last_epoch}
    run.write_per_user(per_user, "test")  # before metrics.json, which marks the run finished
    run.write_metrics(metrics)
    run.plot(history)
  return Fitted(rec, params, metrics, history)


def _fit_closed_form(rec: Recommender, run: RunDir):
  """The closed-form fit: `rec.init`, saved as best.ckpt, validated once as epoch 0."""
  exp = rec.exp
  t0 = time.perf_counter()
  params = jax.block_until_ready(rec.init(jax.random.key(exp.config.seed)))
  row = {"epoch": 0, "loss": 0.0, "fit_s": time.perf_counter() - t0}
  checkpoint.save(run.path, "best", {"params": params}, keep=1,
                  meta={"epoch": 0, "fingerprint": exp.fingerprint})
  if len(exp.split.valid):
    t1 = time.perf_counter()
    valid = evaluate_split(rec, params, "valid", blocks=False)
    row["eval_s"] = time.perf_counter() - t1
    row.update({f"valid/{k}": v for k, v in valid.items()})
  run.write_history([row])
  return params, [row]


def _train(rec: Recommender, run: RunDir, *, resume: bool, progress: bool, select=None,
           mesh=None):
  """The epoch loop of a trained model; returns (best params, history, best epoch, last epoch)."""
  exp, cfg = rec.exp, rec.config
  workdir = run.path
  base_key = jax.random.key(cfg.seed)
  params = rec.init(base_key)
  train = exp.split.train
  steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
  tx = create_optimizer(cfg, steps_per_epoch * max(cfg.epochs, 1))
  state = TrainState.create(apply_fn=None, params=params, tx=tx)
  early = {"best": -math.inf, "best_epoch": 0, "bad_evals": 0, "stopped": False}
  start_epoch = 1
  history: list[dict] = []
  if resume:
    target = {"params": state.params, "opt_state": state.opt_state, "step": state.step}
    saved, meta = checkpoint.load_latest_good(workdir, "latest", target,
                                              fingerprint=exp.fingerprint)
    early, last = _resume_state(meta)
    state = state.replace(params=saved["params"], opt_state=saved["opt_state"],
                          step=saved["step"])
    start_epoch = last + 1
    history = run.read_history(last)
  # Rewritten atomically: drops the rows of epochs after the checkpoint (a resume replays them).
  run.write_history(history)
  last_saved = start_epoch - 1  # the epoch of the newest intact `latest` checkpoint

  train_step = make_train_step(rec)
  if mesh is not None:
    train_step, state = parallel.distribute(rec, state, mesh)
  inputs = rec.inputs
  has_valid = len(exp.split.valid) > 0
  metric = cfg.select_metric
  label = "select" if select else metric
  select = select or (lambda m: m[metric])
  # Blocks in validation when the split withholds items (or the metric names a block).
  blocks = None if "/" not in metric else True
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
    if epoch % cfg.eval_every == 0:
      # No validation data (the LightGCN protocol): record the test curve, never select on it.
      part = "valid" if has_valid else "test"
      t1 = time.perf_counter()
      now = evaluate_split(rec, state.params, part, blocks=blocks if has_valid else False)
      row["eval_s"] = time.perf_counter() - t1
      row.update({f"{part}/{k}": v for k, v in now.items()})
      shown = select(now) if has_valid else now[metric.rpartition("/")[2]]
      bar.set_postfix(loss=f"{row['loss']:.4f}", **{f"{part}_{label}": f"{shown:.4f}"})
      if has_valid:
        if shown > early["best"]:
          early.update(best=float(shown), best_epoch=epoch, bad_evals=0)
          # Before `latest`: a checkpoint whose early-stopping state names epoch e as the best
          # must never exist without best.ckpt holding epoch e.
          checkpoint.save(workdir, "best", {"params": state.params}, keep=1,
                          meta={"epoch": epoch, "fingerprint": exp.fingerprint, "valid": now})
        else:
          early["bad_evals"] += 1
          early["stopped"] = early["bad_evals"] >= cfg.patience
    else:
      bar.set_postfix(loss=f"{row['loss']:.4f}")
    history.append(row)
    run.append_history(row)
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
    if best_meta.get("epoch") != early["best_epoch"]:
      raise CheckpointError(
          f"{best_meta['path']} holds epoch {best_meta.get('epoch')} but the run's best epoch "
          f"is {early['best_epoch']} (was it replaced by hand?); retrain with --overwrite")
    return best["params"], history, early["best_epoch"], last_epoch
  # No validation data (e.g. the LightGCN protocol): the last epoch's parameters.
  checkpoint.save(workdir, "best", {"params": state.params}, keep=1,
                  meta={"epoch": last_epoch, "fingerprint": exp.fingerprint})
  return state.params, history, last_epoch, last_epoch


def _resume_state(meta: dict) -> tuple[dict, int]:
  """(early-stopping state, epoch) from a `latest` checkpoint's meta, schema-checked."""
  path = meta.get("path", "latest.ckpt")
  epoch, early = meta.get("epoch"), meta.get("early_stopping")
  fields = {"best": (int, float), "best_epoch": int, "bad_evals": int, "stopped": bool}
  ok = isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0 and isinstance(
      early, dict) and all(isinstance(early.get(k), t) for k, t in fields.items())
  if not ok:
    raise CheckpointError(f"{path}: the header's epoch or early_stopping fields are missing or "
                          "of the wrong type (damaged or foreign file); pass --overwrite to "
                          "start over")
  return dict(early), epoch


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
