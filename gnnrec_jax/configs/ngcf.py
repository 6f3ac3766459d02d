"""NGCF (Wang et al., SIGIR 2019). `gnnrec-jax train --model ngcf --dataset ml-100k --workdir runs/ngcf`."""
from gnnrec_jax.config import Config
from gnnrec_jax.configs import SOFTMAX_TRAINING


def get_config() -> Config:
  return Config(model="ngcf", **{
      **SOFTMAX_TRAINING,        # the LightGCN-tuned recipe (benchmarks/ml100k_tuning.md)
      "layer_combine": "concat",  # NGCF concatenates the L2-normalised layer outputs
      "dropout": 0.1,             # NGCF/RecBole message dropout
      # l2 1e-1: valid NDCG@20 .2517 vs .2330 at the recipe's 1e-2, which overfits by epoch 4
      # (RecBole's 1e-5 is on another scale: its EmbLoss sums un-squared norms).
      "l2": 1e-1,
  })
