"""LightGCN (He et al., SIGIR 2020). `gnnrec-jax train --model lightgcn --dataset ml-100k --workdir runs/lgcn`.

The paper's BPR recipe is `--set loss=bpr --set l2=1e-4 --set lr=1e-3 --set epochs=300
--set eval_every=1 --set patience=10` (Config's field defaults).
"""
from gnnrec_jax.config import Config
from gnnrec_jax.configs import SOFTMAX_TRAINING


def get_config() -> Config:
  # LightGCN's architecture (d=64, 3 layers, mean of layers) with the sampled-softmax recipe
  # tuned on ml-100k valid NDCG@20 (benchmarks/ml100k_tuning.md); RecBole's protocol (8:1:1
  # random split, seed 2020, early stop on NDCG@20) comes from Config's defaults.
  return Config(model="lightgcn", **SOFTMAX_TRAINING)
