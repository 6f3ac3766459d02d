"""Embedding models: layer-0 inputs (`NodeInputs`), a stack of layers, a layer combination.

Every model is a Linen module with the same call signature, wrapped for the rest of the library
by `EmbeddingRecommender` (the `gnnrec_jax.models.base.Recommender` interface):

  final, ego = model.apply({"params": params}, graph, features, feature_mask=..., has_id=...,
                           train=..., rngs={"dropout": rng})

  final: [N, d_out], the vectors used for scoring: score(u, i) = final[u] . final[U + i].
  ego:   [N, d], the layer-0 vectors on which the L2 regulariser is computed (LightGCN's rule).

N is the static `num_nodes` attribute (default U + I). Graphs padded by
`gnnrec_jax.graph.build.pad_graph` add nodes after U + I; set `num_nodes` to the padded count (it
cannot be read from `graph.n_node`, which is a traced array under jit). Padding rows of `final`
and `ego` are zero for the linear models and never read by the trainer.

The SoftmaxGNN and GAT layers `sow` their alphas into the "intermediates" collection
(`model.apply(..., mutable=["intermediates"])`) for explanations and plots.
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gnnrec_jax.errors import ConfigError
from gnnrec_jax.graph.build import num_nodes
from gnnrec_jax.graph.propagate import resolve_backend
from gnnrec_jax.models import explain_terms
from gnnrec_jax.models import model_class
from gnnrec_jax.models.base import Recommender
from gnnrec_jax.models.inductive import embed_new_user, train_presence
from gnnrec_jax.models.node_inputs import NodeInputs
from gnnrec_jax.models.readout import COMBINES, check_score, combine_layers, score_space
from gnnrec_jax.objectives import contrastive, sampling
from gnnrec_jax.objectives import select as objective
from gnnrec_jax.precision import EXACT

class EmbeddingModel(nn.Module):
  """Fields and layer-0 inputs shared by every model (not used on its own)."""

  num_users: int
  num_items: int
  embed_dim: int = 64
  num_nodes: int | None = None   # static N incl. graph padding; None means U + I
  init_std: float = 0.1
  use_id_embedding: bool = True
  id_dropout: float = 0.0
  backend: str = "auto"          # gnnrec_jax.graph.propagate.weighted_sum backend
  score: str = "dot"             # "cosine": final vectors L2-normalised, so dot = cosine
  embed_dropout: float = 0.0     # elementwise dropout on the layer-0 vectors while training

  # Not fields: what the model answers about itself (see `explain_terms`, `inductive`).
  edge_weight_name = "norm"   # what an explanation calls its layers' edge weights
  explanation = "similarity"  # "propagation": an exact split through the layers exists

  def new_user_layers(self) -> tuple[int, str] | None:
    """(num_layers, layer_combine) of the closed form by which a user outside the graph is
    embedded from its history (`inductive.embed_new_user`), or None when there is none."""
    return None

  @classmethod
  def recommender_class(cls):
    """The `Recommender` that `gnnrec_jax.models.create` wraps this module in."""
    return EmbeddingRecommender

  @classmethod
  def from_config(cls, config, *, num_users: int, num_items: int, feature_dim: int | None,
                  num_nodes: int | None) -> "EmbeddingModel":
    """The module of `config`; a model module overrides it to read its own fields, passing
    `cls.common_fields(...)` on. This default reads the common fields only (MF's case)."""
    return cls(**cls.common_fields(config, num_users=num_users, num_items=num_items,
                                   feature_dim=feature_dim, num_nodes=num_nodes))

  @staticmethod
  def common_fields(config, *, num_users: int, num_items: int, feature_dim: int | None,
                    num_nodes: int | None) -> dict[str, Any]:
    """The fields every embedding model reads, checked (`check_sizes`, and some input)."""
    c = config
    check_sizes(c, num_users=num_users, num_items=num_items, num_nodes=num_nodes)
    if not c.use_id_embedding and feature_dim is None and not c.side_features:
      raise ConfigError("use_id_embedding=False needs text or side features (set text_features "
                        "or side_features)")
    return dict(num_users=num_users, num_items=num_items, embed_dim=c.embed_dim,
                num_nodes=num_nodes, init_std=c.init_std, use_id_embedding=c.use_id_embedding,
                id_dropout=c.id_dropout, backend=c.propagation, score=c.score,
                embed_dropout=c.embed_dropout)

  @property
  def n(self) -> int:
    return self.num_nodes or self.num_users + self.num_items

  @property
  def _backend(self) -> str:
    return resolve_backend(self.backend, self.n)

  def _ego(self, features, feature_mask, has_id, train, side=None, side_mask=None) -> jax.Array:
    return NodeInputs(self.num_users, self.num_items, self.embed_dim, num_nodes=self.n,
                      init_std=self.init_std, use_id_embedding=self.use_id_embedding,
                      id_dropout=self.id_dropout, name="inputs")(
                          features, feature_mask, has_id, side=side, side_mask=side_mask,
                          train=train)

  def _dropped(self, ego: jax.Array, train: bool) -> jax.Array:
    """The layer-0 vectors the layers read: `ego` with `embed_dropout` while training (the L2
    term reads the clean `ego`)."""
    if not self.embed_dropout:
      return ego
    return nn.Dropout(self.embed_dropout, deterministic=not train, name="embed_dropout")(ego)


def perturb(module: nn.Module, h: jax.Array, eps: float) -> jax.Array:
  """SimGCL's noise (`contrastive.perturb`, norm eps per row) from the "noise" rng collection;
  h itself when eps is 0 (a static Python float: the clean model draws nothing)."""
  if not eps:
    return h
  return contrastive.perturb(module.make_rng("noise"), h, eps=eps)


class LayerStack(EmbeddingModel):
  """A stack of `num_layers` message-passing layers over the layer-0 vectors.

  Subclasses define `_layer(k, h, graph, train) -> [N, d]`, the output of layer k from its input
  h; the outputs h^0..h^L are then combined by `layer_combine`.

  `noise_eps` > 0 adds SimGCL's noise (Yu et al., SIGIR 2022, eq. 7: a vector of norm eps in the
  row's orthant, from the "noise" rng collection) to every layer's output before the next layer
  reads it; `return_layers` also returns [h^0, ..., h^L] (the perturbed outputs, for XSimGCL's
  cross-layer view). Both are static call arguments.
  """

  num_layers: int = 3
  layer_combine: str = "mean"

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, features=None, feature_mask=None, has_id=None, *,
               side=None, side_mask=None, train: bool = False, noise_eps: float = 0.0,
               return_layers: bool = False):
    ego = self._ego(features, feature_mask, has_id, train, side, side_mask)
    hs = [self._dropped(ego, train)]
    for k in range(self.num_layers):
      hs.append(perturb(self, self._layer(k, hs[-1], graph, train), noise_eps))
    final = score_space(combine_layers(hs, self.layer_combine), self.score)
    return (final, ego, hs) if return_layers else (final, ego)


