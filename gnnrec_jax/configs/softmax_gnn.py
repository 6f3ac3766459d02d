"""The seed's softmax edge-weight GNN. `gnnrec-jax train --model softmax_gnn --dataset ml-100k --workdir runs/sgnn`."""
from gnnrec_jax.config import Config
from gnnrec_jax.configs import SOFTMAX_TRAINING


def get_config() -> Config:
  return Config(
      model="softmax_gnn",
      activation="identity",    # the seed's sigma; identity keeps LightGCN's linear propagation
      scale_logits=True,        # u.v/sqrt(d): unscaled dot products saturate the softmax early
      initial_alpha="weights",  # first layer's alpha from interaction weights, as the seed says
      **SOFTMAX_TRAINING,       # the LightGCN-tuned recipe (benchmarks/ml100k_tuning.md)
  )
