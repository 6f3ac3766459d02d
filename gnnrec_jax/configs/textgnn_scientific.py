"""textgnn's measured recipe on Amazon Scientific. `gnnrec-jax train --model textgnn --dataset scientific --workdir runs/tg_sci`.

`train --model textgnn --dataset scientific` starts from this config (configs.RECIPES); the
dataset's protocol (data/scientific.py `PROTOCOL`: test histories train + valid, cut-offs
10/20/50, selection on valid NDCG@10) comes with the dataset. Measured (benchmarks/RESULTS.md,
issue 12 section; benchmarks/scientific.py `TEXTGNN`, the same fields): valid NDCG@10 .0883,
test Recall@10 .1194, NDCG@10 .0770, Recall@50 .2263 (EASE .0909 / .1967; VQ-Rec .0643 / .2369).
Set by hand on valid NDCG@10: a softmax over the whole catalogue (4,385 items is cheap on a CPU),
d 256, tau 0.1 (valid .0883 against .0870 at 0.15, .0867 at 0.07), lr 2e-3 so that 12 epochs
suffice on 2 cores, each training row without its target edge (`target_out`: valid .0889 against
.0853 without).
"""
from gnnrec_jax.configs import textgnn


def get_config():
  return textgnn.get_config().replace(
      loss="full_softmax", embed_dim=256, softmax_temperature=0.1, lr=2e-3, target_out=True,
      epochs=12, eval_every=3, patience=2)
