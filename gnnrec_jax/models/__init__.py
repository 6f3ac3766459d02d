"""Recommendation models, all behind one interface (`base.Recommender`: parameters + a score
function), and the registry that names them.

  embedding.py     Linen embedding models (MF, LightGCN, the seed's softmax GNN, NGCF, GAT) and
                   their `EmbeddingRecommender`: final vectors, score = dot product
  textgnn.py       a text-first GNN (AlphaRec): LM item vectors -> MLP -> propagation, no IDs
  layers/          the message-passing layers they stack
  node_inputs.py   layer-0 vectors: ID embeddings and projected text features
  inductive.py     cold nodes and new users scored without retraining
  closed_form.py   linear item models, scores = x_u F (`LinearItemRecommender`)
  ease.py          EASE (Steck 2019), a closed-form linear item model
  l3ae.py          L3AE (Moon et al. 2025): EASE pulled toward a text item model (Woodbury)
  graph_filters.py training-free graph filters GF-CF, BSPM, ChebyCF (linear item models applied
                   as sparse products and low-rank factors, never an [I, I] matrix)
  baselines.py     random, popularity and content-kNN score functions

This module imports nothing heavy, so that `gnnrec_jax.config` can validate model names without
loading jax.
"""
from __future__ import annotations

import importlib

# name -> "module:class" of its Recommender, imported on first use.
REGISTRY = {
    "lightgcn": "embedding:EmbeddingRecommender",
    "softmax_gnn": "embedding:EmbeddingRecommender",
    "ngcf": "embedding:EmbeddingRecommender",
    "gat": "embedding:EmbeddingRecommender",
    "mf": "embedding:EmbeddingRecommender",
    "ease": "ease:EASE",
    "l3ae": "l3ae:L3AE",
    "gfcf": "graph_filters:GFCF",
    "bspm": "graph_filters:BSPM",
    "chebycf": "graph_filters:ChebyCF",
    "textgnn": "textgnn:TextGNNRecommender",
}
MODELS = tuple(REGISTRY)


def recommender_class(name: str):
  """The `Recommender` subclass of model `name` (ConfigError for an unknown name)."""
  from gnnrec_jax.errors import ConfigError
  if name not in REGISTRY:
    raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
  module, cls = REGISTRY[name].split(":")
  return getattr(importlib.import_module(f"gnnrec_jax.models.{module}"), cls)


def create(exp):
  """The `Recommender` of `exp.config.model` for the experiment `exp` (not yet initialised)."""
  return recommender_class(exp.config.model)(exp)
