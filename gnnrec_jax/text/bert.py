"""BERT as a Flax Linen module that reads Hugging Face `model.safetensors` weights.

BERT (Devlin et al., NAACL 2019), inference only (no dropout, no pooler, no pre-training heads):
what a sentence encoder such as all-MiniLM-L6-v2 (a 6-layer, 384-d BERT) needs. For tokens
x_1..x_L with attention mask m (1 = real token):

  h^0 = LayerNorm(E_word[x_t] + E_pos[t] + E_type[0])                         # [B, L, D]
  a   = LayerNorm(h + W_o concat_heads(softmax(q k^T / sqrt(d_h) + b_m) v))   # post-norm
  h'  = LayerNorm(a + W_2 gelu(W_1 a + c_1) + c_2)                            # gelu: exact erf form

with q, k, v = h W_q, h W_k, h W_v split into H heads of d_h = D / H, and the mask bias
b_m = 0 on real keys and the float32 minimum on padded ones, so a real token never attends to
padding and its state does not depend on how far its batch was padded. Attention logits and
softmax run in float32 whatever the compute dtype.

The module mirrors the checkpoint layout, so loading is a renaming (`load_params`): PyTorch
`Linear.weight` [out, in] becomes a Flax `Dense.kernel` [in, out], `LayerNorm.weight|gamma` a
`scale`, `LayerNorm.bias|beta` a `bias`. Keys with a `bert.` or `roberta.` prefix (checkpoints saved
from `BertForMaskedLM` / `RobertaForMaskedLM`, e.g. bert-base-uncased) load too; the pooler and
pre-training heads are ignored.

RoBERTa (Liu et al. 2019) and XLM-R (Conneau et al. 2020; multilingual-e5, bge-m3) are this
architecture with two differences handled here: position ids start at padding_idx + 1 (row
padding_idx of E_pos is padding's; transformers' `create_position_ids_from_input_ids`), and
there is a single token type. Positions count real tokens (the cumsum of the mask), which is
transformers' rule for RoBERTa and `arange` for right-padded BERT rows.
"""
from __future__ import annotations

import dataclasses
import functools
import pathlib
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from gnnrec_jax.errors import ConfigError
from gnnrec_jax.text import weights

MODEL_TYPES = ("bert", "roberta", "xlm-roberta")
# Families whose position ids start at pad_token_id + 1.
_OFFSET_POSITIONS = ("roberta", "xlm-roberta")
# config.json `hidden_act` -> function; "gelu" is the exact erf form (BERT's and MiniLM's).
ACTIVATIONS = {
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_pytorch_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """The architecture, read from a model's `config.json` (hashable: a static jit argument)."""

  vocab_size: int
  hidden_size: int
  num_layers: int
  num_heads: int
  intermediate_size: int
  max_positions: int
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"
  pad_token_id: int = 0
  model_type: str = "bert"
  position_offset: int = 0  # RoBERTa / XLM-R: pad_token_id + 1

  def __post_init__(self):
    if self.hidden_act not in ACTIVATIONS:
      raise ConfigError(f"hidden_act {self.hidden_act!r} is not supported; expected one of "
                        f"{tuple(ACTIVATIONS)}")
    if self.hidden_size % self.num_heads:
      raise ConfigError(f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                        f"{self.num_heads}")
    if self.position_offset >= self.max_positions:
      raise ConfigError(f"max_position_embeddings {self.max_positions} leaves no room after the "
                        f"position offset {self.position_offset}")

  @property
  def max_length(self) -> int:
    """The longest sequence the position table covers (514 - 2 = 512 for RoBERTa)."""
    return self.max_positions - self.position_offset

  @classmethod
  def from_json(cls, path: str | pathlib.Path) -> "BertConfig":
    """Reads a Hugging Face `config.json`; `ConfigError` naming the file when it is not a BERT."""
    path = pathlib.Path(path)
    raw = weights.read_model_config(path)
    model_type = raw.get("model_type")
    if model_type not in MODEL_TYPES:
      raise ConfigError(f"{path}: model_type {model_type!r} is not supported; the BERT module "
                        f"implements {MODEL_TYPES} (e.g. all-MiniLM-L6-v2, bert-base-uncased, "
                        f"multilingual-e5)")
    if raw.get("position_embedding_type", "absolute") != "absolute":
      raise ConfigError(f"{path}: position_embedding_type "
                        f"{raw['position_embedding_type']!r} is not supported (only 'absolute')")
    pad = int(raw.get("pad_token_id") or (1 if model_type in _OFFSET_POSITIONS else 0))
    try:
      return cls(vocab_size=int(raw["vocab_size"]), hidden_size=int(raw["hidden_size"]),
                 num_layers=int(raw["num_hidden_layers"]),
                 num_heads=int(raw["num_attention_heads"]),
                 intermediate_size=int(raw["intermediate_size"]),
                 max_positions=int(raw["max_position_embeddings"]),
                 type_vocab_size=int(raw.get("type_vocab_size", 2)),
                 layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
                 hidden_act=str(raw.get("hidden_act", "gelu")),
                 pad_token_id=pad, model_type=model_type,
                 position_offset=pad + 1 if model_type in _OFFSET_POSITIONS else 0)
    except KeyError as e:
      raise ConfigError(f"{path}: missing key {e.args[0]!r}") from None
    except ConfigError as e:
      raise ConfigError(f"{path}: {e}") from None


class SelfAttention(nn.Module):
  """Multi-head scaled dot-product self-attention with a key-padding bias, then W_o."""

  config: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h: jnp.ndarray, bias: jnp.ndarray) -> jnp.ndarray:
    """h: [B, L, D]; bias: [B, 1, 1, L] float32 (0 or very negative). Returns [B, L, D]."""
    c = self.config
    d_head = c.hidden_size // c.num_heads
    dense = functools.partial(nn.Dense, c.hidden_size, dtype=self.dtype)

    def heads(x):  # [B, L, D] -> [B, L, H, d_h]
      return x.reshape(x.shape[:2] + (c.num_heads, d_head))

    q = heads(dense(name="query")(h))
    k = heads(dense(name="key")(h))
    v = heads(dense(name="value")(h))
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32)  # [B, H, L, L]
    probs = jax.nn.softmax(logits / np.sqrt(d_head) + bias, axis=-1).astype(self.dtype)
    context = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(h.shape)  # [B, L, D]
    return dense(name="output")(context)


