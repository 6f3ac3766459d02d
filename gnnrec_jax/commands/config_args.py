"""Command-line arguments that choose a config: `--model`, `--config NAME|FILE`, `--set K=V ...`.

Shared by `train` and `tune` so that both read configs the same way.
"""
from __future__ import annotations

import os

SET_HELP = ("override config fields: --set lr=2e-3 epochs=20, or --set repeated; "
            "`gnnrec-jax config --model M` lists every key with its default, allowed values "
            "and the reason for the default")


def add_config_arguments(p, *, model_required: bool = False) -> None:
  from gnnrec_jax.models import MODELS
  p.add_argument("--model", choices=MODELS, default=None, required=model_required,
                 help="model (default: the config's model; lightgcn)")
  p.add_argument("--config", default=None, metavar="NAME|FILE",
                 help="a named default config (a model name, 'seed' for the seed document's literal "
                      "rule, or 'test'; default: the model's) "
                      "or a JSON file of config fields, e.g. a tune run's best_config.json "
                      "(fields it omits take its model's defaults)")
  p.add_argument("--set", dest="overrides", action="append", nargs="+", default=[],
                 metavar="KEY=VALUE", help=SET_HELP)


def is_config_file(value: str | None) -> bool:
  """A `--config` value that names a file rather than a named config."""
  return bool(value) and (value.endswith(".json") or os.sep in value or os.path.isfile(value))


def config_from_args(args):
  """The resolved, validated config of `--model`, `--config` and `--set`."""
  from gnnrec_jax import configs
  from gnnrec_jax.config import apply_overrides, load_config_file

  if is_config_file(args.config):
    config = load_config_file(args.config, base_for_model=configs.get_config)
  else:
    # No --config: the model's best measured recipe for the dataset, where there is one.
    config = configs.get_config(args.config or configs.recipe_for(
        args.model or "lightgcn", getattr(args, "dataset", None)))
  if args.model:
    config = config.replace(model=args.model)
  return apply_overrides(config, args.overrides)


def overridden_keys(args) -> set[str]:
  """The config keys named by `--set`."""
  from gnnrec_jax.config import parse_overrides
  return {o.split("=", 1)[0].strip() for o in parse_overrides(args.overrides)}


def with_dataset_defaults(args, config, dataset):
  """`config` with what the dataset prescribes where `--set` left it open: `split=predefined`
  for a dataset with its own split, and the fields of its published protocol
  (`gnnrec_jax.data.registry.PROTOCOLS`; not over a config file, which is complete)."""
  from gnnrec_jax.config import validate
  from gnnrec_jax.data.registry import PROTOCOLS
  keys = overridden_keys(args)
  changes = {}
  if dataset.split is not None and "split" not in keys:
    changes["split"] = "predefined"
  if not is_config_file(args.config):
    changes.update({k: v for k, v in PROTOCOLS.get(dataset.name, {}).items() if k not in keys})
  return validate(config.replace(**changes)) if changes else config
