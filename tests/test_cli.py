"""Bad input at the command line: one test per problem, each a one-line message and an exit code.

User mistakes (files, ids, configs, workdirs, checkpoints) exit 2, system errors (OSError) exit 1,
never with a traceback. One small run is trained once per module and shared (read-only; tests
that damage it work on a copy).
"""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from gnnrec_jax import cli
from gnnrec_jax.data.splits import split_random
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.training import checkpoint

HEADER = "user_id\titem_id\trating\n"
FAST = ["--config", "test", "--set", "epochs=2", "--no-progress"]


def _write_part(path, inter, extra=""):
  rows = "".join(f"u{u}\ti{i}\t{w:g}\n" for u, i, w in zip(inter.user, inter.item, inter.weight))
  path.write_text(HEADER + rows + extra)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  """Predefined split files of the planted-cluster data, plus a user `cold` with test rows only."""
  d = tmp_path_factory.mktemp("data")
  s = split_random(make_synthetic(seed=2).interactions, seed=0)
  _write_part(d / "train.tsv", s.train)
  _write_part(d / "valid.tsv", s.valid)
  _write_part(d / "test.tsv", s.test, extra="cold\ti0\t4\ncold\ti1\t2\n")
  # The user file puts `cold` in the catalogue, so its test rows are kept (not dropped).
  (d / "users.tsv").write_text("user_id\tage\n" + "".join(f"u{u}\t30\n" for u in range(60))
                               + "cold\t20\n")
  return d


def _data_args(d, train="train.tsv"):
  return ["--train", str(d / train), "--valid", str(d / "valid.tsv"), "--test",
          str(d / "test.tsv"), "--user-meta", str(d / "users.tsv")]


from conftest import run_cli as _main  # noqa: E402 (the one helper, tests/conftest.py)


def _error(code, err, cmd, want_code=2):
  """The single stderr line of an error, after checking the code and the prefix."""
  assert code == want_code, err
  lines = err.splitlines()
  assert len(lines) == 1, err
  assert lines[0].startswith(f"gnnrec-jax {cmd}: error: "), err
  return lines[0]


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run") / "w"
  code, out, err = _main("train", *_data_args(data), *FAST, "--workdir", workdir)
  assert code == 0, err
  return workdir, out, err


@pytest.fixture
def workdir_copy(trained, tmp_path):
  w = tmp_path / "w"
  shutil.copytree(trained[0], w)
  return w


# --- data files -----------------------------------------------------------------------------------

def test_missing_file(data, tmp_path):
  code, _, err = _main("train", "--train", tmp_path / "nope.tsv", *FAST, "--workdir", tmp_path)
  assert "nope.tsv: file not found" in _error(code, err, "train")


def test_malformed_line_names_file_and_line(data, tmp_path):
  bad = tmp_path / "train.tsv"
  bad.write_text(HEADER + "u1\ti1\t3\nu2\ti2\n")
  code, _, err = _main("train", "--train", bad, *FAST, "--workdir", tmp_path / "w")
  assert "train.tsv:3: expected 3 columns (as in the header), found 2" in _error(code, err, "train")


def test_wrong_encoding_names_file_and_line(tmp_path):
  bad = tmp_path / "train.tsv"
  bad.write_bytes(HEADER.encode() + b"u1\ti1\t3\nu2\tCaf\xe9\t1\n")
  code, _, err = _main("train", "--train", bad, *FAST, "--workdir", tmp_path / "w")
  assert "train.tsv:3: byte 0xe9 is not valid utf-8" in _error(code, err, "train")


def test_empty_train_set(tmp_path):
  (tmp_path / "train.tsv").write_text(HEADER)
  code, _, err = _main("train", "--train", tmp_path / "train.tsv", *FAST, "--workdir", tmp_path / "w")
  assert "train.tsv: no interactions after the header" in _error(code, err, "train")


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_non_finite_weight(tmp_path, bad):
  (tmp_path / "train.tsv").write_text(HEADER + f"u1\ti1\t3\nu2\ti2\t{bad}\n")
  code, _, err = _main("train", "--train", tmp_path / "train.tsv", *FAST, "--workdir", tmp_path / "w")
  assert f"train.tsv:3: weight {float(bad)} is invalid (expected a finite number >= 0)" in \
      _error(code, err, "train")


# --- configs, names -------------------------------------------------------------------------------

