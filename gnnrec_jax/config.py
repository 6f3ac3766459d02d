"""One flat, typed experiment config, overridable from the CLI with `--set key=value`.

Flat on purpose: every knob is one `--set` away and appears once in the `config.json` a run
writes. Per-model defaults live in `gnnrec_jax/configs/<model>.py` (each default with its reason).

Each field is declared once, with everything about it (`option`): its default, the reason for the
default (what `gnnrec-jax config` prints), and what it allows: a range for numbers ("[0, 1)",
"(0, inf)": floats must also be finite), the names for strings. `validate` is generated from these
declarations, so adding a field is one `option(...)` line. Names a module owns are referenced as
"package.module:NAME" and read from that module when a config is validated (importing it only
then, so that this module stays light: `gnnrec-jax data` does not load jax); a plain string in
`choices` is a literal allowed value.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import json
import math
import typing
from typing import Any

from gnnrec_jax.data.behaviours import DEFAULT_BEHAVIOUR_WEIGHTS
from gnnrec_jax.errors import ConfigError


def _parse_range(text: str) -> tuple[float, float, bool, bool]:
  """"[lo, hi)" -> (lo, hi, lo_closed, hi_closed)."""
  text = text.strip()
  lo, hi = text[1:-1].split(",")
  return float(lo), float(hi), text[0] == "[", text[-1] == "]"


def option(default, doc: str, *, choices: tuple | None = None, range: str | None = None,
           allowed: str | None = None):
  """One config field: `default`, the reason for it (`doc`) and what it allows.

  Args:
    default: the default value.
    doc: the reason for the default (shown by `gnnrec-jax config`).
    choices: allowed names; an entry "package.module:NAME" stands for that module's tuple (or
      dict keys) NAME.
    range: for numbers (and each element of a tuple of numbers): "[lo, hi]" with "(" / ")" for
      open ends and "inf" for no bound.
    allowed: for free-form strings, what is accepted (shown by `gnnrec-jax config`).
  """
  if range is not None:
    _parse_range(range)  # a malformed range fails at import, not at the first validation
  return dataclasses.field(default=default, metadata={
      "doc": doc, "choices": choices, "range": range, "allowed": allowed})


@dataclasses.dataclass(frozen=True)
class Config:
  """Every setting of a run. Each field's doc gives the reason for its default."""

  # --- model ---------------------------------------------------------------------------------
  model: str = option("lightgcn", "the model to train", choices=("gnnrec_jax.models:REGISTRY",))
  embed_dim: int = option(64, "LightGCN/RecBole default; the published tables use 64",
                          range="[1, 65536]")
  num_layers: int = option(3, "LightGCN's best depth on Gowalla/ml-100k", range="[0, 64]")
  layer_combine: str = option("mean", "how layer outputs combine (LightGCN: mean)",
                              choices=("gnnrec_jax.models.readout:COMBINES",))
  init_std: float = option(0.1, "LightGCN's normal(0, 0.1) init (RecBole uses xavier; both fine)",
                           range="(0, inf)")
  # softmax_gnn / gat
  activation: str = option("identity", "sigma in h' = sigma(sum alpha h); identity keeps "
                           "LightGCN's linearity (softmax_gnn, gat)",
                           choices=("gnnrec_jax.models.layers.softmax_edge:ACTIVATIONS",))
  heads: int = option(1, "attention heads (softmax_gnn, gat); embed_dim must divide by it",
                      range="[1, 1024]")
  scale_logits: bool = option(True, "divide u.v by sqrt(d) so early logits do not saturate "
                              "softmax (softmax_gnn)")
  temperature: float = option(1.0, "tau dividing the attention logits (softmax_gnn)",
                              range="(0, inf)")
  qk_proj: bool = option(False, "learned query/key projections before the dot product "
                         "(softmax_gnn)")
  initial_alpha: str = option("weights", "weights: the first layer uses normalised interaction "
                              "weights (the seed); none: softmax from layer 1 (softmax_gnn)",
                              choices=("gnnrec_jax.models.softmax_gnn:INITIAL_ALPHAS",))
  attention_mix: float = option(1.0, "1.0: pure softmax alpha; <1 mixes with LightGCN's fixed "
                                "norm (softmax_gnn)", range="[0, 1]")
  # softmax_gnn's remedies for uniform, degree-blind attention (models/layers/softmax_edge.py):
  attention_logits: str = option("dot", "dot: u.v (scaled by 1/sqrt(d) with scale_logits); "
                                 "cosine: unit vectors, so the scale alone sets the sharpness "
                                 "(softmax_gnn)",
                                 choices=("gnnrec_jax.models.layers.softmax_edge:LOGITS",))
  learn_temperature: bool = option(False, "learn the logits' scale per layer and head, from 1/"
                                   "temperature (softmax_gnn)")
  norm_prior: float = option(0.0, "g in alpha ∝ norm_ij^g exp(e_ij): 1 = attention over "
                             "D^-1/2 A D^-1/2 (a log-degree bias); 0 = the seed's plain softmax "
                             "(softmax_gnn)", range="[0, inf)")
  receiver_scale: bool = option(False, "each node's alphas sum to LightGCN's row sum of "
                                "D^-1/2 A D^-1/2, not to 1 (softmax_gnn)")
  # ngcf / gat
  dropout: float = option(0.1, "message dropout (NGCF default 0.1; ngcf, gat)", range="[0, 1)")
  # ease
  ease_l2: float = option(250.0, "RecBole's EASE reg_weight on ml-100k (> 0: the Gram matrix "
                          "of a small catalogue can be singular)", range="(0, inf)")
  # l3ae (models/l3ae.py; symbols of the authors' code: reg_X, reg_F, reg_E, alpha)
  l3ae_variant: str = option("l3ae", "l3ae: EASE regularised toward the text model C (the paper's "
                             "main form); additive, collective: the fusions of its Table 3; "
                             "text: C alone (no [I, I] matrix)",
                             choices=("gnnrec_jax.models.l3ae:VARIANTS",))
  l3ae_reg_x: float = option(-650.0, "lambda_X, EASE's weight, chosen on ml-100k's valid "
                             "(configs/l3ae.py); may be < 0 as long as lambda_X + lambda_E > 0 "
                             "(the authors use -50..-100)", range="[-1e12, 1e12]")
  l3ae_reg_f: float = option(30.0, "lambda_F, the text-side EASE weight over unit MiniLM vectors "
                             "(ml-100k's valid)", range="(0, inf)")
  l3ae_reg_e: float = option(1000.0, "lambda_E, the pull of B toward C (l3ae; ml-100k's valid)",
                             range="[0, inf)")
  l3ae_alpha: float = option(0.2, "alpha: C's share (additive) or the text rows' scale "
                             "(collective)", range="[0, inf)")
  # training-free graph filters (gfcf, bspm, chebycf; models/graph_filters.py)
  filter_text_weight: float = option(0.0, "w in L' = (1 - w) R~^T R~ + w S: the item vectors' "
                                     "normalised similarity mixed into the item graph (0: off; "
                                     "needs text_features)", range="[0, 1]")
  filter_alpha: float = option(0.3, "weight of the ideal low-pass term: GF-CF's alpha (0.3 on "
                               "Gowalla), BSPM's idl_beta, ChebyCF's alpha (gfcf, bspm, chebycf)",
                               range="[0, inf)")
  svd_rank: int = option(256, "top singular vectors of the normalised R~ in the ideal low-pass "
                         "(GF-CF's 256 on Gowalla; gfcf, bspm, chebycf)", range="[1, 65536]")
  svd_method: str = option("auto", "auto: exact dense SVD for small matrices, else randomized "
                           "subspace iteration (arpack: scipy's Lanczos, as the papers' code)",
                           choices=("gnnrec_jax.models.graph_filters:SVD_METHODS",))
  bspm_idl_solver: str = option("euler", "ideal low-pass ODE's solver (BSPM paper: euler)",
                                choices=("gnnrec_jax.models.graph_filters:SOLVERS",))
  bspm_idl_steps: int = option(1, "ideal low-pass ODE's steps K_idl (paper: 1)",
                               range="[1, 1000]")
  bspm_idl_time: float = option(1.0, "ideal low-pass ODE's horizon T_idl (paper: 1)",
                                range="(0, inf)")
  bspm_blur_solver: str = option("euler", "blurring ODE's solver (paper: euler)",
                                 choices=("gnnrec_jax.models.graph_filters:SOLVERS",))
  bspm_blur_steps: int = option(1, "blurring ODE's steps K_b (paper: 1)", range="[1, 1000]")
  bspm_blur_time: float = option(1.0, "blurring ODE's horizon T_b (paper: 1)", range="(0, inf)")
  bspm_sharpen_solver: str = option("rk4", "sharpening ODE's solver (Gowalla: rk4)",
                                    choices=("gnnrec_jax.models.graph_filters:SOLVERS",))
  bspm_sharpen_steps: int = option(1, "sharpening ODE's steps K_s (Gowalla: 1; 0 turns "
                                   "sharpening off)", range="[0, 1000]")
  bspm_sharpen_time: float = option(2.5, "sharpening ODE's horizon T_s (Gowalla: 2.5)",
                                    range="(0, inf)")
  bspm_early_merge: bool = option(True, "BSPM-EM: the ideal low-pass joins before sharpening "
                                  "(false: LM, after)")
  bspm_t_point_combination: bool = option(False, "average the ODE states over all steps "
                                          "(Gowalla: false)")
  cheby_order: int = option(8, "ChebyCF's Chebyshev order K (paper, Gowalla: 8)",
                            range="[0, 1000]")
  cheby_flatness: float = option(1.5, "ChebyCF's plateau flatness phi (Gowalla: 1.5)",
                                 range="(0, inf)")
  cheby_beta: float = option(0.4, "ChebyCF's item-degree exponent beta (Gowalla: 0.4; 0 turns "
                             "the normalisation off)", range="[0, inf)")
  # node inputs (text features, issue 4)
  text_features: str = option(
      "", "empty = ID embeddings only; otherwise items get their text vector and users: history "
      "(mean of their train items' vectors), history_text (their train items' titles encoded as "
      "one text), profile, both or none",
      choices=("", "gnnrec_jax.text.node_texts:USER_MODES"))
  text_model: str = option("all-MiniLM-L6-v2", "a small, fast sentence encoder (384 dims)",
                           allowed="a Hugging Face model id or folder with safetensors weights: "
                           "BERT, RoBERTa, XLM-R, Llama, Mistral, Qwen2 or Qwen3 (e.g. "
                           "Qwen/Qwen3-Embedding-0.6B), run with its own pooling")
  # precomputed vectors (issue 24; gnnrec_jax/text/vectors.py): any encoder's output, by id
  item_vectors: str = option("", "empty = encode the item texts with text_model; a file gives "
                             "the items' vectors, matched by id (needs text_features)",
                             allowed="a .npz, .npy (ids in NAME.ids.txt) or .safetensors file")
  user_vectors: str = option("", "empty = users per text_features; a file gives the users' "
                             "vectors, matched by id (needs text_features)",
                             allowed="a .npz, .npy (ids in NAME.ids.txt) or .safetensors file")
  strict_vectors: bool = option(False, "catalogue ids missing from a vectors file get zero "
                                "vectors and a counted warning (true: refused)")
  use_id_embedding: bool = option(True, "learned ID vectors beside text (false needs "
                                  "text_features)")
  id_dropout: float = option(0.0, "DropoutNet-style: drop ID vectors so text alone must carry "
                             "signal", range="[0, 1]")
  embed_dropout: float = option(0.0, "elementwise dropout on layer-0 vectors while training (a "
                                "regulariser; 0 = none)", range="[0, 1)")
  side_features: str = option(
      "", "metadata columns as one more projected layer-0 input (issue 15); empty = none, e.g. "
      "user.age,user.gender,user.occupation,item.year,item.genres (kinds detected, or forced with "
      ":num|:cat|:multi; gaps imputed plus a missing indicator: data/side_features.py)",
      allowed="comma-separated user.COLUMN or item.COLUMN, each optionally :num|:cat|:multi")
  side_numeric_impute: str = option(
      "median", "how a missing number is filled: the median (robust to skewed columns) or mean "
      "of the train nodes' values", choices=("gnnrec_jax.data.side_features:NUMERIC_IMPUTE",))
  side_categorical_impute: str = option(
      "unknown", "how a missing category is filled: unknown (a gap is its own category: "
      "missingness can be a signal) or mode (the train nodes' most frequent value)",
      choices=("gnnrec_jax.data.side_features:CATEGORICAL_IMPUTE",))
  # textgnn, the text-first GNN (AlphaRec; models/textgnn.py, defaults in configs/textgnn.py)
  mlp_hidden: int = option(0, "textgnn: hidden width of the MLP from LM vectors to embed_dim (0: "
                           "one bias-free linear map, AlphaRec's linear variant)",
                           range="[0, 1048576]")
  user_input: str = option("history", "textgnn: users' layer 0: history (the mean of their "
                           "items' mapped vectors, so a new user needs no retraining), text "
                           "(AlphaRec's MLP of the mean LM vector) or table (learned vectors)",
                           choices=("gnnrec_jax.models.textgnn:USER_INPUTS",))
  conv: str = option("lightgcn", "textgnn: propagation, lightgcn (AlphaRec's) or softmax (the "
                     "seed's rule, softmax_gnn's fields)",
                     choices=("gnnrec_jax.models.textgnn:CONVS",))
  target_out: bool = option(False, "textgnn: train each (user, item) row with the user embedded "
                            "without that item and its other train items out of the softmax "
                            "(leave-one-out rows; conv=lightgcn)")
  warm_text: bool = option(True, "textgnn with use_id_embedding: an item with an ID vector also "
                           "adds its mapped text (true), or is its ID vector alone, the text "
                           "map standing in only for items without one (false: warm items as "
                           "in the ID-only model; the cold view then trains the text map only)")
  cold_view: float = option(0.0, "textgnn: weight of a second softmax in which every item is its "
                            "text alone, as cold items are scored (0: off); with "
                            "use_id_embedding, warm items keep their ID vectors in every step "
                            "while the text map learns to stand alone", range="[0, inf)")
  # --- graph -----------------------------------------------------------------------------------
  self_loops: bool = option(False, "LightGCN has no self-loops (layer 0 is kept by the mean)")
  weighted_norm: str = option(
      "auto", "auto: D^-1/2 W D^-1/2 with the interaction weights when the train weights differ "
      "(behaviour types, ratings, counts), LightGCN's binary D^-1/2 A D^-1/2 when they are all "
      "equal; true | false force either (see graph.use_weighted_norm)",
      choices=("gnnrec_jax.graph.build:WEIGHTED_NORM",))
  social: bool = option(False, "add the TRAIN friendships as user-user edges (datasets with a "
                        "social network)")
  friend_split: tuple[float, ...] = option(
      (0.8, 0.1, 0.1), "train, valid, test shares of the friendships (seeded by seed), split in "
      "every experiment on a dataset with a social network: only train pairs become edges or "
      "loss positives, so friend ranking is judged on pairs never seen", range="[0, 1]")
  propagation: str = option("auto", "auto picks per backend (see gnnrec_jax/graph/propagate.py)",
                            choices=("gnnrec_jax.graph.propagate:BACKENDS",))
  # --- loss and sampling -----------------------------------------------------------------------
  loss: str = option("bpr", "bpr (the LightGCN paper), softmax (sampled softmax / InfoNCE), "
                     "full_softmax (every item a negative), directau or ccl "
                     "(objectives/contrastive.py)",
                     choices=("gnnrec_jax.objectives.select:LOSSES",))
  l2: float = option(1e-4, "LightGCN's 1e-4 on the batch's layer-0 embeddings", range="[0, inf)")
  num_negatives: int = option(1, "per positive (BPR averages its pairwise term over them)",
                              range="[1, 65536]")
  neg_resample: int = option(0, "rounds of redrawing sampled negatives that are among the "
                             "user's train items (objectives/sampling.resample_if_seen); 0 keeps "
                             "uniform draws (~5% false negatives on ml-100k)", range="[0, 64]")
  softmax_temperature: float = option(0.1, "tau of the sampled/full softmax losses",
                                      range="(0, inf)")
  score: str = option("dot", "dot: final vectors as they are; cosine: L2-normalised; pearson: "
                      "centred, then L2-normalised (train and rank alike)",
                      choices=("gnnrec_jax.models.readout:SCORES",))
  # loss=directau (Wang et al., KDD 2022): alignment + gamma * uniformity, no negatives.
  directau_gamma: float = option(1.0, "the authors' default (their MF encoder); they tune 0.01-10 "
                                 "(loss=directau)", range="[0, inf)")
  directau_unique: bool = option(False, "uniformity over the batch's unique ids (the reference: "
                                 "rows; loss=directau)")
  # loss=ccl, SimpleX's cosine contrastive loss (Mao et al., CIKM 2021).
  ccl_margin: float = option(0.9, "m on Gowalla and ML-1M in RecZoo's SimpleX configs "
                             "(loss=ccl; a cosine)", range="(-1, 1)")
  ccl_negative_weight: float = option(0.0, "w; 0 means w = K (the reference's None: a plain "
                                      "sum; loss=ccl)", range="[0, inf)")
  ccl_shared_negatives: int = option(0, "K negatives shared by the batch (>= #items: all); 0: "
                                     "per-row negatives (loss=ccl)", range="[0, 16777216]")
  # A contrastive term added to `loss` (objectives/contrastive.py).
  cl: str = option("", "empty: none; simgcl (Yu et al., SIGIR 2022: InfoNCE between two noisy "
                   "forward passes); xsimgcl (Yu et al., TKDE 2023: one noisy pass, its final "
                   "vectors against its layer-cl_layer output)",
                   choices=("gnnrec_jax.objectives.select:CL_TERMS",))
  cl_weight: float = option(0.2, "lambda; XSimGCL's published value (SimGCL's: 0.5)",
                            range="[0, inf)")
  cl_eps: float = option(0.1, "the noise radius; SimGCL's published value (XSimGCL's: 0.2)",
                         range="[0, inf)")
  cl_temperature: float = option(0.2, "InfoNCE tau; SimGCL's published value", range="(0, inf)")
  cl_layer: int = option(1, "XSimGCL's l* (1-based): the first layer's output, as published",
                         range="[1, 64]")
  social_weight: float = option(
      0.0, "weight of the friendship objective (issue 15): a user-user term ranking each train "
      "friend above num_negatives random users with the final user vectors; 0: items only",
      range="[0, inf)")
  social_loss: str = option("bpr", "the friendship term: bpr, or softmax over the friend and the "
                            "sampled users (softmax_temperature)",
                            choices=("gnnrec_jax.objectives.losses:FRIEND_LOSSES",))
  # --- optimisation ----------------------------------------------------------------------------
  optimizer: str = option("adam", "Adam, as LightGCN and RecBole",
                          choices=("gnnrec_jax.training.fit:OPTIMIZERS",))
  lr: float = option(1e-3, "LightGCN and RecBole default", range="(0, inf)")
  lr_schedule: str = option("constant", "LightGCN and RecBole use a constant rate",
                            choices=("gnnrec_jax.training.fit:LR_SCHEDULES",))
  weight_decay: float = option(0.0, "adamw only; l2 is the regulariser of the embedding models",
                               range="[0, inf)")
  batch_size: int = option(2048, "RecBole's train_batch_size; a static shape under jit",
                           range="[1, 16777216]")
  epochs: int = option(300, "a cap; early stopping usually ends the run first",
                       range="[0, 1000000]")
  eval_every: int = option(1, "epochs between validations", range="[1, 1000000]")
  patience: int = option(10, "RecBole's stopping_step: validations without improvement",
                         range="[1, 1000000]")
  select_metric: str = option("ndcg@20", "valid metric for early stopping (RecBole's "
                              "valid_metric); BLOCK/NAME@K (e.g. warm/ndcg@20) selects on one "
                              "cold-start block", allowed="NAME@K or BLOCK/NAME@K, K in topk")
  grad_clip: float = option(0.0, "global-norm clipping; 0 disables", range="[0, inf)")
  # --- evaluation ------------------------------------------------------------------------------
  topk: tuple[int, ...] = option((10, 20, 50), "RecBole's and LightGCN's cut-offs",
                                 range="[1, 1000000]")
  eval_batch_size: int = option(512, "users per jitted ranking step", range="[1, 1048576]")
  test_history: str = option(
      "train", "the test pass's user histories: train (the models as trained) or train+valid "
      "(each user's valid items join its history and the graph at test time, without "
      "retraining, as sequential leave-one-out protocols do; evaluation/protocol.py)",
      choices=("gnnrec_jax.evaluation.protocol:HISTORIES",))
  # --- data --------------------------------------------------------------------------------------
  split: str = option("random", "RecBole's per-user random ratio split",
                      choices=("gnnrec_jax.data.splits:METHODS",))
  split_ratios: tuple[float, ...] = option((0.8, 0.1, 0.1), "RecBole's 8:1:1 (train, valid, "
                                           "test; they sum to 1)", range="[0, 1]")
  cold_fraction: float = option(0.2, "cold_item split: share of items withheld from train",
                                range="(0, 1)")
  seed: int = option(2020, "RecBole's default seed (jax keys take 32 bits: larger seeds would "
                     "alias smaller ones)", range="[0, 4294967295]")
  split_seed: int = option(-1, "seed of the split; -1: the run's seed, as RecBole. `train "
                           "--seeds` fixes it so that every seed is evaluated on one split",
                           range="[-1, 4294967295]")
  behaviour_weights: str = option(
      DEFAULT_BEHAVIOUR_WEIGHTS, "behaviour -> weight for data with a behaviour column (seed "
      "§3.3: a purchase says more than a click): 1:2:4 for browse:intent:buy under the public "
      "datasets' names; an unknown behaviour is an error naming its line (data/behaviours.py)",
      allowed="NAME:WEIGHT,... with finite weights > 0")
  duplicates: str = option(
      "max", "how repeated user-item rows combine: max keeps a rating's scale, is unchanged by "
      "rows logged twice, and weighs a click-then-purchase as a purchase "
      "(data/checks.combine_duplicates)", choices=("gnnrec_jax.data.checks:DUPLICATE_RULES",))
  # --- runtime -----------------------------------------------------------------------------------
  checkpoint_every: int = option(1, "epochs between crash-safe checkpoints",
                                 range="[1, 1000000]")
  matmul_precision: str = option(
      "default", "float32 matmuls of training steps: default (the platform's: TF32 on recent "
      "NVIDIA GPUs, for speed), high or highest (exact, as on CPU); evaluation scores are always "
      "exact (gnnrec_jax/precision.py)", choices=("gnnrec_jax.precision:PRECISIONS",))

  def replace(self, **kw) -> "Config":
    return dataclasses.replace(self, **kw)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# ----------------------------------------------------------------------------- field metadata

