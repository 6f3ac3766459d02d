"""NGCF (Wang et al., SIGIR 2019). `gnnrec-jax train --model ngcf --dataset ml-100k --workdir runs/ngcf`."""
from gnnrec_jax.config import Config
from gnnrec_jax.configs import SOFTMAX_TRAINING


def get_config() -> Config:
  return Config(
      model="ngcf",
      layer_combine="concat",  # NGCF concatenates the L2-normalised layer outputs
      dropout=0.1,             # NGCF/RecBole message dropout
      # The LightGCN-tuned recipe, not tuned for NGCF itself (its l2 1e-2 replaces RecBole's
      # 1e-5; see benchmarks/ml100k_tuning.md).
      **SOFTMAX_TRAINING,
  )
