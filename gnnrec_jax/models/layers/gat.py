"""Multi-head graph attention (Veličković et al., ICLR 2018, eqs. 1-6).

  z_j      = W h_j                                             per head, [N, H, d_head]
  e_ij     = LeakyReLU_0.2(a^T [z_i || z_j]) = LeakyReLU(a_dst . z_i + a_src . z_j)    (eq. 1, 3)
  alpha_ij = softmax over j in N(i) of e_ij                   (eq. 2, `propagate.edge_softmax`)
  h_i'     = ||_heads sum_j alpha_ij z_j   or   mean_heads   (eq. 5 concat, eq. 6 average)

Splitting a into its receiver and sender halves computes the same logits with two [N, H] dot
products instead of an [E, 2 d] concatenation. Attention dropout (the paper's 0.6 on alpha) uses
the 'dropout' rng when training.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from gnnrec_jax.errors import ConfigError
from gnnrec_jax.graph.propagate import edge_softmax, weighted_sum


class GATConv(nn.Module):
  """One multi-head GAT layer (no output nonlinearity: the model applies one if configured).

  Attributes:
    num_nodes: N, static (padding nodes included).
    features: output width d'. With `concat_heads` each head has d' / heads features and the
      heads are concatenated; otherwise each head has d' features and the heads are averaged.
    heads: number of attention heads H.
    concat_heads: concatenate (hidden layers in the paper) or average (its output layer).
    dropout: dropout on alpha while training.
    negative_slope: LeakyReLU slope of the logits (0.2 in the paper).
    backend: `gnnrec_jax.graph.propagate.weighted_sum` backend.
  """

  num_nodes: int
  features: int
  heads: int = 1
  concat_heads: bool = True
  dropout: float = 0.0
  negative_slope: float = 0.2
  backend: str = "segment"

  @nn.compact
  def __call__(self, h: jax.Array, graph: jraph.GraphsTuple, *,
               train: bool = False) -> tuple[jax.Array, jax.Array]:
    """Runs the layer.

    Args:
      h: [N, d] node vectors.
      graph: the graph (edges sorted by receiver, with `edges["mask"]`).
      train: enables attention dropout (the 'dropout' rng collection).

    Returns:
      (h_new [N, features], alpha [E, heads]).
    """
    if self.concat_heads and self.features % self.heads:
      raise ConfigError(f"GAT width {self.features} is not divisible by heads {self.heads}")
    dh = self.features // self.heads if self.concat_heads else self.features
    n = h.shape[0]
    z = nn.Dense(self.heads * dh, use_bias=False, name="W")(h).reshape(n, self.heads, dh)
    # Glorot for a in R^{2 dh x 1} (as PyG's GATConv): variance 2 / (2 dh + 1).
    init = nn.initializers.normal(stddev=(2.0 / (2 * dh + 1)) ** 0.5)
    a_dst = self.param("a_dst", init, (self.heads, dh))
    a_src = self.param("a_src", init, (self.heads, dh))
    score_dst = jnp.sum(z * a_dst, axis=-1)  # [N, H]
    score_src = jnp.sum(z * a_src, axis=-1)  # [N, H]
    logits = jax.nn.leaky_relu(score_dst[graph.receivers] + score_src[graph.senders],
                               negative_slope=self.negative_slope)  # [E, H]
    alpha = edge_softmax(logits, graph, num_nodes=self.num_nodes)
    weights = nn.Dropout(self.dropout, deterministic=not train)(alpha)
    out = weighted_sum(z, graph, weights, num_nodes=self.num_nodes,
                       backend=self.backend)  # [N, H, dh]
    out = out.reshape(n, self.heads * dh) if self.concat_heads else out.mean(axis=1)
    return out, alpha