def check_sizes(config, *, num_users: int, num_items: int, num_nodes: int | None) -> None:
  """What every embedding model's builder checks before any jit: the node count, the
  propagation backend and the score (ConfigError naming the value at fault)."""
  base = num_users + num_items
  if num_nodes is not None and num_nodes < base:
    raise ConfigError(f"num_nodes {num_nodes} is smaller than num_users + num_items = {base}")
  resolve_backend(config.propagation, num_nodes or base)  # fail here, not inside jit
  check_score(config.score)  # likewise


def check_combine(how: str) -> None:
  if how not in COMBINES:
    raise ConfigError(f"unknown layer_combine {how!r}; choose one of {', '.join(COMBINES)}")


def create_model(config, *, num_users: int, num_items: int, feature_dim: int | None = None,
                 num_nodes: int | None = None) -> nn.Module:
  """Builds the Linen model named by `config.model`: the registered class's `from_config`
  (`gnnrec_jax.models.REGISTRY`).

  Args:
    config: a `gnnrec_jax.config.Config` (each model reads its own fields, see its module).
    num_users: U.
    num_items: I.
    feature_dim: F when text features are fed to the model, else None (only validated: Dense
      infers its input width).
    num_nodes: static node count of a padded graph; None means U + I.

  Returns:
    The (unbound) module.

  Raises:
    ConfigError: unknown model, activation, combine or backend; a closed-form model (no
      parameters to train); or no input at all (no IDs and no features).
  """
  return model_class(config.model).from_config(config, num_users=num_users, num_items=num_items,
                                               feature_dim=feature_dim, num_nodes=num_nodes)


