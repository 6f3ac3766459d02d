"""Decoder language models (Llama, Mistral, Qwen2, Qwen3) as one Flax Linen family, for embeddings.

Inference only: token ids -> last hidden states (after the final RMSNorm), what embedding models
built on these decoders pool (Qwen3-Embedding, e5-mistral, SFR-Embedding-Mistral, gte-Qwen2 take
the last token's state). For tokens x_1..x_L at positions p_t (0, 1, ... over the real tokens):

  h^0 = E[x_t]                                                                # [B, L, D]
  a   = h + W_o concat_heads(softmax(q k^T / sqrt(d_h) + b) v)    q, k = rope(q), rope(k)
  h'  = a + W_down (silu(W_gate n(a)) * W_up n(a))                 n = RMSNorm (pre-norm)

with RMSNorm(x) = w * x / sqrt(mean(x^2) + eps) (Zhang & Sennrich 2019), rotary embeddings
(Su et al. 2021, RoFormer) in the "rotate half" layout of the Hugging Face checkpoints, with the
config's rope_theta and rope_scaling (default, linear, dynamic, llama3), grouped-query attention
(Ainslie et al. 2023: query head j reads key/value head j // (H / H_kv)), SwiGLU (Shazeer 2020).
Family differences, all read from config.json:
  - Qwen2: biases on q, k, v (not o); Llama: `attention_bias` (q, k, v, o), `mlp_bias`.
  - Qwen3: RMSNorm over each head of q and k before rope (`q_norm`, `k_norm`), `head_dim` set
    independently of hidden_size / heads.
  - Mistral: `sliding_window` (key t' visible from t when 0 <= t - t' < window).
  - tied embeddings (`tie_word_embeddings`): only the input embedding is used here, so a tied
    checkpoint that stores just `lm_head.weight` loads it as the embedding.
The mask b is causal and hides padding keys; positions count real tokens only (cumsum of the
mask), so left-padded, right-padded and unpadded rows give the same states. Logits and softmax
run in float32 whatever the compute dtype; parameters are stored in the compute dtype (an 8B
model in bfloat16 is 15 GB, not 30).

Parameter names mirror the checkpoint (`layers.3.self_attn.q_proj.weight` is
`params["layers_3"]["self_attn"]["q_proj"]["weight"]`, in PyTorch's [out, in] layout), so loading
is a renaming with no transposes. `load_params` streams the tensors one by one from the
memory-mapped safetensors onto the device, or onto a `jax.sharding.Mesh` with a 'model' axis:
q/k/v/gate/up projections split by output rows, o/down projections by input columns, the
embedding by hidden columns (Megatron-style tensor parallelism, Shoeybi et al. 2019; XLA's GSPMD
inserts the collectives), norms replicated. `param_bytes_per_device` gives the memory this takes.
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
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gnnrec_jax.errors import ConfigError
from gnnrec_jax.text import weights
from gnnrec_jax.text.bert import ACTIVATIONS

MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
ROPE_TYPES = ("default", "linear", "dynamic", "llama3")
# A finite "minus infinity" for masked logits: a row with every key masked (a left pad's query)
# gets a uniform softmax instead of NaN, and masked keys get exactly zero weight.
_MASKED = -1e30


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
  """The architecture, read from a model's `config.json` (hashable: a static jit argument).

  `rope_scaling` is the scaling dict as sorted (key, value) pairs; `sliding_window` 0 = none.
  """

  model_type: str
  vocab_size: int
  hidden_size: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  intermediate_size: int
  max_positions: int
  rms_norm_eps: float = 1e-6
  rope_theta: float = 10000.0
  rope_scaling: tuple = ()
  qkv_bias: bool = False
  o_bias: bool = False
  mlp_bias: bool = False
  qk_norm: bool = False
  sliding_window: int = 0
  hidden_act: str = "silu"
  tie_word_embeddings: bool = False
  pad_token_id: int = 0
  bos_token_id: int | None = None
  eos_token_id: int | None = None

  def __post_init__(self):
    if self.hidden_act not in ACTIVATIONS:
      raise ConfigError(f"hidden_act {self.hidden_act!r} is not supported; expected one of "
                        f"{tuple(ACTIVATIONS)}")
    if self.num_heads % self.num_kv_heads:
      raise ConfigError(f"num_attention_heads {self.num_heads} is not a multiple of "
                        f"num_key_value_heads {self.num_kv_heads}")
    rope_type = dict(self.rope_scaling).get("rope_type", "default")
    if rope_type not in ROPE_TYPES:
      raise ConfigError(f"rope_scaling type {rope_type!r} is not supported; expected one of "
                        f"{ROPE_TYPES}")

  @property
  def max_length(self) -> int:
    """The longest sequence the position table covers (dynamic NTK scaling never triggers below
    it, so 'dynamic' is the default rope within it, as in transformers)."""
    return self.max_positions

  @classmethod
  def from_json(cls, path: str | pathlib.Path) -> "DecoderConfig":
    """Reads a Hugging Face `config.json`; `ConfigError` naming the file on anything unsupported.

    Reads both layouts: transformers 4 (`rope_theta`, `rope_scaling` at the top) and 5
    (`rope_parameters` holding `rope_theta`, `rope_type` and the scaling fields).
    """
    path = pathlib.Path(path)
    raw = weights.read_model_config(path)
    mt = raw.get("model_type")
    if mt not in MODEL_TYPES:
      raise ConfigError(f"{path}: model_type {mt!r} is not a decoder family we implement "
                        f"{MODEL_TYPES}")
    params = raw.get("rope_parameters") or {}
    scaling = dict(raw.get("rope_scaling") or {k: v for k, v in params.items()
                                               if k not in ("rope_theta", "partial_rotary_factor")})
    rope_type = scaling.pop("type", None)
    scaling["rope_type"] = scaling.get("rope_type") or rope_type or "default"
    if scaling["rope_type"] == "default":
      scaling = {"rope_type": "default"}
    partial = raw.get("partial_rotary_factor", params.get("partial_rotary_factor", 1.0))
    if float(partial) != 1.0:
      raise ConfigError(f"{path}: partial_rotary_factor {partial} is not supported (only 1.0)")
    if mt in ("qwen2", "qwen3") and raw.get("use_sliding_window"):
      raise ConfigError(f"{path}: use_sliding_window=true is not supported for {mt} (its "
                        f"checkpoints ship with full attention; set it false)")

    def first(x):
      return x[0] if isinstance(x, list) and x else (x if isinstance(x, int) else None)

    try:
      heads = int(raw["num_attention_heads"])
      hidden = int(raw["hidden_size"])
      bias = bool(raw.get("attention_bias", False))
      eos = first(raw.get("eos_token_id"))
      pad = raw.get("pad_token_id")
      return cls(
          model_type=mt, vocab_size=int(raw["vocab_size"]), hidden_size=hidden,
          num_layers=int(raw["num_hidden_layers"]), num_heads=heads,
          num_kv_heads=int(raw.get("num_key_value_heads") or heads),
          head_dim=int(raw.get("head_dim") or hidden // heads),
          intermediate_size=int(raw["intermediate_size"]),
          max_positions=int(raw.get("max_position_embeddings", 32768)),
          rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
          rope_theta=float(raw.get("rope_theta", params.get("rope_theta", 10000.0))),
          rope_scaling=tuple(sorted(scaling.items())),
          qkv_bias=True if mt == "qwen2" else (bias and mt != "mistral"),
          o_bias=bias and mt in ("llama", "qwen3"),
          mlp_bias=bool(raw.get("mlp_bias", False)) and mt == "llama",
          qk_norm=mt == "qwen3",
          sliding_window=int(raw.get("sliding_window") or 0) if mt == "mistral" else 0,
          hidden_act=str(raw.get("hidden_act", "silu")),
          tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
          pad_token_id=int(pad if isinstance(pad, int) else (eos if eos is not None else 0)),
          bos_token_id=first(raw.get("bos_token_id")), eos_token_id=eos)
    except KeyError as e:
      raise ConfigError(f"{path}: missing key {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
      raise ConfigError(f"{path}: {e}") from None


def inverse_frequencies(config: DecoderConfig) -> np.ndarray:
  """[head_dim / 2] float32 rotary frequencies, scaled as the config says (transformers'
  `ROPE_INIT_FUNCTIONS`, computed in float32 in the same order so positions match to the ulp)."""
  d = config.head_dim
  inv = (1.0 / (np.float32(config.rope_theta)
                ** (np.arange(0, d, 2, dtype=np.int64).astype(np.float32) / np.float32(d))))
  inv = inv.astype(np.float32)
  s = dict(config.rope_scaling)
  kind = s.get("rope_type", "default")
  if kind == "linear":
    inv = inv / np.float32(s["factor"])
  elif kind == "llama3":  # Llama 3.1's smooth interpolation between low and high frequencies
    factor, low, high = (np.float32(s[k]) for k in ("factor", "low_freq_factor",
                                                    "high_freq_factor"))
    old = np.float32(s["original_max_position_embeddings"])
    wavelen = np.float32(2 * np.pi) / inv
    scaled = np.where(wavelen > old / low, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < old / high) & ~(wavelen > old / low)
    inv = np.where(medium, smoothed, scaled).astype(np.float32)
  # "dynamic" (NTK) rescales only past max_position_embeddings, which the encoder never reaches.
  return inv


def rotary(positions: jnp.ndarray, config: DecoderConfig) -> tuple[jnp.ndarray, jnp.ndarray]:
  """cos, sin of the rotary angles: [B, L, 1, head_dim] float32 (halves repeated)."""
  angles = positions.astype(jnp.float32)[..., None] * inverse_frequencies(config)  # [B, L, d/2]
  angles = jnp.concatenate([angles, angles], axis=-1)[:, :, None, :]
  return jnp.cos(angles), jnp.sin(angles)


def apply_rotary(x: jnp.ndarray, cos: jnp.ndarray, sin: jnp.ndarray) -> jnp.ndarray:
  """x: [B, L, heads, d]; the "rotate half" form x cos + (-x2, x1) sin, in float32."""
  x32 = x.astype(jnp.float32)
  x1, x2 = jnp.split(x32, 2, axis=-1)
  return (x32 * cos + jnp.concatenate([-x2, x1], axis=-1) * sin).astype(x.dtype)


class Linear(nn.Module):
  """y = x W^T + b with W in PyTorch's [out, in] layout (so checkpoints load untransposed)."""

  features: int
  use_bias: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    w = self.param("weight", nn.initializers.normal(0.02), (self.features, x.shape[-1]),
                   self.param_dtype)  # [out, in]
    y = jnp.einsum("...i,oi->...o", x.astype(self.dtype), w.astype(self.dtype))
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,),
                         self.param_dtype).astype(self.dtype)
    return y


