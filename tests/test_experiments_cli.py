"""`compare`, `train --seeds`, `tune`, `config`, `--set a=1 b=2`, `--config FILE` at the command
line: known answers where there are some (identical runs), and one-line errors for bad input."""
import contextlib
import io
import json
import os
import shutil

import numpy as np
import pytest

from gnnrec_jax import cli
from gnnrec_jax.data.splits import split_random
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.evaluation import per_user

HEADER = "user_id\titem_id\trating\n"
FAST = ["--config", "test", "--set", "epochs=2", "--no-progress"]


def _write(path, inter):
  path.write_text(HEADER + "".join(f"u{u}\ti{i}\t{w:g}\n"
                                   for u, i, w in zip(inter.user, inter.item, inter.weight)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  d = tmp_path_factory.mktemp("data")
  s = split_random(make_synthetic(seed=2).interactions, seed=0)
  for name in ("train", "valid", "test"):
    _write(d / f"{name}.tsv", getattr(s, name))
  # Another split of the same data (other test rows) for the refusal.
  s2 = split_random(make_synthetic(seed=2).interactions, seed=1)
  for name in ("train", "valid", "test"):
    _write(d / f"{name}2.tsv", getattr(s2, name))
  return d


def _args(d, suffix=""):
  return ["--train", d / f"train{suffix}.tsv", "--valid", d / f"valid{suffix}.tsv",
          "--test", d / f"test{suffix}.tsv"]


from conftest import run_cli as _main  # noqa: E402 (the one helper, tests/conftest.py)


def _error(code, err, cmd):
  assert code == 2, err
  lines = err.splitlines()
  assert len(lines) == 1, err
  assert lines[0].startswith(f"gnnrec-jax {cmd}: error: "), err
  return lines[0]


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
  """Two identical LightGCN runs, an MF run, and a LightGCN run on another split."""
  root = tmp_path_factory.mktemp("runs")
  out = {}
  for name, extra, suffix in (("a", [], ""), ("a2", [], ""), ("mf", ["--model", "mf"], ""),
                              ("other", [], "2")):
    code, stdout, err = _main("train", *_args(data, suffix), *FAST, *extra,
                              "--workdir", root / name)
    assert code == 0, err
    out[name] = root / name
  return out


# --- per-user file --------------------------------------------------------------------------

def test_train_writes_a_compact_per_user_file_matching_the_metrics(runs):
  meta, arrays = per_user.load(str(runs["a"] / "per_user_test.npz"))
  metrics = json.loads((runs["a"] / "metrics.json").read_text())
  assert meta["part"] == "test" and meta["model"] == "lightgcn"
  assert meta["split"]["test"]["size"] > 0 and len(meta["split"]["test"]["sha256"]) == 16
  assert len(arrays["user"]) == metrics["num_users"]
  for key in ("ndcg@10", "recall@5", "hit@10"):
    assert arrays[key].dtype == np.float32
    assert float(np.mean(arrays[key], dtype=np.float64)) == pytest.approx(metrics[key], abs=1e-6)
  assert os.path.getsize(runs["a"] / "per_user_test.npz") < 20_000


def test_evaluate_writes_valid_per_user_and_a_table(runs, tmp_path):
  w = tmp_path / "w"
  shutil.copytree(runs["a"], w)
  code, out, err = _main("evaluate", "--workdir", w, "--split", "valid")
  assert code == 0, err
  assert "NDCG" in err and "Coverage" in err  # the table, on stderr
  assert len(out.splitlines()) == 1 and json.loads(out)  # stdout: the JSON line alone
  meta, _ = per_user.load(str(w / "per_user_valid.npz"))
  assert meta["part"] == "valid"


def test_damaged_per_user_file_is_one_line(runs, tmp_path):
  w = tmp_path / "w"
  shutil.copytree(runs["a"], w)
  (w / "per_user_test.npz").write_bytes(b"not a zip")
  code, _, err = _main("compare", w, runs["a2"])
  assert "per_user_test.npz: not a per-user metrics file" in _error(code, err, "compare")


# --- compare --------------------------------------------------------------------------------

def test_compare_identical_runs(runs):
  code, out, err = _main("compare", runs["a"], runs["a2"], "--resamples", 500)
  assert code == 0, err
  res = json.loads(out.splitlines()[-1])
  metrics = res["comparisons"][0]["metrics"]
  assert set(metrics) >= {"ndcg@10", "recall@5", "mrr@10"}
  for r in metrics.values():
    assert r["diff"] == 0.0 and r["ci"] == [0.0, 0.0]
    assert r["p_t"] == r["p_wilcoxon"] == r["p_t_holm"] == 1.0
    assert r["better"] == r["worse"] == 0
  assert "Replay A/B" in out and "SIMULATION" in out
  ab = res["comparisons"][0]["replay_ab"]
  assert ab["simulation"] is True and ab["k"] == 5  # 20, else the first K


def test_compare_two_models_with_plot(runs, tmp_path):
  code, out, err = _main("compare", runs["a"], runs["mf"], "--metrics", "ndcg@10,recall@10",
                         "--resamples", 500, "--plot", tmp_path / "d.png")
  assert code == 0, err
  res = json.loads(out.splitlines()[-1])
  m = res["comparisons"][0]["metrics"]
  assert list(m) == ["ndcg@10", "recall@10"]
  a = json.loads((runs["a"] / "metrics.json").read_text())
  b = json.loads((runs["mf"] / "metrics.json").read_text())
  assert m["ndcg@10"]["mean_a"] == pytest.approx(a["ndcg@10"], abs=1e-6)
  assert m["ndcg@10"]["mean_b"] == pytest.approx(b["ndcg@10"], abs=1e-6)
  assert m["ndcg@10"]["better"] + m["ndcg@10"]["worse"] + m["ndcg@10"]["tied"] == a["num_users"]
  assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_refuses_different_splits_naming_the_part(runs):
  code, _, err = _main("compare", runs["a"], runs["other"])
  line = _error(code, err, "compare")
  assert "evaluated on different splits" in line and "content differs" in line


def test_compare_bad_input(runs, tmp_path):
  code, _, err = _main("compare", tmp_path / "nope", runs["a"])
  assert "does not exist" in _error(code, err, "compare")
  code, _, err = _main("compare", runs["a"])
  assert "at least two runs" in _error(code, err, "compare")
  code, _, err = _main("compare", runs["a"], runs["a2"], "--metrics", "ndcg@7")
  assert "--metrics: ndcg@7 not among the per-user metrics" in _error(code, err, "compare")
  unfinished = tmp_path / "u"
  shutil.copytree(runs["a"], unfinished)
  os.remove(unfinished / "metrics.json")
  code, _, err = _main("compare", runs["a"], unfinished)
  assert "the run is unfinished (no metrics.json)" in _error(code, err, "compare")
  old = tmp_path / "old"
  shutil.copytree(runs["a"], old)
  os.remove(old / "per_user_test.npz")
  code, _, err = _main("compare", runs["a"], old)
  assert f"write them with `gnnrec-jax evaluate --workdir {old}`" in _error(code, err, "compare")
  code, _, err = _main("evaluate", "--workdir", old)  # ... which makes it comparable
  assert code == 0, err
  code, _, err = _main("compare", runs["a"], old, "--resamples", 200)
  assert code == 0, err


# --- seeds ----------------------------------------------------------------------------------

def test_seeds_group_summary_resume_and_compare(data, runs, tmp_path):
  g = tmp_path / "g"
  code, out, err = _main("train", *_args(data), *FAST, "--seeds", "1,2", "--workdir", g)
  assert code == 0, err
  res = json.loads(out.splitlines()[-1])
  r1 = json.loads((g / "seed-1" / "metrics.json").read_text())
  r2 = json.loads((g / "seed-2" / "metrics.json").read_text())
  assert res["mean"]["ndcg@10"] == pytest.approx((r1["ndcg@10"] + r2["ndcg@10"]) / 2)
  assert res["std"]["ndcg@10"] == pytest.approx(abs(r1["ndcg@10"] - r2["ndcg@10"]) / np.sqrt(2))
  c1 = json.loads((g / "seed-1" / "config.json").read_text())
  assert c1["seed"] == 1 and c1["split_seed"] == 2020  # the base config's split for every seed
  # Again without --resume: refused; with it, after seed 2 lost its end (as if killed), seed 1
  # is read back and seed 2 resumed from its checkpoint: the same summary.
  code, _, err = _main("train", *_args(data), *FAST, "--seeds", "1,2", "--workdir", g)
  assert "already holds this seeds group; pass --resume" in _error(code, err, "train")
  for f in ("metrics.json", "per_user_test.npz"):
    os.remove(g / "seed-2" / f)
  code, out2, err = _main("train", *_args(data), *FAST, "--seeds", "1,2", "--workdir", g,
                          "--resume")
  assert code == 0, err
  assert json.loads(out2.splitlines()[-1]) == res
  code, _, err = _main("train", *_args(data), *FAST, "--seeds", "1,3", "--workdir", g,
                       "--resume")
  assert "holds a seeds group with other seeds" in _error(code, err, "train")
  # A group is one side of a comparison: per-user means over its seeds.
  code, out, err = _main("compare", runs["a"], g, "--metrics", "ndcg@10", "--resamples", 200)
  assert code == 0, err
  m = json.loads(out.splitlines()[-1])["comparisons"][0]["metrics"]["ndcg@10"]
  assert m["mean_b"] == pytest.approx(res["mean"]["ndcg@10"], abs=1e-6)


@pytest.mark.parametrize("seeds,message", [("1,x", "expected comma-separated integers"),
                                           ("1,1", "a seed is listed twice"),
                                           ("-3", "seed must be an integer in [0, 4294967295]")])
def test_bad_seeds(data, tmp_path, seeds, message):
  code, _, err = _main("train", *_args(data), *FAST, "--seeds", seeds, "--workdir", tmp_path / "g")
  assert message in _error(code, err, "train")


# --- tune -----------------------------------------------------------------------------------

@pytest.mark.parametrize("content,message", [
    ("", "empty; expected a JSON object of config keys"),
    ("{}", "no keys to search"),
    ("[1]", "expected a JSON object of config keys, got a JSON list"),
    ('{"lrr": {"low": 1, "high": 2}}', "unknown config key 'lrr' (did you mean lr"),
    ('{"lr": {"low": -1, "high": 2}}', "lr: low -1: lr must be a finite number > 0"),
    ('{"lr": {"low": 0.1, "high": 0.01}}', "low 0.1 must be below high 0.01"),
    ('{"num_layers": {"low": 1.5, "high": 3}}', "num_layers: low must be an integer"),
    ('{"loss": {"choices": ["bpr", "hinge"]}}', "loss: choice 'hinge': loss must be one of"),
    ('{"seed": {"low": 1, "high": 3}}', "seed is not a hyperparameter"),
    ('{"lr": [1, 2]}', "lr must be an object like"),
])
def test_tune_bad_space(data, tmp_path, content, message):
  space = tmp_path / "space.json"
  space.write_text(content)
  code, _, err = _main("tune", "--model", "lightgcn", "--space", space, "--trials", 2,
                       *_args(data), "--workdir", tmp_path / "t")
  assert message in _error(code, err, "tune")
  assert not (tmp_path / "t").exists()


def test_tune_missing_space_and_bad_trials(data, tmp_path):
  code, _, err = _main("tune", "--model", "lightgcn", "--space", tmp_path / "nope.json",
                       "--trials", 2, *_args(data), "--workdir", tmp_path / "t")
  assert "nope.json: file not found" in _error(code, err, "tune")
  code, _, err = _main("tune", "--model", "lightgcn", "--space", tmp_path / "nope.json",
                       "--trials", 0, *_args(data), "--workdir", tmp_path / "t")
  assert "--trials must be >= 1" in _error(code, err, "tune")


def test_tune_resumes_a_killed_trial_and_best_config_reproduces(data, tmp_path):
  pytest.importorskip("optuna")
  import optuna
  space = tmp_path / "space.json"
  space.write_text('{"lr": {"low": 0.001, "high": 0.05, "log": true}}')
  t = tmp_path / "t"
  argv = ["tune", "--model", "lightgcn", "--config", "test", "--space", space, *_args(data),
          "--workdir", t, "--set", "epochs=2", "--no-progress"]
  code, out, err = _main(*argv, "--trials", 1)
  assert code == 0, err
  # A process killed mid-trial leaves the trial RUNNING in the study: simulate one.
  study = optuna.load_study(study_name="gnnrec-jax", storage=f"sqlite:///{t / 'study.db'}")
  killed = study.ask({"lr": optuna.distributions.FloatDistribution(0.001, 0.05, log=True)})
  killed.set_user_attr("workdir", "trial-001")
  code, out, err = _main(*argv, "--trials", 2)
  assert code == 0, err
  trials = json.loads((t / "trials.json").read_text())
  assert [r["state"] for r in trials] == ["complete", "fail", "complete"]
  assert trials[2]["retry_of"] == 1 and trials[2]["workdir"] == "trial-001"
  assert trials[2]["params"] == pytest.approx(killed.params)
  best = json.loads(out.splitlines()[-1])
  assert best["trials_complete"] == 2
  # Nothing to do at the target: the same command reads the study back.
  code, out2, err = _main(*argv, "--trials", 2)
  assert code == 0 and json.loads(out2.splitlines()[-1]) == best
  # The best config is a file `train --config` reads: the same run, the same metrics.
  code, out, err = _main("train", "--config", t / "best_config.json", *_args(data),
                         "--no-progress", "--workdir", tmp_path / "r")
  assert code == 0, err
  trial_dir = t / trials[best["best_trial"]]["workdir"]
  assert json.loads(out.splitlines()[-1]) == json.loads((trial_dir / "metrics.json").read_text())
  # Another space in the same folder is refused.
  space.write_text('{"l2": {"low": 0.001, "high": 0.05, "log": true}}')
  code, _, err = _main(*argv, "--trials", 3)
  assert "holds a tune run with another search space" in _error(code, err, "tune")


def test_tune_refuses_a_foreign_folder(data, tmp_path):
  pytest.importorskip("optuna")
  space = tmp_path / "space.json"
  space.write_text('{"lr": {"low": 0.001, "high": 0.05}}')
  (tmp_path / "t").mkdir()
  (tmp_path / "t" / "mine.txt").write_text("mine")
  code, _, err = _main("tune", "--model", "lightgcn", "--space", space, "--trials", 1,
                       *_args(data), "--workdir", tmp_path / "t", "--no-progress")
  assert "is not empty and holds no tune run (mine.txt)" in _error(code, err, "tune")
  assert (tmp_path / "t" / "mine.txt").read_text() == "mine"


# --- config, --set, --config FILE -----------------------------------------------------------

def test_config_command_lists_every_key():
  from gnnrec_jax.config import field_specs
  code, out, err = _main("config", "--model", "mf")
  assert code == 0, err
  lines = out.splitlines()
  for name in field_specs():
    assert any(line.startswith(f"{name} = ") for line in lines), name
  assert "l2 = 0.1  (Config default: 0.0001)" in out  # MF's default beside Config's
  assert "an integer in [0, 4294967295]" in out and "one of dot | cosine | pearson" in out
  assert json.loads(lines[-1])["model"] == "mf"


def test_set_takes_several_pairs_and_repeats(data, tmp_path):
  code, out, err = _main("config", "--config", "test", "--set", "lr=0.002", "epochs=1",
                         "--set", "l2=0.5")
  assert code == 0, err
  c = json.loads(out.splitlines()[-1])
  assert (c["lr"], c["epochs"], c["l2"]) == (0.002, 1, 0.5)


@pytest.mark.parametrize("pair,message", [
    ("checkpoint_every=0", "checkpoint_every must be an integer in [1, 1000000], got 0"),
    ("seed=-1", "seed must be an integer in [0, 4294967295], got -1"),
    ("seed=4294967296", "seed must be an integer in [0, 4294967295], got 4294967296"),
    ("softmax_temperature=-0.1", "softmax_temperature must be a finite number > 0, got -0.1"),
    ("lr=inf", "lr must be a finite number > 0, got inf"),
    ("lr=nan", "lr must be a finite number > 0, got nan"),
    ("weight_decay=-1e-4", "weight_decay must be a finite number >= 0, got -0.0001"),
    ("topk=10.5", "--set topk=10.5: expected a value of type tuple of int"),
    ("topk=0,10", "every element of topk must be an integer in [1, 1000000], got (0, 10)"),
    ("dropout=1", "dropout must be a finite number in [0, 1), got 1.0"),
    ("embed_dim=0", "embed_dim must be an integer in [1, 65536], got 0"),
    ("score=manhattan", "score must be one of dot | cosine | pearson, got 'manhattan'"),
    ("activation=swish", "activation must be one of identity | tanh"),
    ("propagation=gpu", "propagation must be one of auto | segment"),
    ("text_model=", "text_model must not be empty"),
    ("use_id_embedding=maybe", "expected a value of type bool"),
])
def test_out_of_range_values_fail_at_once(data, tmp_path, pair, message):
  code, _, err = _main("train", *_args(data), *FAST, "--set", pair, "--workdir", tmp_path / "w")
  assert message in _error(code, err, "train")
  assert not (tmp_path / "w").exists()  # refused before anything was written


def test_config_file_errors(data, tmp_path):
  cases = [("nope.json", None, "config file {p}: file not found"),
           ("bad.json", "{", "config file {p}: not valid JSON"),
           ("list.json", "[1]", "expected a JSON object of config fields, got a JSON list"),
           ("key.json", '{"lrr": 1}', "config file {p}: unknown config key 'lrr' (did you mean lr"),
           ("type.json", '{"lr": "x"}', "config file {p}: field lr must be float"),
           ("range.json", '{"lr": -1}', "config file {p}: invalid config: lr must be a finite")]
  for name, content, message in cases:
    p = tmp_path / name
    if content is not None:
      p.write_text(content)
    code, _, err = _main("train", *_args(data), "--config", p, "--workdir", tmp_path / "w")
    assert message.format(p=p) in _error(code, err, "train")


def test_config_file_fields_it_omits_take_the_models_defaults(tmp_path):
  from gnnrec_jax import configs
  from gnnrec_jax.config import load_config_file
  p = tmp_path / "c.json"
  p.write_text('{"model": "mf", "lr": 0.005}')
  c = load_config_file(str(p), base_for_model=configs.get_config)
  assert c == configs.get_config("mf").replace(lr=0.005)
