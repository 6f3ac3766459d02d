"""ChebyCF (Kim et al., SIGIR 2025), training-free. `gnnrec-jax train --model chebycf --workdir runs/chebycf`.

Defaults: chosen on ml-100k's validation set (the default dataset; benchmarks/RESULTS.md, "Graph
filters"). The paper's Gowalla hyperparameters (config/chebycf_gowalla.yml of
github.com/chanwoo0806/ChebyCF): Chebyshev order K = 8, plateau flatness phi = 1.5, ideal pass
over eta = 512 singular vectors with weight alpha = 0.2, item-degree exponent beta = 0.4.
(Last.fm: K 8, phi 15, eta 256, alpha 0.1, beta 0.2.) On Gowalla (test Recall@20 .1940;
published .1941):
  gnnrec-jax train --model chebycf --dataset gowalla --workdir runs/chebycf_gowalla \\
      --set cheby_order=8 --set cheby_flatness=1.5 --set svd_rank=512 --set filter_alpha=0.2 \\
      --set cheby_beta=0.4 --set eval_batch_size=128
"""
from gnnrec_jax.config import Config


def get_config() -> Config:
  # Best valid NDCG@20 (.2891) of flatness {1.5, 15} x alpha {.2, .5} x beta {0, .2} x svd_rank
  # {64, 128} at K = 8 on ml-100k (phi 1.5 with alpha .2: .2661-.2730).
  return Config(model="chebycf", cheby_order=8, cheby_flatness=15.0, svd_rank=64,
                filter_alpha=0.5, cheby_beta=0.2)
