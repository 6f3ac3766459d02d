"""Behaviour-typed interactions (issue 15, item 1; the seed's §3.3): behaviour -> weight, repeated
pairs combined by a stated rule, weighted normalisation where weights differ, and the seed's
first-layer alpha reading the weights. Every number below is worked out by hand.

The hand-made file (default weights click 1, view 1, cart 2, purchase 4):

  line  user item behaviour  time        pairs in order of first appearance, and the weight of
   2    u1   i1   click      1           each by rule:           max  sum  last(by time)
   3    u1   i1   purchase   5             (u1, i1)  click+purchase  4    5    4  (t=5)
   4    u1   i2   cart       2             (u1, i2)  cart+click      2    3    1  (t=9)
   5    u2   i1   click      3             (u2, i1)  click           1    1    1
   6    u2   i2   click      4             (u2, i2)  click+click     1    2    1
   7    u2   i2   click      6             (u3, i3)  Purchase        4    4    4
   8    u3   i3   Purchase   7             (u3, i2)  view            1    1    1
   9    u3   i2   view       8
  10    u1   i2   click      9
"""
import argparse
import contextlib
import io
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from gnnrec_jax import cli
from gnnrec_jax.graph import build as G
from gnnrec_jax.config import Config, apply_overrides, validate
from gnnrec_jax.data import atomic, behaviours, checks, registry, tabular
from gnnrec_jax.data.checks import DataWarning
from gnnrec_jax.data.cli_args import dataset_from_args
from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError, DataError
from gnnrec_jax.experiment import prepare
from gnnrec_jax.models.embedding import create_model

DATA = Path(__file__).parent / "data"
EVENTS = ("user,item,event,ts\n"
          "u1,i1,click,1\nu1,i1,purchase,5\nu1,i2,cart,2\nu2,i1,click,3\nu2,i2,click,4\n"
          "u2,i2,click,6\nu3,i3,Purchase,7\nu3,i2,view,8\nu1,i2,click,9\n")
COLUMNS = "user=user,item=item,behaviour=event,timestamp=ts"
PAIRS = [("u1", "i1"), ("u1", "i2"), ("u2", "i1"), ("u2", "i2"), ("u3", "i3"), ("u3", "i2")]
WEIGHTS = {"max": [4, 2, 1, 1, 4, 1], "sum": [5, 3, 1, 2, 4, 1], "last": [4, 1, 1, 1, 4, 1]}
TIMES = [5, 9, 3, 6, 7, 8]  # max and sum: the pair's latest time; last: the latest row's


@pytest.fixture
def events(tmp_path):
  path = tmp_path / "events.csv"
  path.write_text(EVENTS)
  return path


from conftest import run_cli as _main  # noqa: E402 (the one helper, tests/conftest.py)


def _pairs(ds, inter):
  return [(ds.users.tokens[u], ds.items.tokens[i]) for u, i in zip(inter.user, inter.item)]


# --- behaviour -> weight, and repeated pairs ----------------------------------------------------

@pytest.mark.parametrize("rule", ["max", "sum", "last"])
def test_behaviour_csv_weights_by_hand(events, rule):
  with pytest.warns(DataWarning, match=rf"3 rows repeat a user-item pair \(3 pairs; first repeat "
                                       rf"at .*events\.csv:3\); combined with duplicates={rule}"):
    ds = tabular.load_csv(events, columns=COLUMNS, duplicates=rule)
  assert _pairs(ds, ds.interactions) == PAIRS
  assert ds.interactions.weight.tolist() == WEIGHTS[rule]
  assert ds.interactions.timestamp.tolist() == TIMES
  assert ds.behaviours == {"click": {"rows": 5, "weight": 1.0},
                           "purchase": {"rows": 2, "weight": 4.0},
                           "cart": {"rows": 1, "weight": 2.0},
                           "view": {"rows": 1, "weight": 1.0}}


def test_behaviour_weights_of_the_user_and_a_weight_column(tmp_path):
  f = tmp_path / "e.csv"
  f.write_text("u,i,b,qty\na,x,click,1\na,y,buy,3\nb,x,Buy ,1\n")
  ds = tabular.load_csv(f, columns="user=u,item=i,behavior=b,weight=qty",
                        behaviour_weights="click:0.5,buy:10")
  assert ds.interactions.weight.tolist() == [0.5, 30.0, 10.0]  # behaviour weight x quantity


