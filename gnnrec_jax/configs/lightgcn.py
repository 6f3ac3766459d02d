"""LightGCN (He et al., SIGIR 2020). `gnnrec-jax train --model lightgcn --dataset ml-100k --workdir runs/lgcn`."""
from gnnrec_jax.config import Config


def get_config() -> Config:
  # Config's defaults are LightGCN's published settings (d=64, 3 layers, Adam 1e-3, L2 1e-4,
  # batch 2048) and RecBole's protocol (8:1:1 random split, seed 2020, early stop on NDCG@20).
  return Config(model="lightgcn")