class RMSNorm(nn.Module):
  """w * x / sqrt(mean(x^2) + eps), the statistic in float32 (as the checkpoints' own code)."""

  eps: float
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    w = self.param("weight", nn.initializers.ones, (x.shape[-1],), self.param_dtype)
    x32 = x.astype(jnp.float32)
    x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return w.astype(self.dtype) * x32.astype(self.dtype)


class Attention(nn.Module):
  """Grouped-query self-attention with rotary positions (and Qwen3's per-head q/k norms)."""

  config: DecoderConfig
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h, cos, sin, allowed):
    """h: [B, L, D]; cos, sin: [B, L, 1, d_h]; allowed: [B, 1, 1, L, L] bool. Returns [B, L, D]."""
    c = self.config
    b, l = h.shape[:2]
    kv, group, dh = c.num_kv_heads, c.num_heads // c.num_kv_heads, c.head_dim
    lin = functools.partial(Linear, dtype=self.dtype, param_dtype=self.param_dtype)
    norm = functools.partial(RMSNorm, c.rms_norm_eps, self.dtype, self.param_dtype)
    q = lin(c.num_heads * dh, c.qkv_bias, name="q_proj")(h).reshape(b, l, c.num_heads, dh)
    k = lin(kv * dh, c.qkv_bias, name="k_proj")(h).reshape(b, l, kv, dh)
    v = lin(kv * dh, c.qkv_bias, name="v_proj")(h).reshape(b, l, kv, dh)
    if c.qk_norm:
      q, k = norm(name="q_norm")(q), norm(name="k_norm")(k)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    q = q.reshape(b, l, kv, group, dh)  # query head j = kv head j // group, as repeat_kv
    logits = jnp.einsum("bqkgd,bskd->bkgqs", q, k).astype(jnp.float32) * dh ** -0.5
    logits = jnp.where(allowed, logits, _MASKED)  # [B, kv, group, L, L]
    probs = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    context = jnp.einsum("bkgqs,bskd->bqkgd", probs, v).reshape(b, l, c.num_heads * dh)
    return lin(c.hidden_size, c.o_bias, name="o_proj")(context)


