"""textgnn's measured cold-start recipe on ml-100k. `gnnrec-jax train --config textgnn_cold --dataset ml-100k --workdir runs/tg_cold`.

The twelve fields of benchmarks/cold_start.py `textgnn_warm_id_cold_view`, run with
`--text-select warm`: 20% of the items (seed 2020) never in train (`split=cold_item`), warm items
their ID vectors alone (`warm_text=false`), users a learned table, dot scores, and the text map
trained by the cold view alone (`cold_view=1`: a softmax of the detached users over every train
item's text-only vector, as a cold item is scored; ALDI's decoupling). The sampled-softmax recipe
of configs/lightgcn.py (64 negatives, tau .2, l2 1e-2, lr 1e-2), an MLP of hidden width 256,
selection on valid WARM NDCG@20.
Measured (benchmarks/RESULTS.md, "ml-100k cold items"): test cold Recall@20 .3453, cold NDCG@20
.2888 (+104% over content-kNN), warm NDCG@20 .3368 (0.997 of ID-only LightGCN's .3377), all .2512
(epoch 16); at seed 2021 warm .3346 (0.990), cold .3292 / .2791.
"""
from gnnrec_jax.config import Config


def get_config() -> Config:
  # The benchmark's fields on the library defaults (its base config), not on configs/textgnn.py.
  return Config(
      model="textgnn", split="cold_item", cold_fraction=0.2, split_seed=2020,
      text_features="history",
      use_id_embedding=True, user_input="table", score="dot", warm_text=False, cold_view=1.0,
      mlp_hidden=256, num_layers=3, loss="softmax", num_negatives=64, softmax_temperature=0.2,
      l2=1e-2, lr=1e-2, batch_size=2048, epochs=60, eval_every=2, patience=3,
      select_metric="warm/ndcg@20")
