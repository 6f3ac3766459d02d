"""NGCF's embedding propagation layer (Wang et al., SIGIR 2019, eq. 7) as RecBole implements it.

  E' = LeakyReLU_0.2( W1 (L + I) E + W2 (L E ⊙ E) )        (matrix form, eq. 7)

with L = D^-1/2 A D^-1/2 and W1, W2 `Dense` layers with bias (RecBole's `BiGNNLayer`). RecBole
then applies message dropout and L2-normalises each row; the normalised output is both the next
layer's input and the layer's contribution to the concatenated final vector (`models.NGCF`).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from gnnrec_jax.graph.propagate import weighted_sum


class NGCFConv(nn.Module):
  """One NGCF layer: bi-interaction aggregation, LeakyReLU(0.2), message dropout, L2 norm.

  Attributes:
    num_nodes: N, static (padding nodes included).
    features: output width d'.
    dropout: message dropout rate (RecBole's `message_dropout`, default 0.1).
    backend: `gnnrec_jax.graph.propagate.weighted_sum` backend.
  """

  num_nodes: int
  features: int
  dropout: float = 0.1
  backend: str = "segment"

  @nn.compact
  def __call__(self, h: jax.Array, graph: jraph.GraphsTuple, *, train: bool = False) -> jax.Array:
    """Args: h [N, d], graph, train (dropout on, from the 'dropout' rng). Returns: [N, d']."""
    side = weighted_sum(h, graph, graph.edges["norm"].astype(h.dtype),
                        num_nodes=self.num_nodes, backend=self.backend)  # L E
    out = (nn.Dense(self.features, name="W1")(h + side)          # W1 (L + I) E
           + nn.Dense(self.features, name="W2")(side * h))      # W2 (L E ⊙ E)
    out = jax.nn.leaky_relu(out, negative_slope=0.2)
    out = nn.Dropout(self.dropout, deterministic=not train)(out)
    # F.normalize(p=2, dim=1, eps=1e-12): rows of zeros (isolated or padding nodes) stay zero.
    norm = jnp.linalg.norm(out, axis=-1, keepdims=True)
    return out / jnp.maximum(norm, 1e-12)
