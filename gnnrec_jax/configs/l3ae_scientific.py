"""L3AE's measured recipe on Amazon Scientific. `gnnrec-jax train --model l3ae --dataset scientific --workdir runs/l3ae_sci`.

`train --model l3ae --dataset scientific` starts from this config (configs.RECIPES), with the
dataset's protocol (data/scientific.py `PROTOCOL`: test histories train + valid, selection on
valid NDCG@10). Chosen on valid NDCG@10 by benchmarks/text_closed_forms.py over lambda_X +
lambda_E in {10, 30, 100, 200, 300, 500}, lambda_E in {10, 30, 100, 150, 200, 300}, lambda_F in
{1, 3, 10, 30} (84 points; benchmarks/RESULTS.md, issue 25 section): lambda_X 0, lambda_F 3,
lambda_E 100, valid NDCG@10 .1024 (EASE .0909); test Recall@10 .1462, NDCG@10 .1004, Recall@50
.2415, NDCG@50 .1212 (EASE .1285 / .0909 / .1967 / .1059; textgnn .1194 / .0770 / .2263 / .1002).
"""
from gnnrec_jax.config import Config


def get_config() -> Config:
  return Config(model="l3ae", text_features="none", l3ae_variant="l3ae", l3ae_reg_x=0.0,
                l3ae_reg_f=3.0, l3ae_reg_e=100.0)
