"""Recommendation models, all behind one interface (`base.Recommender`: parameters + a score
function), and the registry that names them.

  base.py          the Recommender interface
  embedding.py     what every embedding model shares: layer-0 inputs, a layer stack, the
                   `EmbeddingRecommender` (final vectors, score = dot product), `create_model`
  mf.py, lightgcn.py, softmax_gnn.py, ngcf.py, gat.py
                   one embedding model each: its Linen module and its builder (`from_config`)
  textgnn.py       a text-first GNN (AlphaRec): LM item vectors -> MLP -> propagation, no IDs
  readout.py       layer outputs combined into final vectors, and their score space
  layers/          the message-passing layers they stack
  node_inputs.py   layer-0 vectors: ID embeddings and projected text features
  inductive.py     cold nodes and new users scored without retraining
  explain_terms.py the maths of explanations: each model family's split of a score
  closed_form.py   linear item models, scores = x_u F (`LinearItemRecommender`)
  ease.py          EASE (Steck 2019), a closed-form linear item model
  l3ae.py          L3AE (Moon et al. 2025): EASE pulled toward a text item model (Woodbury)
  graph_filters.py training-free graph filters GF-CF, BSPM, ChebyCF (linear item models applied
                   as sparse products and low-rank factors, never an [I, I] matrix)
  baselines.py     random, popularity and content-kNN score functions

Adding a model is one module and one line of `REGISTRY`. A registered class answers two class
methods: `recommender_class()`, the `Recommender` that `create` builds for it (a Recommender
subclass answers itself; an embedding model's Linen module answers `EmbeddingRecommender`), and
`from_config(config, num_users=, num_items=, feature_dim=, num_nodes=)`, the Linen module of a
config (`embedding.create_model`; a closed-form model refuses).

This module imports nothing heavy, so that the names can be listed without loading jax.
"""
from __future__ import annotations

import importlib

from gnnrec_jax.errors import ConfigError

# name -> "module:Class" (a module of this package, or a full "package.module:Class"), or the
# class itself; imported on first use.
REGISTRY = {
    "lightgcn": "lightgcn:LightGCN",
    "softmax_gnn": "softmax_gnn:SoftmaxGNN",
    "ngcf": "ngcf:NGCF",
    "gat": "gat:GAT",
    "mf": "mf:MF",
    "ease": "ease:EASE",
    "l3ae": "l3ae:L3AE",
    "gfcf": "graph_filters:GFCF",
    "bspm": "graph_filters:BSPM",
    "chebycf": "graph_filters:ChebyCF",
    "textgnn": "textgnn:TextGNN",
}
MODELS = tuple(REGISTRY)  # the built-in names (REGISTRY itself may grow, e.g. in a test)


def model_class(name: str):
  """The class registered as `name` (ConfigError for an unknown name)."""
  if name not in REGISTRY:
    raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(REGISTRY)}")
  entry = REGISTRY[name]
  if not isinstance(entry, str):
    return entry
  module, cls = entry.split(":")
  if "." not in module:
    module = f"gnnrec_jax.models.{module}"
  return getattr(importlib.import_module(module), cls)


def recommender_class(name: str):
  """The `Recommender` subclass of model `name` (ConfigError for an unknown name)."""
  return model_class(name).recommender_class()


def create(exp):
  """The `Recommender` of `exp.config.model` for the experiment `exp` (not yet initialised)."""
  return recommender_class(exp.config.model)(exp)
