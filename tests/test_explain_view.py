"""The readable explanation (`explain_view.contrast`) on a hand-made graph whose answer is known.

Items A, B, X, Y; the user t has A and B. Three users had A and X together; one user had B, X
and Y. So X is recommended above Y because of A (A and X co-occur three times, A and Y never),
while B relates to X and Y alike. Every model must say: X leads Y because of A, with the three
co-occurrences as the path, and leaving A out of the history must undo the lead.

The numbers are checked against references computed here by hand (EASE's closed form with
NumPy; LightGCN with one-hot layer-0 vectors, i.e. powers of the normalised adjacency).
"""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gnnrec_jax import cli, models
from gnnrec_jax.config import Config
from gnnrec_jax.data.types import Dataset, Interactions, Split, Vocab
from gnnrec_jax.evaluation import explain, explain_view
from gnnrec_jax.experiment import prepare
from gnnrec_jax.graph import build as graph_lib

A, B, X, Y = range(4)
T = 0  # the user we explain
PAIRS = [(T, A), (T, B), (1, A), (1, X), (2, A), (2, X), (3, A), (3, X), (4, B), (4, X), (4, Y)]
TOL = 1e-6


def hand_dataset() -> Dataset:
  user, item = np.array(PAIRS).T
  train = Interactions(user, item)
  empty = Interactions(np.zeros(0, np.int32), np.zeros(0, np.int32))
  return Dataset("hand", Vocab.from_tokens(["t", "a1", "a2", "a3", "b1"]),
                 Vocab.from_tokens(["A", "B", "X", "Y"]), train, split=Split(train, empty, empty),
                 item_meta={"title": np.array(["Alpha", "Beta", "Xray", "Yankee"])})


def hand_model(name: str):
  """EASE with lambda = 1, or LightGCN (3 layers, mean) whose layer-0 vectors are one-hot."""
  exp = prepare(Config(model=name, split="predefined", embed_dim=9, num_layers=3, ease_l2=1.0),
                hand_dataset())
  rec = models.create(exp)
  params = rec.init(jax.random.key(0))
  if name == "lightgcn":
    params = jax.tree.map(lambda x: x, params)
    params["inputs"]["embedding"] = jnp.eye(9)  # h^0 = I: the propagation is the adjacency itself
  return rec, params


def ease_reference() -> np.ndarray:
  """EASE's B for the hand data (Steck 2019, eq. 8): P = (X'X + I)^-1, B = I - P / diag(P)."""
  x = np.zeros((5, 4))
  for u, i in PAIRS:
    x[u, i] = 1.0
  p = np.linalg.inv(x.T @ x + np.eye(4))
  b = -p / np.diag(p)[None, :]
  np.fill_diagonal(b, 0.0)
  return b


def lightgcn_reference(exp):
  """(final [N, N], per-layer neighbour terms c[l][j] . final) with one-hot h^0 (He et al. eq. 4)."""
  adj = graph_lib.adjacency(exp.graph).toarray()
  powers = [np.eye(9)]
  for _ in range(3):
    powers.append(adj @ powers[-1])
  final = np.mean(powers, axis=0)  # row n: node n's final vector
  return adj, powers, final


def _term(item_view, kind, index):
  return next(t for t in item_view["terms"] if t["kind"] == kind and t["index"] == index)