class MLP(nn.Module):
  """SwiGLU: W_down (act(W_gate x) * W_up x)."""

  config: DecoderConfig
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = self.config
    lin = functools.partial(Linear, use_bias=c.mlp_bias, dtype=self.dtype,
                            param_dtype=self.param_dtype)
    gate = ACTIVATIONS[c.hidden_act](lin(c.intermediate_size, name="gate_proj")(x))
    return lin(c.hidden_size, name="down_proj")(gate * lin(c.intermediate_size, name="up_proj")(x))


class DecoderLayer(nn.Module):
  """Pre-norm block: h + attn(norm(h)), then + mlp(norm(.))."""

  config: DecoderConfig
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h, cos, sin, allowed):
    c, kw = self.config, dict(dtype=self.dtype, param_dtype=self.param_dtype)
    h = h + Attention(c, **kw, name="self_attn")(
        RMSNorm(c.rms_norm_eps, **kw, name="input_layernorm")(h), cos, sin, allowed)
    return h + MLP(c, **kw, name="mlp")(
        RMSNorm(c.rms_norm_eps, **kw, name="post_attention_layernorm")(h))


class DecoderEncoder(nn.Module):
  """Token ids -> last hidden states of a Llama / Mistral / Qwen2 / Qwen3 decoder.

  Attributes:
    config: the architecture.
    dtype: computation dtype.
    param_dtype: parameter dtype (the loader stores weights in the computation dtype).
  """

  config: DecoderConfig
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, input_ids: jnp.ndarray, attention_mask: jnp.ndarray) -> jnp.ndarray:
    """Encodes one padded batch.

    Args:
      input_ids: [B, L] int32 token ids, padded on either side.
      attention_mask: [B, L] 1 for real tokens, 0 for padding (real tokens contiguous).

    Returns:
      [B, L, D] final-norm hidden states in `dtype` (rows of padded positions are meaningless).
    """
    c, kw = self.config, dict(dtype=self.dtype, param_dtype=self.param_dtype)
    embed = Embedding(c.vocab_size, c.hidden_size, **kw, name="embed_tokens")
    h = embed(input_ids)  # [B, L, D]
    mask = attention_mask > 0
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)  # [B, L]: 0.. over real tokens
    cos, sin = rotary(positions, c)
    idx = jnp.arange(input_ids.shape[1])
    allowed = (idx[None, :] <= idx[:, None])[None] & mask[:, None, :]  # [B, L_q, L_k] causal
    if c.sliding_window:
      allowed &= (idx[:, None] - idx[None, :] < c.sliding_window)[None]
    allowed = allowed[:, None, None]  # [B, 1, 1, L, L] over (kv heads, group)
    for i in range(c.num_layers):
      h = DecoderLayer(c, **kw, name=f"layers_{i}")(h, cos, sin, allowed)
    return RMSNorm(c.rms_norm_eps, **kw, name="norm")(h)