def test_behaviour_csv_through_the_cli(events):
  code, out, err = _main("data", "--dataset", "csv", "--data-dir", events, "--columns", COLUMNS,
                         "--set", "duplicates=sum", "--split", "random")
  assert code == 0, err
  stats = json.loads(out.splitlines()[-1])
  assert stats["weights"]["counts"] == {"1": 2, "2": 1, "3": 1, "4": 1, "5": 1}  # WEIGHTS["sum"]
  assert stats["behaviours"]["purchase"] == {"rows": 2, "weight": 4.0}
  assert "behaviours   click x5 (weight 1), purchase x2 (weight 4)" in out
  assert err.count("\n") == 1 and "3 rows repeat a user-item pair" in err
  # A custom mapping replaces the defaults.
  code, out, err = _main("data", "--dataset", "csv", "--data-dir", events, "--columns", COLUMNS,
                         "--set", "behaviour_weights=click:1,view:1,cart:3,purchase:9")
  assert code == 0, err
  assert json.loads(out.splitlines()[-1])["weights"]["counts"] == {"1": 3, "3": 1, "9": 2}


@pytest.mark.parametrize("cmd", ["data", "train"])
def test_unknown_behaviour_names_its_line(events, tmp_path, cmd):
  events.write_text(EVENTS + "u3,i1,wishlist,10\n")
  extra = ["--config", "test", "--workdir", tmp_path / "w", "--no-progress"] if cmd == "train" \
      else []
  code, _, err = _main(cmd, "--dataset", "csv", "--data-dir", events, "--columns", COLUMNS,
                       *extra)
  assert code == 2 and err.count("\n") == 1, err
  assert "events.csv:11: behaviour 'wishlist' has no weight in behaviour_weights (known: click" in err
  assert "--set behaviour_weights=...,wishlist:1" in err


@pytest.mark.parametrize("setting, message", [
    ("behaviour_weights=click", "'click' should be NAME:WEIGHT"),
    ("behaviour_weights=click:0", "weight '0' of 'click' must be a number > 0"),
    ("behaviour_weights=click:-1,cart:2", "weight '-1' of 'click' must be a number > 0"),
    ("behaviour_weights=click:1,Click:2", "behaviour 'click' is given twice"),
    ("behaviour_weights=click:1e39", "must be a number > 0"),  # beyond float32
    ("duplicates=mean", "duplicates must be one of max | sum | last, got 'mean'"),
])
def test_bad_data_settings_are_one_line_errors(events, tmp_path, setting, message):
  code, _, err = _main("train", "--dataset", "csv", "--data-dir", events, "--columns", COLUMNS,
                       "--config", "test", "--set", setting, "--workdir", tmp_path / "w")
  assert code == 2 and err.count("\n") == 1 and message in err, err
  code, _, err = _main("data", "--dataset", "csv", "--data-dir", events, "--columns", COLUMNS,
                       "--set", setting)
  assert code == 2 and err.count("\n") == 1 and message in err, err


def test_data_set_takes_only_data_fields(events):
  code, _, err = _main("data", "--dataset", "csv", "--data-dir", events, "--columns", COLUMNS,
                       "--set", "lr=0.1")
  assert code == 2 and "--set 'lr=0.1': this command reads only behaviour_weights=" in err


def test_behaviour_weights_without_a_behaviour_column_warns(tmp_path):
  code, _, err = _main("data", "--dataset", "lastfm", "--data-dir", DATA / "lastfm",
                       "--set", "behaviour_weights=click:1")
  assert code == 0
  assert "behaviour_weights is set but dataset 'lastfm' has no behaviour column" in err


def test_predefined_and_atomic_behaviour_columns(tmp_path):
  (tmp_path / "train.tsv").write_text("user_id\titem_id\tbehavior\na\tx\tpv\na\tx\tbuy\n"
                                      "b\ty\tfav\n")
  with pytest.warns(DataWarning, match="1 row repeats a user-item pair"):
    ds = tabular.load_predefined(tmp_path / "train.tsv")
  assert ds.split.train.weight.tolist() == [4.0, 2.0]  # Taobao names, max of pv and buy
  (tmp_path / "t.inter").write_text("user_id:token\titem_id:token\tbehavior_type:token\t"
                                    "timestamp:float\na\tx\tpv\t1\nb\tx\tcart\t2\n"
                                    "b\ty\taddtocart\t3\n")
  ds = atomic.load_atomic(tmp_path, "t")  # the field is found by name
  assert ds.interactions.weight.tolist() == [1.0, 2.0, 2.0]
  ds = registry.load_dataset("atomic", data_dir=tmp_path, name="t",
                             columns="behaviour=behavior_type",
                             behaviour_weights="pv:1,cart:5,addtocart:5")
  assert ds.interactions.weight.tolist() == [1.0, 5.0, 5.0]


