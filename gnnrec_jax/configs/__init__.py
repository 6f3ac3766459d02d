"""Per-model default configs: `gnnrec_jax/configs/<name>.py` each defines `get_config()`.

Each file's docstring holds the command that runs it; each non-default value carries its reason.
"""
from __future__ import annotations

import importlib

from gnnrec_jax.config import Config, validate
from gnnrec_jax.errors import ConfigError

NAMES = ("lightgcn", "softmax_gnn", "seed", "ngcf", "gat", "mf", "ease", "gfcf", "bspm", "chebycf",
         "textgnn", "l3ae", "test",
         # named text recipes, each measured (benchmarks/RESULTS.md, issue 25)
         "textgnn_scientific", "textgnn_cold", "l3ae_scientific", "chebycf_text")
# (model, dataset) -> the named config `train --model M --dataset D` starts from when no
# --config is given: the best recipe measured for that case.
RECIPES = {("textgnn", "scientific"): "textgnn_scientific",
           ("l3ae", "scientific"): "l3ae_scientific"}


def recipe_for(model: str, dataset: str | None) -> str:
  """The named config of `model` on `dataset`: its measured recipe, else the model's own."""
  return RECIPES.get((model, dataset), model)

# The training recipe of the embedding models, tuned for LightGCN on ml-100k (valid NDCG@20, see
# benchmarks/ml100k_tuning.md: hand-run sweeps, before `gnnrec-jax tune` existed) and shared so
# that the table compares models, not recipes. A `gnnrec-jax tune` run of 2026-11-30 did not beat
# it on valid (see configs/lightgcn.py); no default here comes from a tune run.
SOFTMAX_TRAINING = dict(
    loss="softmax",            # sampled softmax: valid NDCG@20 .2364 after 4 epochs vs .1376 (BPR)
    num_negatives=64,          # 64 at tau .2 beat 128 at tau .1 (.2709 vs .2654) at half the cost
    softmax_temperature=0.2,   # see num_negatives; .1 plateaued by epoch 14
    l2=1e-2,                   # valid of {1e-4, 1e-3, 1e-2}: .2709, .2781, .2861 (3e-2: slower)
    lr=1e-2,                   # valid .2849 in 18 epochs; 5e-3: .2861 only at its 30-epoch cap
    epochs=60,                 # a cap above the 18-30 epochs the tuned runs needed
    eval_every=2,              # validation every 2 epochs, as in every tuning run
    patience=3,                # 3 evaluations = 6 epochs without a better valid NDCG@20
)


def get_config(name: str) -> Config:
  """The default config called `name`: a model name, "seed" (the seed document's literal rule,
  a softmax_gnn) or "test" (the tiny CPU config)."""
  if name not in NAMES:
    raise ConfigError(f"unknown config {name!r}; choose one of {', '.join(NAMES)} "
                      "(or a JSON config file)")
  return validate(importlib.import_module(f"gnnrec_jax.configs.{name}").get_config())
