"""Reading a finished (or interrupted) run back from its workdir: config, data, model, params."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os

from gnnrec_jax.training import checkpoint
from gnnrec_jax.config import Config, validate
from gnnrec_jax.errors import CheckpointError


def dataset_arg_names() -> list[str]:
  """The argparse dests that select a dataset (saved in run.json to rebuild it later)."""
  from gnnrec_jax.data.cli_args import add_dataset_arguments
  p = argparse.ArgumentParser(add_help=False)
  add_dataset_arguments(p)
  return [a.dest for a in p._actions]


_PATH_ARGS = ("data_dir", "train", "valid", "test", "item_meta", "user_meta")


def dataset_args_of(args: argparse.Namespace, dataset=None) -> dict:
  """The dataset options of `args`, with paths made absolute so that `evaluate` and
  `recommend` work from any directory (a default folder is taken from `dataset.source`)."""
  out = {k: getattr(args, k) for k in dataset_arg_names() if hasattr(args, k)}
  for k in _PATH_ARGS:
    if out.get(k):
      out[k] = os.path.abspath(out[k])
  source = (dataset.source or "") if dataset is not None else ""
  source = source if os.path.isdir(source) else source.split(":", 1)[-1]  # "lightgcn:/path"
  if (not out.get("data_dir") and not out.get("train") and os.path.isdir(source)
      and dataset.name != "ml-100k"):  # ml-100k's default is the checksummed cache
    out["data_dir"] = os.path.abspath(source)
  return out


def read_run(workdir: str) -> dict:
  """The workdir's `run.json`; `CheckpointError` naming the file when missing or damaged."""
  path = os.path.join(workdir, "run.json")
  if not os.path.isdir(workdir):
    raise CheckpointError(f"workdir {workdir} does not exist (or is not a folder)")
  if not os.path.exists(path):
    raise CheckpointError(f"{workdir} holds no run (no run.json); train one with "
                          f"`gnnrec-jax train --workdir {workdir} ...`")
  try:
    with open(path) as f:
      run = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise CheckpointError(f"{path}: unreadable ({e})") from None
  missing = [k for k in ("fingerprint", "config") if not isinstance(run, dict) or k not in run]
  if missing or not isinstance(run["config"], dict):
    raise CheckpointError(f"{path}: not a gnnrec-jax run file (expected the keys fingerprint "
                          "and config, as `gnnrec-jax train` writes them)")
  return run


def config_of(run: dict) -> Config:
  """The run's config (fields this version does not know are ignored; values re-validated)."""
  fields = {f.name for f in dataclasses.fields(Config)}
  raw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in run["config"].items()
         if k in fields}
  return validate(Config(**raw))


def load(workdir: str):
  """Rebuilds `(run, experiment, model, params, inputs)` from a workdir's best checkpoint.

  The dataset is reloaded with the arguments saved at training time and checked against the
  run's fingerprint, so a changed data file is reported instead of silently mis-evaluated.
  """
  from gnnrec_jax.data.cli_args import dataset_from_args
  from gnnrec_jax.experiment import prepare
  from gnnrec_jax.training import fit as train_lib

  run = read_run(workdir)
  config = config_of(run)
  dataset = dataset_from_args(argparse.Namespace(**run.get("dataset_args", {})))
  exp = prepare(config, dataset)
  if exp.fingerprint != run["fingerprint"]:
    raise CheckpointError(f"{workdir}: the data no longer matches this run's fingerprint "
                      "(the dataset files or the split changed since training)")
  if config.model == "ease":
    saved, _ = checkpoint.load(workdir, "best", None, fingerprint=exp.fingerprint)
    return run, exp, None, saved, None
  model, params, inputs = train_lib.init_model(exp)
  saved, _ = checkpoint.load(workdir, "best", {"params": params}, fingerprint=exp.fingerprint)
  return run, exp, model, saved["params"], inputs