@dataclasses.dataclass(frozen=True)
class FieldSpec:
  """Everything declared about one field: the single source for validation and `config`."""

  name: str
  type: Any          # bool, int, float, str or tuple
  item: Any          # the element type of a tuple field, else None
  default: Any
  doc: str
  choices: tuple | None
  range: str | None
  allowed: str | None

  @property
  def type_name(self) -> str:
    return f"tuple of {self.item.__name__}" if self.type is tuple else self.type.__name__

  def choice_names(self) -> tuple[str, ...] | None:
    """The allowed names, references to module tuples expanded (imports those modules)."""
    if self.choices is None:
      return None
    out: list[str] = []
    for c in self.choices:
      out.extend(_resolve(c) if ":" in c else (c,))
    return tuple(out)

  def describe_allowed(self) -> str:
    """What the field accepts, in words (for `gnnrec-jax config` and error messages)."""
    if self.choices is not None:
      return "one of " + " | ".join(repr(c) if c == "" else c for c in self.choice_names())
    if self.range is not None:
      text = _range_words(self.range, self.item or self.type)
      return f"each {text}" if self.type is tuple else text
    if self.type is bool:
      return "true | false"
    return self.allowed or "any"


def _resolve(ref: str) -> tuple[str, ...]:
  # Not cached: the registry may grow (a model registered by a user's code or a test).
  module, name = ref.split(":")
  return tuple(getattr(importlib.import_module(module), name))