class Embedding(nn.Module):
  """An [vocab, D] table with the checkpoint's name for it (`weight`)."""

  num_embeddings: int
  features: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, ids):
    table = self.param("weight", nn.initializers.normal(0.02),
                       (self.num_embeddings, self.features), self.param_dtype)
    return jnp.take(table, ids, axis=0).astype(self.dtype)


# --- weights and sharding ------------------------------------------------------------------------

_LAYER = re.compile(r"^layers\.(\d+)\.")
# Leaf modules split over the 'model' axis: by output rows ([out, in] weight, [out] bias) ...
_COLUMN_PARALLEL = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")
# ... or by input columns (their outputs are summed across devices).
_ROW_PARALLEL = ("o_proj", "down_proj")


def param_path(key: str) -> tuple[str, ...] | None:
  """Our parameter path for a checkpoint key, or None for keys the encoder does not use."""
  key = key[len("model."):] if key.startswith("model.") else key
  if key.startswith("lm_head.") or key.endswith("rotary_emb.inv_freq"):
    return None
  return tuple(_LAYER.sub(lambda m: f"layers_{m[1]}.", key).split("."))


def partition_spec(path: tuple[str, ...], shape: tuple[int, ...], devices: int) -> P:
  """How a parameter is laid over the 'model' axis (replicated when it does not divide evenly)."""
  module, leaf = (path[-2], path[-1]) if len(path) >= 2 else ("", path[-1])
  if module in _COLUMN_PARALLEL and shape[0] % devices == 0:
    return P("model", None) if leaf == "weight" else P("model")
  if module in _ROW_PARALLEL and leaf == "weight" and shape[1] % devices == 0:
    return P(None, "model")
  if module == "embed_tokens" and shape[1] % devices == 0:
    return P(None, "model")
  return P()


