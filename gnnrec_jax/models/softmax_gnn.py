"""The seed's softmax GNN: SoftmaxEdgeConv layers (attention over each node's neighbours)."""
from __future__ import annotations

from gnnrec_jax.models.embedding import LayerStack, check_combine
from gnnrec_jax.models.layers import SoftmaxEdgeConv, activation_fn, check_heads

INITIAL_ALPHAS = ("weights", "none")  # `SoftmaxGNN.initial_alpha`


class SoftmaxGNN(LayerStack):
  """The seed's GNN: `num_layers` SoftmaxEdgeConv layers (see layers/softmax_edge.py).

  Layer k computes alpha_ij = softmax_{j in N(i)}(q(h_i^(k)) . k(h_j^(k)) / tau) and
  h_i^(k+1) = sigma(sum_j alpha_ij h_j^(k)) (seed §4.1); with `initial_alpha="weights"` layer 0
  uses the interaction weights normalised per receiver instead. Outputs h^0..h^L are combined
  by `layer_combine`. `attention_logits`, `learn_temperature`, `norm_prior` and
  `receiver_scale` are the layer's remedies for attention that stays uniform and forgets degree
  (see layers/softmax_edge.py).
  """

  edge_weight_name = "alpha"  # the learned attention (not a field)
  explanation = "propagation"

  heads: int = 1
  temperature: float = 1.0
  scale_logits: bool = True
  qk_proj: bool = False
  activation: str = "identity"
  attention_mix: float = 1.0
  initial_alpha: str = "weights"  # "weights" | "none"
  attention_logits: str = "dot"   # SoftmaxEdgeConv's options (layers/softmax_edge.py)
  learn_temperature: bool = False
  norm_prior: float = 0.0
  receiver_scale: bool = False

  def _layer(self, k, h, graph, train):
    del train  # no dropout in this layer
    h, alpha = SoftmaxEdgeConv(
        self.n, heads=self.heads, temperature=self.temperature,
        scale_logits=self.scale_logits, qk_proj=self.qk_proj, activation=self.activation,
        attention_mix=self.attention_mix,
        alpha_from_weights=(k == 0 and self.initial_alpha == "weights"),
        logits=self.attention_logits, learn_temperature=self.learn_temperature,
        norm_prior=self.norm_prior, receiver_scale=self.receiver_scale,
        backend=self._backend, name=f"conv_{k}")(h, graph)
    self.sow("intermediates", f"alpha_{k}", alpha)
    return h

  @classmethod
  def from_config(cls, config, **sizes):
    c = config
    check_combine(c.layer_combine)
    activation_fn(c.activation)
    check_heads(c.embed_dim, c.heads)
    return cls(**cls.common_fields(c, **sizes), num_layers=c.num_layers,
               layer_combine=c.layer_combine, heads=c.heads, temperature=c.temperature,
               scale_logits=c.scale_logits, qk_proj=c.qk_proj, activation=c.activation,
               attention_mix=c.attention_mix, initial_alpha=c.initial_alpha,
               attention_logits=c.attention_logits, learn_temperature=c.learn_temperature,
               norm_prior=c.norm_prior, receiver_scale=c.receiver_scale)

