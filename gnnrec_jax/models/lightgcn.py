"""LightGCN: parameter-free propagation over D^-1/2 A D^-1/2, layers averaged."""
from __future__ import annotations

from gnnrec_jax.models.embedding import LayerStack, check_combine
from gnnrec_jax.models.layers import LightGCNConv


class LightGCN(LayerStack):
  """LightGCN (He et al., SIGIR 2020).

  E^(k+1) = D^-1/2 A D^-1/2 E^(k) (eq. 3) for k < L, final = sum_k a_k E^(k) with a_k = 1/(L+1)
  (eq. 4, `layer_combine="mean"`).
  """

  explanation = "propagation"

  def new_user_layers(self):
    return self.num_layers, self.layer_combine

  def _layer(self, k, h, graph, train):
    del train  # parameter-free and deterministic
    return LightGCNConv(self.n, backend=self._backend, name=f"conv_{k}")(h, graph)

  @classmethod
  def from_config(cls, config, **sizes):
    check_combine(config.layer_combine)
    return cls(**cls.common_fields(config, **sizes), num_layers=config.num_layers,
               layer_combine=config.layer_combine)
