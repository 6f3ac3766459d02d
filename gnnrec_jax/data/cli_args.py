"""The dataset options every command shares (`data`, `train`, `encode`, `recommend`).

    gnnrec-jax data --dataset ml-100k
    gnnrec-jax data --dataset gowalla --data-dir ../shared/data/gowalla
    gnnrec-jax data --train train.tsv --valid valid.tsv --test test.tsv --item-meta items.tsv
    gnnrec-jax data --dataset csv --data-dir ratings.csv --columns user=uid,item=iid,weight=r
"""
from __future__ import annotations

import argparse

from gnnrec_jax.data.registry import DATASETS, load_dataset
from gnnrec_jax.data.types import Dataset
from gnnrec_jax.errors import ConfigError

# Options that only some datasets read: (attribute, flag, dataset names that read it).
_SPECIFIC = (
    ("name", "--name", ("atomic", "lightgcn", "csv", "predefined")),
    ("columns", "--columns", ("csv",)),
    ("sep", "--sep", ("csv",)),
    ("no_header", "--no-header", ("csv",)),
    ("valid_from_train", "--valid-from-train", ("lightgcn", "gowalla", "lastfm")),
    ("train", "--train", ("predefined",)),
    ("valid", "--valid", ("predefined",)),
    ("test", "--test", ("predefined",)),
    ("item_meta", "--item-meta", ("predefined",)),
    ("user_meta", "--user-meta", ("predefined",)),
)


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds `--dataset --data-dir --name --train --valid --test --item-meta --user-meta --columns
  --sep --no-header --valid-from-train` to `parser`."""
  g = parser.add_argument_group("dataset")
  g.add_argument("--dataset", default=None, metavar="NAME",
                 help=f"one of {', '.join(DATASETS)} (default: ml-100k, or predefined when "
                      "--train is given)")
  g.add_argument("--data-dir", default=None, metavar="DIR",
                 help="folder (or file, for csv) to read; gowalla and lastfm default to "
                      "../shared/data/NAME, ml-100k to the cache")
  g.add_argument("--name", default=None, help="dataset name (atomic: the NAME of NAME.inter)")
  g.add_argument("--train", default=None, metavar="FILE",
                 help="predefined split: tab-separated user_id, item_id[, rating|weight, timestamp]")
  g.add_argument("--valid", default=None, metavar="FILE", help="predefined validation part")
  g.add_argument("--test", default=None, metavar="FILE", help="predefined test part")
  g.add_argument("--item-meta", default=None, metavar="FILE",
                 help="tab-separated item metadata with a header, the id first")
  g.add_argument("--user-meta", default=None, metavar="FILE",
                 help="tab-separated user metadata with a header, the id first")
  g.add_argument("--columns", default=None, metavar="SPEC",
                 help="csv: user=COL,item=COL[,weight=COL][,timestamp=COL]")
  g.add_argument("--sep", default=None, help="csv: field separator (default ','; 'tab' for TSV)")
  g.add_argument("--no-header", action="store_true", default=None,
                 help="csv: the file has no header (columns are 0-based positions)")
  g.add_argument("--valid-from-train", type=float, default=None, metavar="FRACTION",
                 help="lightgcn/gowalla/lastfm: carve this per-user fraction of train into valid")


def dataset_name(args: argparse.Namespace) -> str:
  """`--dataset`, else "predefined" when `--train` is given, else "ml-100k"."""
  if args.dataset:
    return args.dataset
  return "predefined" if getattr(args, "train", None) else "ml-100k"


def dataset_from_args(args: argparse.Namespace) -> Dataset:
  """Loads the dataset the shared options describe (`ConfigError` for options it does not use).

  `--valid-from-train` uses `args.seed` when the command has a `--seed` (else 2020).
  """
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
  if "valid_from_train" in options:
    seed = getattr(args, "seed", None)
    options["seed"] = 2020 if seed is None else int(seed)
  return load_dataset(name, data_dir=args.data_dir, **options)
