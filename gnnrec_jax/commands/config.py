"""`gnnrec-jax config [--model M]`: every config key with its default, type, allowed values and
the reason for the default.

    gnnrec-jax config                    # Config's own defaults
    gnnrec-jax config --model mf         # MF's defaults (gnnrec_jax/configs/mf.py) beside them
    gnnrec-jax config --config runs/tune/best_config.json

The listing is on stdout, one key per entry; the last stdout line is the resolved config as JSON.
"""
from __future__ import annotations

import json
import textwrap


def add_arguments(p):
  from gnnrec_jax.commands.config_args import add_config_arguments
  add_config_arguments(p)


def _show(value) -> str:
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, tuple):
    return ",".join(str(v) for v in value)
  if value == "":
    return "''"
  return str(value)


def run(args) -> int:
  from gnnrec_jax.commands.config_args import config_from_args
  from gnnrec_jax.config import field_specs

  config = config_from_args(args)
  source = args.config or (f"configs/{args.model}.py" if args.model else "Config")
  print(f"config of {config.model} ({source}); set any key with --set KEY=VALUE")
  for spec in field_specs().values():
    value = getattr(config, spec.name)
    changed = "" if value == spec.default else f"  (Config default: {_show(spec.default)})"
    print(f"{spec.name} = {_show(value)}{changed}")
    print(f"    {spec.type_name}: {spec.describe_allowed()}")
    for line in textwrap.wrap(spec.doc, 92):
      print(f"    {line}")
  print(json.dumps(config.to_dict(), sort_keys=True))
  return 0
