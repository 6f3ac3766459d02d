"""The dataset options every command shares (`data`, `train`, `encode`, `recommend`).

    gnnrec-jax data --dataset ml-100k
    gnnrec-jax data --dataset gowalla --data-dir ../shared/data/gowalla
    gnnrec-jax data --train train.tsv --valid valid.tsv --test test.tsv --item-meta items.tsv
    gnnrec-jax data --dataset csv --data-dir ratings.csv --columns user=uid,item=iid,weight=r
    gnnrec-jax data --dataset csv --data-dir events.csv --columns user=u,item=i,behaviour=event \
        --set behaviour_weights=click:1,cart:2,purchase:4 --set duplicates=sum

The config fields that change what a loader reads (`DATA_FIELDS`: behaviour_weights,
duplicates) come from the command's config: `dataset_from_args(args, config)` (train, and a
workdir's saved config for evaluate/recommend), or, for commands without a config (data, encode),
from their `--set` overrides.
"""
from __future__ import annotations

import argparse
import inspect

from gnnrec_jax.data import behaviours, checks, files
from gnnrec_jax.data.registry import DATASETS, load_dataset
from gnnrec_jax.data.types import Dataset
from gnnrec_jax.errors import ConfigError

# Config fields read by the loaders, with their defaults (those of `gnnrec_jax.config.Config`).
DATA_FIELDS = {"behaviour_weights": behaviours.DEFAULT_BEHAVIOUR_WEIGHTS, "duplicates": "max"}