@functools.cache
def field_specs() -> dict[str, FieldSpec]:
  """name -> FieldSpec of every Config field, in declaration order."""
  hints = typing.get_type_hints(Config)
  out = {}
  for f in dataclasses.fields(Config):
    typ, item = hints[f.name], None
    if typing.get_origin(typ) is tuple:
      typ, item = tuple, typing.get_args(typ)[0]
    m = f.metadata
    out[f.name] = FieldSpec(f.name, typ, item, f.default, m["doc"], m["choices"], m["range"],
                            m["allowed"])
  return out


def _num(x: float) -> str:
  return "inf" if math.isinf(x) else (f"{int(x)}" if x == int(x) else f"{x:g}")


def _range_words(text: str, typ) -> str:
  lo, hi, lo_in, hi_in = _parse_range(text)
  kind = "an integer" if typ is int else "a finite number"
  if math.isinf(hi):
    return f"{kind} {'>=' if lo_in else '>'} {_num(lo)}"
  return f"{kind} in {text}"


def _in_range(value, text: str) -> bool:
  lo, hi, lo_in, hi_in = _parse_range(text)
  if isinstance(value, float) and not math.isfinite(value):
    return False
  return (value >= lo if lo_in else value > lo) and (value <= hi if hi_in else value < hi)


