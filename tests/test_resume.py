"""Crash-safe resume and determinism across processes, with real `gnnrec-jax train` processes.

Three processes start together on the same files and seed: A runs uninterrupted, B is a second
uninterrupted run (determinism across processes), C is SIGKILLed once two epochs are in its
history and then resumed with `--resume`. A, B and the resumed C must write the same metrics.json,
bit for bit. The damaged-checkpoint tests then work on copies of C's finished workdir.
"""
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from gnnrec_jax import cli
from gnnrec_jax.data.splits import split_random
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.training import checkpoint

EPOCHS = 6
# 12k train rows in batches of 64: ~190 steps, an epoch of about half a second on one CPU core,
# so the kill lands inside the run, not after it.
TRAIN = ["--config", "test", "--set", f"epochs={EPOCHS}", "--set", "patience=100",
         "--no-progress"]
TIMING = ("train_s", "eval_s")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  d = tmp_path_factory.mktemp("data")
  s = split_random(make_synthetic(num_users=600, num_items=300, per_user=25, seed=4).interactions,
                   seed=0)
  for name, part in (("train", s.train), ("valid", s.valid), ("test", s.test)):
    rows = "".join(f"u{u}\ti{i}\t{w:g}\n" for u, i, w in zip(part.user, part.item, part.weight))
    (d / f"{name}.tsv").write_text("user_id\titem_id\trating\n" + rows)
  return d


def _args(data, workdir, *extra):
  return ["train", "--train", str(data / "train.tsv"), "--valid", str(data / "valid.tsv"),
          "--test", str(data / "test.tsv"), *TRAIN, "--workdir", str(workdir), *extra]


