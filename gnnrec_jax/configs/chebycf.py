"""ChebyCF (Kim et al., SIGIR 2025), training-free. `gnnrec-jax train --model chebycf --workdir runs/chebycf`.

The paper's Gowalla hyperparameters (config/chebycf_gowalla.yml of github.com/chanwoo0806/ChebyCF):
Chebyshev order K = 8, plateau flatness phi = 1.5, ideal pass over eta = 512 singular vectors
with weight alpha = 0.2, item-degree exponent beta = 0.4. (Last.fm: K 8, phi 15, eta 256,
alpha 0.1, beta 0.2.) On Gowalla:
  gnnrec-jax train --model chebycf --dataset gowalla --workdir runs/chebycf_gowalla \\
      --set eval_batch_size=128
"""
from gnnrec_jax.config import Config


def get_config() -> Config:
  # The paper's Gowalla values; ml-100k's valid-selected choice is in benchmarks/RESULTS.md.
  return Config(model="chebycf", cheby_order=8, cheby_flatness=1.5, svd_rank=512,
                filter_alpha=0.2, cheby_beta=0.4)
