"""`gnnrec-jax tune --model M --space SPACE --trials N --workdir DIR`: search hyperparameters on
the validation metric (Optuna TPE, `gnnrec_jax.training.tune`).

    gnnrec-jax tune --model lightgcn --space benchmarks/spaces/lightgcn.json --trials 24 \\
        --dataset ml-100k --workdir runs/tune-lgcn --set epochs=30 patience=2
    gnnrec-jax train --config runs/tune-lgcn/best_config.json --workdir runs/best

Resumable: after a kill, the same command continues (finished trials are kept, an interrupted
trial resumes from its checkpoint). `--set` fixes config keys for every trial (e.g. short epoch
caps). A trials table and the best trial's validation metrics go to stderr; the last stdout line
is JSON (best trial, its validation value and parameters, the best config's path).
"""
from __future__ import annotations

import json
import os
import sys

from gnnrec_jax.commands.config_args import (add_config_arguments, config_from_args,
                                             overridden_keys, with_dataset_defaults)


def add_arguments(p):
  from gnnrec_jax.data.cli_args import add_dataset_arguments
  add_config_arguments(p, model_required=True)
  p.add_argument("--space", required=True, metavar="FILE",
                 help='JSON search space, e.g. {"lr": {"low": 1e-3, "high": 3e-2, "log": true}, '
                      '"num_negatives": {"choices": [16, 64]}}')
  p.add_argument("--trials", type=int, required=True, help="finished trials to reach")
  p.add_argument("--workdir", required=True, help="folder of the study and of every trial")
  p.add_argument("--seed", type=int, default=0, help="the TPE sampler's seed")
  p.add_argument("--no-progress", action="store_true", help="no per-trial lines and no tables")
  add_dataset_arguments(p)


def _fmt(v) -> str:
  if isinstance(v, float):
    return f"{v:.4g}"
  return str(v)


def trials_table(rows: list[dict], metric: str) -> str:
  keys = sorted({k for r in rows for k in r["params"]})
  head = f"{'trial':>5} {'state':<9}{'valid ' + metric:>16}{'epoch':>6}{'sec':>6}  " + "  ".join(keys)
  lines = [head]
  for r in rows:
    value, epoch, sec = r[metric], r["best_epoch"], r["seconds"]
    cells = [f"{r['number']:>5} {r['state']:<9}",
             f"{value:.4f}".rjust(16) if value is not None else "-".rjust(16),
             f"{epoch:>6}" if epoch is not None else "-".rjust(6),
             f"{sec:>6.0f}" if sec is not None else "-".rjust(6), "  ",
             "  ".join(f"{k}={_fmt(r['params'].get(k, '-'))}" for k in keys)]
    if r["error"]:
      cells.append(f"  ({r['error'][:60]})")
    if r["retry_of"] is not None:
      cells.append(f"  (retry of {r['retry_of']})")
    lines.append("".join(cells))
  return "\n".join(lines)


def run(args) -> int:
  from gnnrec_jax.data.cli_args import dataset_from_args
  from gnnrec_jax.errors import ConfigError
  from gnnrec_jax.evaluation.report import metrics_table
  from gnnrec_jax.training import tune, workdir

  if args.trials < 1:
    raise ConfigError(f"--trials must be >= 1, got {args.trials}")
  config = config_from_args(args)
  space = tune.read_space(args.space)
  fixed = overridden_keys(args) & set(space)
  if fixed:
    raise ConfigError(f"--set {', '.join(sorted(fixed))}: also in the search space {args.space}")
  dataset = dataset_from_args(args, config)
  config = with_dataset_defaults(args, config, dataset)
  show = not args.no_progress
  metric = config.select_metric

  def on_trial(row):
    if show:
      v = row[metric]
      params = ", ".join(f"{k}={_fmt(v)}" for k, v in row["params"].items())
      what = f"valid {metric} {v:.4f}" if v is not None else f"{row['state']}: {row['error']}"
      print(f"trial {row['number']}: {what} ({_fmt(row['seconds'] or 0.0)} s; {params})",
            file=sys.stderr, flush=True)

  if show:
    print(f"tuning {config.model} on {dataset.name} ({', '.join(space)}), {args.trials} trials, "
          f"selecting on valid {metric}; study in {args.workdir}", file=sys.stderr, flush=True)
  summary = tune.tune(dataset, config, space, args.workdir, trials=args.trials, seed=args.seed,
                      extra_meta={"dataset_args": workdir.dataset_args_of(args, dataset)},
                      on_trial=on_trial)
  best = summary["best"]
  best_file = os.path.join(args.workdir, "best_config.json") if best else None
  if show:
    print(trials_table(summary["trials"], metric), file=sys.stderr)
    if best:
      print(metrics_table(best["valid"], title=f"valid metrics of the best trial "
                          f"({best['number']}, {best['workdir']}); its config: {best_file}"),
            file=sys.stderr)
  done = [r for r in summary["trials"] if r["state"] == "complete"]
  print(json.dumps({"select_metric": metric, "trials_complete": len(done),
                    "best_trial": best["number"] if best else None,
                    "best_value": best[metric] if best else None,
                    "best_params": best["params"] if best else None,
                    "best_config": best_file}, sort_keys=True))
  return 0