def _start(argv, cache_dir=None):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  if cache_dir is not None:  # the resumed run reuses the programs the first runs compiled
    env.update(JAX_COMPILATION_CACHE_DIR=str(cache_dir),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  return subprocess.Popen([sys.executable, "-m", "gnnrec_jax", *argv], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)


def _finish(proc, timeout=300):
  out, err = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, err
  assert "Traceback" not in err
  return out, err


def _history(workdir):
  rows = [json.loads(line) for line in open(workdir / "history.jsonl")]
  return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _complete_rows(path):
  try:
    text = path.read_text()
  except FileNotFoundError:
    return 0
  return text.count("\n")


def _checkpoint_epoch(path):
  """The epoch in a checkpoint's JSON header line (0 while there is none)."""
  try:
    with open(path, "rb") as f:
      return json.loads(f.readline())["epoch"]
  except (OSError, ValueError, KeyError):
    return 0


def _metrics(workdir):
  return json.loads((workdir / "metrics.json").read_text())


def _wait_for_epochs(proc, workdir, n, deadline):
  """Waits until `n` epochs are in the history and checkpointed (the run is inside epoch n+1)."""
  while _complete_rows(workdir / "history.jsonl") < n or _checkpoint_epoch(
      workdir / "latest.ckpt") < n:
    assert proc.poll() is None, f"run {workdir.name} ended before it could be interrupted"
    assert time.monotonic() < deadline
    time.sleep(0.02)
  assert proc.poll() is None, f"run {workdir.name} finished too early: make the data bigger"


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
  """A, B: uninterrupted; C: SIGKILLed after two epochs, then resumed; D: SIGTERMed likewise;
  E: a second writer started on A's workdir while A is stopped mid-run (SIGSTOP), refused."""
  root = tmp_path_factory.mktemp("runs")
  a, b, c, d = root / "a", root / "b", root / "c", root / "d"
  cache = root / "xla_cache"
  procs = {w: _start(_args(data, w), cache) for w in (a, b, c, d)}
  deadline = time.monotonic() + 300
  # Two epochs done and checkpointed: C (D) is now inside epoch 3 (training or validating).
  _wait_for_epochs(procs[c], c, 2, deadline)
  procs[c].send_signal(signal.SIGKILL)
  procs[c].communicate()
  killed = {"rows": _complete_rows(c / "history.jsonl"),
            "checkpoint_epoch": checkpoint.load(c, "latest", None)[1]["epoch"],
            "had_metrics": (c / "metrics.json").exists()}
  _wait_for_epochs(procs[d], d, 2, deadline)
  procs[d].send_signal(signal.SIGTERM)
  term_out, term_err = procs[d].communicate(timeout=120)
  termed = {"code": procs[d].returncode, "out": term_out, "err": term_err,
            "rows": _complete_rows(d / "history.jsonl"),
            "had_metrics": (d / "metrics.json").exists()}
  # E tries to take A's workdir over while A is frozen mid-run, holding its lock.
  _wait_for_epochs(procs[a], a, 1, deadline)
  procs[a].send_signal(signal.SIGSTOP)
  try:
    e_out, e_err = _start(_args(data, a, "--overwrite"), cache).communicate(timeout=120)
  finally:
    procs[a].send_signal(signal.SIGCONT)
  outs = {w: _finish(procs[w]) for w in (a, b)}
  resumed_out, resumed_err = _finish(_start(_args(data, c, "--resume"), cache))
  term_resumed_out, _ = _finish(_start(_args(data, d, "--resume"), cache))
  return {"a": a, "b": b, "c": c, "d": d, "cache": cache, "killed": killed, "out": outs[a][0],
          "resumed_out": resumed_out, "resumed_err": resumed_err, "termed": termed,
          "term_resumed_out": term_resumed_out, "second_writer": (e_out, e_err)}


def test_sigkill_then_resume_gives_the_uninterrupted_metrics(runs):
  assert _interrupted(runs["killed"])
  assert _metrics(runs["c"]) == _metrics(runs["a"])  # every key, bit for bit
  assert json.loads(runs["resumed_out"].splitlines()[-1]) == _metrics(runs["a"])
  assert runs["resumed_err"] == ""  # the newest checkpoint was intact: no fallback warning
  # History: no duplicated or missing epochs, the same losses and validation metrics.
  assert _history(runs["c"]) == _history(runs["a"])
  assert [r["epoch"] for r in _history(runs["c"])] == list(range(1, EPOCHS + 1))
  # Everything was replaced atomically: no temp files left behind.
  assert sorted(os.listdir(runs["c"])) == sorted(os.listdir(runs["a"])) == [
      ".gnnrec-jax.lock", "best.ckpt", "config.json", "curves.png", "history.jsonl", "latest.ckpt",
      "latest.prev.ckpt", "metrics.json", "per_user_test.npz", "run.json"]


def _interrupted(killed):
  # The kill came after epoch 2's checkpoint and before the end of the run.
  return (killed["rows"] >= 2 and 2 <= killed["checkpoint_epoch"] < EPOCHS
          and not killed["had_metrics"])


def test_sigterm_ends_cleanly_and_resume_gives_the_uninterrupted_metrics(runs):
  t = runs["termed"]
  assert t["code"] == 128 + signal.SIGTERM and t["out"] == ""
  assert t["err"].splitlines() == [
      "gnnrec-jax train: interrupted (SIGTERM); the last checkpoint is intact: run the same "
      "command with --resume to continue"]
  assert t["rows"] >= 2 and not t["had_metrics"]
  assert json.loads(runs["term_resumed_out"].splitlines()[-1]) == _metrics(runs["a"])
  assert _history(runs["d"]) == _history(runs["a"])


def test_a_second_writer_is_refused_and_the_first_run_is_unharmed(runs):
  out, err = runs["second_writer"]
  assert out == "" and "Traceback" not in err
  assert len(err.splitlines()) == 1
  assert err.startswith(f"gnnrec-jax train: error: workdir {runs['a']} is in use by another "
                        "gnnrec-jax run (pid ")
  # A, frozen while E was refused, finished with the history and metrics of a lone run.
  assert _history(runs["a"]) == _history(runs["b"])
  assert _metrics(runs["a"]) == _metrics(runs["b"])


def test_same_seed_same_metrics_in_two_processes(runs):
  assert _metrics(runs["b"]) == _metrics(runs["a"])
  assert _history(runs["b"]) == _history(runs["a"])
  assert json.loads(runs["out"].splitlines()[-1]) == _metrics(runs["a"])


def test_truncated_latest_falls_back_to_previous_and_says_so(runs, data, tmp_path):
  w = tmp_path / "w"
  shutil.copytree(runs["c"], w)
  latest = w / "latest.ckpt"
  size = _payload_bytes(latest)
  latest.write_bytes(latest.read_bytes()[:-1000])  # a write cut short
  # A history row cut mid-write, as a kill during the append leaves it.
  with open(w / "history.jsonl", "a") as f:
    f.write('{"epoch": 9, "loss": 0.1')
  out, err = _finish(_start(_args(data, w, "--resume"), runs["cache"]))
  assert err.splitlines() == [
      f"gnnrec-jax train: warning: using checkpoint {w / 'latest.prev.ckpt'} (epoch "
      f"{EPOCHS - 1}) because a newer one is unusable: {latest}: truncated or padded: payload "
      f"has {size - 1000} bytes, header says {size}"]
  # The last epoch was replayed from the one before: the same final result.
  assert json.loads(out.splitlines()[-1]) == _metrics(runs["a"])
  assert _history(w) == _history(runs["a"])
  assert checkpoint.load(w, "latest", None)[1]["epoch"] == EPOCHS


def _payload_bytes(path):
  data = path.read_bytes()
  return len(data) - data.index(b"\n") - 1


def test_truncated_checkpoint_without_previous_is_a_clear_error(runs, data, tmp_path):
  w = tmp_path / "w"
  shutil.copytree(runs["c"], w)
  (w / "latest.prev.ckpt").unlink()
  latest = w / "latest.ckpt"
  latest.write_bytes(latest.read_bytes()[:100])
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = cli.main(_args(data, w, "--resume"))
  out, err = out.getvalue(), err.getvalue()
  assert code == 2 and out == ""
  assert err.startswith(f"gnnrec-jax train: error: no usable checkpoint: {latest}: ")
  assert err.count("\n") == 1 and "Traceback" not in err