def expected_shapes(config: DecoderConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Every parameter's path and shape, from the module itself (nothing allocated)."""
  tree = jax.eval_shape(DecoderEncoder(config).init, jax.random.key(0),
                        jnp.zeros((1, 1), jnp.int32), jnp.ones((1, 1), jnp.int32))["params"]
  return {tuple(k.key for k in p): tuple(leaf.shape)
          for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def param_bytes_per_device(config: DecoderConfig, devices: int, dtype: str = "bfloat16") -> int:
  """Parameter bytes on the busiest device when sharded over `devices` by `partition_spec`."""
  size = jnp.dtype(dtype).itemsize
  total = 0
  for path, shape in expected_shapes(config).items():
    spec = partition_spec(path, shape, devices)
    n = int(np.prod(shape))
    total += n // devices if any(a is not None for a in spec) else n
  return total * size


def load_params(folder: str | pathlib.Path, config: DecoderConfig, *, dtype: str = "float32",
                mesh: Mesh | None = None) -> dict:
  """Streams a checkpoint's tensors onto the device(s) as `DecoderEncoder(config)`'s parameters.

  One tensor at a time: a memory-mapped view, cast to `dtype` on the host (the only host copy),
  then `jax.device_put` with its `NamedSharding` over `mesh` (or onto the default device).

  Raises:
    ConfigError: a tensor is missing, unexpected or mis-shaped for this config (naming it).
  """
  expected = expected_shapes(config)
  devices = mesh.shape["model"] if mesh is not None else 1
  flat: dict[tuple[str, ...], jax.Array] = {}
  lm_head = None
  for key, view, file in weights.iter_tensors(folder):
    if key.removeprefix("model.") == "lm_head.weight":
      lm_head = (key, view, file)
    path = param_path(key)
    if path is None:
      continue
    if path not in expected:
      raise ConfigError(f"{file}: tensor {key!r} has no place in the {config.num_layers}-layer "
                        f"{config.model_type} model its config.json describes")
    if tuple(view.shape) != expected[path]:
      raise ConfigError(f"{file}: tensor {key!r} has shape {list(view.shape)}, expected "
                        f"{list(expected[path])} for this config")
    flat[path] = _place(view, path, dtype, mesh, devices)
  embed = ("embed_tokens", "weight")
  if embed not in flat and lm_head is not None and config.tie_word_embeddings:
    flat[embed] = _place(lm_head[1], embed, dtype, mesh, devices)  # tied: one stored copy
  missing = [p for p in expected if p not in flat]
  if missing:
    raise ConfigError(f"{folder}: no weights for {'.'.join(missing[0])} ({len(missing)} "
                      f"parameters missing; is this a {config.model_type} checkpoint matching "
                      f"its config.json?)")
  params: dict = {}
  for path, array in flat.items():
    node = params
    for name in path[:-1]:
      node = node.setdefault(name, {})
    node[path[-1]] = array
  return params


def _place(view: np.ndarray, path, dtype: str, mesh: Mesh | None, devices: int) -> jax.Array:
  host = np.asarray(view, dtype=jnp.dtype(dtype))  # the one host copy (none if dtypes match)
  if mesh is None:
    return jax.device_put(host)
  return jax.device_put(host, NamedSharding(mesh, partition_spec(path, host.shape, devices)))


def model_mesh(devices: int | None = None) -> Mesh:
  """A 1-D mesh over the first `devices` devices (all by default) named 'model'."""
  devs = jax.devices()[:devices] if devices else jax.devices()
  return Mesh(np.array(devs), ("model",))
