"""NGCF: feature transforms and a bi-interaction term per layer, layers concatenated."""
from __future__ import annotations

from gnnrec_jax.models.embedding import LayerStack
from gnnrec_jax.models.layers import NGCFConv


class NGCF(LayerStack):
  """NGCF (Wang et al., SIGIR 2019) as RecBole implements it.

  E^(k+1) = normalize(dropout(LeakyReLU(W1^k (L + I) E^(k) + W2^k (L E^(k) ⊙ E^(k))))) (eq. 7),
  final = E^(0) || E^(1) || ... || E^(L) (eq. 9), so d_out = d (L + 1). `dropout` is the message
  dropout; RecBole's node dropout (dropping adjacency entries, default 0) is not implemented.
  """

  layer_combine: str = "concat"
  dropout: float = 0.1

  def _layer(self, k, h, graph, train):
    return NGCFConv(self.n, self.embed_dim, dropout=self.dropout, backend=self._backend,
                    name=f"conv_{k}")(h, graph, train=train)

  @classmethod
  def from_config(cls, config, **sizes):
    # NGCF concatenates its layers by definition (eq. 9); layer_combine is not read.
    return cls(**cls.common_fields(config, **sizes), num_layers=config.num_layers,
               dropout=config.dropout)
