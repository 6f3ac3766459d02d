"""GF-CF (Shen et al., CIKM 2021), training-free. `gnnrec-jax train --model gfcf --workdir runs/gfcf`.

Defaults: chosen on ml-100k's validation set (the default dataset; benchmarks/RESULTS.md, "Graph
filters"). The paper's hyperparameters (its code, github.com/yshenaw/GF_CF): ideal low-pass
weight alpha = 0.3 (Gowalla, Yelp2018; 0 on Amazon-book) over the top k = 256 singular vectors
of the normalised R~. On Gowalla (LightGCN split; test Recall@20 .1849, as published):
  gnnrec-jax train --model gfcf --dataset gowalla --workdir runs/gfcf_gowalla \\
      --set filter_alpha=0.3 --set svd_rank=256 --set eval_batch_size=128
"""
from gnnrec_jax.config import Config


def get_config() -> Config:
  # Best valid NDCG@20 (.2797) of svd_rank {32, 64, 128, 256} x filter_alpha {.1, .3, .5, 1} on
  # ml-100k; the paper's Gowalla k = 256 gives .2467 there (ml-100k has only 943 users).
  return Config(model="gfcf", filter_alpha=0.3, svd_rank=64)
