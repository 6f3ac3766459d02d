"""A run's folder: who owns it, one writer at a time, the files a run writes, and reading it back.

Files of a run (`RUN_FILES`, and the checkpoints `latest*.ckpt`, `best*.ckpt`):
  run.json        the ownership marker: format, fingerprint, dataset, config, dataset arguments
  config.json     the resolved config
  history.jsonl   one JSON row per epoch (closed-form models: one row, epoch 0)
  metrics.json    the test metrics
  per_user_test.npz  per-user test metrics for `gnnrec-jax compare` (`evaluation.per_user`;
                  `evaluate --split valid` writes per_user_valid.npz)
  curves.png      loss and validation curves
  .gnnrec-jax.lock  the writer's lock (pid, host, start time)

Ownership: a folder is a run folder when it holds our `run.json`. A folder that exists, is not
empty and holds no `run.json` (a user's folder) is refused, `--overwrite` included: we never
write into or clear a folder whose files we did not write. Files a user adds to a run folder are
left alone; `--overwrite` removes only the run's own files.

One writer per workdir: `RunDir.open` takes an exclusive advisory lock (`fcntl.flock`) on the lock
file before touching anything and holds it until the run ends; a second writer gets a one-line
error naming the first one's pid and host. The operating system drops the lock when its process
dies, so a lock left by a killed run is never stale. Readers (`evaluate`, `recommend`) take no
lock: every file a run replaces is replaced atomically.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import socket
import sys

from gnnrec_jax import fileio
from gnnrec_jax.config import Config, config_from_dict
from gnnrec_jax.errors import CheckpointError
from gnnrec_jax.training import checkpoint

RUN_FORMAT = "gnnrec-jax-run"
LOCK_NAME = ".gnnrec-jax.lock"
RUN_FILES = ("run.json", "config.json", "history.jsonl", "metrics.json", "curves.png",
             "per_user_test.npz", "per_user_valid.npz")
CHECKPOINTS = ("latest", "best")


def dataset_arg_names() -> list[str]:
  """The argparse dests that select a dataset (saved in run.json to rebuild it later)."""
  from gnnrec_jax.data.cli_args import add_dataset_arguments
  p = argparse.ArgumentParser(add_help=False)
  add_dataset_arguments(p)
  return [a.dest for a in p._actions]


_PATH_ARGS = ("data_dir", "train", "valid", "test", "item_meta", "user_meta")


def dataset_args_of(args: argparse.Namespace, dataset=None) -> dict:
  """The dataset options of `args`, with paths made absolute so that `evaluate` and
  `recommend` work from any directory (a default folder is taken from `dataset.source`)."""
  out = {k: getattr(args, k) for k in dataset_arg_names() if hasattr(args, k)}
  for k in _PATH_ARGS:
    if out.get(k):
      out[k] = os.path.abspath(out[k])
  source = (dataset.source or "") if dataset is not None else ""
  source = source if os.path.isdir(source) else source.split(":", 1)[-1]  # "lightgcn:/path"
  if (not out.get("data_dir") and not out.get("train") and os.path.isdir(source)
      and dataset.name != "ml-100k"):  # ml-100k's default is the checksummed cache
    out["data_dir"] = os.path.abspath(source)
  return out


# ----------------------------------------------------------------------------------- run.json

def read_run(workdir: str) -> dict:
  """The workdir's `run.json`, schema-checked; `CheckpointError` naming the file and field."""
  path = os.path.join(workdir, "run.json")
  if not os.path.isdir(workdir):
    raise CheckpointError(f"workdir {workdir} does not exist (or is not a folder)")
  if not os.path.exists(path):
    raise CheckpointError(f"{workdir} holds no run (no run.json); train one with "
                          f"`gnnrec-jax train --workdir {workdir} ...`")
  run = _read_json(path)
  if not isinstance(run, dict):
    raise CheckpointError(f"{path}: not a gnnrec-jax run file (a JSON {type(run).__name__}, "
                          "not an object)")
  if run.get("format", RUN_FORMAT) != RUN_FORMAT:
    raise CheckpointError(f"{path}: field format is {run.get('format')!r}, not {RUN_FORMAT!r}")
  for key, typ in (("fingerprint", str), ("config", dict), ("dataset_args", dict)):
    if key not in run and key != "dataset_args":
      raise CheckpointError(f"{path}: not a gnnrec-jax run file (no field {key!r})")
    if key in run and not isinstance(run[key], typ):
      raise CheckpointError(f"{path}: field {key} must be a JSON "
                            f"{'object' if typ is dict else 'string'}, not "
                            f"{type(run[key]).__name__}")
  return run


