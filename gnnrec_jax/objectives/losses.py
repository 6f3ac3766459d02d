"""Training losses as pure functions: `loss_fn(*, ...) -> (loss, aux)`.

Both losses take a `mask` ([B], 1 for real rows, 0 for padding rows of the last static-shape
batch): padded rows get weight 0 and every mean divides by the number of real rows.

L2 regularisation follows the official LightGCN code (He et al. 2020), not RecBole:
  reg = l2 * (|u0|^2 + |p0|^2 + |n0|^2) / 2 / B
on the batch's layer-0 (ego) vectors, i.e. `tf.nn.l2_loss` summed over the batch and divided by
the batch size. RecBole's `EmbLoss` (require_pow=False) instead sums un-squared norms, so the
same `l2` value is not comparable across the two.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _row_weights(mask: jax.Array | None, batch: int, dtype) -> tuple[jax.Array, jax.Array]:
  m = jnp.ones((batch,), dtype) if mask is None else mask.astype(dtype)
  return m, jnp.maximum(jnp.sum(m), 1.0)  # max: an all-padding batch gives 0, not NaN


def _sq(x: jax.Array) -> jax.Array:
  """Squared L2 norm per batch row, summing every axis after the first ([B] or [B, K] input)."""
  return jnp.sum(jnp.square(x).reshape(x.shape[0], -1), axis=-1)


def l2_reg(*, user_ego: jax.Array, pos_ego: jax.Array, neg_ego: jax.Array,
           mask: jax.Array | None = None) -> jax.Array:
  """(|u0|^2 + |p0|^2 + |n0|^2) / 2 / B over real rows; neg_ego may be [B, d] or [B, K, d]."""
  m, count = _row_weights(mask, user_ego.shape[0], user_ego.dtype)
  per_row = _sq(user_ego) + _sq(pos_ego) + _sq(neg_ego)
  return jnp.sum(m * per_row) / 2.0 / count


def bpr_loss(*, user: jax.Array, pos: jax.Array, neg: jax.Array, user_ego: jax.Array,
             pos_ego: jax.Array, neg_ego: jax.Array, l2: float,
             mask: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Bayesian personalised ranking (Rendle et al. 2009) with LightGCN's L2 term.

  loss = mean_b softplus(-(u_b . p_b - u_b . n_b)) + l2 * (|u0|^2 + |p0|^2 + |n0|^2) / 2 / B.
  softplus(-x) = -log sigmoid(x), computed stably.

  Args:
    user, pos, neg: [B, d] final vectors of the users, positive and negative items; `neg` may
      be [B, K, d], in which case the ranking term is averaged over the K negatives.
    user_ego, pos_ego, neg_ego: the matching layer-0 vectors for the L2 term.
    l2: regularisation weight (LightGCN: 1e-4).
    mask: optional [B] row weights (0 for padding rows).

  Returns:
    (loss, {"bpr": ranking term, "reg": l2 * reg term, "pairwise_acc": fraction of real rows
    (and negatives) with u.p > u.n}).
  """
  m, count = _row_weights(mask, user.shape[0], user.dtype)
  pos_score = jnp.sum(user * pos, axis=-1)  # [B]
  if neg.ndim == 3:
    neg_score = jnp.einsum("bd,bkd->bk", user, neg)  # [B, K]
    diff = pos_score[:, None] - neg_score
    rank = jnp.mean(jax.nn.softplus(-diff), axis=-1)
    acc = jnp.mean((diff > 0).astype(user.dtype), axis=-1)
  else:
    diff = pos_score - jnp.sum(user * neg, axis=-1)
    rank = jax.nn.softplus(-diff)
    acc = (diff > 0).astype(user.dtype)
  rank = jnp.sum(m * rank) / count
  reg = l2 * l2_reg(user_ego=user_ego, pos_ego=pos_ego, neg_ego=neg_ego, mask=mask)
  return rank + reg, {"bpr": rank, "reg": reg, "pairwise_acc": jnp.sum(m * acc) / count}


