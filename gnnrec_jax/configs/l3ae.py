"""L3AE (Moon, Park and Lee, CIKM 2025), closed form. `gnnrec-jax train --model l3ae --dataset ml-100k --workdir runs/l3ae`.

EASE regularised toward the text-side EASE of the MiniLM item vectors (models/l3ae.py). The
authors' settings on Amazon 2023 with NV-Embed-v2 vectors (script/Table2_best_param_*.sh of
github.com/jaewan7599/L3AE_CIKM2025): Games lambda_X -50, lambda_F 5, lambda_E 150; Toys -100,
10, 200; Books -100, 10, 150. Defaults here: chosen on ml-100k's valid NDCG@20
(benchmarks/RESULTS.md, issue 25 section).
"""
from gnnrec_jax.config import Config


def get_config() -> Config:
  return Config(model="l3ae", text_features="none", l3ae_variant="l3ae", l3ae_reg_x=250.0,
                l3ae_reg_f=3.0, l3ae_reg_e=100.0)