# ------------------------------------------------------------------------------------------------
# The Recommender interface


def dot_scores(params: tuple[jax.Array, jax.Array], users: jax.Array) -> jax.Array:
  """Dot-product scores of a batch of users against every item.

  Args:
    params: (user_emb [U, d], item_emb [I, d]).
    users: [B] int32 user indices.

  Returns:
    [B, I] float32 scores.
  """
  user_emb, item_emb = params
  # Exact float32 on every platform (gnnrec_jax/precision.py): a TF32 score could flip a tie.
  return jnp.matmul(user_emb[users], item_emb.T, precision=EXACT)


class EmbeddingRecommender(Recommender):
  """Every embedding model (`create_model`): score(u, i) = final_u . final_i.

  `inputs` (device arrays, passed to every jitted call as an argument):
    graph, features [U+I, F] | None, feature_mask [U+I] | None, side [U+I, S] | None and
    side_mask [U+I] | None (`exp.side`), friends [2m, 2] | None (the train friendships in both
    directions, with `social_weight > 0`), and, when some users or items
    have no train interaction (cold-start splits), has_id [U+I] bool (cold nodes are embedded
    without their never-trained ID vectors, in validation as at test time) and neg_pool
    [I_warm] int32 (negatives are drawn from items seen in train only: a cold item drawn as a
    negative would teach the text path to push every cold item down, which measurably hurts
    the cold block); both None otherwise.
  """

  trainable = True
  rescorable = True
  score_fn = staticmethod(dot_scores)

  def __init__(self, exp):
    super().__init__(exp)
    feature_dim = None if exp.features is None else int(exp.features.shape[1])
    # A graph padded for sharding (`training.parallel.pad_graph_for_mesh`) has extra nodes.
    self.module = create_model(self.config, num_users=exp.num_users, num_items=exp.num_items,
                               feature_dim=feature_dim, num_nodes=num_nodes(exp.graph))
    self._inputs = None
    u = exp.num_users

    @jax.jit
    def embed(params, inputs):
      final, _ = self.forward(params, inputs, train=False)
      return final[:u], final[u:u + exp.num_items]

    self.embed = embed  # (params, inputs) -> (user_emb [U, d], item_emb [I, d])

  @property
  def inputs(self) -> dict[str, Any]:
    if self._inputs is None:  # moved to the device once, on first use
      exp = self.exp
      inputs = {"graph": jax.tree.map(jnp.asarray, exp.graph),
                "features": None if exp.features is None else jnp.asarray(exp.features),
                "feature_mask": (None if exp.feature_mask is None
                                 else jnp.asarray(exp.feature_mask)),
                "has_id": None, "neg_pool": None, "seen": None, "friends": None,
                "side": None if exp.side is None else jnp.asarray(exp.side.values),
                "side_mask": None if exp.side is None else jnp.asarray(exp.side.mask)}
      user_in, item_in = train_presence(exp.trained, exp.num_users, exp.num_items)
      if not (user_in.all() and item_in.all()):
        inputs["has_id"] = jnp.asarray(np.concatenate([user_in, item_in]))
        inputs["neg_pool"] = jnp.asarray(np.flatnonzero(item_in).astype(np.int32))
      if self.config.neg_resample:
        inputs["seen"] = tuple(jnp.asarray(a) for a in sampling.train_csr(
            exp.split.train, num_users=exp.num_users, num_items=exp.num_items))
      if self.config.social_weight and exp.friends is not None:  # both directions of each pair
        f = exp.friends.train
        inputs["friends"] = jnp.asarray(np.concatenate([f, f[:, ::-1]]).astype(np.int32))
      self._inputs = inputs
    return self._inputs

  @inputs.setter
  def inputs(self, value: dict[str, Any]) -> None:
    """The same arrays placed elsewhere (e.g. on a device mesh, `training.parallel.distribute`)."""
    self._inputs = value

  def forward(self, params, inputs, *, train: bool, rng=None, noise_rng=None,
              noise_eps: float = 0.0, **apply_kw):
    """`(final [N, d_out], ego [N, d])` of every node; see the module docstring.

    `rng` feeds dropout; `noise_rng` and `noise_eps` (> 0) add SimGCL's noise after every layer
    (`LayerStack`); `return_layers=True` (in `apply_kw`) also returns [h^0, ..., h^L].
    """
    rngs = {}
    if rng is not None:
      rngs["dropout"] = rng
    if noise_eps:
      if noise_rng is None:
        raise ValueError("noise_eps > 0 needs a noise_rng")
      apply_kw["noise_eps"] = noise_eps
      rngs["noise"] = noise_rng
    return self.module.apply({"params": params}, inputs["graph"], inputs["features"],
                             feature_mask=inputs["feature_mask"], has_id=inputs.get("has_id"),
                             side=inputs.get("side"), side_mask=inputs.get("side_mask"),
                             train=train, rngs=rngs or None, **apply_kw)

  def init(self, key: jax.Array):
    # A fixed fold of the run's key, so that parameters do not depend on how many other draws
    # the caller made from it.
    init_key = jax.random.fold_in(key, -1 & 0x7FFFFFFF)
    inputs = self.inputs
    variables = self.module.init({"params": init_key, "dropout": init_key}, inputs["graph"],
                                 inputs["features"], feature_mask=inputs["feature_mask"],
                                 side=inputs.get("side"), side_mask=inputs.get("side_mask"),
                                 train=False)
    return variables["params"]

  def template(self):
    return self.init(jax.random.key(0))  # cheap: random tables, no data pass

  def loss(self, params, inputs, batch, rng):
    """The configured objective (`config.loss`, plus `config.cl`) of one batch of (user,
    positive item) rows, plus the friendship term when `config.social_weight > 0`.

    `batch` holds `user`, `item` ([B] int32) and `mask` ([B] float32, 0 for padding rows of the
    last batch). Randomness: `split(rng)` gives the dropout and negative-sampling keys (as before
    the contrastive terms existed, so runs without them are unchanged), and the noise keys of
    the two views are `split(fold_in(rng, 7))`.

    With `cl="simgcl"` the ranking loss reads a clean pass and the InfoNCE two noisy passes (the
    same dropout key, each its noise key); with `cl="xsimgcl"` one noisy pass (view 1's key)
    serves both, its final vectors against its layer-`cl_layer` output.
    """
    cfg, num_users = self.config, self.num_users
    drop_rng, neg_rng = jax.random.split(rng)
    noise1, noise2 = jax.random.split(jax.random.fold_in(rng, 7))
    view = functools.partial(self.forward, params, inputs, train=True, rng=drop_rng,
                             noise_eps=cfg.cl_eps)
    if cfg.cl == "xsimgcl":
      final, ego, hs = view(noise_rng=noise1, return_layers=True)
    else:
      final, ego = self.forward(params, inputs, train=True, rng=drop_rng)
    loss, aux = objective.ranking_loss(cfg, final, ego, inputs, batch, neg_rng,
                                       num_users=num_users, num_items=self.num_items)
    if cfg.social_weight:  # additive; its own key, so runs without it draw what they drew before
      term, faux = objective.friend_term(cfg, final, ego, inputs["friends"], batch,
                                         jax.random.fold_in(rng, 13), num_users=num_users)
      loss, aux = loss + term, {**aux, **faux}
    if not cfg.cl:
      return loss, aux
    if cfg.cl == "simgcl":
      view1, _ = view(noise_rng=noise1)
      view2, _ = view(noise_rng=noise2)
    else:
      view1, view2 = final, contrastive.cross_layer_view(hs, layer=cfg.cl_layer)
    u, p = batch["user"], batch["item"] + num_users
    cl, cl_aux = contrastive.simgcl_loss(
        user_view1=view1[u], user_view2=view2[u], item_view1=view1[p], item_view2=view2[p],
        users=u, items=p, temperature=cfg.cl_temperature, weight=cfg.cl_weight,
        mask=batch["mask"])
    return loss + cl, {**aux, **cl_aux}

  def score_params(self, params):
    return self.embed(params, self.inputs)

  def history_scores(self, params, history):
    query = embed_new_user(self, params, history)  # [d]
    _, item_emb = self.score_params(params)
    return np.asarray(item_emb) @ query

  def explain_terms(self, params, *, user, history, items):
    if history is not None:
      return explain_terms.new_user_terms(self, params, history, items)
    if self.module.explanation == "propagation":
      return explain_terms.propagation_terms(self, params, user, items)
    return explain_terms.similarity_terms(self, params, user, items)