@pytest.mark.parametrize("name", ["ease", "lightgcn"])
@pytest.mark.parametrize("who", ["user", "history"])
def test_the_item_that_drives_a_recommendation_is_named_first(name, who):
  rec, params = hand_model(name)
  u_count = rec.num_users
  items = np.array([X, Y])
  if who == "user":
    scores = rec.scores(params, [T])[0]
    rows = explain.explain_user(rec, params, user=T, items=items)
  else:
    scores = rec.history_scores(params, np.array([A, B]))
    rows = explain.explain_user(rec, params, history=np.array([A, B]), items=items)
  assert scores[X] > scores[Y]  # X is recommended first
  view = explain_view.contrast(rec, rows, against="last")
  first = view["items"][0]
  assert first["gap"] == pytest.approx(scores[X] - scores[Y], abs=TOL)
  # Exact: the terms relative to Y add up to X's lead.
  assert sum(t["value"] for t in first["terms"]) == pytest.approx(first["gap"], abs=TOL)
  # The item that drives X: A first, its whole share of the lead (B pulls towards Y), and its
  # path: the three users who had A and X.
  top = first["terms"][0]
  assert (top["kind"], top["index"], top["co_users"]) == ("item", A, 3)
  assert top["share"] > 1.0
  beta = _term(first, "item", B)
  assert beta["value"] < 0 and beta["co_users"] == 1
  # Leave A out and the lead is gone: A is the reason (the counterfactual agrees).
  without_a = rec.history_scores(params, np.array([B]))
  assert without_a[X] < without_a[Y]
  # The values themselves, from the references.
  if name == "ease":
    b = ease_reference()
    assert top["value"] == pytest.approx(b[A, X] - b[A, Y], abs=1e-5)
    assert beta["value"] == pytest.approx(b[B, X] - b[B, Y], abs=1e-5)
  elif who == "history":  # the new user is the mean of A's and B's final vectors
    _, _, final = lightgcn_reference(rec.exp)
    fa, fx, fy = final[u_count + A], final[u_count + X], final[u_count + Y]
    assert top["value"] == pytest.approx(fa @ (fx - fy) / 2, abs=1e-5)
  else:
    adj, powers, final = lightgcn_reference(rec.exp)
    diff = final[u_count + X] - final[u_count + Y]
    by_layer = [adj[T, u_count + A] * powers[l - 1][u_count + A] @ diff / 4 for l in (1, 2, 3)]
    assert top["value"] == pytest.approx(sum(by_layer), abs=1e-5)
    # The path's layer is the one whose term differs most, with its weight 1/sqrt(2 * 4)
    # (t has 2 items, A has 4 users).
    assert by_layer[top["layer"] - 1] == pytest.approx(max(by_layer), abs=1e-6)  # 2 and 3 tie
    assert top["weight"] == pytest.approx(1 / np.sqrt(8), abs=1e-6)
    assert top["weight_mean"] == pytest.approx((1 / np.sqrt(8) + 1 / np.sqrt(4)) / 2, abs=1e-6)
    # The user's own vector against X and Y, split by the item's layer m (a_0 a_m h_t^0 . h_i^m).
    for m in range(4):
      ref = (powers[m][u_count + X] - powers[m][u_count + Y])[T] / 16
      assert _term(first, "self", m)["value"] == pytest.approx(ref, abs=1e-6)


def test_mean_baseline_and_shared_part():
  rec, params = hand_model("lightgcn")
  rows = explain.explain_user(rec, params, user=T, items=np.array([X, Y]))
  view = explain_view.contrast(rec, rows, against="mean")
  x_view, y_view = view["items"]
  mean = (rows[0]["score"] + rows[1]["score"]) / 2
  assert view["baseline"]["score"] == pytest.approx(mean)
  assert x_view["gap"] == pytest.approx(-y_view["gap"])
  for it in view["items"]:
    assert sum(t["value"] for t in it["terms"]) == pytest.approx(it["gap"], abs=TOL)
  sh = view["shared"]
  assert sh["self"] + sh["items"] == pytest.approx(mean, abs=TOL)
  assert sh["self"] == pytest.approx((rows[0]["self"] + rows[1]["self"]) / 2, abs=TOL)
  assert sh["n_items"] == 2 and sh["n_friends"] == 0
  with pytest.raises(Exception, match="baseline"):
    explain_view.contrast(rec, rows, against="first")
  with pytest.raises(Exception, match="at least 2"):
    explain_view.contrast(rec, rows[:1])


def test_print_contrast_lists_shares_and_paths(capsys):
  rec, params = hand_model("ease")
  rows = explain.print_explanations(rec, params, user=T, history=None, items=np.array([X, Y]),
                                    against="last")
  out = capsys.readouterr().out
  assert len(rows) == 2
  assert "Shared by all 2: the score of #2 Yankee" in out
  lead = rows[0]["score"] - rows[1]["score"]
  assert f"Xray  {rows[0]['score']:.4f} = #2 {lead:+.4f}" in out
  assert "your item Alpha [A] -> this: 3 users had both" in out
  assert "(the 2 listed: 100% of the gap, 100% of all the terms' movement)" in out


def test_recommend_cli_explains_a_new_user_and_writes_json(tmp_path, capsys):
  csv = tmp_path / "hand.csv"
  names = ["t", "a1", "a2", "a3", "b1"]
  csv.write_text("user,item\n" + "".join(f"{names[u]},{'ABXY'[i]}\n" for u, i in PAIRS))
  wd = str(tmp_path / "run")
  assert cli.main(["train", "--model", "ease", "--dataset", "csv", "--data-dir", str(csv),
                   "--columns", "user=user,item=item",
                   "--workdir", wd, "--no-progress", "--set", "ease_l2=1.0",
                   "--set", "split_ratios=1.0,0.0,0.0", "--set", "topk=1",
                   "--set", "select_metric=ndcg@1"]) == 0
  capsys.readouterr()
  assert cli.main(["recommend", "--workdir", wd, "--history", "A,B", "-k", "2",
                   "--explain"]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  out = json.loads(lines[-1])
  assert [r["item"] for r in out["recommendations"]] == ["X", "Y"]
  lead = out["explanation"]["items"][0]
  assert lead["terms"][0]["token"] == "A" and lead["terms"][0]["co_users"] == 3
  assert out["explanation"]["exact"] and out["explanation"]["against"] == "last"
  assert any("your item A -> this: 3 users had both" in line for line in lines)