def test_unknown_config_key_suggests_close_ones(data, tmp_path):
  code, _, err = _main("train", *_data_args(data), "--set", "lrr=0.1", "--workdir", tmp_path)
  assert "--set lrr: unknown config key (did you mean lr" in _error(code, err, "train")
  code, _, err = _main("train", *_data_args(data), "--set", "nope=1", "--workdir", tmp_path)
  assert _error(code, err, "train").endswith("--set nope: unknown config key")


@pytest.mark.parametrize("value,message", [
    ("lr=abc", "--set lr=abc: expected a value of type float"),
    ("lr=-1", "invalid config: lr must be a finite number > 0, got -1.0"),
    ("select_metric=ndcg@7", "select_metric 'ndcg@7' must be NAME@K or BLOCK/NAME@K with NAME one of recall"),
    ("select_metric=all/ndcg@20", "select_metric 'all/ndcg@20' must be NAME@K or BLOCK/NAME@K"),
    ("select_metric=foo@20", "select_metric 'foo@20' must be NAME@K or BLOCK/NAME@K with NAME one of recall"),
])
def test_invalid_config_value(data, tmp_path, value, message):
  code, _, err = _main("train", *_data_args(data), "--set", value, "--workdir", tmp_path)
  assert message in _error(code, err, "train")


def test_unknown_model_is_one_line(data, tmp_path):
  code, _, err = _main("train", *_data_args(data), "--model", "bert4rec", "--workdir", tmp_path)
  line = _error(code, err, "train")
  assert "argument --model: invalid choice: 'bert4rec'" in line and "lightgcn" in line


def test_unknown_named_config(data, tmp_path):
  code, _, err = _main("train", *_data_args(data), "--config", "huge", "--workdir", tmp_path)
  assert "unknown config 'huge'; choose one of lightgcn" in _error(code, err, "train")


def test_unknown_dataset(tmp_path):
  code, _, err = _main("train", "--dataset", "movielens-1b", "--workdir", tmp_path)
  assert "unknown dataset 'movielens-1b'; expected one of ml-100k" in _error(code, err, "train")


# --- users and items absent from train ------------------------------------------------------------

def test_user_without_train_interactions_is_evaluated_with_a_warning(trained, data):
  workdir, out, err = trained
  # Policy: kept in the evaluation (from its layer-0 vector alone), announced in one line.
  assert err.splitlines() == ["gnnrec-jax train: warning: 1 valid/test users have no train "
                              "interactions (e.g. user 'cold'); they are evaluated from their "
                              "layer-0 vectors alone"]
  metrics = json.loads(out.splitlines()[-1])
  assert metrics == json.loads((workdir / "metrics.json").read_text())
  test_users = {line.split("\t")[0] for line in (data / "test.tsv").read_text().splitlines()[1:]}
  assert "cold" in test_users and metrics["num_users"] == len(test_users)
  assert all(np.isfinite(v) for v in metrics.values())


def test_unknown_user_in_recommend(trained):
  code, _, err = _main("recommend", "--workdir", trained[0], "--user", "nobody")
  assert "unknown user 'nobody': not in the catalogue" in _error(code, err, "recommend")


def test_unknown_item_in_history(trained):
  code, _, err = _main("recommend", "--workdir", trained[0], "--history", "i1,zzz")
  assert "--history: unknown item ids 'zzz'" in _error(code, err, "recommend")


def test_k_larger_than_catalogue(trained):
  code, _, err = _main("recommend", "--workdir", trained[0], "--user", "cold", "-k", 99999)
  assert ("-k 99999 is larger than the 38 items left to recommend to user cold (catalogue of "
          "40, 2 seen)") in _error(code, err, "recommend")
  # The largest k that fits works, and returns every unseen item once.
  code, out, err = _main("recommend", "--workdir", trained[0], "--user", "cold", "-k", 38)
  assert code == 0, err
  recs = json.loads(out.splitlines()[-1])["recommendations"]
  assert sorted(r["item"] for r in recs) == sorted(f"i{i}" for i in range(2, 40))


# --- workdirs and checkpoints ---------------------------------------------------------------------

def test_workdir_of_another_dataset(trained, data, tmp_path):
  lines = (data / "train.tsv").read_text().splitlines(keepends=True)
  (data / "train_small.tsv").write_text("".join(lines[:-5]))
  code, _, err = _main("train", *_data_args(data, "train_small.tsv"), *FAST, "--resume",
                       "--workdir", trained[0])
  assert f"{trained[0]} belongs to a different run (dataset differs" in _error(code, err, "train")


