"""Side features with gaps: a hand-made table, imputation checked by hand, the model input, CLI.

The table (users 0-3 have train interactions, user 4 has none: a cold user whose values must
not enter any statistic):

  user  age   gender      item  year   tags
  0     20    M           0     1990   a|b
  1     ""    F           1     NaN    ""
  2     30    ""          2     2000   b
  3     70    F
  4     100   X  (cold)

Train users' ages 20, 30, 70: mean 40, median 30, population std sqrt(1400/3) = 21.60.
Genders of train users: F twice, M once (order F, M); X appears only on the cold user: "other".
"""
import warnings

import jax
import numpy as np
import pytest

from gnnrec_jax import configs
from gnnrec_jax.data import side_features
from gnnrec_jax.data.types import Dataset, Interactions, Vocab
from gnnrec_jax.errors import ConfigError, DataError
from gnnrec_jax.experiment import prepare
from gnnrec_jax.models.node_inputs import NodeInputs

STD = np.sqrt(1400 / 3)


def _dataset():
  train = Interactions(np.array([0, 0, 1, 2, 3, 3]), np.array([0, 1, 1, 2, 0, 2]))
  return Dataset(
      name="hand", users=Vocab(tuple(f"u{k}" for k in range(5))),
      items=Vocab(("i0", "i1", "i2")), interactions=train,
      user_meta={"age": np.array(["20", "", "30", "70", "100"], object),
                 "gender": np.array(["M", "F", "", "F", "X"], object)},
      item_meta={"year": np.array([1990.0, np.nan, 2000.0]),
                 "tags": np.array(["a|b", "", "b"], object)})


def _build(spec, **kw):
  ds = _dataset()
  with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    side = side_features.build(ds, ds.interactions, spec, **kw)
  return side, [str(x.message) for x in w]


def _col(side, name):
  return side.values[:, side.names.index(name)]


def test_numeric_gaps_filled_by_the_train_mean_or_median_with_an_indicator():
  side, warned = _build("user.age", numeric="mean")
  assert side.names == ("user.age", "user.age:missing")
  z = _col(side, "user.age")
  want = np.array([20, 40, 30, 70, 100]) - 40.0  # user 1 filled with the mean 40
  np.testing.assert_allclose(z[:5], want / STD, rtol=1e-6)
  np.testing.assert_array_equal(_col(side, "user.age:missing")[:5], [0, 1, 0, 0, 0])
  np.testing.assert_array_equal(side.values[5:], 0)  # item rows: no user columns
  np.testing.assert_array_equal(side.mask, [1, 1, 1, 1, 1, 0, 0, 0])
  assert len(warned) == 1
  assert "filled 1 of 5 user.age (numeric) with mean 40" in warned[0]
  median, warned = _build("user.age", numeric="median")
  assert _col(median, "user.age")[1] == pytest.approx((30 - 40) / STD, rel=1e-6)
  assert "with median 30" in warned[0]
  # A new user (no metadata): the age gap filled the same way, indicator on.
  np.testing.assert_allclose(median.new_user[:2], [(30 - 40) / STD, 1.0], rtol=1e-6)


def test_categorical_gaps_unknown_or_mode_and_a_value_unseen_in_train_goes_to_other():
  side, warned = _build("user.gender", categorical="unknown")
  assert side.names == ("user.gender=F", "user.gender=M", "user.gender=<other>",
                        "user.gender:missing")
  np.testing.assert_array_equal(side.values[:5], [
      [0, 1, 0, 0],   # M
      [1, 0, 0, 0],   # F
      [0, 0, 0, 1],   # missing: no category, the indicator alone ("unknown")
      [1, 0, 0, 0],   # F
      [0, 0, 1, 0],   # X: seen only on the cold user, so not a category of its own
  ])
  assert "filled 1 of 5 user.gender (categorical) with unknown" in warned[0]
  mode, warned = _build("user.gender", categorical="mode")
  np.testing.assert_array_equal(mode.values[2], [1, 0, 0, 1])  # F (2 of 3 train users)
  assert "with mode 'F'" in warned[0]


