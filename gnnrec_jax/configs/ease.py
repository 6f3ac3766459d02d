"""EASE (Steck, WWW 2019), closed form. `gnnrec-jax train --model ease --dataset ml-100k --workdir runs/ease`."""
from gnnrec_jax.config import Config


def get_config() -> Config:
  # ease_l2 350: best valid NDCG@20 (.2875) of {100, 200, 250, 300, 350, 400, 500, 750, 1000}
  # on ml-100k; RecBole's 250 gives .2867 (benchmarks/ml100k_tuning.md).
  return Config(model="ease", ease_l2=350.0)