def sampled_softmax_loss(*, user: jax.Array, pos: jax.Array, neg: jax.Array,
                         temperature: float, mask: jax.Array | None = None,
                         in_batch_negatives: bool = False, user_ego: jax.Array | None = None,
                         pos_ego: jax.Array | None = None, neg_ego: jax.Array | None = None,
                         l2: float = 0.0) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Sampled softmax / InfoNCE over one positive and K sampled negatives per row.

  loss_b = -log( exp(s_bp / tau) / (exp(s_bp / tau) + sum_k exp(s_bk / tau) [+ in-batch]) ),
  s = dot products. With `in_batch_negatives`, the other real rows' positives p_b' (b' != b) are
  added as negatives (as in SimCLR / SGL); an item that is also b's own positive is not removed,
  so a popular item can appear as both (a known false-negative source of in-batch sampling).
  Sampled negatives are not excluded from the user's positives either (see `sampling`).

  Args:
    user, pos: [B, d] final vectors.
    neg: [B, K, d] final vectors of the K sampled negatives per row.
    temperature: tau (> 0); 0.1-0.2 is typical for cosine-free dot products of small norm.
    mask: optional [B] row weights (0 for padding rows, which are also never used as in-batch
      negatives).
    in_batch_negatives: also use the other rows' positives as negatives.
    user_ego, pos_ego, neg_ego: layer-0 vectors for the L2 term (needed when l2 > 0).
    l2: weight of LightGCN's L2 term (see the module docstring).

  Returns:
    (loss, {"softmax": the InfoNCE term, "reg": l2 * reg term, "pos_prob": mean softmax
    probability of the positive}).
  """
  m, count = _row_weights(mask, user.shape[0], user.dtype)
  pos_logit = jnp.sum(user * pos, axis=-1, keepdims=True) / temperature  # [B, 1]
  neg_logits = jnp.einsum("bd,bkd->bk", user, neg) / temperature        # [B, K]
  logits = [pos_logit, neg_logits]
  if in_batch_negatives:
    batch = user.shape[0]
    cross = (user @ pos.T) / temperature  # [B, B]; column b' is row b''s positive
    valid = (m[None, :] > 0) & ~jnp.eye(batch, dtype=bool)
    logits.append(jnp.where(valid, cross, -jnp.inf))
  logits = jnp.concatenate(logits, axis=-1)
  log_prob = jax.nn.log_softmax(logits, axis=-1)[:, 0]  # [B]
  nce = -jnp.sum(m * log_prob) / count
  reg = jnp.zeros((), user.dtype)
  if l2:
    if user_ego is None or pos_ego is None or neg_ego is None:
      raise ValueError("l2 > 0 needs user_ego, pos_ego and neg_ego")
    reg = l2 * l2_reg(user_ego=user_ego, pos_ego=pos_ego, neg_ego=neg_ego, mask=mask)
  return nce + reg, {"softmax": nce, "reg": reg,
                     "pos_prob": jnp.sum(m * jnp.exp(log_prob)) / count}


def full_softmax_loss(*, user: jax.Array, items: jax.Array, pos_item: jax.Array,
                      temperature: float, mask: jax.Array | None = None,
                      user_ego: jax.Array | None = None, pos_ego: jax.Array | None = None,
                      l2: float = 0.0) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Softmax over the whole catalogue: loss_b = -log softmax(u_b . V^T / tau)[p_b].

  No sampling: every item is a negative (the exact softmax that sampled softmax estimates), at
  the cost of a [B, I] matmul per step, which for catalogues of a few thousand items is cheaper
  than gathering [B, K, d] sampled negatives. With the L2 term of the module docstring on the
  users' and positives' layer-0 vectors.

  Args:
    user: [B, d] final user vectors.
    items: [I, d] final vectors of every item.
    pos_item: [B] int32 the positive item of each row (indices into `items`).
    temperature: tau (> 0).
    mask: optional [B] row weights (0 for padding rows).
    user_ego, pos_ego: [B, d] layer-0 vectors for the L2 term (needed when l2 > 0).
    l2: weight of the L2 term.

  Returns:
    (loss, {"softmax": the softmax term, "reg": l2 * reg term, "pos_prob": mean probability of
    the positive}).
  """
  m, count = _row_weights(mask, user.shape[0], user.dtype)
  logits = user @ items.T / temperature  # [B, I]
  log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), pos_item[:, None],
                                 axis=1)[:, 0]  # [B]
  nce = -jnp.sum(m * log_prob) / count
  reg = jnp.zeros((), user.dtype)
  if l2:
    if user_ego is None or pos_ego is None:
      raise ValueError("l2 > 0 needs user_ego and pos_ego")
    reg = l2 * jnp.sum(m * (_sq(user_ego) + _sq(pos_ego))) / 2.0 / count
  return nce + reg, {"softmax": nce, "reg": reg,
                     "pos_prob": jnp.sum(m * jnp.exp(log_prob)) / count}


