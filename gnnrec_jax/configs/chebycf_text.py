"""ChebyCF on an item graph with text in it. `gnnrec-jax train --config chebycf_text --dataset ml-100k --workdir runs/chebycf_text`.

configs/chebycf.py (its valid-chosen ml-100k setting: K 8, phi 15, alpha .5, beta .2, k 64) with
the MiniLM item vectors' similarity mixed into the normalised item graph at w = .5
(`filter_text_weight`, models/graph_filters.py: L' = (1 - w) R~^T R~ + w S). Chosen on valid
NDCG@20 over w in {0, .1, .2, .3, .5, .7, .9} (benchmarks/text_closed_forms.py; RESULTS.md, issue
25 section): valid .2953 (w = 0: .2891), test NDCG@20 .3527, Recall@20 .4109 (w = 0: .3458 /
.4024). On Scientific the same mix lifts valid NDCG@10 from .0824 to .0859 (w .7, phi 1.5).
"""
from gnnrec_jax.configs import chebycf


def get_config():
  return chebycf.get_config().replace(text_features="none", filter_text_weight=0.5)
