"""Repeated seeds: one run per seed on one split, and their mean ± standard deviation.

`train --seeds 1,2,3 --workdir G` trains G/seed-1, G/seed-2, G/seed-3 (each an ordinary run
folder, written by `fit`). Only the model's seed changes: the split is the base config's
(`split_seed` fixed to it), so every seed ranks the same held-out users and `compare` can pair
users across groups by their per-user mean over seeds. `G/group.json` marks the folder
(format, seeds, base config); `G/summary.json` holds each seed's test metrics, the mean and the
sample standard deviation (ddof = 1).

Resumable: the same command with `--resume` reads the metrics of finished seeds, resumes an
interrupted one from its last checkpoint and starts the rest.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable

from gnnrec_jax import fileio
from gnnrec_jax.config import Config
from gnnrec_jax.errors import CheckpointError, ConfigError
from gnnrec_jax.evaluation.report import mean_std
from gnnrec_jax.training import workdir as workdir_lib

GROUP_FORMAT = "gnnrec-jax-seeds"


def parse_seeds(text: str) -> list[int]:
  """"1,2,3" -> [1, 2, 3]; ConfigError for anything else (each seed in the config's range)."""
  from gnnrec_jax.config import check_field, field_specs
  try:
    seeds = [int(t) for t in text.split(",") if t.strip()]
  except ValueError:
    raise ConfigError(f"--seeds {text!r}: expected comma-separated integers, e.g. 1,2,3") from None
  if not seeds:
    raise ConfigError("--seeds: give at least one seed, e.g. 1,2,3")
  if len(set(seeds)) != len(seeds):
    raise ConfigError(f"--seeds {text!r}: a seed is listed twice")
  for s in seeds:
    msg = check_field(field_specs()["seed"], s)
    if msg:
      raise ConfigError(f"--seeds: {msg}")
  return seeds


def seed_dir(group: str, seed: int) -> str:
  return os.path.join(group, f"seed-{seed}")


def is_group(path: str) -> bool:
  return os.path.isfile(os.path.join(path, "group.json"))


def read_group(path: str) -> dict:
  """The group's `group.json`, schema-checked (CheckpointError naming the file and field)."""
  file = os.path.join(path, "group.json")
  try:
    with open(file, "rb") as f:
      group = json.loads(f.read().decode("utf-8"))
  except FileNotFoundError:
    raise CheckpointError(f"{path} is not a seeds group (no group.json)") from None
  except (UnicodeDecodeError, json.JSONDecodeError):
    raise CheckpointError(f"{file}: not valid JSON (damaged file?)") from None
  if not isinstance(group, dict) or group.get("format") != GROUP_FORMAT:
    raise CheckpointError(f"{file}: field format is not {GROUP_FORMAT!r}")
  seeds = group.get("seeds")
  if not (isinstance(seeds, list) and seeds and all(
      isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
    raise CheckpointError(f"{file}: field seeds must be a non-empty list of integers")
  if not isinstance(group.get("config"), dict):
    raise CheckpointError(f"{file}: field config must be a JSON object")
  return group


def _claim(group: str, seeds: list[int], base: Config, *, resume: bool, overwrite: bool,
           write: bool = True) -> None:
  """Creates or checks `group.json`: a folder of ours, the same seeds and base config."""
  file = os.path.join(group, "group.json")
  record = {"format": GROUP_FORMAT, "seeds": seeds,
            "config": json.loads(json.dumps(base.to_dict()))}
  if os.path.exists(group) and not os.path.isdir(group):
    raise CheckpointError(f"workdir {group} exists and is not a folder")
  if os.path.isdir(group) and not os.path.exists(file):
    entries = sorted(e for e in os.listdir(group) if e != workdir_lib.LOCK_NAME)
    if entries:
      raise CheckpointError(f"workdir {group} is not empty and holds no seeds group "
                            f"({', '.join(entries[:5])}); use a new or empty folder")
  elif os.path.exists(file) and not overwrite:
    old = read_group(group)
    if old["seeds"] != seeds or old["config"] != record["config"]:
      what = "seeds" if old["seeds"] != seeds else "base config"
      raise CheckpointError(f"{group} holds a seeds group with other {what}; use another "
                            "--workdir or pass --overwrite")
    if not resume:
      raise CheckpointError(f"{group} already holds this seeds group; pass --resume to "
                            "continue it or --overwrite to start over")
  if write:
    fileio.write_json(file, record)


def seed_configs(base: Config, seeds: list[int]) -> list[Config]:
  """One config per seed, all on the base config's split."""
  split_seed = base.split_seed if base.split_seed >= 0 else base.seed
  return [base.replace(seed=s, split_seed=split_seed) for s in seeds]


def fit_seeds(dataset, base: Config, group: str, seeds: list[int], *, resume: bool = False,
              overwrite: bool = False, progress: bool = True, extra_meta: dict | None = None,
              on_seed: Callable[[int, dict], None] | None = None) -> dict[str, Any]:
  """Trains one run per seed under `group` (see the module docstring); returns the summary.

  Returns:
    {"seeds": [...], "per_seed": {seed: test metrics}, "mean": {...}, "std": {...}}, also
    written to `group/summary.json`.
  """
  from gnnrec_jax.experiment import prepare
  from gnnrec_jax.training import fit

  _claim(group, seeds, base, resume=resume, overwrite=overwrite, write=False)
  os.makedirs(group, exist_ok=True)
  lock = workdir_lib.WorkdirLock(group)
  lock.acquire()  # one writer per group, as per run folder
  try:
    _claim(group, seeds, base, resume=resume, overwrite=overwrite)  # again, under the lock
    per_seed = {}
    for config in seed_configs(base, seeds):
      path = seed_dir(group, config.seed)
      exp = prepare(config, dataset)
      metrics = _finished_metrics(path, exp.fingerprint) if resume else None
      if metrics is None:
        started = os.path.exists(os.path.join(path, "run.json"))
        metrics = fit.fit(exp, path, resume=resume and started, overwrite=overwrite,
                          progress=progress, extra_meta=extra_meta).metrics
      per_seed[config.seed] = metrics
      if on_seed is not None:
        on_seed(config.seed, metrics)
    mean, std = mean_std(list(per_seed.values()))
    summary = {"seeds": seeds, "per_seed": {str(s): m for s, m in per_seed.items()},
               "mean": mean, "std": std}
    fileio.write_json(os.path.join(group, "summary.json"), summary)
    return summary
  finally:
    lock.release()


def _finished_metrics(path: str, fingerprint: str) -> dict | None:
  """The test metrics of a finished run of this fingerprint in `path`, else None."""
  metrics_file = os.path.join(path, "metrics.json")
  if not os.path.exists(metrics_file):
    return None
  run = workdir_lib.read_run(path)
  if run["fingerprint"] != fingerprint:
    raise CheckpointError(f"{path} belongs to a different run; use another --workdir or pass "
                          "--overwrite")
  with open(metrics_file, "rb") as f:
    try:
      metrics = json.loads(f.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
      raise CheckpointError(f"{metrics_file}: not valid JSON (damaged file?)") from None
  if not isinstance(metrics, dict):
    raise CheckpointError(f"{metrics_file}: expected a JSON object")
  return metrics
