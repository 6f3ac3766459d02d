"""MF: the ID (or text) vectors themselves, no propagation."""
from __future__ import annotations

import flax.linen as nn
import jraph

from gnnrec_jax.models.embedding import EmbeddingModel, perturb
from gnnrec_jax.models.readout import score_space


class MF(EmbeddingModel):
  """Matrix factorisation (BPR-MF, Rendle et al. 2009): score = e_u . e_i, no propagation.

  With `noise_eps` > 0 (SimGCL's view of a model without layers) the noise is added to the
  layer-0 vectors themselves; `ego`, which the L2 term reads, stays clean.
  """

  def new_user_layers(self):
    return 0, "mean"

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple, features=None, feature_mask=None, has_id=None, *,
               side=None, side_mask=None, train: bool = False, noise_eps: float = 0.0,
               return_layers: bool = False):
    ego = self._ego(features, feature_mask, has_id, train, side, side_mask)
    h = perturb(self, self._dropped(ego, train), noise_eps)
    final = score_space(h, self.score)
    return (final, ego, [h]) if return_layers else (final, ego)
