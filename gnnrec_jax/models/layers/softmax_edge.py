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

Why the plain rule loses to LightGCN (issue 11 part 4; measurements in benchmarks/RESULTS.md,
"The seed's model made to win"), and the options that address it:

  1. The logits barely differ. Trained vectors are short (the L2 term keeps |h| ~ 1, and
     propagated layers are shorter still), so h_i . h_j / sqrt(d) spans a few hundredths across
     a node's neighbours and alpha is a plain mean. `logits="cosine"` (unit q and k) with
     `learn_temperature` (a learned scale s per layer and head, e = s * sim) lets the layer
     choose how sharp its attention is.
  2. A softmax sums to 1 over any neighbourhood, so it discards degree: a popular neighbour
     counts as much as a niche one. LightGCN's norm_ij = a_ij / sqrt(d_i d_j) damps popular
     senders by 1 / sqrt(d_j). `norm_prior` = g puts the normalised adjacency inside the
     softmax, alpha_ij ∝ norm_ij^g exp(e_ij), i.e. e_ij + g log norm_ij: g = 1 is attention over
     the normalised adjacency, and on a binary graph a log-degree bias -(g / 2) log d_j (the
     receiver's own degree cancels in the softmax).
  3. The softmax also drops the receiver's scale: LightGCN's row sums S_i = sum_j norm_ij grow
     with a node's degree and popularity. `receiver_scale=True` multiplies receiver i's alphas
     by S_i, so that with `norm_prior=1` and equal logits the layer *is* LightGCN's, and
     attention reweights the normalised adjacency without changing its row sums.

The full rule with every option:
  e_ij    = s * sim(q(h_i), k(h_j)) + g * log norm_ij
  alpha   = softmax of e_ij over receiver i's incoming edges   [* S_i with receiver_scale]
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

LOGITS = ("dot", "cosine")  # sim(q, k) in SoftmaxEdgeConv's logits

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


def check_heads(embed_dim: int, heads: int) -> None:
  """The one check that attention heads split the width (every attention model's builder and
  the layer itself call it): ConfigError otherwise."""
  if embed_dim % heads:
    raise ConfigError(f"embed_dim {embed_dim} is not divisible by heads {heads}")


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
    logits: sim in e = s * sim(q, k): "dot" (s = 1 / (tau [sqrt(d_head)])) or "cosine" (unit
      q and k, s = 1 / tau; `scale_logits` is not applied to cosines).
    learn_temperature: s is a learned parameter per head (log-parameterised, initialised at
      the fixed value above).
    norm_prior: g in alpha ∝ norm_ij^g exp(e_ij) (0: the plain softmax).
    receiver_scale: multiply receiver i's alphas by S_i = sum_j norm_ij (LightGCN's row sum).
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
  logits: str = "dot"
  learn_temperature: bool = False
  norm_prior: float = 0.0
  receiver_scale: bool = False
  backend: str = "segment"

  @nn.compact
  def __call__(self, h: jax.Array, graph: jraph.GraphsTuple) -> tuple[jax.Array, jax.Array]:
    """Runs the layer.

    Args:
      h: [N, d] node vectors (the previous layer's output).
      graph: the graph (edges sorted by receiver, `edges` with "weight", "norm", "mask").

    Returns:
      (h_new [N, d], alpha [E, heads]): the weights the sum used. alpha is 0 on padding edges
      and each receiver's incoming alphas sum to 1 per head (to S_i with receiver_scale) when
      attention_mix = 1.
    """
    n, d = h.shape
    check_heads(d, self.heads)
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
      if self.logits == "cosine":
        q, k = _unit(q), _unit(k)
        scale = 1.0 / self.temperature
      elif self.logits == "dot":
        scale = 1.0 / (self.temperature * (math.sqrt(dh) if self.scale_logits else 1.0))
      else:
        raise ConfigError(f"unknown attention logits {self.logits!r}; choose one of "
                          f"{', '.join(LOGITS)}")
      if self.learn_temperature:
        log_scale = self.param("log_scale", nn.initializers.constant(math.log(scale)),
                               (self.heads,))
        scale = jnp.exp(log_scale)  # [H]
      logits = edge_dot(q, k, graph, num_nodes=self.num_nodes, backend=self.backend)  # [E, H]
      logits = logits * scale
      if self.norm_prior:
        logits = logits + self.norm_prior * _log_norm(graph, h.dtype)[:, None]
      alpha = edge_softmax(logits, graph, num_nodes=self.num_nodes)  # [E, H]
    if self.receiver_scale:
      alpha = alpha * _row_sums(graph, self.num_nodes, h.dtype)[:, None]
    if self.attention_mix < 1.0:
      norm = graph.edges["norm"].astype(h.dtype)[:, None]
      alpha = self.attention_mix * alpha + (1.0 - self.attention_mix) * norm
    if self.heads == 1:
      agg = weighted_sum(h, graph, alpha[:, 0], num_nodes=self.num_nodes, backend=self.backend)
    else:
      agg = weighted_sum(h.reshape(n, self.heads, dh), graph, alpha,
                         num_nodes=self.num_nodes, backend=self.backend).reshape(n, d)
    return activation_fn(self.activation)(agg), alpha


def _unit(x: jax.Array) -> jax.Array:
  """x / max(|x|, 1e-12) along the last axis: zero rows (padding nodes) stay zero."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _log_norm(graph: jraph.GraphsTuple, dtype) -> jax.Array:
  """[E] log norm_ij, 0 on padding edges (which the softmax masks; no log 0 = -inf enters)."""
  norm = graph.edges["norm"].astype(dtype)
  real = (graph.edges["mask"] > 0) & (norm > 0)
  return jnp.where(real, jnp.log(jnp.where(real, norm, 1.0)), 0.0)


def _row_sums(graph: jraph.GraphsTuple, num_nodes: int, dtype) -> jax.Array:
  """[E] S_i = sum_j norm_ij of each edge's receiver i (real edges only)."""
  norm = graph.edges["norm"].astype(dtype) * graph.edges["mask"].astype(dtype)
  return jax.ops.segment_sum(norm, graph.receivers, num_segments=num_nodes,
                             indices_are_sorted=True)[graph.receivers]