@pytest.mark.parametrize("layout", ["ml100k_grouplens", "ml100k_atomic"])
def test_ml100k_ratings_as_behaviour_levels(layout):
  plain = registry.load_dataset("ml-100k", data_dir=DATA / layout)
  levels = registry.load_dataset("ml-100k", data_dir=DATA / layout, columns="behaviour=rating",
                                 behaviour_weights="1:0.5,2:1,3:2,4:3,5:8")
  table = {1: 0.5, 2: 1.0, 3: 2.0, 4: 3.0, 5: 8.0}
  assert levels.interactions.weight.tolist() == [table[int(r)] for r in plain.interactions.weight]
  assert set(levels.behaviours) == {f"{int(r)}" for r in plain.interactions.weight}
  np.testing.assert_array_equal(levels.interactions.timestamp, plain.interactions.timestamp)
  with pytest.raises(DataError, match=r"behaviour '5' has no weight in behaviour_weights"):
    registry.load_dataset("ml-100k", data_dir=DATA / layout, columns="behaviour=rating")
  with pytest.raises(ConfigError, match="ml-100k takes only behaviour=rating"):
    registry.load_dataset("ml-100k", data_dir=DATA / layout, columns="weight=rating")


# --- the graph: weights, weighted normalisation, the seed's first-layer alpha -------------------

# Users u1..u3 -> 0..2, items i1..i3 -> 3..5. duplicates=sum weights: u1-i1 5, u1-i2 3, u2-i1 1,
# u2-i2 2, u3-i3 4, u3-i2 1. Weighted degrees: u1 8, u2 3, u3 5; i1 6, i2 6, i3 4.
SUM_EDGES = {(0, 3): 5, (0, 4): 3, (1, 3): 1, (1, 4): 2, (2, 5): 4, (2, 4): 1}
DEG = {0: 8, 1: 3, 2: 5, 3: 6, 4: 6, 5: 4}


def _edge_values(g, key):
  return {(int(s), int(r)): float(v) for s, r, v in zip(g.senders, g.receivers, g.edges[key])}


def _all_train(**kw):
  return Config(split="random", split_ratios=(1.0, 0.0, 0.0), embed_dim=2, num_layers=1, **kw)


def _load_sum(events):
  with pytest.warns(DataWarning, match="3 rows repeat a user-item pair"):
    return registry.load_dataset("csv", data_dir=events, columns=COLUMNS, duplicates="sum")


def test_graph_edge_weights_and_weighted_norm_by_hand(events):
  ds = _load_sum(events)
  exp = prepare(validate(_all_train(duplicates="sum")), ds)  # weighted_norm="auto"
  weight, norm = _edge_values(exp.graph, "weight"), _edge_values(exp.graph, "norm")
  assert len(weight) == 12
  for (u, i), w in SUM_EDGES.items():
    assert weight[(u, i)] == weight[(i, u)] == w
    want = w / np.sqrt(DEG[u] * DEG[i])  # e.g. u1-i1: 5 / sqrt(8 * 6)
    assert norm[(u, i)] == pytest.approx(want, rel=1e-6)
    assert norm[(i, u)] == pytest.approx(want, rel=1e-6)
  # weighted_norm=false: LightGCN's binary 1 / sqrt(|N(u)| |N(i)|), e.g. u1-i1: 1 / sqrt(2 * 2).
  binary = prepare(validate(_all_train(weighted_norm="false")), ds).graph
  assert _edge_values(binary, "norm")[(0, 3)] == pytest.approx(1 / 2, rel=1e-6)
  assert _edge_values(binary, "norm")[(2, 4)] == pytest.approx(1 / np.sqrt(2 * 3), rel=1e-6)