# ------------------------------------------------------------------------------- reading values

def _is_type(value, typ) -> bool:
  if typ is float:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if typ is int:
    return isinstance(value, int) and not isinstance(value, bool)
  return isinstance(value, typ)


def _coerce(name: str, raw: str, spec: FieldSpec) -> Any:
  """A `--set` string as the field's type; ConfigError naming the key otherwise."""
  def one(text: str, typ):
    text = text.strip()
    if typ is bool:
      low = text.lower()
      if low in ("1", "true", "yes", "on"):
        return True
      if low in ("0", "false", "no", "off"):
        return False
      raise ValueError
    if typ is int:
      return int(text)
    if typ is float:
      return float(text)
    return text

  try:
    if spec.type is tuple:
      parts = [p for p in raw.replace("(", "").replace(")", "").split(",") if p.strip()]
      return tuple(one(p, spec.item) for p in parts)
    return one(raw, spec.type) if spec.type is not str else raw
  except ValueError:
    raise ConfigError(f"--set {name}={raw}: expected a value of type {spec.type_name}") from None


def parse_overrides(overrides) -> list[str]:
  """`--set` values as a flat list of "key=value" strings.

  Accepts what argparse gives for `--set a=1 b=2 --set c=3` (`action="append", nargs="+"`: a
  list of lists) as well as a flat list of strings.
  """
  out: list[str] = []
  for item in overrides or ():
    out.extend([item] if isinstance(item, str) else list(item))
  return out


