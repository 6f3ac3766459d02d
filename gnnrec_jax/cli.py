"""The `gnnrec-jax` command line: `data`, `encode`, `train`, `evaluate`, `recommend`.

Each subcommand lives in `gnnrec_jax/commands/<name>.py` with `add_arguments(parser)` and
`run(args) -> int`, imported only when used so that `gnnrec-jax data` does not pay for jax.
User errors (`GnnrecError`) print one line on stderr and exit with code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from gnnrec_jax.errors import GnnrecError

COMMANDS = {
    "data": "print dataset statistics",
    "encode": "encode item/user texts with a pretrained language model (cached)",
    "train": "train a recommender and write config, history, checkpoint and metrics",
    "evaluate": "evaluate a trained workdir on the test split",
    "recommend": "top-k recommendations (and explanations) for a user",
}


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="gnnrec-jax", description="Graph-neural-network recommendation in JAX.")
  sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
  for name, help_text in COMMANDS.items():
    module = importlib.import_module(f"gnnrec_jax.commands.{name}")
    p = sub.add_parser(name, help=help_text, description=help_text)
    module.add_arguments(p)
    p.set_defaults(_module=module)
  return parser


def main(argv: list[str] | None = None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  try:
    return int(args._module.run(args) or 0)
  except GnnrecError as e:
    print(f"gnnrec-jax {args.command}: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print(f"gnnrec-jax {args.command}: interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(main())