# Options that only some datasets read: (attribute, flag, dataset names that read it).
_SPECIFIC = (
    ("name", "--name", ("atomic", "lightgcn", "csv", "predefined")),
    ("columns", "--columns", ("csv", "atomic", "ml-100k")),
    ("sep", "--sep", ("csv",)),
    ("no_header", "--no-header", ("csv",)),
    ("valid_from_train", "--valid-from-train", ("lightgcn", "gowalla", "lastfm")),
    ("train", "--train", ("predefined",)),
    ("valid", "--valid", ("predefined",)),
    ("test", "--test", ("predefined",)),
)
# Metadata files: the predefined loader reads them itself (their ids join its catalogue); any
# other dataset gets their columns attached after loading (`side_features.attach_meta`).
_META = ("item_meta", "user_meta")


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds `--dataset --data-dir --name --train --valid --test --item-meta --user-meta --columns
  --sep --no-header --valid-from-train` to `parser`."""
  g = parser.add_argument_group("dataset")
  g.add_argument("--dataset", default=None, metavar="NAME",
                 help=f"one of {', '.join(DATASETS)} (default: ml-100k, or predefined when "
                      "--train is given)")
  g.add_argument("--data-dir", default=None, metavar="DIR",
                 help="folder (or file, for csv) to read; gowalla, lastfm and scientific default to "
                      "../shared/data/NAME, ml-100k to the cache")
  g.add_argument("--name", default=None, help="dataset name (atomic: the NAME of NAME.inter)")
  g.add_argument("--train", default=None, metavar="FILE",
                 help="predefined split: tab-separated user_id, item_id[, rating|weight, timestamp]")
  g.add_argument("--valid", default=None, metavar="FILE", help="predefined validation part")
  g.add_argument("--test", default=None, metavar="FILE", help="predefined test part")
  g.add_argument("--item-meta", default=None, metavar="FILE",
                 help="item metadata with a header, the id first (TSV, or CSV for .csv), for "
                      "any dataset: columns for text and side features (--set side_features=)")
  g.add_argument("--user-meta", default=None, metavar="FILE",
                 help="user metadata with a header, the id first (TSV, or CSV for .csv)")
  g.add_argument("--columns", default=None, metavar="SPEC",
                 help="csv: user=COL,item=COL[,weight=COL][,timestamp=COL][,behaviour=COL]; "
                      "atomic: the same roles naming .inter fields; ml-100k: behaviour=rating "
                      "(ratings as behaviour levels, weighted by --set behaviour_weights=1:..,5:..)")
  g.add_argument("--sep", default=None, help="csv: field separator (default ','; 'tab' for TSV)")
  g.add_argument("--no-header", action="store_true", default=None,
                 help="csv: the file has no header (columns are 0-based positions)")
  g.add_argument("--valid-from-train", type=float, default=None, metavar="FRACTION",
                 help="lightgcn/gowalla/lastfm: carve this per-user fraction of train into valid")
  g.add_argument("--max-file-size", default=None, metavar="SIZE",
                 help=f"refuse input files larger than SIZE (e.g. 4G, 500M, or none; default "
                      f"${files.MAX_FILE_SIZE_ENV} or 1G): loaders hold ~25x a file in memory")
  if "--set" not in parser._option_string_actions:  # train has its own, for every field
    g.add_argument("--set", dest="data_overrides", action="append", default=None,
                   metavar="KEY=VALUE",
                   help="a config field the loaders read (repeatable): "
                        "behaviour_weights=NAME:WEIGHT,... or duplicates=max|sum|last")


def dataset_name(args: argparse.Namespace) -> str:
  """`--dataset`, else "predefined" when `--train` is given, else "ml-100k"."""
  if args.dataset:
    return args.dataset
  return "predefined" if getattr(args, "train", None) else "ml-100k"


def data_settings(args: argparse.Namespace, config=None) -> dict:
  """The `DATA_FIELDS` values for loading: from `config` when given, else the command's `--set`
  overrides (`args.data_overrides`), else defaults.

  Raises:
    ConfigError: a malformed behaviour_weights or an unknown duplicates rule.
  """
  if config is not None:
    return {k: getattr(config, k) for k in DATA_FIELDS}
  settings = dict(DATA_FIELDS)
  # The --set of commands without a config (data, encode) takes only these fields.
  for item in getattr(args, "data_overrides", None) or ():
    key, eq, value = str(item).partition("=")
    key = key.strip()
    if not eq or key not in DATA_FIELDS:
      raise ConfigError(f"--set {item!r}: this command reads only "
                        f"{', '.join(f'{k}=...' for k in DATA_FIELDS)} (the other config "
                        "fields belong to train)")
    settings[key] = value.strip()
  behaviours.parse_behaviour_weights(settings["behaviour_weights"],
                                     "--set behaviour_weights")
  checks.check_duplicates_rule(settings["duplicates"])
  return settings


def dataset_from_args(args: argparse.Namespace, config=None) -> Dataset:
  """Loads the dataset the shared options describe (`ConfigError` for options it does not use).

  `--valid-from-train` uses `args.seed` when the command has a `--seed` (else 2020). The data
  config fields come from `config` (or see `data_settings`). A behaviour_weights set for data
  without a behaviour column is reported with a warning, since it changes nothing.
  """
  settings = data_settings(args, config)
  name = dataset_name(args)
  if name not in DATASETS:
    raise ConfigError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
  options = {}
  for attr, flag, users in _SPECIFIC:
    value = getattr(args, attr, None)
    if value is None:
      continue
    if name not in users:
      raise ConfigError(f"{flag} is not used by --dataset {name} "
                        f"(only by {', '.join(users)})")
    if attr == "no_header":
      options["header"] = False
    else:
      options[attr] = value
  meta = {k: getattr(args, k, None) for k in _META if getattr(args, k, None) is not None}
  if name == "predefined":
    options.update(meta)
    meta = {}
  if "valid_from_train" in options:
    seed = getattr(args, "seed", None)
    options["seed"] = 2020 if seed is None else int(seed)
  params = inspect.signature(DATASETS[name]).parameters
  options.update({k: v for k, v in settings.items() if k in params})
  limit = getattr(args, "max_file_size", None)
  limit = files.max_file_size() if limit is None else files.parse_size(limit)
  with files.file_size_limit(limit):
    dataset = load_dataset(name, data_dir=args.data_dir, **options)
    if meta:
      from gnnrec_jax.data.side_features import attach_meta
      dataset = attach_meta(dataset, **meta)
  if (dataset.behaviours is None
      and settings["behaviour_weights"] != DATA_FIELDS["behaviour_weights"]):
    checks.warn(f"behaviour_weights is set but dataset {dataset.name!r} has no behaviour column, "
                "so it changes nothing (csv: --columns ...,behaviour=COL; ml-100k: --columns "
                "behaviour=rating)")
  return dataset
