"""The seed document's rule, as written. `gnnrec-jax train --config seed --dataset ml-100k --workdir runs/seed`.

Seed §4.1 (/work/shared/seed/000_edfa8df22486af57.txt, beside the repository):

  alpha_ij^(t+1) = softmax_{j in N(i)}(u_i^(t) . v_j^(t))     raw dot products: no 1/sqrt(d),
                                                               tau = 1, no query/key maps
  u_i^(t+1)      = sigma(sum_{j in N(i)} alpha_ij v_j^(t))     sigma = identity (§4.3 prints
                                                               sigma([.5, .5]) = [.5, .5])
  first step:     alpha from the relation weights, normalised per receiver (§4.3 step 1)
  prediction:     u_i . v_j of the updated vectors (§4.1 item 4): the last layer, not a mean
  steps:          two, as in the worked example (§4.3)

`tests/test_seed_example.py` reproduces §4.3's example through this config. The tuned default
(`--model softmax_gnn`, configs/softmax_gnn.py) departs from it in five places: 1/sqrt(d) logits,
half LightGCN norm in every alpha, the normalised adjacency in layer 1, three layers and their
mean. The cost of the literal rule on ml-100k is in benchmarks/RESULTS.md ("The seed's preset").
Training (sampled softmax, lr, L2, early stopping) is the default's, so the two differ only in
the rule.
"""
from gnnrec_jax.config import Config
from gnnrec_jax.configs import SOFTMAX_TRAINING


def get_config() -> Config:
  return Config(
      model="softmax_gnn",
      num_layers=2,             # the worked example's two steps
      layer_combine="last",     # predictions from the updated vectors u^(T) . v^(T)
      activation="identity",    # sigma as §4.3 applies it
      scale_logits=False,       # softmax(u . v): raw dot products
      temperature=1.0,
      qk_proj=False,            # q = k = the node vector itself
      heads=1,
      attention_mix=1.0,        # pure softmax alphas, no LightGCN norm mixed in
      initial_alpha="weights",  # step 1: the interaction weights w_ij / sum_k w_ik
      **SOFTMAX_TRAINING,       # the default's recipe, so that only the rule differs
  )
