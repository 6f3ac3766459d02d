"""A CPU-sized config for end-to-end tests: seconds, not minutes.

`gnnrec-jax train --config test --dataset ml-100k --workdir /tmp/t`
"""
from gnnrec_jax.config import Config


def get_config() -> Config:
  return Config(model="lightgcn", embed_dim=8, num_layers=2, batch_size=64, epochs=3,
                patience=2, topk=(5, 10), select_metric="ndcg@10", eval_batch_size=64)
