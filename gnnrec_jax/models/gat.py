"""GAT: a stack of multi-head graph attention layers."""
from __future__ import annotations

from gnnrec_jax.models.embedding import LayerStack, check_combine
from gnnrec_jax.models.layers import GATConv, activation_fn, check_heads


class GAT(LayerStack):
  """A stack of multi-head GAT layers (Veličković et al., ICLR 2018, eqs. 1-5).

  Each layer keeps width d (heads concatenated, d / heads each), applies `activation` (the paper
  uses ELU; "identity" keeps the model linear in the propagated vectors like LightGCN), and the
  outputs h^0..h^L are combined by `layer_combine`.
  """

  heads: int = 1
  dropout: float = 0.1
  activation: str = "identity"

  def _layer(self, k, h, graph, train):
    h, alpha = GATConv(self.n, self.embed_dim, heads=self.heads, concat_heads=True,
                       dropout=self.dropout, backend=self._backend,
                       name=f"conv_{k}")(h, graph, train=train)
    self.sow("intermediates", f"alpha_{k}", alpha)
    return activation_fn(self.activation)(h)

  @classmethod
  def from_config(cls, config, **sizes):
    c = config
    check_combine(c.layer_combine)
    activation_fn(c.activation)
    check_heads(c.embed_dim, c.heads)
    return cls(**cls.common_fields(c, **sizes), num_layers=c.num_layers,
               layer_combine=c.layer_combine, heads=c.heads, dropout=c.dropout,
               activation=c.activation)