def test_seed_first_layer_alpha_reads_the_behaviour_weights(events):
  ds = _load_sum(events)
  cfg = validate(_all_train(model="softmax_gnn", initial_alpha="weights", attention_mix=1.0,
                            layer_combine="last", scale_logits=False))
  exp = prepare(cfg, ds)
  model = create_model(cfg, num_users=3, num_items=3)
  params = model.init(jax.random.key(0), exp.graph)["params"]
  h0 = np.arange(12, dtype=np.float32).reshape(6, 2)
  params["inputs"]["embedding"] = h0
  (final, _), state = model.apply({"params": params}, exp.graph, mutable=["intermediates"])
  alpha = state["intermediates"]["alpha_0"][0][:, 0]
  got = {(int(s), int(r)): float(a) for s, r, a in zip(exp.graph.senders, exp.graph.receivers,
                                                       alpha)}
  # alpha_ij = w_ij / sum_k w_ik over receiver i's edges: u1 receives 5/8 from i1, 3/8 from i2;
  # i2 receives 3/6, 2/6, 1/6 from u1, u2, u3.
  for (u, i), w in SUM_EDGES.items():
    assert got[(i, u)] == pytest.approx(w / DEG[u], rel=1e-6)
    assert got[(u, i)] == pytest.approx(w / DEG[i], rel=1e-6)
  want_u1 = (5 * h0[3] + 3 * h0[4]) / 8
  np.testing.assert_allclose(np.asarray(final)[0], want_u1, rtol=1e-6)


def test_weighted_norm_auto_rule():
  same = Interactions(np.array([0, 1]), np.array([0, 0]), np.array([2.0, 2.0]))
  differ = Interactions(np.array([0, 1]), np.array([0, 0]), np.array([1.0, 4.0]))
  none = Interactions(np.array([0, 1]), np.array([0, 0]))
  assert not G.use_weighted_norm("auto", same) and not G.use_weighted_norm("auto", none)
  assert G.use_weighted_norm("auto", differ)
  assert not G.use_weighted_norm("false", differ) and G.use_weighted_norm("true", same)
  assert G.use_weighted_norm(True, none) and not G.use_weighted_norm(False, differ)
  # Older config.json files hold booleans; --set takes the usual spellings.
  assert validate(Config(weighted_norm=True)).weighted_norm == "true"
  assert apply_overrides(Config(), ["weighted_norm=0"]).weighted_norm == "false"
  assert Config().weighted_norm == "auto"
  with pytest.raises(ConfigError, match="weighted_norm must be auto|true|false"):
    apply_overrides(Config(), ["weighted_norm=sometimes"])


def test_config_defaults_match_the_loaders():
  from gnnrec_jax.data.cli_args import DATA_FIELDS
  assert {k: getattr(Config(), k) for k in DATA_FIELDS} == DATA_FIELDS
  assert behaviours.parse_behaviour_weights(Config().behaviour_weights)["purchase"] == 4.0
  assert Config().duplicates in checks.DUPLICATE_RULES


# --- a run remembers its data settings: evaluate reloads the same data ---------------------------

def test_train_then_evaluate_reloads_behaviour_data(tmp_path):
  rng = np.random.default_rng(0)
  names = ["click", "cart", "purchase"]
  rows = [f"u{u},i{(u + k * 3) % 40},{names[rng.integers(3)]},{u * 100 + k}"
          for u in range(30) for k in range(12)]
  rows += [f"u{u},i{u % 40},click,{10_000 + u}" for u in range(30)]  # one repeat per user
  f = tmp_path / "ev.csv"
  f.write_text("user,item,event,ts\n" + "\n".join(rows) + "\n")
  w = tmp_path / "run"
  code, out, err = _main("train", "--dataset", "csv", "--data-dir", f, "--columns", COLUMNS,
                         "--config", "test", "--set", "epochs=1", "--set", "duplicates=sum",
                         "--set", "behaviour_weights=click:1,cart:3,purchase:9",
                         "--no-progress", "--workdir", w)
  assert code == 0, err
  assert "30 rows repeat a user-item pair" in err
  run = json.loads((w / "run.json").read_text())
  assert (run["config"]["behaviour_weights"], run["config"]["duplicates"]) == (
      "click:1,cart:3,purchase:9", "sum")
  code, out2, err2 = _main("evaluate", "--workdir", w)
  assert code == 0, err2
  trained, evaluated = json.loads(out.splitlines()[-1]), json.loads(out2.splitlines()[-1])
  assert evaluated == {k: v for k, v in trained.items() if k in evaluated}
  assert "ndcg@10" in evaluated
  # What train loaded: the saved options and config give the same weights as the command line.
  from gnnrec_jax.training.workdir import config_of
  args = argparse.Namespace(**run["dataset_args"])
  with pytest.warns(DataWarning, match="30 rows repeat a user-item pair"):
    reloaded = dataset_from_args(args, config_of(run))
  assert reloaded.interactions.weight.max() == 10.0  # click + purchase summed (1 + 9)
