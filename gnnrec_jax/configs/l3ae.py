"""L3AE (Moon, Park and Lee, CIKM 2025), closed form. `gnnrec-jax train --model l3ae --dataset ml-100k --workdir runs/l3ae`.

EASE regularised toward the text-side EASE of the MiniLM item vectors (models/l3ae.py). The
authors' settings on Amazon 2023 with NV-Embed-v2 vectors (script/Table2_best_param_*.sh of
github.com/jaewan7599/L3AE_CIKM2025): Games lambda_X -50, lambda_F 5, lambda_E 150; Toys -100,
10, 200; Books -100, 10, 150. Defaults here: the best valid NDCG@20 (.2950; EASE .2875) on
ml-100k (RecBole protocol) over benchmarks/text_closed_forms.py's three grids (lambda_X +
lambda_E in 250..1000, lambda_E in 30..2000, lambda_F in 1..100; benchmarks/RESULTS.md, issue 25
section): lambda_X -650, lambda_F 30, lambda_E 1000; test NDCG@20 .3581, Recall@20 .4047 (EASE
.3508 / .4007). As in the authors' settings lambda_X < 0: the pull toward C (lambda_E) carries
most of the regularisation.
"""
from gnnrec_jax.config import Config


def get_config() -> Config:
  return Config(model="l3ae", text_features="none", l3ae_variant="l3ae", l3ae_reg_x=-650.0,
                l3ae_reg_f=30.0, l3ae_reg_e=1000.0)