def _read_json(path: str):
  try:
    with open(path, "rb") as f:
      return json.loads(f.read().decode("utf-8"))
  except UnicodeDecodeError:
    raise CheckpointError(f"{path}: not UTF-8 text (damaged, or not a gnnrec-jax file)") from None
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{path}: not valid JSON ({e.msg}: line {e.lineno} column {e.colno})"
                          ) from None


def config_of(run: dict, path: str = "run.json") -> Config:
  """The run's config: types and ranges checked, fields this version does not know ignored."""
  return config_from_dict(run["config"], source=f"{path}: config")


def _is_run_file(path: str) -> bool:
  """True when `path` is a run.json that gnnrec-jax wrote (this or an earlier version)."""
  try:
    run = _read_json(path)
  except (CheckpointError, OSError):
    return False
  return (isinstance(run, dict) and run.get("format", RUN_FORMAT) == RUN_FORMAT
          and isinstance(run.get("fingerprint"), str) and isinstance(run.get("config"), dict))


# ------------------------------------------------------------------------------------ writing

def _check_owned(workdir: str, *, overwrite: bool) -> None:
  """Refuses a folder that exists, holds files and is not a run folder (see the docstring)."""
  if not os.path.exists(workdir):
    return
  if not os.path.isdir(workdir):
    raise CheckpointError(f"workdir {workdir} exists and is not a folder")
  entries = sorted(e for e in os.listdir(workdir) if e != LOCK_NAME)
  if not entries or _is_run_file(os.path.join(workdir, "run.json")):
    return
  shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
  why = " (--overwrite only replaces a gnnrec-jax run)" if overwrite else ""
  raise CheckpointError(f"workdir {workdir} is not empty and holds no gnnrec-jax run "
                        f"({shown}); use a new or empty folder{why}")