def test_multi_valued_and_numeric_item_columns():
  side, warned = _build("item.year,item.tags", numeric="mean")
  assert side.names == ("item.year", "item.year:missing", "item.tags=b", "item.tags=a",
                        "item.tags:missing")
  np.testing.assert_array_equal(side.values[:5], 0)  # user rows
  items = side.values[5:]
  np.testing.assert_allclose(items[:, 0], [-1, 0, 1], atol=1e-6)  # mean 1995, std 5
  np.testing.assert_array_equal(items[:, 1:], [[0, 1, 1, 0], [1, 0, 0, 1], [0, 1, 0, 0]])
  np.testing.assert_array_equal(side.mask, [0] * 5 + [1] * 3)
  assert "1 of 3 item.year" in warned[0] and "1 of 3 item.tags" in warned[0]


def test_no_statistic_comes_from_nodes_without_train_interactions():
  ds = _dataset()
  # The cold user's age and gender changed: nothing of the warm users' encoding moves.
  changed = Dataset(**{**ds.__dict__, "user_meta": {
      "age": np.array(["20", "", "30", "70", "5000"], object),
      "gender": np.array(["M", "F", "", "F", "M"], object)}})
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    a = side_features.build(ds, ds.interactions, "user.age,user.gender")
    b = side_features.build(changed, ds.interactions, "user.age,user.gender")
  keep = [n for n in a.names if n != "user.gender=<other>"]
  for n in keep:
    np.testing.assert_array_equal(_col(a, n)[:4], _col(b, n)[:4])


def test_forced_kinds_and_errors():
  side, _ = _build("user.age:cat")
  assert "user.age=20" in side.names
  with pytest.raises(DataError, match=r"user.gender: value 'M' is not a number"):
    _build("user.gender:num")
  with pytest.raises(DataError, match=r"has no item column 'genre' \(it has: item.year, item.tags"):
    _build("item.genre")
  with pytest.raises(ConfigError, match="should be user.COLUMN or item.COLUMN"):
    side_features.parse_spec("age")
  with pytest.raises(ConfigError, match="listed twice"):
    side_features.parse_spec("user.age,user.age:num")
  from gnnrec_jax.config import Config, apply_overrides
  with pytest.raises(ConfigError, match=r"side_numeric_impute must be one of mean \| median, got .mode."):
    apply_overrides(Config(), ["side_numeric_impute=mode"])


def test_the_experiment_carries_them_and_the_fingerprint_sees_the_policy():
  ds = _dataset()
  cfg = configs.get_config("test").replace(split="random", side_features="user.age,item.tags")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    exp = prepare(cfg, ds)
    other = prepare(cfg.replace(side_numeric_impute="mean"), ds)
  assert exp.side is not None and exp.side.values.shape == (8, 5)
  assert other.fingerprint != exp.fingerprint


def test_node_inputs_add_the_projected_side_vector_with_a_default_where_masked():
  u, i, d = 2, 2, 3
  side = np.array([[1, 0], [0, 2], [0, 0], [0, 0]], np.float32)
  mask = np.array([1, 1, 0, 0], bool)
  mod = NodeInputs(u, i, d)
  params = mod.init(jax.random.key(0), side=side, side_mask=mask)["params"]
  ego = np.asarray(mod.apply({"params": params}, side=side, side_mask=mask))
  table = np.asarray(params["embedding"])
  w, b = np.asarray(params["side_proj"]["kernel"]), np.asarray(params["side_proj"]["bias"])
  default = np.asarray(params["default_side"])
  want = table + np.concatenate([side[:2] @ w + b, np.stack([default, default])])
  np.testing.assert_allclose(ego, want, rtol=1e-6)
  # Cold nodes (has_id False) keep their side vector and lose the ID vector.
  cold = np.asarray(mod.apply({"params": params}, None, None, np.array([1, 0, 1, 1]),
                              side=side, side_mask=mask))
  np.testing.assert_allclose(cold[1], side[1] @ w + b, rtol=1e-6)


