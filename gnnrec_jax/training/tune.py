"""Hyperparameter search on the validation metric: Optuna's TPE sampler over `fit` runs.

`gnnrec-jax tune --model M --space SPACE --trials N --workdir DIR` writes:
  DIR/tune.json          the marker: model, search space, base config, dataset arguments
  DIR/study.db           the Optuna study (SQLite): every trial's parameters, state and value
  DIR/trial-007/         one ordinary run folder per trial (`fit`), resumable like any run
  DIR/trials.json        the trials table (also printed on stderr)
  DIR/best_config.json   the best trial's full config: `gnnrec-jax train --config FILE`

Selection uses the validation metric only (`select_metric`, the best value over the trial's
validations, the one its early stopping kept); test metrics are computed by `fit` as for any
run but never read here.

Resumable after a kill: the study is on disk and `N` counts finished trials, so the same command
continues. A trial that was running when the process died is marked failed in the study and
enqueued again with the same parameters and the same folder, so its `fit` resumes from the last
checkpoint. (TPE's random state is not saved: the trials proposed after a resume differ from those
an uninterrupted search would have proposed, as with any Optuna study reloaded from storage.)

Why Optuna: maintained, in wide use, and it gives persistent studies (SQLite through SQLAlchemy)
with ask/tell, which is what resumability needs; TPE handles mixed log-scale, integer and
categorical spaces. It is an optional dependency (`pip install gnnrec-jax[tune]`): optuna,
SQLAlchemy, alembic, Mako, MarkupSafe and colorlog, about 38 MB installed, wheels on PyPI for
every platform jax supports (SQLAlchemy's and MarkupSafe's speed-ups are compiled; both also run
without them).

The search space is a JSON object of config keys, each
  {"low": 1e-3, "high": 3e-2, "log": true}   a number (the key's type: int or float), optional
                                             "step"
  {"choices": [16, 32, 64]}                  a categorical (any values the key allows)
checked against the config's declared ranges and names when the file is read.
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Callable

from gnnrec_jax import fileio
from gnnrec_jax.config import Config, check_field, field_specs, read_text_file, validate
from gnnrec_jax.errors import CheckpointError, ConfigError, TrainingError
from gnnrec_jax.training import workdir as workdir_lib

TUNE_FORMAT = "gnnrec-jax-tune"
STUDY_NAME = "gnnrec-jax"


def _optuna():
  try:
    import optuna
  except ImportError:
    raise ConfigError("tune needs Optuna: pip install 'gnnrec-jax[tune]' (or pip install "
                      "optuna)") from None
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  return optuna


# ------------------------------------------------------------------------------------ space

_EXAMPLE = '{"lr": {"low": 1e-3, "high": 3e-2, "log": true}, "num_negatives": {"choices": [16, 64]}}'


def read_space(path: str) -> dict[str, dict]:
  """The search space in a JSON file, each key checked against Config's declarations.

  Raises:
    ConfigError: a missing, empty or malformed file, an unknown key, bounds outside the key's
      range, or a choice the key does not allow (one line naming the file and key).
  """
  where = f"space file {path}"
  text = read_text_file(path, where)
  if not text.strip():
    raise ConfigError(f"{where}: empty; expected a JSON object of config keys, e.g. {_EXAMPLE}")
  try:
    raw = json.loads(text)
  except json.JSONDecodeError as e:
    raise ConfigError(f"{where}: not valid JSON ({e.msg}: line {e.lineno} column {e.colno})"
                      ) from None
  if not isinstance(raw, dict):
    raise ConfigError(f"{where}: expected a JSON object of config keys, got a JSON "
                      f"{type(raw).__name__}")
  if not raw:
    raise ConfigError(f"{where}: no keys to search; expected e.g. {_EXAMPLE}")
  return {key: _check_dimension(where, key, spec) for key, spec in raw.items()}


def _check_dimension(where: str, key: str, spec) -> dict:
  specs = field_specs()
  if key not in specs:
    import difflib
    close = difflib.get_close_matches(key, list(specs), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"{where}: unknown config key {key!r}{hint}")
  field = specs[key]
  if key in ("model", "seed", "split_seed", "split", "split_ratios", "topk", "select_metric"):
    raise ConfigError(f"{where}: {key} is not a hyperparameter (it changes what is measured)")
  from gnnrec_jax.data.cli_args import DATA_FIELDS
  if key in DATA_FIELDS:  # the data is read once for every trial
    raise ConfigError(f"{where}: {key} changes the data read; compare its values with separate "
                      "tune runs (--set)")
  if not isinstance(spec, dict):
    raise ConfigError(f"{where}: {key} must be an object like {{\"low\": .., \"high\": ..}} or "
                      "{\"choices\": [..]}")
  if "choices" in spec:
    extra = set(spec) - {"choices"}
    choices = spec["choices"]
    if extra or not isinstance(choices, list) or not choices:
      raise ConfigError(f"{where}: {key}: choices must be a non-empty list (and alone)")
    out = []
    for c in choices:
      value = tuple(c) if field.type is tuple and isinstance(c, list) else c
      if field.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
      msg = check_field(field, value)
      if msg:
        raise ConfigError(f"{where}: {key}: choice {c!r}: {msg}")
      out.append(c)
    return {"choices": out}
  if field.type not in (int, float):
    raise ConfigError(f"{where}: {key} is a {field.type_name}: give {{\"choices\": [..]}}")
  extra = set(spec) - {"low", "high", "log", "step"}
  if extra or "low" not in spec or "high" not in spec:
    raise ConfigError(f"{where}: {key} needs low and high (and optionally log, step); got "
                      f"{', '.join(sorted(spec)) or 'nothing'}")
  lo, hi = spec["low"], spec["high"]
  for name, v in (("low", lo), ("high", hi)):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or (field.type is int and not isinstance(v, int)):
      raise ConfigError(f"{where}: {key}: {name} must be {'an integer' if field.type is int else 'a number'}, got {v!r}")
    msg = check_field(field, float(v) if field.type is float else v)
    if msg:
      raise ConfigError(f"{where}: {key}: {name} {v}: {msg}")
  if lo >= hi:
    raise ConfigError(f"{where}: {key}: low {lo} must be below high {hi}")
  log = spec.get("log", False)
  if not isinstance(log, bool) or (log and lo <= 0):
    raise ConfigError(f"{where}: {key}: log must be true or false, and log needs low > 0")
  step = spec.get("step")
  if step is not None and (not isinstance(step, (int, float)) or isinstance(step, bool)
                           or step <= 0 or log):
    raise ConfigError(f"{where}: {key}: step must be a positive number (not with log)")
  return {"low": lo, "high": hi, "log": log, **({"step": step} if step is not None else {})}


def distributions(space: dict[str, dict]):
  """Optuna distributions of a checked space."""
  optuna = _optuna()
  d = optuna.distributions
  out = {}
  specs = field_specs()
  for key, s in space.items():
    if "choices" in s:
      out[key] = d.CategoricalDistribution(
          [tuple(c) if isinstance(c, list) else c for c in s["choices"]])
    elif specs[key].type is int:
      out[key] = d.IntDistribution(s["low"], s["high"], log=s["log"], step=s.get("step", 1))
    else:
      out[key] = d.FloatDistribution(s["low"], s["high"], log=s["log"], step=s.get("step"))
  return out


def trial_config(base: Config, params: dict[str, Any]) -> Config:
  specs = field_specs()
  values = {}
  for k, v in params.items():
    if specs[k].type is float and isinstance(v, int) and not isinstance(v, bool):
      v = float(v)
    values[k] = tuple(v) if isinstance(v, list) else v
  return validate(base.replace(**values))


# ------------------------------------------------------------------------------------- study

def _claim(path: str, record: dict) -> None:
  """Refuses a folder that holds something other than this tune run (see the docstring)."""
  marker = os.path.join(path, "tune.json")
  if os.path.exists(path) and not os.path.isdir(path):
    raise CheckpointError(f"workdir {path} exists and is not a folder")
  if os.path.isdir(path) and not os.path.exists(marker):
    entries = sorted(e for e in os.listdir(path) if e != workdir_lib.LOCK_NAME)
    if entries:
      raise CheckpointError(f"workdir {path} is not empty and holds no tune run "
                            f"({', '.join(entries[:5])}); use a new or empty folder")
    return
  if os.path.exists(marker):
    try:
      with open(marker, "rb") as f:
        old = json.loads(f.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
      raise CheckpointError(f"{marker}: not valid JSON (damaged file?)") from None
    if not isinstance(old, dict) or old.get("format") != TUNE_FORMAT:
      raise CheckpointError(f"{marker}: field format is not {TUNE_FORMAT!r}")
    diff = [k for k in ("space", "config", "dataset_args", "seed") if old.get(k) != record.get(k)]
    if diff:
      what = {"space": "search space", "config": "base config", "dataset_args": "dataset",
              "seed": "sampler seed"}
      raise CheckpointError(f"{path} holds a tune run with another "
                            f"{', '.join(what[k] for k in diff)}; use another --workdir")


def _finished(trial) -> bool:
  """Complete, or failed by the trial itself (not by a kill): counts towards --trials."""
  return trial.state.name == "COMPLETE" or (trial.state.name == "FAIL"
                                            and "error" in trial.user_attrs)


def tune(dataset, base: Config, space: dict[str, dict], path: str, *, trials: int,
         seed: int = 0, extra_meta: dict | None = None,
         on_trial: Callable[[dict], None] | None = None) -> dict:
  """Runs (or continues) the search until `trials` trials have finished; returns the summary.

  Returns:
    {"trials": [row per trial], "best": row of the best complete trial or None,
     "best_config": its config dict, "select_metric"}.
  """
  optuna = _optuna()
  from gnnrec_jax.experiment import prepare
  from gnnrec_jax.training import fit

  record = {"format": TUNE_FORMAT, "model": base.model, "space": space,
            "config": json.loads(json.dumps(base.to_dict())), "seed": seed,
            "dataset_args": (extra_meta or {}).get("dataset_args")}
  _claim(path, record)
  os.makedirs(path, exist_ok=True)
  lock = workdir_lib.WorkdirLock(path)
  lock.acquire()
  try:
    _claim(path, record)
    fileio.write_json(os.path.join(path, "tune.json"), record)
    storage = f"sqlite:///{os.path.abspath(os.path.join(path, 'study.db'))}"
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction="maximize",
                                load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=seed))
    # Trials left running by a killed process (we hold the lock: nobody else runs them).
    for t in study.get_trials(deepcopy=False):
      if t.state.name == "RUNNING":
        study.enqueue_trial(t.params, user_attrs={"workdir": t.user_attrs.get(
            "workdir", f"trial-{t.number:03d}"), "retry_of": t.number})
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    dists = distributions(space)
    metric = base.select_metric
    while sum(_finished(t) for t in study.get_trials(deepcopy=False)) < trials:
      trial = study.ask(dists)
      name = trial.user_attrs.get("workdir") or f"trial-{trial.number:03d}"
      trial.set_user_attr("workdir", name)
      run_dir = os.path.join(path, name)
      t0 = time.perf_counter()
      try:
        config = trial_config(base, trial.params)
        exp = prepare(config, dataset)
        started = os.path.exists(os.path.join(run_dir, "run.json"))
        fitted = fit.fit(exp, run_dir, resume=started, progress=False, extra_meta=extra_meta)
      except (ConfigError, TrainingError) as e:  # this trial's values: record, go on
        trial.set_user_attr("error", " ".join(str(e).split()))
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if on_trial:
          on_trial(_row(study.trials[trial.number], metric))
        continue
      valid = _best_valid(fitted.history, fitted.metrics["best_epoch"])
      trial.set_user_attr("seconds", time.perf_counter() - t0)
      trial.set_user_attr("best_epoch", int(fitted.metrics["best_epoch"]))
      trial.set_user_attr("epochs_run", int(fitted.metrics["epochs_run"]))
      trial.set_user_attr("valid", valid)
      value = valid.get(metric)
      if value is None or not math.isfinite(value):
        trial.set_user_attr("error", f"no validation value of {metric}")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
      else:
        study.tell(trial, float(value))
      if on_trial:
        on_trial(_row(study.trials[trial.number], metric))
    return _summary(study, base, path, metric)
  finally:
    lock.release()


def _best_valid(history: list[dict], best_epoch: int) -> dict[str, float]:
  """The validation metrics of the selected epoch (keys without the "valid/" prefix)."""
  for row in history:
    if row.get("epoch") == best_epoch:
      return {k[len("valid/"):]: v for k, v in row.items() if k.startswith("valid/")}
  return {}


def _row(t, metric: str) -> dict:
  return {"number": t.number, "state": t.state.name.lower(), metric: t.value,
          "params": dict(t.params), "workdir": t.user_attrs.get("workdir"),
          "best_epoch": t.user_attrs.get("best_epoch"), "seconds": t.user_attrs.get("seconds"),
          "error": t.user_attrs.get("error"), "retry_of": t.user_attrs.get("retry_of")}


def _summary(study, base: Config, path: str, metric: str) -> dict:
  rows = [_row(t, metric) for t in study.get_trials(deepcopy=False)]
  complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
  out = {"select_metric": metric, "trials": rows, "best": None, "best_config": None}
  if complete:
    best = max(complete, key=lambda t: (t.value, -t.number))
    config = trial_config(base, best.params)
    out["best"] = _row(best, metric)
    out["best"]["valid"] = best.user_attrs.get("valid", {})
    out["best_config"] = config.to_dict()
    fileio.write_json(os.path.join(path, "best_config.json"), config.to_dict())
  fileio.write_json(os.path.join(path, "trials.json"), rows)
  return out
