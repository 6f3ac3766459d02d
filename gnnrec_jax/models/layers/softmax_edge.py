"""SoftmaxEdgeConv: the seed's layer, where the softmax edge weight is computed.

The seed document (§4.1) describes a GNN whose edge weights are a softmax of user–item dot
products, recomputed at every step:

  alpha_ij^(t+1) = softmax_{j in N(i)}(u_i^(t) . v_j^(t))              (edge weight update)
  u_i^(t+1)      = sigma(sum_{j in N(i)} alpha_ij v_j^(t))               (node update)

Here users and items are both nodes of one graph, so the same rule updates items from their
users. This layer makes the seed's rule well-defined and trainable:

  e_ij    = q(h_i) . k(h_j) / tau  [/ sqrt(d_head) when scale_logits]    i = receiver, j = sender
  alpha   = softmax of e_ij over receiver i's incoming edges (per head)
  alpha  <- m * alpha + (1 - m) * norm_ij                                 (attention_mix m)
  h_i'    = sigma(sum_j alpha_ij h_j)

with q, k the identity or learned `Dense` maps (`qk_proj`), and `norm_ij` LightGCN's fixed
D^-1/2 A D^-1/2 entry, so that m < 1 interpolates towards LightGCN. Alpha is computed from this
layer's input, i.e. the previous layer's output, as the seed's equation says. With
`alpha_from_weights=True` (the seed's first step) alpha is instead the interaction weights
normalised per receiver, w_ij / sum_k w_ik, and no logits are computed.
"""
from __future__ import annotations

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from gnnrec_jax.errors import ConfigError
from gnnrec_jax.graph.propagate import (
  edge_dot,
  edge_softmax,
  normalize_per_receiver,
  weighted_sum,
)

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "identity": lambda x: x,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,  # slope 0.01, the JAX/PyTorch default
    "elu": jax.nn.elu,
    "sigmoid": jax.nn.sigmoid,
}


def activation_fn(name: str) -> Callable[[jax.Array], jax.Array]:
  """The activation called `name`; raises ConfigError listing the known names otherwise."""
  try:
    return ACTIVATIONS[name]
  except KeyError:
    raise ConfigError(f"unknown activation {name!r}; choose one of "
                      f"{', '.join(ACTIVATIONS)}") from None


class SoftmaxEdgeConv(nn.Module):
  """One layer of the seed's softmax-edge-weight GNN (see the module docstring for equations).

  Attributes:
    num_nodes: N, static (padding nodes included).
    heads: attention heads; d is split into `heads` slices of d / heads, each with its own alpha.
    temperature: tau dividing the logits.
    scale_logits: also divide the logits by sqrt(d / heads) (Transformer scaling).
    qk_proj: learned query/key `Dense(d, use_bias=False)` maps; identity when False, which leaves
      the layer parameter-free like LightGCN.
    activation: sigma, a name in `ACTIVATIONS`.
    attention_mix: m in alpha = m * alpha + (1 - m) * norm.
    alpha_from_weights: use normalised interaction weights instead of the softmax (first layer).
    backend: `gnnrec_jax.graph.propagate.weighted_sum` backend.
  """

  num_nodes: int
  heads: int = 1
  temperature: float = 1.0
  scale_logits: bool = False
  qk_proj: bool = False
  activation: str = "identity"
  attention_mix: float = 1.0
  alpha_from_weights: bool = False
  backend: str = "segment"

  @nn.compact
  def __call__(self, h: jax.Array, graph: jraph.GraphsTuple) -> tuple[jax.Array, jax.Array]:
    """Runs the layer.

    Args:
      h: [N, d] node vectors (the previous layer's output).
      graph: the graph (edges sorted by receiver, `edges` with "weight", "norm", "mask").

    Returns:
      (h_new [N, d], alpha [E, heads]); alpha is 0 on padding edges and each receiver's
      incoming alphas sum to 1 per head (when attention_mix = 1).
    """
    n, d = h.shape
    if d % self.heads:
      raise ConfigError(f"embed_dim {d} is not divisible by heads {self.heads}")
    dh = d // self.heads
    num_edges = graph.receivers.shape[0]
    if self.alpha_from_weights:
      alpha = normalize_per_receiver(graph.edges["weight"].astype(h.dtype), graph,
                                     num_nodes=self.num_nodes)
      alpha = jnp.broadcast_to(alpha[:, None], (num_edges, self.heads))  # [E, H]
    else:
      q = nn.Dense(d, use_bias=False, name="query")(h) if self.qk_proj else h
      k = nn.Dense(d, use_bias=False, name="key")(h) if self.qk_proj else h
      q = q.reshape(n, self.heads, dh)
      k = k.reshape(n, self.heads, dh)
      logits = edge_dot(q, k, graph, num_nodes=self.num_nodes, backend=self.backend)  # [E, H]
      scale = self.temperature * (math.sqrt(dh) if self.scale_logits else 1.0)
      alpha = edge_softmax(logits / scale, graph, num_nodes=self.num_nodes)  # [E, H]
    if self.attention_mix < 1.0:
      norm = graph.edges["norm"].astype(h.dtype)[:, None]
      alpha = self.attention_mix * alpha + (1.0 - self.attention_mix) * norm
    if self.heads == 1:
      agg = weighted_sum(h, graph, alpha[:, 0], num_nodes=self.num_nodes, backend=self.backend)
    else:
      agg = weighted_sum(h.reshape(n, self.heads, dh), graph, alpha,
                         num_nodes=self.num_nodes, backend=self.backend).reshape(n, d)
    return activation_fn(self.activation)(agg), alpha