def test_metadata_csv_for_a_csv_dataset_trains_and_serves_a_new_user(tmp_path):
  """--item-meta / --user-meta files (CSV here) attach columns to any dataset; the gaps are
  reported as one counted warning; evaluate reloads the same features; a new user is scored
  inductively (with the side vector of a user without metadata)."""
  import json
  from gnnrec_jax.data.synthetic import make_synthetic
  from test_cli import FAST, _main
  ds = make_synthetic(seed=3)
  inter = ds.interactions
  (tmp_path / "events.csv").write_text("uid,iid,r\n" + "".join(
      f"u{u},i{i},{w:g}\n" for u, i, w in zip(inter.user, inter.item, inter.weight)))
  years = ["" if i % 7 == 0 else str(1980 + i % 20) for i in range(ds.num_items)]
  (tmp_path / "items.csv").write_text("iid,year,genre\n" + "".join(
      f"i{i},{y},\"g{i % 4}\"\n" for i, y in enumerate(years)) + "unknown_item,1999,g1\n")
  (tmp_path / "users.csv").write_text("uid,age\n" + "".join(
      f"u{u},{20 + u % 30 if u % 5 else 'NA'}\n" for u in range(ds.num_users)))
  w = tmp_path / "run"
  args = ["--dataset", "csv", "--data-dir", tmp_path / "events.csv", "--columns",
          "user=uid,item=iid,weight=r", "--item-meta", tmp_path / "items.csv", "--user-meta",
          tmp_path / "users.csv"]
  code, out, err = _main("train", *args, "--workdir", w, *FAST, "--set",
                         "side_features=user.age,item.year,item.genre")
  assert code == 0, err
  n_missing_years = sum(1 for y in years if not y)
  assert "dropped 1 rows whose item id is not in the catalogue" in err
  line = next(l for l in err.splitlines() if "side features:" in l)
  assert f"filled 12 of 60 user.age (numeric) with median" in line
  assert f"{n_missing_years} of 40 item.year (numeric)" in line
  assert "no gaps in item.genre" in line
  metrics = json.loads(out.strip().splitlines()[-1])
  code, out2, err = _main("evaluate", "--workdir", w)
  assert code == 0, err
  assert json.loads(out2.strip().splitlines()[-1])["ndcg@10"] == pytest.approx(metrics["ndcg@10"])
  code, out3, err = _main("recommend", "--workdir", w, "--history", "i1,i5,i9", "-k", "3")
  assert code == 0, err
  assert len(json.loads(out3.strip().splitlines()[-1])["recommendations"]) == 3


def test_a_new_user_with_side_features_differs_from_a_known_one_only_at_layer_0():
  """LightGCN (mean of 3 layers, no self-loops), ID + side features: a train user embedded "as
  new" from its own train items gets exactly its layers 1..3; its layer 0 is the side vector of
  a user without metadata instead of ID + its own side vector."""
  from gnnrec_jax import models
  from gnnrec_jax.models.inductive import embed_new_user
  ds = _dataset()
  cfg = configs.get_config("test").replace(split="random", num_layers=3, embed_dim=4,
                                           side_features="user.age,user.gender,item.tags",
                                           weighted_norm="false")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    exp = prepare(cfg, ds)
  rec = models.create(exp)
  params = rec.init(jax.random.key(1))
  user = 3
  history = exp.split.train.item[exp.split.train.user == user]
  new = embed_new_user(rec, params, history)
  final, ego = (np.asarray(a, np.float64) for a in rec.forward(params, rec.inputs, train=False))
  p = params["inputs"]
  proj = lambda row: row @ np.asarray(p["side_proj"]["kernel"]) + np.asarray(p["side_proj"]["bias"])
  h0_new = proj(exp.side.new_user)
  np.testing.assert_allclose(ego[user], np.asarray(p["embedding"])[user] + proj(
      exp.side.values[user]), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new, final[user] + (h0_new - ego[user]) / 4, rtol=1e-4, atol=1e-6)
