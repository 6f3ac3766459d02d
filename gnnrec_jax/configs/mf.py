"""MF (Rendle et al., UAI 2009). `gnnrec-jax train --model mf --dataset ml-100k --workdir runs/mf`."""
from gnnrec_jax.config import Config
from gnnrec_jax.configs import SOFTMAX_TRAINING


def get_config() -> Config:
  # No propagation: final vectors are the ID embeddings. Trained with the shared recipe so that
  # MF vs LightGCN isolates propagation (`--set loss=bpr --set l2=1e-4 --set lr=1e-3` is BPR-MF).
  return Config(model="mf", num_layers=0, **SOFTMAX_TRAINING)
