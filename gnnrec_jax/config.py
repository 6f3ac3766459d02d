"""One flat, typed experiment config, overridable from the CLI with `--set key=value`.

Flat on purpose: every knob is one `--set` away and appears once in the `config.json` a run
writes. Per-model defaults live in `gnnrec_jax/configs/<model>.py` (each default with its reason).
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from typing import Any

from gnnrec_jax.data.behaviours import DEFAULT_BEHAVIOUR_WEIGHTS
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.models import MODELS  # the model registry owns the list of names


@dataclasses.dataclass(frozen=True)
class Config:
  """Every setting of a run. Field comments give the reason for each default."""

  # --- model ---------------------------------------------------------------------------------
  model: str = "lightgcn"
  embed_dim: int = 64            # LightGCN/RecBole default; the published tables use 64
  num_layers: int = 3            # LightGCN's best depth on Gowalla/ml-100k
  layer_combine: str = "mean"    # "mean" | "sum" | "last" | "concat": how layer outputs combine
  init_std: float = 0.1          # LightGCN's normal(0, 0.1) init (RecBole uses xavier; both fine)
  # softmax_gnn / gat
  activation: str = "identity"   # sigma in h' = sigma(sum alpha h); identity keeps LightGCN's linearity
  heads: int = 1
  scale_logits: bool = True      # divide u.v by sqrt(d) so early logits do not saturate softmax
  temperature: float = 1.0
  qk_proj: bool = False          # learned query/key projections before the dot product
  initial_alpha: str = "weights" # "weights": first layer uses normalised interaction weights; "none"
  attention_mix: float = 1.0     # 1.0: pure softmax alpha; <1 mixes with LightGCN's fixed norm
  # ngcf / gat
  dropout: float = 0.1           # message dropout (NGCF default 0.1)
  # ease
  ease_l2: float = 250.0         # RecBole's EASE reg_weight on ml-100k
  # node inputs (text features, issue 4)
  # "" = ID embeddings only. Otherwise items get their text vector and users get:
  # "history" (mean of their train items' vectors) | "profile" | "both" | "none".
  text_features: str = ""
  text_model: str = "all-MiniLM-L6-v2"
  use_id_embedding: bool = True
  id_dropout: float = 0.0        # DropoutNet-style: drop ID vectors so text alone must carry signal
  # textgnn, the text-first GNN (AlphaRec; models/textgnn.py, defaults in configs/textgnn.py)
  mlp_hidden: int = 0            # hidden width of the MLP from LM vectors to embed_dim; 0 = linear
  user_input: str = "history"    # users' layer 0: history (mean of their mapped items) | text | table
  conv: str = "lightgcn"         # propagation: lightgcn | softmax (the seed's rule, softmax_gnn's fields)
  target_out: bool = False       # train each (user, item) row with the user embedded without that item
  # --- graph -----------------------------------------------------------------------------------
  self_loops: bool = False
  # "auto": D^-1/2 W D^-1/2 with the interaction weights when the train weights differ
  # (behaviour types, ratings, counts), LightGCN's binary D^-1/2 A D^-1/2 when they are all equal;
  # "true" | "false" force either (see graph.use_weighted_norm).
  weighted_norm: str = "auto"
  social: bool = False           # add user-user trust edges when the dataset has them
  propagation: str = "auto"      # "auto" | "segment" | "dense" | "csr" | "scipy": see gnnrec_jax/graph/propagate.py
  # --- loss and sampling -----------------------------------------------------------------------
  loss: str = "bpr"              # "bpr" | "softmax" (sampled softmax / InfoNCE) | "full_softmax" (every item a negative)
  l2: float = 1e-4               # LightGCN's 1e-4 on the batch's layer-0 embeddings
  num_negatives: int = 1         # per positive (BPR averages its pairwise term over them)
  softmax_temperature: float = 0.1
  score: str = "dot"             # "dot" | "cosine": final vectors L2-normalised (train and rank)
  # --- optimisation ----------------------------------------------------------------------------
  optimizer: str = "adam"
  lr: float = 1e-3               # LightGCN and RecBole default
  lr_schedule: str = "constant"  # "constant" | "cosine" | "warmup_cosine"
  weight_decay: float = 0.0
  batch_size: int = 2048         # RecBole's train_batch_size; a static shape under jit
  epochs: int = 300
  eval_every: int = 1
  patience: int = 10             # RecBole's stopping_step
  select_metric: str = "ndcg@20"  # valid metric for early stopping; "warm/ndcg@20": one block
  grad_clip: float = 0.0         # 0 disables
  # --- evaluation ------------------------------------------------------------------------------
  topk: tuple = (10, 20, 50)
  eval_batch_size: int = 512     # users per jitted ranking step
  # The test pass's user histories: "train" (the models as trained), or "train+valid" (each
  # user's valid items join its history and the graph at test time, without retraining, as
  # sequential leave-one-out protocols do; gnnrec_jax/evaluation/protocol.py).
  test_history: str = "train"
  # --- data --------------------------------------------------------------------------------------
  split: str = "random"          # "random" | "loo" | "temporal" | "cold_item" | "predefined"
  split_ratios: tuple = (0.8, 0.1, 0.1)
  cold_fraction: float = 0.2
  seed: int = 2020               # RecBole's default seed
  # Behaviour -> weight for data with a behaviour column (seed §3.3: a purchase says more than a
  # click): 1:2:4 for browse:intent:buy under the public datasets' names; an unknown behaviour is
  # an error naming its line (gnnrec_jax/data/behaviours.py).
  behaviour_weights: str = DEFAULT_BEHAVIOUR_WEIGHTS
  # How repeated user-item rows combine (max | sum | last): max keeps a rating's scale, is
  # unchanged by rows logged twice, and weighs a click-then-purchase as a purchase
  # (gnnrec_jax/data/checks.combine_duplicates).
  duplicates: str = "max"
  # --- runtime -----------------------------------------------------------------------------------
  checkpoint_every: int = 1      # epochs between crash-safe checkpoints

  def replace(self, **kw) -> "Config":
    return dataclasses.replace(self, **kw)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _coerce(name: str, raw: str, typ) -> Any:
  try:
    if typ is bool:
      low = raw.strip().lower()
      if low in ("1", "true", "yes", "on"):
        return True
      if low in ("0", "false", "no", "off"):
        return False
      raise ValueError
    if typ is int:
      return int(raw)
    if typ is float:
      return float(raw)
    if typ is tuple:
      parts = [p for p in raw.replace("(", "").replace(")", "").split(",") if p.strip()]
      return tuple(float(p) if "." in p or "e" in p.lower() else int(p) for p in parts)
    return raw
  except ValueError:
    raise ConfigError(f"--set {name}={raw}: expected a value of type {typ.__name__}") from None


def apply_overrides(config: Config, overrides: list[str] | None) -> Config:
  """Applies `key=value` strings; unknown keys and values of the wrong type raise ConfigError."""
  hints = typing.get_type_hints(Config)
  updates = {}
  for item in overrides or ():
    if "=" not in item:
      raise ConfigError(f"--set {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if key not in hints:
      close = difflib.get_close_matches(key, list(hints), n=3)
      hint = f" (did you mean {', '.join(close[:3])}?)" if close else ""
      raise ConfigError(f"--set {key}: unknown config key{hint}")
    updates[key] = _coerce(key, raw, hints[key])
  return validate(config.replace(**updates))


def config_from_dict(raw, *, source: str = "config") -> Config:
  """A Config from a JSON object (run.json, a config file), each value's type checked.

  Fields this version does not know are ignored (runs of older versions stay readable); JSON
  lists become tuples; ints are accepted where floats are expected.

  Raises:
    ConfigError: `raw` is not an object, or a field has a value of the wrong type (the message
      names `source` and the field).
  """
  if not isinstance(raw, dict):
    raise ConfigError(f"{source}: expected a JSON object, got {type(raw).__name__}")
  hints = typing.get_type_hints(Config)
  values = {}
  for key, value in raw.items():
    typ = hints.get(key)
    if typ is None:
      continue
    if typ is tuple and isinstance(value, list):
      value = tuple(value)
    if key == "weighted_norm" and isinstance(value, bool):
      value = "true" if value else "false"  # a bool before "auto" existed
    ok = (isinstance(value, typ) and not (typ is int and isinstance(value, bool))) or (
        typ is float and isinstance(value, int) and not isinstance(value, bool))
    if typ is tuple and ok:
      ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not ok:
      raise ConfigError(f"{source}: field {key} must be {typ.__name__}, got {value!r:.60}")
    values[key] = float(value) if typ is float else value
  return validate(Config(**values))


def _validate_data_fields(c: Config) -> Config:
  """weighted_norm (bools from older config.json files read as "true"/"false"),
  behaviour_weights and duplicates, against the names their modules own."""
  from gnnrec_jax.data import behaviours, checks as data_checks
  from gnnrec_jax.graph.build import WEIGHTED_NORM
  wn = c.weighted_norm
  if isinstance(wn, bool):
    c = c.replace(weighted_norm="true" if wn else "false")
  elif str(wn).strip().lower() in ("1", "yes", "on", "0", "no", "off"):
    c = c.replace(weighted_norm="true" if str(wn).strip().lower() in ("1", "yes", "on")
                  else "false")
  if c.weighted_norm not in WEIGHTED_NORM:
    raise ConfigError(f"invalid config: weighted_norm must be {'|'.join(WEIGHTED_NORM)}, got "
                      f"{c.weighted_norm!r}")
  behaviours.parse_behaviour_weights(c.behaviour_weights, "invalid config: behaviour_weights")
  data_checks.check_duplicates_rule(c.duplicates)
  return c


def validate(config: Config) -> Config:
  """Checks values that would otherwise fail deep inside jit with an opaque message."""
  c = config
  if c.model not in MODELS:
    raise ConfigError(f"unknown model {c.model!r}; choose one of {', '.join(MODELS)}")
  checks = [
      (c.embed_dim > 0, "embed_dim must be > 0"),
      (c.num_layers >= 0, "num_layers must be >= 0"),
      (c.layer_combine in ("mean", "sum", "last", "concat"), "layer_combine must be mean|sum|last|concat"),
      (c.heads >= 1, "heads must be >= 1"),
      (c.temperature > 0, "temperature must be > 0"),
      (c.initial_alpha in ("weights", "none"), "initial_alpha must be weights|none"),
      (0.0 <= c.attention_mix <= 1.0, "attention_mix must be in [0, 1]"),
      (0.0 <= c.dropout < 1.0, "dropout must be in [0, 1)"),
      (0.0 <= c.id_dropout <= 1.0, "id_dropout must be in [0, 1]"),
      (c.loss in ("bpr", "softmax", "full_softmax"), "loss must be bpr|softmax|full_softmax"),
      (c.score in ("dot", "cosine"), "score must be dot|cosine"),
      (c.l2 >= 0, "l2 must be >= 0"),
      (c.num_negatives >= 1, "num_negatives must be >= 1"),
      (c.lr > 0, "lr must be > 0"),
      (c.lr_schedule in ("constant", "cosine", "warmup_cosine"), "lr_schedule must be constant|cosine|warmup_cosine"),
      (c.optimizer in ("adam", "adamw", "sgd", "adagrad"), "optimizer must be adam|adamw|sgd|adagrad"),
      (c.batch_size > 0, "batch_size must be > 0"),
      (c.epochs >= 0, "epochs must be >= 0"),
      (c.eval_every >= 1, "eval_every must be >= 1"),
      (c.patience >= 1, "patience must be >= 1"),
      (len(c.topk) > 0 and all(int(k) > 0 for k in c.topk), "topk must be positive integers"),
      (c.split in ("random", "loo", "temporal", "cold_item", "predefined"), "split must be random|loo|temporal|cold_item|predefined"),
      (len(c.split_ratios) == 3 and abs(sum(c.split_ratios) - 1) < 1e-6, "split_ratios must be three numbers summing to 1"),
      (0.0 < c.cold_fraction < 1.0, "cold_fraction must be in (0, 1)"),
      (c.propagation in ("auto", "segment", "dense", "csr", "scipy"), "propagation must be auto|segment|dense|csr|scipy"),
      (c.text_features in ("", "history", "profile", "both", "none"),
       "text_features must be empty (ID only) or history|profile|both|none"),
      (c.use_id_embedding or bool(c.text_features), "use_id_embedding=false needs text_features"),
      (c.model != "textgnn" or bool(c.text_features),
       "textgnn needs text_features (its items are their text), e.g. text_features=history"),
      (c.mlp_hidden >= 0, "mlp_hidden must be >= 0 (0: a linear map)"),
      (c.user_input in ("history", "text", "table"), "user_input must be history|text|table"),
      (c.conv in ("lightgcn", "softmax"), "conv must be lightgcn|softmax"),
      (c.test_history in ("train", "train+valid"), "test_history must be train|train+valid"),
  ]
  for ok, msg in checks:
    if not ok:
      raise ConfigError(f"invalid config: {msg}")
  c = _validate_data_fields(c)
  block, _, name_k = c.select_metric.rpartition("/")
  metric = name_k.split("@")
  names = ("recall", "ndcg", "precision", "hit", "mrr", "coverage")
  if (len(metric) != 2 or metric[0] not in names or not metric[1].isdigit()
      or int(metric[1]) not in [int(k) for k in c.topk]
      or block not in ("", "warm", "cold", "cold_users")):
    raise ConfigError(f"select_metric {c.select_metric!r} must be NAME@K or BLOCK/NAME@K with "
                      f"NAME one of {', '.join(names)}, K in topk {c.topk} and BLOCK one of "
                      "warm, cold, cold_users (cold-start blocks of the validation set)")
  return c