class WorkdirLock:
  """An exclusive advisory lock on `<workdir>/.gnnrec-jax.lock` (see the module docstring)."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_NAME)
    self._fd: int | None = None

  def acquire(self) -> None:
    import fcntl  # POSIX only; imported here so that reading runs works everywhere
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      owner = _read_owner(fd)
      os.close(fd)
      raise CheckpointError(
          f"workdir {os.path.dirname(self.path) or '.'} is in use by another gnnrec-jax run "
          f"({owner}); wait for it to finish or use another --workdir") from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:500]}).encode() + b"\n")
    os.fsync(fd)
    self._fd = fd

  def release(self) -> None:
    if self._fd is not None:
      os.close(self._fd)  # closing drops the flock; the file stays (unlinking it would race)
      self._fd = None


def _read_owner(fd: int) -> str:
  try:
    owner = json.loads(os.pread(fd, 4096, 0).decode())
    return f"pid {owner['pid']} on {owner['host']}, started {owner['started']}"
  except (OSError, ValueError, KeyError, TypeError):
    return "owner unknown"


class RunDir:
  """The workdir of one run being written: locked, owned, checked against the experiment.

  Use as a context manager: `with RunDir.open(workdir, exp, ...) as run: ...`; the lock is held
  until the block ends, whatever happens inside.
  """

  def __init__(self, path: str, exp, lock: WorkdirLock):
    self.path = path
    self.exp = exp
    self._lock = lock

  @classmethod
  def open(cls, workdir: str, exp, *, resume: bool = False, overwrite: bool = False,
           extra_meta: dict | None = None) -> "RunDir":
    """Claims `workdir` for the run of `exp` and writes its `run.json` and `config.json`.

    Args:
      workdir: the folder (created when missing).
      exp: the `gnnrec_jax.experiment.Experiment`.
      resume: continue the run already in the folder (same fingerprint).
      overwrite: start over in a folder that holds a run (this one or another), removing the
        run's own files (never anything else).
      extra_meta: more run.json fields (e.g. the CLI's dataset arguments).

    Raises:
      CheckpointError: a folder that is not ours, a folder in use by another writer, a run of
        another dataset or config (unless overwrite), this run again without resume/overwrite,
        or resume without a run.
    """
    _check_owned(workdir, overwrite=overwrite)
    os.makedirs(workdir, exist_ok=True)
    lock = WorkdirLock(workdir)
    lock.acquire()
    try:
      _check_owned(workdir, overwrite=overwrite)  # again, now that no other writer can act
      run = cls(workdir, exp, lock)
      run._check_same_run(resume=resume, overwrite=overwrite)
      cfg = exp.config
      fileio.write_json(os.path.join(workdir, "config.json"), cfg.to_dict())
      fileio.write_json(os.path.join(workdir, "run.json"), {
          "format": RUN_FORMAT, "fingerprint": exp.fingerprint, "dataset": exp.dataset.name,
          "config": cfg.to_dict(), "num_users": exp.num_users, "num_items": exp.num_items,
          "split_sizes": exp.split.sizes(),
          # file, sha256, shape, dtype, encoder of each vectors file (issue 24)
          **({"vectors": exp.vectors} if getattr(exp, "vectors", None) else {}),
          **(extra_meta or {})})
    except BaseException:
      lock.release()
      raise
    return run

  def __enter__(self) -> "RunDir":
    return self

  def __exit__(self, *exc) -> None:
    self._lock.release()

  def _check_same_run(self, *, resume: bool, overwrite: bool) -> None:
    """Refuses to mix runs: a workdir holds one dataset + config (compared by fingerprint)."""
    run_path = os.path.join(self.path, "run.json")
    if not os.path.exists(run_path):
      if resume:
        raise CheckpointError(f"--resume: {self.path} holds no run to resume (no run.json)")
      return
    if overwrite:
      return
    old = read_run(self.path)
    if old["fingerprint"] != self.exp.fingerprint:
      # Through JSON, as run.json stores it: tuples become lists and compare equal.
      old_cfg = old["config"]
      new_cfg = json.loads(json.dumps(self.exp.config.to_dict()))
      diff = sorted(k for k in set(old_cfg) | set(new_cfg) if old_cfg.get(k) != new_cfg.get(k))
      what = f"config keys differ: {', '.join(diff)}" if diff else (
          f"dataset differs ({old.get('dataset')} vs {self.exp.dataset.name}, or another split"
          " or other item/user metadata)")
      raise CheckpointError(f"{self.path} belongs to a different run ({what}); "
                            "use another --workdir or pass --overwrite")
    if not resume:
      raise CheckpointError(f"{self.path} already holds this run; pass --resume to continue "
                            "it or --overwrite to start over")

  # ----------------------------------------------------------------------------- run files

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  def clear(self) -> None:
    """Removes the previous run's outputs (never run.json/config.json, just rewritten, and
    never a file that is not the run's), so that a fresh run can never fall back to them."""
    for name in CHECKPOINTS:
      for path in checkpoint.checkpoint_paths(self.path, name):
        path.unlink()
    for name in RUN_FILES[2:]:
      if os.path.exists(self.file(name)):
        os.remove(self.file(name))

  def read_history(self, upto_epoch: int) -> list[dict]:
    """History rows of epochs <= upto_epoch; a row cut by a crash ends the file.

    Raises:
      CheckpointError: a complete row that is not a JSON object with an integer epoch (a
        damaged or foreign file), naming the line.
    """
    path = self.file("history.jsonl")
    if not os.path.exists(path):
      return []
    with open(path, "rb") as f:
      lines = f.read().split(b"\n")
    rows = []
    for n, line in enumerate(lines, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line.decode("utf-8"))
      except (UnicodeDecodeError, json.JSONDecodeError):
        if n == len(lines):  # the last line, cut by a crash: everything after it is redone
          break
        raise CheckpointError(f"{path}:{n}: not a JSON history row (damaged file?); "
                              "pass --overwrite to start over") from None
      epoch = row.get("epoch") if isinstance(row, dict) else None
      if not isinstance(epoch, int) or isinstance(epoch, bool):
        raise CheckpointError(f"{path}:{n}: a history row needs an integer field epoch; "
                              "pass --overwrite to start over")
      if epoch <= upto_epoch:
        rows.append(row)
    return rows

  def write_history(self, rows: list[dict]) -> None:
    """Replaces the history atomically (a resume drops rows of epochs it replays)."""
    fileio.write_atomic(self.file("history.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))

  def append_history(self, row: dict) -> None:
    # fsynced before the epoch's checkpoint is written, so a checkpoint never survives a power
    # loss that its history rows do not (a plain kill loses nothing already written).
    with open(self.file("history.jsonl"), "a") as f:
      f.write(json.dumps(row) + "\n")
      f.flush()
      os.fsync(f.fileno())

  def write_metrics(self, metrics: dict) -> None:
    fileio.write_json(self.file("metrics.json"), metrics)

  def write_per_user(self, per_user: dict, part: str = "test") -> None:
    write_per_user(self.path, self.exp, per_user, part)

  def plot(self, history: list[dict]) -> None:
    with contextlib.suppress(ImportError):  # matplotlib is optional for the library
      from gnnrec_jax.training import plots
      plots.plot_history(history, self.file("curves.png"),
                         select_metric=self.exp.config.select_metric)


def write_per_user(workdir: str, exp, per_user: dict, part: str) -> str:
  """`per_user_<part>.npz` of a run (see `gnnrec_jax.evaluation.per_user`)."""
  from gnnrec_jax.evaluation import per_user as per_user_lib
  from gnnrec_jax.experiment import split_fingerprint
  return per_user_lib.save(os.path.join(workdir, per_user_lib.file_name(part)), per_user,
                           part=part, split=split_fingerprint(exp.dataset, exp.split),
                           model=exp.config.model, fingerprint=exp.fingerprint)


# ------------------------------------------------------------------------------------ reading

def load(workdir: str, dataset=None):
  """Rebuilds `(run, recommender, params)` from a workdir's best checkpoint.

  The dataset is reloaded with the arguments saved at training time (or `dataset`, for runs a
  script fitted on a dataset of its own) and checked against the run's fingerprint, so a changed
  data file is reported instead of silently mis-evaluated. `recommender.exp` is the experiment.

  Raises:
    CheckpointError: no run, a damaged run file or checkpoint, data that no longer match, or a
      run without saved dataset arguments and no `dataset` given.
  """
  from gnnrec_jax import models
  from gnnrec_jax.data.cli_args import dataset_from_args
  from gnnrec_jax.experiment import prepare

  run = read_run(workdir)
  config = config_of(run, os.path.join(workdir, "run.json"))
  if dataset is None:
    if "dataset_args" not in run:
      raise CheckpointError(
          f"{os.path.join(workdir, 'run.json')}: no dataset_args (the run was fitted by a "
          "script, not `gnnrec-jax train`); load it in Python with "
          "gnnrec_jax.training.workdir.load(workdir, dataset=...)")
    dataset = dataset_from_args(argparse.Namespace(**run["dataset_args"]), config)
  exp = prepare(config, dataset)
  if exp.fingerprint != run["fingerprint"]:
    raise CheckpointError(f"{workdir}: the data no longer matches this run's fingerprint "
                          "(the dataset files, the split, the item/user metadata or a vectors "
                          "file changed since training)")
  rec = models.create(exp)
  template = rec.template()
  saved, _ = checkpoint.load(workdir, "best", None if template is None else {"params": template},
                             fingerprint=exp.fingerprint)
  return run, rec, saved["params"]
