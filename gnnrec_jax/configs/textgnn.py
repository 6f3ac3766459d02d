"""The text-first GNN (AlphaRec, ICLR 2025). `gnnrec-jax train --model textgnn --dataset scientific --workdir runs/tg`.

Frozen all-MiniLM-L6-v2 item vectors -> MLP -> LightGCN propagation -> cosine InfoNCE, no ID
embeddings (gnnrec_jax/models/textgnn.py). AlphaRec's reference code (LehengTHU/AlphaRec,
README commands and parse.py) trains with 2 layers, tau 0.15-0.2, 256 sampled negatives, cosine
scores in training and prediction, Adam lr 5e-4, batch 4096, weight decay 1e-6, and an MLP of
about 4.7M parameters (hidden 1536-6144 for 768-4096-d LM vectors); its users are the MLP of
the mean LM vector of their items (`user_input=text` here), ours by default the mean of the
items' mapped vectors (`history`), which embeds a new user exactly as a trained one.

Measured recipes (benchmarks/RESULTS.md, issue 12 section): on Scientific, benchmarks/scientific.py
`TEXTGNN` (full softmax, d 256, tau 0.1, lr 2e-3, target_out, 12 epochs); on cold items, warm
items kept as the ID-only model's (`use_id_embedding=true user_input=table score=dot
warm_text=false cold_view=1`, benchmarks/cold_start.py `textgnn_warm_id_cold_view`).
"""
from gnnrec_jax.config import Config


def get_config() -> Config:
  return Config(
      model="textgnn",
      text_features="history",   # items: their text vectors; users: the mean (user_input=text)
      use_id_embedding=False,    # text-first: no ID table (True adds an item ID residual)
      user_input="history",      # a user is the mean of its items' mapped vectors
      conv="lightgcn",
      num_layers=2,              # AlphaRec's 2 layers
      mlp_hidden=1024,
      score="cosine",            # AlphaRec's train_norm + pred_norm
      loss="softmax",            # InfoNCE over sampled negatives
      num_negatives=256,         # AlphaRec's neg_sample
      softmax_temperature=0.15,  # AlphaRec's tau on Movies & TV and Books
      l2=0.0,                    # no embedding table to regularise
      lr=5e-4,                   # AlphaRec's lr
      batch_size=4096,           # AlphaRec's batch size
      epochs=100,
      eval_every=2,
      patience=5,
  )
