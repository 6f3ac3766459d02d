"""The `gnnrec-jax` command line: `data`, `encode`, `train`, `evaluate`, `recommend`, `compare`,
`tune`, `config`.

Each subcommand lives in `gnnrec_jax/commands/<name>.py` with `add_arguments(parser)` and
`run(args) -> int`, imported only when used so that `gnnrec-jax data` does not pay for jax.

What a user sees on stderr is one line per problem, never a traceback:
  * a mistake in the input (`GnnrecError`: files, ids, configs, workdirs, checkpoints) and a bad
    command line: `gnnrec-jax CMD: error: ...`, exit code 2;
  * a system error (`OSError`: disk full, permission denied, a path that is a file): the same
    line naming the path, exit code 1;
  * warnings (repaired data, a checkpoint fallback): `gnnrec-jax CMD: warning: ...`.
The last stdout line of every command is one JSON object for scripts. Commands whose product is a
report (`data`, `recommend`, `compare`, `config`) print it on stdout before that line; commands
that run something (`train`, `evaluate`, `tune`) print progress and their results table on
stderr, so that their stdout is the JSON line alone.
Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
import warnings

from gnnrec_jax.errors import GnnrecError

COMMANDS = {
    "data": "print dataset statistics",
    "encode": "encode item/user texts with a pretrained language model (cached)",
    "train": "train a recommender and write config, history, checkpoint and metrics",
    "evaluate": "evaluate a trained workdir on the test split",
    "recommend": "top-k recommendations (and explanations) for a user",
    "compare": "paired significance tests of two or more trained runs, and a replay A/B",
    "tune": "hyperparameter search on the validation metric (Optuna), resumable",
    "config": "every config key with its default, type, allowed values and reason",
}


class _Parser(argparse.ArgumentParser):
  """An ArgumentParser whose errors are one line (argparse prints the whole usage first)."""

  def error(self, message):
    self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="gnnrec-jax", description="Graph-neural-network recommendation in JAX.")
  sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
  for name, help_text in COMMANDS.items():
    module = importlib.import_module(f"gnnrec_jax.commands.{name}")
    p = sub.add_parser(name, help=help_text, description=help_text)
    module.add_arguments(p)
    p.set_defaults(_module=module)
  return parser


@contextlib.contextmanager
def _one_line_warnings(prog: str):
  """Every warning raised inside as one line `PROG: warning: ...` on stderr.

  `DataWarning`s go through `checks.one_line_warnings` (printed, counted, after the command);
  the others (e.g. a checkpoint fallback) are printed at once, since they say what is
  happening now.
  """
  from gnnrec_jax.data.checks import DataWarning, one_line_warnings

  with one_line_warnings(prog), warnings.catch_warnings():
    record_data_warning = warnings.showwarning  # one_line_warnings' recorder

    def show(message, category, filename, lineno, file=None, line=None):
      if issubclass(category, DataWarning):
        record_data_warning(message, category, filename, lineno, file, line)
      else:
        print(f"{prog}: warning: {_one_line(message)}", file=sys.stderr)

    warnings.showwarning = show
    yield


def _one_line(message) -> str:
  return " ".join(str(message).split("\n"))


def _os_error(e: OSError) -> str:
  """`PATH: reason`, e.g. `runs/x/metrics.json: No space left on device`."""
  if e.filename is None:
    return str(e)
  path = f"{e.filename} -> {e.filename2}" if e.filename2 is not None else f"{e.filename}"
  return f"{path}: {e.strerror or e}"


class _Interrupted(KeyboardInterrupt):
  """SIGTERM (what `timeout` and job schedulers send), raised like Ctrl-C's KeyboardInterrupt so
  that the same clean-up runs: atomic writes finish or are abandoned, the lock is released."""


def _on_sigterm(signum, frame):
  del frame
  raise _Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
  parser = build_parser()
  try:
    args = parser.parse_args(argv)
  except SystemExit as e:  # --help (0) or a usage error (2, its line already printed)
    return int(e.code or 0)
  prog = f"gnnrec-jax {args.command}"
  main_thread = threading.current_thread() is threading.main_thread()
  previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
  try:
    with _one_line_warnings(prog):
      return int(args._module.run(args) or 0)
  except GnnrecError as e:
    print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
    return 2
  except OSError as e:
    print(f"{prog}: error: {_os_error(e)}", file=sys.stderr)
    return 1
  except KeyboardInterrupt as e:
    signum = e.args[0] if isinstance(e, _Interrupted) else signal.SIGINT
    hint = ""
    if args.command == "train":
      hint = ("; the last checkpoint is intact: run the same command with --resume to continue"
              if not getattr(args, "resume", False) else "; run the same command to continue")
    elif args.command == "tune":
      hint = "; finished trials are kept: run the same command to continue"
    print(f"{prog}: interrupted ({signal.Signals(signum).name}){hint}", file=sys.stderr)
    return 128 + int(signum)
  finally:
    if main_thread:
      signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
  sys.exit(main())