class Layer(nn.Module):
  """One post-norm transformer layer: attention and feed-forward, each with residual + LayerNorm."""

  config: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h: jnp.ndarray, bias: jnp.ndarray) -> jnp.ndarray:
    c = self.config
    norm = functools.partial(nn.LayerNorm, epsilon=c.layer_norm_eps, dtype=self.dtype)
    a = norm(name="attention_norm")(h + SelfAttention(c, self.dtype, name="attention")(h, bias))
    f = ACTIVATIONS[c.hidden_act](nn.Dense(c.intermediate_size, dtype=self.dtype,
                                           name="intermediate")(a))  # [B, L, D_ff]
    return norm(name="output_norm")(a + nn.Dense(c.hidden_size, dtype=self.dtype,
                                                 name="output")(f))


class BertEncoder(nn.Module):
  """Token ids -> last hidden states.

  Attributes:
    config: the architecture.
    dtype: computation dtype (parameters stay float32; bfloat16 halves activation traffic on
      accelerators).
  """

  config: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, input_ids: jnp.ndarray, attention_mask: jnp.ndarray) -> jnp.ndarray:
    """Encodes one padded batch.

    Args:
      input_ids: [B, L] int32 word-piece ids (L <= max_positions; static under jit).
      attention_mask: [B, L] 1 for real tokens, 0 for padding.

    Returns:
      [B, L, D] last hidden states in `dtype` (rows of padded positions are meaningless).
    """
    c = self.config
    embed = functools.partial(nn.Embed, features=c.hidden_size, dtype=self.dtype)
    # 0, 1, ... over real tokens (arange for right padding), shifted past RoBERTa's pad row.
    positions = jnp.maximum(jnp.cumsum(attention_mask > 0, axis=1) - 1, 0) + c.position_offset
    # A single sentence is segment 0 everywhere, as in sentence-transformers.
    h = (embed(c.vocab_size, name="word")(input_ids)
         + embed(c.max_positions, name="position")(positions)
         + embed(c.type_vocab_size, name="token_type")(jnp.zeros_like(input_ids)))  # [B, L, D]
    h = nn.LayerNorm(epsilon=c.layer_norm_eps, dtype=self.dtype, name="norm")(h)
    bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0,
                     jnp.finfo(jnp.float32).min).astype(jnp.float32)  # [B, 1, 1, L]
    for i in range(c.num_layers):
      h = Layer(c, self.dtype, name=f"layer_{i}")(h, bias)
    return h


