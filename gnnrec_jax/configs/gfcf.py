"""GF-CF (Shen et al., CIKM 2021), training-free. `gnnrec-jax train --model gfcf --workdir runs/gfcf`.

The paper's hyperparameters (its code, github.com/yshenaw/GF_CF): ideal low-pass weight
alpha = 0.3 (Gowalla, Yelp2018; 0 on Amazon-book) over the top k = 256 singular vectors of the
normalised R~. On Gowalla (LightGCN split):
  gnnrec-jax train --model gfcf --dataset gowalla --workdir runs/gfcf_gowalla \\
      --set filter_alpha=0.3 --set svd_rank=256 --set eval_batch_size=128
"""
from gnnrec_jax.config import Config


def get_config() -> Config:
  # The paper's Gowalla values; ml-100k's valid-selected choice is in benchmarks/RESULTS.md.
  return Config(model="gfcf", filter_alpha=0.3, svd_rank=256)
