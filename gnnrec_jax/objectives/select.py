"""The objective a config chooses: the loss names it may give and the choice itself.

An embedding model computes its final and layer-0 vectors of every node; what it is trained on is
chosen here from the config's `loss` (and `cl`, `social_weight`), so that a model module holds no
loss of its own and `gnnrec_jax.config` reads the names from the place that defines them.

`config` below is any object with the fields read (a `gnnrec_jax.config.Config`): loss, l2,
num_negatives, neg_resample, softmax_temperature, directau_gamma, directau_unique, ccl_margin,
ccl_negative_weight, ccl_shared_negatives, social_weight, social_loss.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gnnrec_jax.objectives import contrastive, losses, sampling

LOSSES = ("bpr", "softmax", "full_softmax", "directau", "ccl")  # `ranking_loss`
CL_TERMS = ("", "simgcl", "xsimgcl")  # the contrastive term an embedding model adds


def ranking_loss(config, final, ego, inputs, batch, neg_rng, *, num_users: int, num_items: int):
  """`config.loss` on the batch rows of `final` ([N, d_out]) and `ego` ([N, d]).

  `batch` holds `user`, `item` ([B] int32) and `mask` ([B] float32); `inputs` may hold
  `neg_pool` ([I_warm] int32: negatives are drawn from it) and `seen` (the train CSR that
  `neg_resample` reads). Items sit at node `num_users + i`. Returns `(loss, aux)`.
  """
  cfg = config
  u, p = batch["user"], batch["item"] + num_users
  mask = batch["mask"]
  if cfg.loss == "full_softmax":
    return losses.full_softmax_loss(
        user=final[u], items=final[num_users:num_users + num_items],
        pos_item=batch["item"], user_ego=ego[u], pos_ego=ego[p], l2=cfg.l2,
        temperature=cfg.softmax_temperature, mask=mask)
  if cfg.loss == "directau":
    unique = cfg.directau_unique
    return contrastive.directau_loss(
        user=final[u], item=final[p], gamma=cfg.directau_gamma, mask=mask,
        users=u if unique else None, items=p if unique else None, user_ego=ego[u],
        item_ego=ego[p], l2=cfg.l2)
  pool = inputs.get("neg_pool")
  size = num_items if pool is None else pool.shape[0]  # static: the pool's length
  ccl_weight = cfg.ccl_negative_weight or None  # 0: w = K
  if cfg.loss == "ccl" and cfg.ccl_shared_negatives:
    # K negatives for the whole batch, a [B, K] matmul (the whole pool when K >= its size);
    # drawn with replacement, as the per-row negatives are.
    k = cfg.ccl_shared_negatives
    items = (jnp.arange(size, dtype=jnp.int32) if k >= size else
             jax.random.randint(neg_rng, (k,), 0, size, dtype=jnp.int32))
    n = (items if pool is None else pool[items]) + num_users  # [K]
    return contrastive.cosine_contrastive_loss(
        user=final[u], pos=final[p], neg=final[n], margin=cfg.ccl_margin,
        negative_weight=ccl_weight, mask=mask, user_ego=ego[u], pos_ego=ego[p],
        neg_ego=ego[n], l2=cfg.l2)
  neg = sampling.sample_negatives(neg_rng, batch_users=batch["user"], num_items=size,
                                  num_negatives=cfg.num_negatives)  # [B, K]
  if cfg.neg_resample:  # redraw negatives among the user's train items
    indptr, indices = inputs["seen"]
    neg = sampling.resample_if_seen(jax.random.fold_in(neg_rng, 1), neg,
                                    batch_users=batch["user"], num_items=size, indptr=indptr,
                                    indices=indices, num_retries=cfg.neg_resample, pool=pool)
  if pool is not None:
    neg = pool[neg]
  n = neg + num_users
  common = dict(user=final[u], pos=final[p], neg=final[n],  # [B, K, d]
                user_ego=ego[u], pos_ego=ego[p], neg_ego=ego[n], l2=cfg.l2, mask=mask)
  if cfg.loss == "bpr":
    return losses.bpr_loss(**common)
  if cfg.loss == "ccl":
    return contrastive.cosine_contrastive_loss(**common, margin=cfg.ccl_margin,
                                               negative_weight=ccl_weight)
  return losses.sampled_softmax_loss(**common, temperature=cfg.softmax_temperature)


def friend_term(config, final, ego, friends, batch, rng, *, num_users: int):
  """`losses.friendship_loss` over B train friendships drawn (with replacement, both directions
  alike) from `friends` ([2m, 2] directed pairs) and `num_negatives` random users per row.
  Returns `(term, aux)`."""
  cfg = config
  size = batch["user"].shape[0]  # static: as many friendships per step as item rows
  pick_rng, neg_rng = jax.random.split(rng)
  rows = friends[jax.random.randint(pick_rng, (size,), 0, friends.shape[0])]  # [B, 2]
  neg = jax.random.randint(neg_rng, (size, cfg.num_negatives), 0, num_users)  # [B, K]
  a, f = rows[:, 0], rows[:, 1]
  return losses.friendship_loss(
      user=final[a], friend=final[f], neg=final[neg], weight=cfg.social_weight,
      kind=cfg.social_loss, temperature=cfg.softmax_temperature, user_ego=ego[a],
      friend_ego=ego[f], neg_ego=ego[neg], l2=cfg.l2)


def masked_ranking_nll(loss: str, pos, neg, seen, *, temperature: float):
  """Per-row loss of scores with some negatives left out: [B] values.

  pos: [B, 1] the positive's score; neg: [B, K] candidate scores; seen: [B, K] bool, True for a
  candidate that must not count (the user's own train items). `loss="bpr"`: the mean softplus
  margin over the candidates kept; any other name: the softmax negative log-likelihood of the
  positive among them at `temperature`.
  """
  neg = jnp.where(seen, -jnp.inf, neg)
  if loss == "bpr":
    valid = jnp.isfinite(neg)
    return jnp.sum(jnp.where(valid, jax.nn.softplus(neg - pos), 0.0), -1) / jnp.maximum(
        valid.sum(-1), 1)
  logits = jnp.concatenate([pos, neg], axis=-1) / temperature
  return -jax.nn.log_softmax(logits, axis=-1)[:, 0]  # [B]