# --- weights -----------------------------------------------------------------------------------

_EMBEDDINGS = {"word_embeddings": "word", "position_embeddings": "position",
               "token_type_embeddings": "token_type"}
# Sub-module of `encoder.layer.<i>.` -> path inside our `layer_<i>`.
_LAYER_MODULES = {
    "attention.self.query": ("attention", "query"),
    "attention.self.key": ("attention", "key"),
    "attention.self.value": ("attention", "value"),
    "attention.output.dense": ("attention", "output"),
    "attention.output.LayerNorm": ("attention_norm",),
    "intermediate.dense": ("intermediate",),
    "output.dense": ("output",),
    "output.LayerNorm": ("output_norm",),
}
_LAYER_KEY = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias|gamma|beta)$")
_NORM_LEAVES = {"weight": "scale", "gamma": "scale", "bias": "bias", "beta": "bias"}


def _flax_path(key: str) -> tuple[tuple[str, ...], bool] | None:
  """(path in our params, transpose?) for a checkpoint key, or None for keys we do not use."""
  for prefix in ("bert.", "roberta."):
    key = key[len(prefix):] if key.startswith(prefix) else key
  parts = key.split(".")
  if len(parts) == 3 and parts[0] == "embeddings":
    if parts[1] in _EMBEDDINGS and parts[2] == "weight":
      return (_EMBEDDINGS[parts[1]], "embedding"), False
    if parts[1] == "LayerNorm" and parts[2] in _NORM_LEAVES:
      return ("norm", _NORM_LEAVES[parts[2]]), False
    return None  # e.g. embeddings.position_ids, a buffer
  m = _LAYER_KEY.match(key)
  if not m or m[2] not in _LAYER_MODULES:
    return None  # pooler.*, cls.* (pre-training heads)
  layer, module, leaf = f"layer_{int(m[1])}", _LAYER_MODULES[m[2]], m[3]
  if module[-1].endswith("norm"):
    return (layer, *module, _NORM_LEAVES[leaf]), False
  if leaf == "weight":
    return (layer, *module, "kernel"), True  # torch Linear [out, in] -> Dense [in, out]
  return (layer, *module, "bias"), False


def read_safetensors(folder: str | pathlib.Path) -> dict[str, np.ndarray]:
  """All tensors of `model.safetensors`, or of its shards (`model.safetensors.index.json`), as
  read-only memory-mapped views (`gnnrec_jax.text.weights`: bfloat16 included)."""
  return {name: view for name, view, _ in weights.iter_tensors(folder)}


def load_params(tensors: dict[str, np.ndarray], config: BertConfig, *,
                source: str = "checkpoint") -> dict:
  """Renames checkpoint tensors into `BertEncoder(config)`'s float32 parameter tree.

  Raises:
    ConfigError: a parameter is missing or has the wrong shape (naming the key), e.g. the
      checkpoint is not the architecture its config.json describes.
  """
  expected = jax.eval_shape(
      BertEncoder(config).init, jax.random.key(0), jnp.zeros((1, 1), jnp.int32),
      jnp.ones((1, 1), jnp.int32))["params"]
  expected = {tuple(k.key for k in path): leaf.shape
              for path, leaf in jax.tree_util.tree_flatten_with_path(expected)[0]}
  flat = {}
  for key, value in tensors.items():
    target = _flax_path(key)
    if target is None:
      continue
    path, transpose = target
    if path not in expected:  # e.g. encoder.layer.6.* in a checkpoint said to have 6 layers
      raise ConfigError(f"{source}: tensor {key!r} has no place in the {config.num_layers}-layer "
                        f"model its config.json describes")
    array = np.asarray(value, np.float32)
    array = array.T if transpose else array
    if array.shape != expected[path]:
      raise ConfigError(f"{source}: tensor {key!r} has shape {tuple(value.shape)}, expected "
                        f"{expected[path][::-1] if transpose else expected[path]} for this config")
    flat[path] = array
  missing = [p for p in expected if p not in flat]
  if missing:
    raise ConfigError(f"{source}: no weights for {'/'.join(missing[0])} ({len(missing)} parameters "
                      f"missing; is this a BERT checkpoint matching its config.json?)")
  params: dict = {}
  for path, array in flat.items():
    node = params
    for name in path[:-1]:
      node = node.setdefault(name, {})
    node[path[-1]] = array
  return params
