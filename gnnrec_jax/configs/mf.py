"""MF (Rendle et al., UAI 2009). `gnnrec-jax train --model mf --dataset ml-100k --workdir runs/mf`."""
from gnnrec_jax.config import Config
from gnnrec_jax.configs import SOFTMAX_TRAINING


def get_config() -> Config:
  # No propagation: final vectors are the ID embeddings. The shared recipe, so that MF vs
  # LightGCN isolates propagation (`--set loss=bpr --set l2=1e-4 --set lr=1e-3` is BPR-MF).
  return Config(model="mf", num_layers=0, **{
      **SOFTMAX_TRAINING,
      # l2 1e-1: best valid NDCG@20 of {1e-2, 1e-1, 3e-1}: .2252, .2589, .2102. Without
      # propagation's smoothing MF overfits by epoch 4 at the recipe's 1e-2.
      "l2": 1e-1,
  })
