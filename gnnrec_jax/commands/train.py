"""`gnnrec-jax train`: train a model; the last stdout line is the test metrics as JSON.

    gnnrec-jax train --model lightgcn --dataset ml-100k --workdir runs/lgcn
    gnnrec-jax train --train train.tsv --valid valid.tsv --test test.tsv --workdir runs/mine
    gnnrec-jax train ... --workdir runs/mine --resume      # after a crash: same final metrics
    gnnrec-jax train ... --devices 8 [--shard-tables]      # data-parallel over 8 devices

A dataset that defines its own split (`--train/--valid/--test`, gowalla, lastfm) is trained on
that split unless `--set split=...` asks for another, as `gnnrec-jax data` does.
"""
from __future__ import annotations

import json
import sys

from gnnrec_jax.config import apply_overrides
from gnnrec_jax.models import MODELS


def add_arguments(p):
  from gnnrec_jax.data.cli_args import add_dataset_arguments
  p.add_argument("--model", choices=MODELS, default=None,
                 help="model to train (default: the config's model; lightgcn)")
  p.add_argument("--config", default=None,
                 help="named default config (a model name, 'seed' for the seed document's "
                 "literal rule, or 'test'); default: the model's")
  p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config field, e.g. --set lr=0.002 (repeatable)")
  p.add_argument("--workdir", required=True, help="folder for config, history, checkpoints, metrics")
  p.add_argument("--resume", action="store_true", help="continue the run in --workdir")
  p.add_argument("--overwrite", action="store_true", help="start over in a used --workdir")
  p.add_argument("--no-progress", action="store_true",
                 help="no progress bar and no summary line (for scripts)")
  p.add_argument("--devices", type=int, default=1, metavar="N",
                 help="train data-parallel over N devices (global batches split, propagation "
                 "receiver-partitioned; gnnrec_jax/training/parallel.py); default 1")
  p.add_argument("--shard-tables", action="store_true",
                 help="with --devices N: row-shard embedding tables and Adam state over the N "
                 "devices instead of replicating them")
  add_dataset_arguments(p)


def run(args) -> int:
  from gnnrec_jax import configs
  from gnnrec_jax.data.cli_args import dataset_from_args
  from gnnrec_jax.experiment import prepare
  from gnnrec_jax.training import fit, workdir

  config = configs.get_config(args.config or args.model or "lightgcn")
  if args.model:
    config = config.replace(model=args.model)
  config = apply_overrides(config, args.overrides)
  dataset = dataset_from_args(args, config)
  if not args.no_progress:  # on stderr: stdout ends with the metrics JSON for scripts
    print(f"{dataset.name}: {dataset.num_users:,} users, {dataset.num_items:,} items, "
          f"{len(dataset.interactions):,} interactions; training {config.model} into "
          f"{args.workdir}", file=sys.stderr, flush=True)
  split_given = any(o.split("=", 1)[0].strip() == "split" for o in args.overrides)
  if dataset.split is not None and not split_given:
    config = config.replace(split="predefined")
  fitted = fit.fit(prepare(config, dataset), args.workdir, resume=args.resume,
                   overwrite=args.overwrite, progress=not args.no_progress,
                   extra_meta={"dataset_args": workdir.dataset_args_of(args, dataset),
                               "devices": args.devices},
                   devices=args.devices,
                   model_parallel=args.devices if args.shard_tables else 1)
  print(json.dumps(fitted.metrics, sort_keys=True))
  return 0