# Friendship objectives (`config.social_loss`), see `friendship_loss`.
FRIEND_LOSSES = ("bpr", "softmax")


def friendship_loss(*, user: jax.Array, friend: jax.Array, neg: jax.Array, weight: float,
                    kind: str = "bpr", temperature: float = 0.1,
                    user_ego: jax.Array | None = None, friend_ego: jax.Array | None = None,
                    neg_ego: jax.Array | None = None, l2: float = 0.0,
                    mask: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """A user-user ranking term: each friend above K random users, scored like items.

  Link prediction with the recommender's own score (final_a . final_b), added to the item loss
  so that one set of user vectors serves both tasks: BPR's pairwise rule (Rendle et al. 2009)
  or a sampled softmax, with friends in place of items and random users as negatives:

    bpr:     term = mean_b mean_k softplus(-(a_b . f_b - a_b . n_bk))
    softmax: term = mean_b -log softmax([a_b . f_b, a_b . n_b1, ...] / tau)[0]

  plus LightGCN's L2 rule on the rows' layer-0 vectors when `l2 > 0`, all times `weight`.

  Args:
    user: [B, d] final vectors of the users a of sampled friendships (a, f).
    friend: [B, d] final vectors of their friends f.
    neg: [B, K, d] final vectors of K users drawn at random per row.
    weight: the term's weight (`config.social_weight`).
    kind: "bpr" | "softmax".
    temperature: tau of "softmax".
    user_ego, friend_ego, neg_ego: the matching layer-0 vectors (needed when l2 > 0).
    l2: weight of the L2 term (the item loss's `l2`).
    mask: optional [B] row weights.

  Returns:
    (weight * (term + reg), {"friend": term, "friend_reg": l2 * reg, "friend_acc": fraction of
    (row, negative) pairs with a.f > a.n}).
  """
  if kind not in FRIEND_LOSSES:
    raise ValueError(f"unknown friendship loss {kind!r}; choose one of {', '.join(FRIEND_LOSSES)}")
  m, count = _row_weights(mask, user.shape[0], user.dtype)
  pos_score = jnp.sum(user * friend, axis=-1)  # [B]
  neg_score = jnp.einsum("bd,bkd->bk", user, neg)  # [B, K]
  diff = pos_score[:, None] - neg_score  # [B, K]
  if kind == "bpr":
    per_row = jnp.mean(jax.nn.softplus(-diff), axis=-1)  # [B]
  else:
    logits = jnp.concatenate([pos_score[:, None], neg_score], axis=-1) / temperature
    per_row = -jax.nn.log_softmax(logits, axis=-1)[:, 0]  # [B]
  term = jnp.sum(m * per_row) / count
  reg = jnp.zeros((), user.dtype)
  if l2:
    if user_ego is None or friend_ego is None or neg_ego is None:
      raise ValueError("l2 > 0 needs user_ego, friend_ego and neg_ego")
    reg = l2 * l2_reg(user_ego=user_ego, pos_ego=friend_ego, neg_ego=neg_ego, mask=mask)
  acc = jnp.sum(m * jnp.mean((diff > 0).astype(user.dtype), axis=-1)) / count
  return weight * (term + reg), {"friend": term, "friend_reg": reg, "friend_acc": acc}
