"""Training objectives: pure functions of vectors and index arrays, no model and no config.

  losses.py       ranking losses (BPR, sampled and full softmax), the friendship term, L2
  contrastive.py  DirectAU, SimpleX's CCL, SimGCL/XSimGCL's InfoNCE and noise
  sampling.py     uniform negatives, redraws of seen items, train CSR
  select.py       the loss names a config may choose and the choice itself (`ranking_loss`)

Models (`gnnrec_jax.models`) import this package; it imports only `gnnrec_jax.data`.
"""