def apply_overrides(config: Config, overrides: list | None) -> Config:
  """Applies `key=value` strings; unknown keys and values of the wrong type raise ConfigError."""
  specs = field_specs()
  updates = {}
  for item in parse_overrides(overrides):
    if "=" not in item:
      raise ConfigError(f"--set {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if key not in specs:
      close = difflib.get_close_matches(key, list(specs), n=3)
      hint = f" (did you mean {', '.join(close[:3])}?)" if close else ""
      raise ConfigError(f"--set {key}: unknown config key{hint}")
    updates[key] = _coerce(key, raw, specs[key])
  return validate(config.replace(**updates))


def config_from_dict(raw, *, source: str = "config", base: Config | None = None,
                     strict: bool = False) -> Config:
  """A Config from a JSON object (run.json, a config file), each value's type checked.

  JSON lists become tuples; ints are accepted where floats are expected.

  Args:
    raw: the object.
    source: named in error messages (a file and field).
    base: the config whose values fields absent from `raw` keep; default `Config()`.
    strict: refuse fields this version does not know (a file a user wrote); otherwise they are
      ignored (runs of older versions stay readable).

  Raises:
    ConfigError: `raw` is not an object, a field is unknown (strict) or has a value of the
      wrong type or out of range (the message names `source` and the field).
  """
  if not isinstance(raw, dict):
    raise ConfigError(f"{source}: expected a JSON object, got {type(raw).__name__}")
  specs = field_specs()
  values = {}
  for key, value in raw.items():
    spec = specs.get(key)
    if spec is None:
      if strict:
        close = difflib.get_close_matches(str(key), list(specs), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"{source}: unknown config key {key!r}{hint}")
      continue
    if spec.type is tuple and isinstance(value, list):
      value = tuple(value)
    if key == "weighted_norm" and isinstance(value, bool):
      value = "true" if value else "false"  # a bool before "auto" existed
    ok = _is_type(value, spec.type)
    if spec.type is tuple and ok:
      ok = all(_is_type(v, spec.item) for v in value)
    if not ok:
      raise ConfigError(f"{source}: field {key} must be {spec.type_name}, got {value!r:.60}")
    if spec.type is float:
      value = float(value)
    elif spec.type is tuple and spec.item is float:
      value = tuple(float(v) for v in value)
    values[key] = value
  config = (base or Config()).replace(**values)
  try:
    return validate(config)
  except ConfigError as e:
    raise ConfigError(f"{source}: {e}") from None


def read_text_file(path: str, where: str) -> str:
  """The UTF-8 text of a JSON file the user names; ConfigError "`where`: why" when unreadable."""
  try:
    with open(path, "rb") as f:
      return f.read().decode("utf-8")
  except FileNotFoundError:
    raise ConfigError(f"{where}: file not found") from None
  except IsADirectoryError:
    raise ConfigError(f"{where}: is a folder, not a JSON file") from None
  except UnicodeDecodeError:
    raise ConfigError(f"{where}: not UTF-8 text") from None


def load_config_file(path: str, *, base_for_model=None) -> Config:
  """The config in a JSON file (a `tune` run's `best_config.json`, or one written by hand).

  The file is one JSON object of config fields; fields it omits take the defaults of its model
  (`base_for_model(model)`, e.g. `gnnrec_jax.configs.get_config`), or Config's own.

  Raises:
    ConfigError: the file is missing, not a JSON object, or holds an unknown key or a bad value
      (named with the file).
  """
  text = read_text_file(path, f"config file {path}")
  try:
    raw = json.loads(text)
  except json.JSONDecodeError as e:
    raise ConfigError(f"config file {path}: not valid JSON ({e.msg}: line {e.lineno} column "
                      f"{e.colno})") from None
  if not isinstance(raw, dict):
    raise ConfigError(f"config file {path}: expected a JSON object of config fields, got a "
                      f"JSON {type(raw).__name__}")
  base = None
  model = raw.get("model", "lightgcn")
  if (base_for_model is not None and isinstance(model, str)
      and model in field_specs()["model"].choice_names()):
    base = base_for_model(model)
  return config_from_dict(raw, source=f"config file {path}", base=base, strict=True)


# ---------------------------------------------------------------------------------- validation

def _check_select_metric(c: Config) -> str | None:
  block, _, name_k = c.select_metric.rpartition("/")
  metric = name_k.split("@")
  names = (*_resolve("gnnrec_jax.evaluation.metrics:METRICS"), "coverage")
  blocks = tuple(b for b in _resolve("gnnrec_jax.evaluation.coldstart:BLOCKS") if b != "all")
  if (len(metric) != 2 or metric[0] not in names or not metric[1].isdigit()
      or int(metric[1]) not in [int(k) for k in c.topk] or block not in ("", *blocks)):
    return (f"select_metric {c.select_metric!r} must be NAME@K or BLOCK/NAME@K with NAME one of "
            f"{', '.join(names)}, K in topk {c.topk} and BLOCK one of {', '.join(blocks)} "
            "(cold-start blocks of the validation set)")
  return None


def _normalise(c: Config) -> Config:
  """Spellings kept for older configs: weighted_norm given as a bool or 1/yes/on, 0/no/off."""
  wn = c.weighted_norm
  if isinstance(wn, bool) or str(wn).strip().lower() in ("1", "yes", "on", "0", "no", "off"):
    on = wn if isinstance(wn, bool) else str(wn).strip().lower() in ("1", "yes", "on")
    c = c.replace(weighted_norm="true" if on else "false")
  return c


def _check_side_features(c: Config) -> None:
  from gnnrec_jax.data import side_features
  side_features.parse_spec(c.side_features)  # raises ConfigError naming the entry at fault


def _check_behaviour_weights(c: Config) -> None:
  from gnnrec_jax.data.behaviours import parse_behaviour_weights
  parse_behaviour_weights(c.behaviour_weights, "invalid config: behaviour_weights")  # raises


# Rules between fields, and checks a field's owner makes (each field's own range and names come
# from its declaration). Each returns a message, or raises ConfigError itself, or returns None.
_RULES = (
    lambda c: None if c.topk else "invalid config: topk must list at least one K",
    lambda c: None if len(c.split_ratios) == 3 and abs(sum(c.split_ratios) - 1) < 1e-6 else
    f"invalid config: split_ratios must be three numbers summing to 1, got {c.split_ratios}",
    lambda c: None if c.use_id_embedding or c.text_features or c.side_features else
    "invalid config: use_id_embedding=false needs text_features or side_features",
    lambda c: None if len(c.friend_split) == 3 and c.friend_split[0] > 0 and abs(
        sum(c.friend_split) - 1) < 1e-6 else
    "invalid config: friend_split must be three numbers summing to 1 with train > 0 (train, "
    f"valid, test friendships), got {c.friend_split}",
    _check_side_features,
    lambda c: None if c.model not in ("softmax_gnn", "gat") or c.embed_dim % c.heads == 0 else
    f"invalid config: embed_dim {c.embed_dim} is not divisible by heads {c.heads}",
    lambda c: None if c.cl != "xsimgcl" or c.model != "mf" else
    "invalid config: cl=xsimgcl contrasts a layer's output with the final vectors; mf has no "
    "layers (use cl=simgcl)",
    lambda c: None if c.cl != "xsimgcl" or c.cl_layer <= c.num_layers else
    f"invalid config: cl_layer must be in 1..num_layers ({c.num_layers}) for cl=xsimgcl",
    lambda c: None if c.cl != "xsimgcl" or (c.model != "ngcf" and c.layer_combine != "concat")
    else "invalid config: cl=xsimgcl needs final vectors of a layer's width; ngcf and "
    "layer_combine=concat concatenate the layers (use cl=simgcl)",
    lambda c: None if c.text_features or not (c.item_vectors or c.user_vectors) else
    "invalid config: item_vectors/user_vectors need text_features (the users' rule), e.g. "
    "text_features=history",
    lambda c: None if c.model != "l3ae" or c.text_features else
    "invalid config: l3ae needs item vectors, e.g. text_features=none (items' text, no users)",
    lambda c: None if c.filter_text_weight == 0 or (
        c.model in ("gfcf", "bspm", "chebycf") and c.text_features) else
    "invalid config: filter_text_weight > 0 needs a graph filter (gfcf, bspm, chebycf) and "
    "text_features (e.g. text_features=none)",
    lambda c: None if c.model != "textgnn" or c.text_features else
    "invalid config: textgnn needs text_features (its items are their text), e.g. "
    "text_features=history",
    lambda c: None if c.model != "textgnn" or not c.target_out or c.conv == "lightgcn" else
    "invalid config: target_out needs conv=lightgcn (the softmax rule's alphas would need "
    "renormalising without the target edge)",
    lambda c: None if c.model == "textgnn" or (c.cold_view == 0 and c.warm_text) else
    "invalid config: cold_view and warm_text are textgnn fields (model=textgnn)",
    _check_select_metric,
    _check_behaviour_weights,
)


def check_field(spec: FieldSpec, value) -> str | None:
  """Why `value` is not allowed for the field (one line), or None."""
  name = spec.name
  shown = repr(value) if isinstance(value, str) else f"{value}"
  if spec.type is tuple:
    if not isinstance(value, tuple) or not all(_is_type(v, spec.item) for v in value):
      return f"{name} must be a {spec.type_name}, got {shown}"
    bad = [v for v in value if spec.range and not _in_range(v, spec.range)]
    if bad:
      return (f"every element of {name} must be {_range_words(spec.range, spec.item)}, got "
              f"{shown}")
    return None
  if not _is_type(value, spec.type):
    return f"{name} must be {spec.type_name}, got {shown}"
  if spec.range is not None and not _in_range(value, spec.range):
    return f"{name} must be {spec.describe_allowed()}, got {shown}"
  if spec.choices is not None and value not in spec.choice_names():
    if name == "model":  # the message users have met since the first version
      return f"unknown model {value!r}; choose one of {', '.join(spec.choice_names())}"
    return f"{name} must be {spec.describe_allowed()}, got {shown}"
  # A free-form string may be empty only where empty is its default ("none", e.g. side_features).
  if spec.type is str and spec.choices is None and not value.strip() and spec.default != "":
    return f"{name} must not be empty"
  return None


def validate(config: Config) -> Config:
  """Checks every field against its declaration, then the rules between fields.

  Raises:
    ConfigError: one line naming the first field at fault, what it allows and what it got.
  """
  config = _normalise(config)
  for spec in field_specs().values():
    msg = check_field(spec, getattr(config, spec.name))
    if msg:
      raise ConfigError(msg if msg.startswith("unknown model") else f"invalid config: {msg}")
  for rule in _RULES:
    msg = rule(config)
    if msg:
      raise ConfigError(msg)
  return config