def test_workdir_of_another_config(trained, data):
  code, _, err = _main("train", *_data_args(data), *FAST, "--set", "lr=0.01", "--set",
                       "embed_dim=4", "--resume", "--workdir", trained[0])
  assert "belongs to a different run (config keys differ: embed_dim, lr)" in \
      _error(code, err, "train")


def test_workdir_of_this_run_needs_resume_or_overwrite(trained, data):
  code, _, err = _main("train", *_data_args(data), *FAST, "--workdir", trained[0])
  assert "already holds this run; pass --resume to continue it or --overwrite" in \
      _error(code, err, "train")


def test_resume_without_a_run(data, tmp_path):
  code, _, err = _main("train", *_data_args(data), *FAST, "--resume", "--workdir", tmp_path)
  assert f"--resume: {tmp_path} holds no run to resume (no run.json)" in _error(code, err, "train")


def test_resume_before_the_first_checkpoint_starts_over(workdir_copy, data, trained):
  # A run killed during its first epoch leaves run.json but no checkpoint.
  for name in ("latest.ckpt", "latest.prev.ckpt", "best.ckpt", "metrics.json"):
    (workdir_copy / name).unlink(missing_ok=True)
  (workdir_copy / "history.jsonl").write_text('{"epoch": 1, "lo')
  code, out, err = _main("train", *_data_args(data), *FAST, "--resume", "--workdir", workdir_copy)
  assert code == 0, err
  assert err.splitlines()[0] == (f"gnnrec-jax train: warning: --resume: {workdir_copy} holds no "
                                 "checkpoint yet; starting from epoch 1")
  assert json.loads(out.splitlines()[-1]) == json.loads((trained[0] / "metrics.json").read_text())
  assert [json.loads(l)["epoch"] for l in open(workdir_copy / "history.jsonl")] == [1, 2]


def test_corrupted_checkpoint(workdir_copy):
  best = workdir_copy / "best.ckpt"
  data = bytearray(best.read_bytes())
  data[-10] ^= 0xFF
  best.write_bytes(bytes(data))
  code, _, err = _main("evaluate", "--workdir", workdir_copy)
  assert f"{best}: corrupted: payload sha256 does not match the header" in \
      _error(code, err, "evaluate")


def test_missing_workdir(tmp_path):
  code, _, err = _main("evaluate", "--workdir", tmp_path / "nope")
  assert f"workdir {tmp_path / 'nope'} does not exist" in _error(code, err, "evaluate")


def test_damaged_run_json(workdir_copy):
  (workdir_copy / "run.json").write_text('{"fingerprint": "ab')
  code, _, err = _main("recommend", "--workdir", workdir_copy, "--user", "u1")
  assert f"{workdir_copy / 'run.json'}: not valid JSON" in _error(code, err, "recommend")


def test_evaluate_reproduces_the_training_metrics(trained):
  code, out, err = _main("evaluate", "--workdir", trained[0])
  assert code == 0, err
  assert json.loads(out.splitlines()[-1]) == {
      k: v for k, v in json.loads((trained[0] / "metrics.json").read_text()).items()
      if k not in ("best_epoch", "epochs_run")}


# --- system errors and numerical failure ----------------------------------------------------------

