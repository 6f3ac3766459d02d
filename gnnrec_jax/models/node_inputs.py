"""Layer-0 node vectors: ID embeddings, optionally combined with projected text and side features.

  ego_n = keep_n * id_n + text_n + side_n   (use_id_embedding, features and side given)
  ego_n = text_n [+ side_n]                 (use_id_embedding=False: a pure content model)
  ego_n = id_n                              (no features: every ID-based recommender)

  text_n = Dense(d)(features_n)  if feature_mask_n  else  default_text   (a learned [d] vector)
  side_n = Dense(d)(side_n)      if side_mask_n     else  default_side

Side features are the encoded metadata columns of `gnnrec_jax.data.side_features` (standardised
numbers, one-hot categories, missing indicators: [U + I, S], user columns on user rows and item
columns on item rows), so the one Dense acts as a separate projection per side plus a shared bias;
nodes of a side without columns (`side_mask` False) get the learned `default_side` vector.

`keep_n` implements DropoutNet (Volkovs et al., NeurIPS 2017): while training, each node's ID
vector is zeroed with probability `id_dropout` so that the text path must carry the signal on its
own; at evaluation, nodes flagged in `has_id` as lacking an ID (cold items/users with no training
edges, whose ID vectors never received a gradient) use the text and side paths only. Unlike ordinary
dropout, the kept ID vectors are not rescaled by 1 / (1 - p): at test time warm nodes use their
full ID vector and cold nodes none, exactly the two situations seen in training.

Padding: the parameter tables have `num_users + num_items` rows, independent of graph padding;
rows for padding nodes (`num_nodes > U + I`) are zeros appended inside the call, so checkpoints
do not depend on how the graph was padded.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gnnrec_jax.errors import ConfigError


class NodeInputs(nn.Module):
  """ID embedding table plus optional text- and side-feature projections.

  Attributes:
    num_users: U.
    num_items: I.
    embed_dim: d.
    num_nodes: N >= U + I, static; rows past U + I (graph padding) are zeros. None means U + I.
    init_std: stddev of the normal init of the ID table (LightGCN: 0.1).
    use_id_embedding: include ID vectors (False needs features or side features).
    id_dropout: DropoutNet rate of zeroing a node's ID vector while training.
  """

  num_users: int
  num_items: int
  embed_dim: int
  num_nodes: int | None = None
  init_std: float = 0.1
  use_id_embedding: bool = True
  id_dropout: float = 0.0

  @nn.compact
  def __call__(self, features: jax.Array | None = None, feature_mask: jax.Array | None = None,
               has_id: jax.Array | None = None, *, side: jax.Array | None = None,
               side_mask: jax.Array | None = None, train: bool = False) -> jax.Array:
    """Computes the layer-0 vectors.

    Args:
      features: optional [U + I, F] or [N, F] pretrained text vectors (users first).
      feature_mask: optional [U + I] or [N] bool/0-1, True where the node has text; rows with
        False use the learned `default_text` vector. None: every row has text.
      has_id: optional [U + I] or [N] bool/0-1, False for nodes whose ID vector must not be used
        (cold nodes at evaluation). Read only together with `features` or `side`: without them
        the ID vector is a node's only input and is kept. None: all nodes have IDs.
      side: optional [U + I, S] or [N, S] encoded side features (users first).
      side_mask: optional [U + I] or [N] bool, True where the node's side has columns; rows
        with False use the learned `default_side` vector. None: every row has side features.
      train: enables `id_dropout` (the 'dropout' rng collection).

    Returns:
      ego: [N, d] layer-0 vectors; padding rows are zero.
    """
    base = self.num_users + self.num_items
    n = self.num_nodes or base
    d = self.embed_dim
    content = features is not None or side is not None
    if not content and not self.use_id_embedding:
      raise ConfigError("use_id_embedding=False needs text or side features (set text_features "
                        "or side_features)")
    ego = jnp.zeros((base, d), jnp.float32)
    if self.use_id_embedding:
      table = self.param("embedding", nn.initializers.normal(self.init_std), (base, d))
      if content:
        keep = jnp.ones((base,), table.dtype)
        if has_id is not None:
          keep = keep * _rows(has_id, base).astype(table.dtype)
        if train and self.id_dropout > 0:
          rng = self.make_rng("dropout")
          keep = keep * jax.random.bernoulli(rng, 1.0 - self.id_dropout, (base,))
        table = table * keep[:, None]
      ego = table
    if features is not None:
      text = nn.Dense(d, name="text_proj")(_rows(features, base).astype(jnp.float32))  # [U+I, d]
      # Created even without a mask so that the parameter tree never depends on the mask.
      default = self.param("default_text", nn.initializers.normal(self.init_std), (d,))
      if feature_mask is not None:
        text = jnp.where(_rows(feature_mask, base).astype(bool)[:, None], text, default)
      ego = ego + text
    if side is not None:
      proj = nn.Dense(d, name="side_proj")(_rows(side, base).astype(jnp.float32))  # [U+I, d]
      default = self.param("default_side", nn.initializers.normal(self.init_std), (d,))
      if side_mask is not None:
        proj = jnp.where(_rows(side_mask, base).astype(bool)[:, None], proj, default)
      ego = ego + proj
    if n > base:
      ego = jnp.concatenate([ego, jnp.zeros((n - base, d), ego.dtype)])
    return ego


def _rows(x: jax.Array, base: int) -> jax.Array:
  """The first `base` rows: accepts arrays sized U + I or padded to N (static slicing)."""
  if x.shape[0] < base:
    raise ConfigError(f"node array has {x.shape[0]} rows, expected at least U + I = {base}")
  return x[:base]
