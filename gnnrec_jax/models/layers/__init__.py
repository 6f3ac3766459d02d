"""Message-passing layers (Flax Linen), one file per layer family.

  softmax_edge.SoftmaxEdgeConv: the seed's layer, where the softmax edge weight is computed.
  lightgcn.LightGCNConv:        fixed D^-1/2 A D^-1/2 propagation (He et al. 2020).
  ngcf.NGCFConv:                NGCF's bi-interaction layer as RecBole implements it.
  gat.GATConv:                  multi-head graph attention (Velickovic et al. 2018).

Every layer reads node vectors `h` [N, d] and a `jraph.GraphsTuple` whose leaves are jit
arguments, and aggregates through `gnnrec_jax.graph.propagate.weighted_sum`.
"""
from gnnrec_jax.models.layers.gat import GATConv
from gnnrec_jax.models.layers.lightgcn import LightGCNConv
from gnnrec_jax.models.layers.ngcf import NGCFConv
from gnnrec_jax.models.layers.softmax_edge import (
           ACTIVATIONS,
           SoftmaxEdgeConv,
           activation_fn,
           check_heads,
)

__all__ = ["ACTIVATIONS", "GATConv", "LightGCNConv", "NGCFConv", "SoftmaxEdgeConv",
           "activation_fn", "check_heads"]
