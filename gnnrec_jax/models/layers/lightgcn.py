"""LightGCN propagation (He et al., SIGIR 2020, eq. 3): E^(k+1) = D^-1/2 A D^-1/2 E^(k).

No feature transform and no nonlinearity: the paper's ablation shows both hurt collaborative
filtering. The normalisation entries are precomputed on the host (`graph.edges["norm"]`).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jraph

from gnnrec_jax.graph.propagate import weighted_sum


class LightGCNConv(nn.Module):
  """One parameter-free LightGCN step.

  Attributes:
    num_nodes: N, static (padding nodes included).
    backend: `gnnrec_jax.graph.propagate.weighted_sum` backend.
  """

  num_nodes: int
  backend: str = "segment"

  def __call__(self, h: jax.Array, graph: jraph.GraphsTuple) -> jax.Array:
    """Args: h [N, d], graph. Returns: [N, d], h_i' = sum_j norm_ij h_j (eq. 3)."""
    return weighted_sum(h, graph, graph.edges["norm"].astype(h.dtype),
                        num_nodes=self.num_nodes, backend=self.backend)
