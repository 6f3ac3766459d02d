"""Scoring functions the seed names: dot, cosine and Pearson (`score_space`), and
`recommend --score` switching between the scale-free ones."""
import contextlib
import dataclasses
import io
import json

import jax.numpy as jnp
import numpy as np
import pytest

from gnnrec_jax import cli, models
from gnnrec_jax.data.splits import split_random
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.evaluation import explain
from gnnrec_jax.models.readout import score_space
from gnnrec_jax.training import workdir


def test_pearson_is_numpy_corrcoef():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(5, 7)).astype(np.float32) + 3.0  # an offset that Pearson removes
  y = rng.normal(size=(4, 7)).astype(np.float32)
  got = np.asarray(score_space(jnp.asarray(x), "pearson") @ score_space(jnp.asarray(y), "pearson").T)
  want = np.corrcoef(np.concatenate([x, y]))[:5, 5:]
  np.testing.assert_allclose(got, want, atol=1e-5)
  cos = np.asarray(score_space(jnp.asarray(x), "cosine") @ score_space(jnp.asarray(y), "cosine").T)
  want_cos = (x @ y.T) / np.linalg.norm(x, axis=1)[:, None] / np.linalg.norm(y, axis=1)[None]
  np.testing.assert_allclose(cos, want_cos, atol=1e-5)
  np.testing.assert_array_equal(np.asarray(score_space(jnp.asarray(x), "dot")), x)


def test_pearson_of_a_constant_vector_is_zero_not_nan():
  v = np.asarray(score_space(jnp.array([[2.0, 2.0, 2.0], [1.0, 2.0, 3.0]]), "pearson"))
  assert np.all(np.isfinite(v))
  np.testing.assert_array_equal(v[0], 0.0)
  np.testing.assert_allclose(v[1], np.array([-1, 0, 1]) / np.sqrt(2), atol=1e-6)


from conftest import run_cli as _main  # noqa: E402 (the one helper, tests/conftest.py)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  d = tmp_path_factory.mktemp("scores")
  s = split_random(make_synthetic(seed=2).interactions, seed=0)
  for name in ("train", "valid", "test"):
    p = getattr(s, name)
    (d / f"{name}.tsv").write_text("user_id\titem_id\trating\n" + "".join(
        f"u{u}\ti{i}\t{w:g}\n" for u, i, w in zip(p.user, p.item, p.weight)))
  args = ["--train", d / "train.tsv", "--valid", d / "valid.tsv", "--test", d / "test.tsv",
          "--config", "test", "--no-progress"]
  out = {}
  for score in ("dot", "cosine", "pearson"):
    code, _, err = _main("train", *args, "--set", "epochs=1", f"score={score}",
                         "--workdir", d / score)
    assert code == 0, err
    out[score] = d / score
  return out


def test_pearson_explanations_add_up_exactly(runs):
  _, rec, params = workdir.load(str(runs["pearson"]))
  rows = explain.explain_user(rec, params, user=3, items=np.array([0, 5, 7]))
  for r in rows:
    assert r["exact"] and abs(r["remainder"]) < 1e-5


def test_recommend_switches_from_cosine_to_pearson(runs):
  code, out, err = _main("recommend", "--workdir", runs["cosine"], "--user", "u3", "-k", 5,
                         "--score", "pearson")
  assert code == 0, err
  got = [r["item"] for r in json.loads(out.splitlines()[-1])["recommendations"]]
  # By hand: Pearson's r between the model's raw (un-normalised) final vectors.
  _, rec, params = workdir.load(str(runs["cosine"]))
  raw = models.create(dataclasses.replace(rec.exp, config=rec.config.replace(score="dot")))
  u_emb, i_emb = (np.asarray(a, np.float64) for a in raw.score_params(params))
  u = rec.exp.dataset.users.index("u3")
  r = np.array([np.corrcoef(u_emb[u], i_emb[i])[0, 1] for i in range(len(i_emb))])
  from gnnrec_jax.commands.recommend import seen_items
  r[seen_items(rec.exp, u)] = -np.inf
  want = [rec.exp.dataset.items.tokens[i] for i in np.argsort(-r, kind="stable")[:5]]
  assert got == want


@pytest.mark.parametrize("trained,score,message", [
    ("dot", "cosine", "the run was trained with score=dot; --score switches only between cosine "
                      "and pearson"),
    ("cosine", "dot", "the run was trained with score=cosine"),
    ("dot", "manhattan", "--score: score must be one of dot | cosine | pearson"),
])
def test_recommend_score_refusals_are_one_line(runs, trained, score, message):
  code, _, err = _main("recommend", "--workdir", runs[trained], "--user", "u3", "--score", score)
  assert code == 2 and len(err.splitlines()) == 1
  assert message in err


def test_recommend_score_same_as_trained_is_a_no_op(runs):
  a = _main("recommend", "--workdir", runs["dot"], "--user", "u3", "-k", 4)
  b = _main("recommend", "--workdir", runs["dot"], "--user", "u3", "-k", 4, "--score", "dot")
  assert a[0] == b[0] == 0 and a[1] == b[1]
