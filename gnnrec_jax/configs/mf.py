"""MF-BPR (Rendle et al., UAI 2009). `gnnrec-jax train --model mf --dataset ml-100k --workdir runs/mf`."""
from gnnrec_jax.config import Config


def get_config() -> Config:
  return Config(model="mf", num_layers=0)  # no propagation: final vectors are the ID embeddings
