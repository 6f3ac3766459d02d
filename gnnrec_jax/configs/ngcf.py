"""NGCF (Wang et al., SIGIR 2019). `gnnrec-jax train --model ngcf --dataset ml-100k --workdir runs/ngcf`."""
from gnnrec_jax.config import Config


def get_config() -> Config:
  return Config(
      model="ngcf",
      layer_combine="concat",  # NGCF concatenates the L2-normalised layer outputs
      dropout=0.1,             # NGCF/RecBole message dropout
      l2=1e-5,                 # RecBole's NGCF reg_weight
  )
