"""`gnnrec-jax train`: train a model; the last stdout line is the test metrics as JSON.

    gnnrec-jax train --model lightgcn --dataset ml-100k --workdir runs/lgcn
    gnnrec-jax train --model lightgcn --set lr=2e-3 epochs=20 --workdir runs/lgcn2
    gnnrec-jax train --config runs/tune/best_config.json --workdir runs/best
    gnnrec-jax train --train train.tsv --valid valid.tsv --test test.tsv --workdir runs/mine
    gnnrec-jax train ... --workdir runs/mine --resume      # after a crash: same final metrics
    gnnrec-jax train ... --seeds 1,2,3 --workdir runs/g    # runs/g/seed-1, ...: mean ± std
    gnnrec-jax train ... --devices 8 [--shard-tables]      # data-parallel over 8 devices

A dataset that defines its own split (`--train/--valid/--test`, gowalla, lastfm) is trained on
that split unless `--set split=...` asks for another, as `gnnrec-jax data` does. At the end a
table of the test metrics goes to stderr (unless --no-progress); stdout's last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import sys

from gnnrec_jax.commands.config_args import (add_config_arguments, config_from_args,
                                             with_dataset_defaults)
from gnnrec_jax.errors import ConfigError


def _device_count(text: str) -> int:
  """--devices: a whole number >= 1 (0 and negatives were accepted and recorded)."""
  try:
    n = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a whole number of devices, got {text!r}") from None
  if n < 1:
    raise argparse.ArgumentTypeError(f"needs at least 1 device, got {n}")
  return n


def add_arguments(p):
  from gnnrec_jax.data.cli_args import add_dataset_arguments
  add_config_arguments(p)
  p.add_argument("--workdir", required=True, help="folder for config, history, checkpoints, metrics")
  p.add_argument("--resume", action="store_true", help="continue the run in --workdir")
  p.add_argument("--overwrite", action="store_true", help="start over in a used --workdir")
  p.add_argument("--seeds", default=None, metavar="S1,S2,...",
                 help="one run per seed in --workdir/seed-S (same split for all), then the mean "
                      "± std of each metric; --resume continues an interrupted group")
  p.add_argument("--no-progress", action="store_true",
                 help="no progress bar, no summary line and no table (for scripts)")
  p.add_argument("--devices", type=_device_count, default=1, metavar="N",
                 help="train data-parallel over N devices (global batches split, propagation "
                 "receiver-partitioned; gnnrec_jax/training/parallel.py); default 1")
  p.add_argument("--shard-tables", action="store_true",
                 help="with --devices N: row-shard embedding tables and Adam state over the N "
                 "devices instead of replicating them")
  add_dataset_arguments(p)
  p.epilog = ("Config keys: `gnnrec-jax config` lists every key with its default, type, "
              "allowed values and the reason for the default (`--model M`: that model's "
              "defaults).")


def run(args) -> int:
  from gnnrec_jax.data.cli_args import dataset_from_args
  from gnnrec_jax.evaluation.report import metrics_table
  from gnnrec_jax.experiment import prepare
  from gnnrec_jax.training import fit, workdir

  config = config_from_args(args)
  seeds = None
  if args.seeds is not None:
    from gnnrec_jax.training.seeds import parse_seeds
    seeds = parse_seeds(args.seeds)
    if args.devices != 1:
      raise ConfigError("--seeds trains one seed after another on one device; drop --devices")
  dataset = dataset_from_args(args, config)
  show = not args.no_progress
  if show:  # on stderr: stdout ends with the metrics JSON for scripts
    print(f"{dataset.name}: {dataset.num_users:,} users, {dataset.num_items:,} items, "
          f"{len(dataset.interactions):,} interactions; training {config.model} into "
          f"{args.workdir}", file=sys.stderr, flush=True)
  config = with_dataset_defaults(args, config, dataset)
  extra_meta = {"dataset_args": workdir.dataset_args_of(args, dataset), "devices": args.devices}
  if seeds is not None:
    return _run_seeds(args, dataset, config, seeds, extra_meta, show)
  exp = prepare(config, dataset)
  if show and exp.side is not None:  # the imputation policy of the side features (issue 15)
    from gnnrec_jax.data.side_features import policy_line
    print(policy_line(exp.side), file=sys.stderr, flush=True)
  fitted = fit.fit(exp, args.workdir, resume=args.resume,
                   overwrite=args.overwrite, progress=show, extra_meta=extra_meta,
                   devices=args.devices,
                   model_parallel=args.devices if args.shard_tables else 1)
  if show:
    print(metrics_table(fitted.metrics, title=f"test metrics ({config.model}, best epoch "
                        f"{fitted.metrics['best_epoch']}, {args.workdir})"), file=sys.stderr)
  print(json.dumps(fitted.metrics, sort_keys=True))
  return 0


def _run_seeds(args, dataset, config, seeds, extra_meta, show) -> int:
  from gnnrec_jax.evaluation.report import metrics_table
  from gnnrec_jax.training.seeds import fit_seeds, seed_dir

  def on_seed(seed, metrics):
    if show:
      print(f"seed {seed}: test {config.select_metric.rpartition('/')[2]} "
            f"{metrics.get(config.select_metric.rpartition('/')[2], float('nan')):.4f} "
            f"({seed_dir(args.workdir, seed)})", file=sys.stderr, flush=True)

  summary = fit_seeds(dataset, config, args.workdir, seeds, resume=args.resume,
                      overwrite=args.overwrite, progress=show, extra_meta=extra_meta,
                      on_seed=on_seed)
  if show:
    print(metrics_table(summary["mean"], spread=summary["std"],
                        title=f"test metrics, mean ± std over seeds {args.seeds} "
                              f"({config.model}, {args.workdir})"), file=sys.stderr)
  print(json.dumps({"seeds": seeds, "mean": summary["mean"], "std": summary["std"]},
                   sort_keys=True))
  return 0
