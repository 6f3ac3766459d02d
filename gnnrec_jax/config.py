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
  # softmax_gnn's remedies for uniform, degree-blind attention (models/layers/softmax_edge.py):
  attention_logits: str = "dot"  # "dot" | "cosine" (unit vectors: the scale alone sets sharpness)
  learn_temperature: bool = False  # learn the logits' scale per layer and head
  norm_prior: float = 0.0        # g in alpha ∝ norm_ij^g exp(e_ij); 1 = attention over D^-1/2 A D^-1/2
  receiver_scale: bool = False   # alphas of node i sum to LightGCN's row sum, not to 1
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
  embed_dropout: float = 0.0     # elementwise dropout on layer-0 vectors while training (a regulariser)
  # --- graph -----------------------------------------------------------------------------------
  self_loops: bool = False
  # "auto": D^-1/2 W D^-1/2 with the interaction weights when the train weights differ
  # (behaviour types, ratings, counts), LightGCN's binary D^-1/2 A D^-1/2 when they are all equal;
  # "true" | "false" force either (see graph.use_weighted_norm).
  weighted_norm: str = "auto"
  social: bool = False           # add user-user trust edges when the dataset has them
  propagation: str = "auto"      # "auto" | "segment" | "dense" | "csr" | "scipy": see gnnrec_jax/graph/propagate.py
  # --- loss and sampling -----------------------------------------------------------------------
  # "bpr" | "softmax" (sampled softmax / InfoNCE) | "full_softmax" (every item a negative) |
  # "directau" | "ccl" (below; gnnrec_jax/training/contrastive.py)
  loss: str = "bpr"
  l2: float = 1e-4               # LightGCN's 1e-4 on the batch's layer-0 embeddings
  num_negatives: int = 1         # per positive (BPR averages its pairwise term over them)
  # Rounds of redrawing sampled negatives that are among the user's train items
  # (training/sampling.resample_if_seen); 0 keeps uniform draws (~5% false negatives on ml-100k).
  neg_resample: int = 0
  softmax_temperature: float = 0.1
  score: str = "dot"             # "dot" | "cosine": final vectors L2-normalised (train and rank)
  # loss=directau (Wang et al., KDD 2022): alignment + gamma * uniformity, no negatives.
  directau_gamma: float = 1.0    # the authors' default (their MF encoder); they tune 0.01-10
  directau_unique: bool = False  # uniformity over the batch's unique ids (the reference: rows)
  # loss=ccl, SimpleX's cosine contrastive loss (Mao et al., CIKM 2021).
  ccl_margin: float = 0.9        # m on Gowalla and ML-1M in RecZoo's SimpleX configs
  ccl_negative_weight: float = 0.0  # w; 0 means w = K (the reference's None: a plain sum)
  ccl_shared_negatives: int = 0  # K negatives shared by the batch (>= #items: all); 0: per row
  # A contrastive term added to `loss`: "" | "simgcl" (Yu et al., SIGIR 2022: InfoNCE between
  # two noisy forward passes) | "xsimgcl" (Yu et al., TKDE 2023: one noisy pass, its final
  # vectors against its layer-`cl_layer` output); gnnrec_jax/training/contrastive.py.
  cl: str = ""
  cl_weight: float = 0.2         # lambda; XSimGCL's published value (SimGCL's: 0.5)
  cl_eps: float = 0.1            # the noise radius; SimGCL's published value (XSimGCL's: 0.2)
  cl_temperature: float = 0.2    # InfoNCE tau; SimGCL's published value
  cl_layer: int = 1              # XSimGCL's l* (1-based): the first layer's output, as published
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


# The names `EmbeddingRecommender.loss` dispatches on (gnnrec_jax/models/embedding.py).
LOSSES = ("bpr", "softmax", "full_softmax", "directau", "ccl")
CL_TERMS = ("", "simgcl", "xsimgcl")


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
      (c.attention_logits in ("dot", "cosine"), "attention_logits must be dot|cosine"),
      (c.norm_prior >= 0, "norm_prior must be >= 0"),
      (0.0 <= c.dropout < 1.0, "dropout must be in [0, 1)"),
      (0.0 <= c.id_dropout <= 1.0, "id_dropout must be in [0, 1]"),
      (0.0 <= c.embed_dropout < 1.0, "embed_dropout must be in [0, 1)"),
      (c.neg_resample >= 0, "neg_resample must be >= 0"),
      (c.loss in LOSSES, f"loss must be {'|'.join(LOSSES)}"),
      (c.directau_gamma >= 0, "directau_gamma must be >= 0"),
      (-1.0 < c.ccl_margin < 1.0, "ccl_margin must be in (-1, 1) (a cosine)"),
      (c.ccl_negative_weight >= 0, "ccl_negative_weight must be >= 0 (0: w = K)"),
      (c.ccl_shared_negatives >= 0, "ccl_shared_negatives must be >= 0 (0: per-row negatives)"),
      (c.cl in CL_TERMS, f"cl must be empty or {'|'.join(t for t in CL_TERMS if t)}"),
      (c.cl_weight >= 0, "cl_weight must be >= 0"),
      (c.cl_eps >= 0, "cl_eps must be >= 0"),
      (c.cl_temperature > 0, "cl_temperature must be > 0"),
      (c.cl != "xsimgcl" or c.model != "mf",
       "cl=xsimgcl contrasts a layer's output with the final vectors; mf has no layers "
       "(use cl=simgcl)"),
      (c.cl != "xsimgcl" or 1 <= c.cl_layer <= c.num_layers,
       f"cl_layer must be in 1..num_layers ({c.num_layers}) for cl=xsimgcl"),
      (c.cl != "xsimgcl" or (c.model != "ngcf" and c.layer_combine != "concat"),
       "cl=xsimgcl needs final vectors of a layer's width; ngcf and layer_combine=concat "
       "concatenate the layers (use cl=simgcl)"),
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
