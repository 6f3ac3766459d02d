"""`gnnrec-jax evaluate --workdir DIR`: test metrics of a trained run (JSON last line)."""
from __future__ import annotations

import json


def add_arguments(p):
  p.add_argument("--workdir", required=True)
  p.add_argument("--split", choices=("test", "valid"), default="test")


def run(args) -> int:
  from gnnrec_jax.models import ease_runner
  from gnnrec_jax.evaluation import evaluate
  from gnnrec_jax.training import fit as train, workdir

  _, exp, model, params, inputs = workdir.load(args.workdir)
  cfg = exp.config
  target = exp.split.test if args.split == "test" else exp.split.valid
  exclude = [exp.split.train, exp.split.valid] if args.split == "test" else [exp.split.train]
  ks = tuple(int(k) for k in cfg.topk)
  if model is None:  # EASE
    import jax.numpy as jnp
    ease_params = (jnp.asarray(ease_runner.train_matrix(exp)), jnp.asarray(params["B"]))
    metrics = evaluate.evaluate_full_ranking(ease_runner.ease_scores, ease_params,
                                             num_users=exp.num_users,
                                             num_items=exp.num_items, exclude=exclude,
                                             target=target, ks=ks, batch_size=cfg.eval_batch_size)
  else:
    embed = train.make_embed_fn(model, num_users=exp.num_users, num_items=exp.num_items)
    if args.split == "test":  # exactly the trainer's test pass, cold-start blocks included
      test, blocks = train.evaluate_test(model, embed, params, inputs, exp)
      metrics = {**test, **blocks}
    else:
      metrics = train.evaluate_params(embed, params, inputs, exp, target=target, exclude=exclude)
  print(json.dumps(metrics, sort_keys=True))
  return 0
