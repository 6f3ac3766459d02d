"""BSPM-EM (Choi et al., SIGIR 2023), training-free. `gnnrec-jax train --model bspm --workdir runs/bspm`.

Defaults: chosen on ml-100k's validation set (the default dataset; benchmarks/RESULTS.md, "Graph
filters"), with the paper's Gowalla ODE settings otherwise. The paper's Gowalla hyperparameters
(its README's command, github.com/jeongwhanchoi/BSPM): ideal low-pass weight idl_beta = 0.2 over
factor_dim = 448 singular vectors; the ideal low-pass and blurring ODEs one Euler step to
T_idl = T_b = 1 (K_idl = K_b = 1); early merge (final_sharpening=True); sharpening one RK4 step
to T_s = 2.5 (K_s = 1); no t-point combination. (Yelp2018: 384 factors, idl_beta 0.3, Euler
T_s 1.2, t-point combination; Amazon-book: late merge, RK4 K_s = 2, T_s 2.2.) On Gowalla (test
Recall@20 .1920, as published):
  gnnrec-jax train --model bspm --dataset gowalla --workdir runs/bspm_gowalla \\
      --set filter_alpha=0.2 --set svd_rank=448 --set bspm_sharpen_time=2.5 \\
      --set eval_batch_size=128
"""
from gnnrec_jax.config import Config


def get_config() -> Config:
  # filter_alpha, svd_rank, T_s: best valid NDCG@20 (.2856) of T_s {.5, 1, 1.5, 2.5} x idl_beta
  # {.1, .2, .3} x svd_rank {64, 128} on ml-100k (the Gowalla T_s 2.5: .2474-.2699).
  return Config(model="bspm", filter_alpha=0.1, svd_rank=64,
                bspm_idl_solver="euler", bspm_idl_steps=1, bspm_idl_time=1.0,
                bspm_blur_solver="euler", bspm_blur_steps=1, bspm_blur_time=1.0,
                bspm_sharpen_solver="rk4", bspm_sharpen_steps=1, bspm_sharpen_time=1.5,
                bspm_early_merge=True, bspm_t_point_combination=False)