def test_os_error_is_one_line_naming_the_path(data, tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a folder")
  code, _, err = _main("train", *_data_args(data), *FAST, "--workdir", blocker / "w")
  line = _error(code, err, "train", want_code=1)
  assert line == f"gnnrec-jax train: error: {blocker / 'w'}: Not a directory"


def test_non_finite_loss_names_epoch_and_step_and_keeps_last_good_checkpoint(data, tmp_path):
  # One step per epoch; SGD at lr 1e30 keeps epoch 1's loss finite (it is computed before the
  # update) and blows the vectors up, so epoch 2's first loss overflows.
  code, _, err = _main("train", *_data_args(data), *FAST, "--set", "epochs=3", "--set",
                       "optimizer=sgd", "--set", "lr=1e30", "--set", "batch_size=4096", "--set", "eval_every=10",
                       "--workdir", tmp_path)
  line = _error(code, err.split("\n", 1)[1], "train")  # after the cold-user warning
  assert "non-finite loss (" in line and "at epoch 2, step 0; training stopped and the last " \
      f"good checkpoint (epoch 1) is {tmp_path}/latest.ckpt" in line
  assert checkpoint.checkpoint_paths(tmp_path, "latest") == [tmp_path / "latest.ckpt"]
  raw, meta = checkpoint.load(tmp_path, "latest", None)
  assert meta["epoch"] == 1
  assert all(np.isfinite(x).all() for x in _leaves(raw["params"]))
  assert [json.loads(l)["epoch"] for l in open(tmp_path / "history.jsonl")] == [1]


def _leaves(tree):
  if isinstance(tree, dict):
    for v in tree.values():
      yield from _leaves(v)
  else:
    yield np.asarray(tree)


# --- real processes -------------------------------------------------------------------------------

def _subprocess(*argv):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.run([sys.executable, "-m", "gnnrec_jax", *map(str, argv)],
                        capture_output=True, text=True, timeout=300, env=env)


def test_subprocess_config_error(data, tmp_path):
  proc = _subprocess("train", *_data_args(data), "--set", "nope=1", "--workdir", tmp_path)
  assert proc.returncode == 2 and proc.stdout == ""
  assert proc.stderr == "gnnrec-jax train: error: --set nope: unknown config key\n"


def test_subprocess_truncated_checkpoint(workdir_copy):
  best = workdir_copy / "best.ckpt"
  best.write_bytes(best.read_bytes()[:-100])
  proc = _subprocess("recommend", "--workdir", workdir_copy, "--user", "u1")
  assert proc.returncode == 2 and proc.stdout == "", proc.stderr
  assert proc.stderr.startswith(f"gnnrec-jax recommend: error: {best}: truncated or padded")
  assert proc.stderr.count("\n") == 1


# --- never touch files that are not ours; damaged run files ---------------------------------------

@pytest.mark.parametrize("files", [{"config.json": "mine\n"},
                                   {"notes.txt": "keep me", "sub/data.csv": "a,b\n"},
                                   {"run.json": '{"my": "own run file"}'}])
@pytest.mark.parametrize("flag", [[], ["--overwrite"], ["--resume"]])
def test_a_folder_we_did_not_write_is_refused_and_left_byte_identical(data, tmp_path, files,
                                                                      flag):
  w = tmp_path / "mine"
  for name, text in files.items():
    (w / name).parent.mkdir(parents=True, exist_ok=True)
    (w / name).write_text(text)
  before = {p: p.read_bytes() for p in w.rglob("*") if p.is_file()}
  code, _, err = _main("train", *_data_args(data), *FAST, *flag, "--workdir", w)
  assert f"workdir {w} is not empty and holds no gnnrec-jax run (" in _error(code, err, "train")
  assert {p: p.read_bytes() for p in w.rglob("*") if p.is_file()} == before


def test_overwrite_removes_only_the_runs_own_files(workdir_copy, data):
  (workdir_copy / "my_notes.txt").write_text("mine")
  code, _, err = _main("train", *_data_args(data), *FAST, "--overwrite", "--workdir",
                       workdir_copy)
  assert code == 0, err
  assert (workdir_copy / "my_notes.txt").read_text() == "mine"
  assert (workdir_copy / "metrics.json").exists()


def test_a_locked_workdir_is_refused(data, tmp_path):
  from gnnrec_jax.training.workdir import WorkdirLock
  w = tmp_path / "w"
  w.mkdir()
  lock = WorkdirLock(str(w))
  lock.acquire()  # another writer (this process, through another open file) holds it
  try:
    code, _, err = _main("train", *_data_args(data), *FAST, "--workdir", w)
    line = _error(code, err, "train")
    assert f"workdir {w} is in use by another gnnrec-jax run (pid {os.getpid()} on " in line
    assert not (w / "run.json").exists()
  finally:
    lock.release()
  code, _, err = _main("train", *_data_args(data), *FAST, "--workdir", w)  # free again
  assert code == 0, err


@pytest.mark.parametrize("content,message", [
    (b"\x89PNG\r\n\x1a\n\x00\xff", "run.json: not UTF-8 text"),
    (b"[1, 2, 3]", "run.json: not a gnnrec-jax run file (a JSON list, not an object)"),
    (b'{"config": {}}', "run.json: not a gnnrec-jax run file (no field 'fingerprint')"),
    (b'{"fingerprint": 3, "config": {}}', "run.json: field fingerprint must be a JSON string"),
    (b'{"fingerprint": "x", "config": {"embed_dim": "big"}}',
     "run.json: config: field embed_dim must be int, got 'big'"),
    (b'{"fingerprint": "x", "config": {"lr": [1]}}', "run.json: config: field lr must be float"),
    (b'{"fingerprint": "x", "config": {"topk": ["a"]}}',
     "run.json: config: field topk must be tuple"),
    (b'{"fingerprint": "x", "config": {}, "dataset_args": "ml-100k"}',
     "run.json: field dataset_args must be a JSON object"),
])
@pytest.mark.parametrize("command", [["evaluate"], ["recommend", "--user", "u1"]])
def test_damaged_or_foreign_run_json_is_one_line(workdir_copy, content, message, command):
  (workdir_copy / "run.json").write_bytes(content)
  code, _, err = _main(command[0], "--workdir", workdir_copy, *command[1:])
  assert f"{workdir_copy / message.split(':')[0]}:{message.split(':', 1)[1]}" in \
      _error(code, err, command[0])


def _error_after_warnings(code, err, cmd):
  """Like `_error`, for commands that may first warn about the data (the `cold` user)."""
  *warnings, last = err.splitlines()
  assert all(w.startswith(f"gnnrec-jax {cmd}: warning: ") for w in warnings), err
  return _error(code, last + "\n", cmd)


@pytest.mark.parametrize("history,message", [
    (b'{"epoch": 1, "loss": 1}\n[1, 2]\n{"epoch": 2}\n', "history.jsonl:2: a history row needs "
     "an integer field epoch"),
    (b'{"epoch": "1"}\n{"epoch": 2}\n', "history.jsonl:1: a history row needs an integer field"),
    (b'\xff\xfe\n{"epoch": 2}\n', "history.jsonl:1: not a JSON history row"),
])
def test_damaged_history_on_resume_is_one_line(workdir_copy, data, history, message):
  (workdir_copy / "history.jsonl").write_bytes(history)
  code, _, err = _main("train", *_data_args(data), *FAST, "--resume", "--workdir", workdir_copy)
  assert f"{workdir_copy / message.split(':')[0]}:{message.split(':', 1)[1]}" in \
      _error_after_warnings(code, err, "train")


def test_checkpoint_meta_of_the_wrong_type_is_one_line(workdir_copy, data):
  latest = workdir_copy / "latest.ckpt"
  head, payload = latest.read_bytes().split(b"\n", 1)
  header = json.loads(head)
  header["meta"]["early_stopping"] = "done"
  latest.write_bytes(json.dumps(header).encode() + b"\n" + payload)
  (workdir_copy / "latest.prev.ckpt").unlink()
  code, _, err = _main("train", *_data_args(data), *FAST, "--resume", "--workdir", workdir_copy)
  assert "epoch or early_stopping fields are missing or of the wrong type" in \
      _error_after_warnings(code, err, "train")


def test_resume_with_other_epochs_under_a_decaying_schedule_is_refused(data, tmp_path):
  w = tmp_path / "w"
  cosine = ["--set", "lr_schedule=cosine"]
  code, _, err = _main("train", *_data_args(data), *FAST, *cosine, "--workdir", w)
  assert code == 0, err
  code, _, err = _main("train", *_data_args(data), *FAST, *cosine, "--set", "epochs=4",
                       "--resume", "--workdir", w)
  assert "belongs to a different run (config keys differ: epochs)" in _error(code, err, "train")
  # With a constant learning rate more epochs only continue the run.
  w2 = tmp_path / "w2"
  assert _main("train", *_data_args(data), *FAST, "--workdir", w2)[0] == 0
  code, _, err = _main("train", *_data_args(data), *FAST, "--set", "epochs=3", "--resume",
                       "--workdir", w2)
  assert code == 0, err


def test_a_run_fitted_by_a_script_needs_its_dataset(tmp_path):
  from gnnrec_jax import configs
  from gnnrec_jax.experiment import prepare
  from gnnrec_jax.training import workdir
  from gnnrec_jax.training.fit import fit
  ds = make_synthetic(seed=2)
  fitted = fit(prepare(configs.get_config("test").replace(epochs=1), ds), str(tmp_path / "w"),
               progress=False)
  code, _, err = _main("evaluate", "--workdir", tmp_path / "w")
  assert "run.json: no dataset_args (the run was fitted by a script" in \
      _error(code, err, "evaluate")
  _, rec, params = workdir.load(str(tmp_path / "w"), dataset=ds)
  assert jax_equal(params, fitted.params)


def jax_equal(a, b):
  import jax
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("bad, why", [("0", "needs at least 1 device, got 0"),
                                      ("-1", "needs at least 1 device, got -1"),
                                      ("two", "expected a whole number of devices, got 'two'")])
def test_device_count_below_one_is_refused(data, tmp_path, bad, why):
  workdir = tmp_path / "w"
  code, _, err = _main("train", *_data_args(data), *FAST, "--devices", bad, "--workdir", workdir)
  assert f"argument --devices: {why}" in _error(code, err, "train")
  assert not workdir.exists()   # refused before anything of a run is written
