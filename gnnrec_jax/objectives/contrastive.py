"""Contrastive and uniformity objectives for any embedding model, as pure functions.

Three families, each taking the batch's final vectors (and, where a paper needs them, a second
view or sampled negatives), with the conventions of `losses.py`: keyword-only arguments, a `mask`
([B], 1 for real rows, 0 for padding rows of the last static-shape batch) and `(loss, aux)`
returns. Kept apart from `losses.py` because, with their docstrings, they would take it past
~400 lines; the ranking losses (BPR, sampled and full softmax) stay there.

- SimGCL (Yu et al., SIGIR 2022) / XSimGCL (Yu et al., TKDE 2023): `perturb` (noise added after
  each propagation layer) and `simgcl_loss`, the InfoNCE between two views of the batch's unique
  users and unique items; `cross_layer_view` picks XSimGCL's layer-l* view.
- DirectAU (Wang et al., KDD 2022): `alignment`, `uniformity`, `directau_loss`.
- SimpleX (Mao et al., CIKM 2021): `cosine_contrastive_loss` (CCL).

Every cosine is taken on vectors scaled by 1 / max(|x|, 1e-12) (PyTorch's `F.normalize`, which
the reference code uses), so a zero vector stays zero instead of becoming NaN.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from gnnrec_jax.objectives.losses import l2_reg

# A finite "minus infinity" for masked logits: exp underflows to exactly 0, and, unlike -inf, a
# row whose entries are all masked gives finite values and gradients (never NaN).
_MASKED = -1e9


def _weights(mask: jax.Array | None, batch: int, dtype) -> tuple[jax.Array, jax.Array]:
  m = jnp.ones((batch,), dtype) if mask is None else mask.astype(dtype)
  return m, jnp.maximum(jnp.sum(m), 1.0)  # max: an all-padding batch gives 0, not NaN


def unit(x: jax.Array) -> jax.Array:
  """x / max(|x|, 1e-12) along the last axis (`F.normalize`): unit rows, zero rows stay zero."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


# --- SimGCL / XSimGCL --------------------------------------------------------------------------


def perturb(rng: jax.Array, e: jax.Array, *, eps: float) -> jax.Array:
  """SimGCL's uniform-noise augmentation (eq. 7): e' = e + eps * sign(e) * normalize(U(0,1)).

  The noise vector has length eps and lies in e's orthant (sign(e) flips the non-negative
  uniform draw), so a view rotates each vector by a bounded angle without flipping it. SimGCL
  adds it after every propagation layer (the perturbed output is what the next layer
  propagates); XSimGCL does the same in its single forward pass.

  Args:
    rng: a PRNG key; two views need two keys.
    e: [N, d] (or [..., d]) layer outputs.
    eps: the noise radius (SimGCL: 0.1; XSimGCL: 0.2).

  Returns:
    [N, d], e plus noise of norm eps in every row whose entries are all non-zero.
  """
  noise = jax.random.uniform(rng, e.shape, e.dtype)  # U(0, 1)
  return e + eps * jnp.sign(e) * unit(noise)


def first_occurrence(ids: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """[B] bool: True at the first real row of each distinct id, False at repeats and padding.

  A static-shape stand-in for `unique(ids)`: a loss weighted by it equals the loss over the
  unique ids, since repeated rows carry identical vectors.

  Args:
    ids: [B] int node ids (>= 0).
    mask: optional [B] row weights (0 for padding rows).
  """
  real = jnp.ones(ids.shape, bool) if mask is None else mask > 0
  key = jnp.where(real, ids, -1)  # padding rows share an id no real row has
  order = jnp.argsort(key, stable=True)
  sorted_key = key[order]
  first_sorted = jnp.concatenate([jnp.ones((1,), bool), sorted_key[1:] != sorted_key[:-1]])
  return jnp.zeros(ids.shape, bool).at[order].set(first_sorted) & real


def info_nce(view1: jax.Array, view2: jax.Array, *, temperature: float,
             mask: jax.Array | None = None) -> jax.Array:
  """Cosine InfoNCE between two views, the other rows of view 2 as negatives (SELFRec's form).

  loss = mean_b -log( exp(z1_b . z2_b / tau) / sum_b' exp(z1_b . z2_b' / tau) ),
  z = unit(view); the denominator includes the positive b' = b (as SELFRec's `InfoNCE`).

  Args:
    view1, view2: [B, d] two views of the same B nodes.
    temperature: tau (> 0).
    mask: optional [B] row weights; rows with weight 0 are neither anchors nor negatives.

  Returns:
    The scalar loss (0 for an all-padding batch).
  """
  m, count = _weights(mask, view1.shape[0], view1.dtype)
  logits = unit(view1) @ unit(view2).T / temperature                     # [B, B]
  logits = jnp.where(m[None, :] > 0, logits, _MASKED)
  log_prob = jnp.diagonal(logits) - jax.nn.logsumexp(logits, axis=-1)    # [B]
  return -jnp.sum(jnp.where(m > 0, m * log_prob, 0.0)) / count


def simgcl_loss(*, user_view1: jax.Array, user_view2: jax.Array, item_view1: jax.Array,
                item_view2: jax.Array, users: jax.Array, items: jax.Array, temperature: float,
                weight: float, mask: jax.Array | None = None
                ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The SimGCL / XSimGCL contrastive term: lambda * (InfoNCE(users) + InfoNCE(items)).

  In-batch negatives are the batch's *unique* users (items), as in the reference code (SELFRec,
  `torch.unique` on the batch's indices); duplicates are dropped with `first_occurrence`, so
  the shapes stay static.

  The two recipes differ only in where the views come from (the caller's model):
    SimGCL:  two perturbed forward passes (noise after every layer) give view 1 and view 2; the
      ranking loss uses a third, clean pass. Published (SELFRec's yelp2018 config): lambda 0.5,
      eps 0.1, tau 0.2, 2 layers, BPR, lr 1e-3, batch 2048, reg 1e-4.
    XSimGCL: one perturbed pass; view 1 is its final (layer-combined) vector, which the ranking
      loss also uses, and view 2 its layer-l* output (`cross_layer_view`). Published (SELFRec's
      yelp2018 config): lambda 0.2, eps 0.2, tau 0.15, l* = 1, 2 layers.

  Args:
    user_view1, user_view2: [B, d] the batch rows' users in the two views.
    item_view1, item_view2: [B, d] the batch rows' positive items in the two views.
    users, items: [B] node ids of those rows (for the unique-node rule).
    temperature: tau.
    weight: lambda.
    mask: optional [B] row weights (0 for padding rows, which never enter).

  Returns:
    (weight * (user term + item term), {"cl_user": user InfoNCE, "cl_item": item InfoNCE}).
  """
  user_term = info_nce(user_view1, user_view2, temperature=temperature,
                       mask=first_occurrence(users, mask))
  item_term = info_nce(item_view1, item_view2, temperature=temperature,
                       mask=first_occurrence(items, mask))
  return weight * (user_term + item_term), {"cl_user": user_term, "cl_item": item_term}


def cross_layer_view(layers: Sequence[jax.Array], *, layer: int) -> jax.Array:
  """XSimGCL's contrastive view: the output of propagation layer l* (1-based).

  Args:
    layers: [h^0, h^1, ..., h^L], the (perturbed) layer-0 input and every layer's output, as a
      layer stack computes them ([N, d] each).
    layer: l* in 1..L (XSimGCL: 1, i.e. the first layer's output against the final vector).

  Raises:
    ValueError: l* outside 1..L.
  """
  if not 1 <= layer < len(layers):
    raise ValueError(f"cross-layer view l*={layer} needs 1 <= l* <= {len(layers) - 1} "
                     f"(the stack has {len(layers) - 1} layers)")
  return layers[layer]


# --- DirectAU ----------------------------------------------------------------------------------


def alignment(user: jax.Array, item: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
  """DirectAU's alignment (eq. 5): mean over real rows of ||unit(u_b) - unit(i_b)||^2."""
  m, count = _weights(mask, user.shape[0], user.dtype)
  return jnp.sum(m * jnp.sum(jnp.square(unit(user) - unit(item)), axis=-1)) / count


def uniformity(x: jax.Array, *, mask: jax.Array | None = None, t: float = 2.0) -> jax.Array:
  """DirectAU's uniformity (eq. 6): log mean_{b < b'} exp(-t ||unit(x_b) - unit(x_b')||^2).

  The mean runs over the pairs of distinct real rows (`torch.pdist`'s pairs); padding rows
  (weight 0) enter no pair. Repeated ids are pairs at distance 0 unless `mask` drops them
  (`first_occurrence`), which the reference code does not do.

  Args:
    x: [B, d] vectors.
    mask: optional [B] weights; a row enters the pairs when its weight is > 0.
    t: the kernel's scale (DirectAU: 2).

  Returns:
    The scalar log-mean (<= 0), or 0 when fewer than two rows are real.
  """
  b = x.shape[0]
  real = jnp.ones((b,), bool) if mask is None else mask > 0
  z = unit(x)
  # |a - b|^2 = 2 - 2 a.b for unit rows; clipped because rounding can make it slightly negative.
  sq = jnp.maximum(2.0 - 2.0 * (z @ z.T), 0.0)                          # [B, B]
  pairs = jnp.triu(jnp.ones((b, b), bool), k=1) & real[:, None] & real[None, :]
  num_pairs = jnp.sum(pairs)
  lse = jax.nn.logsumexp(jnp.where(pairs, -t * sq, _MASKED))
  return jnp.where(num_pairs > 0, lse - jnp.log(jnp.maximum(num_pairs, 1)), 0.0)


def directau_loss(*, user: jax.Array, item: jax.Array, gamma: float,
                  mask: jax.Array | None = None, users: jax.Array | None = None,
                  items: jax.Array | None = None, user_ego: jax.Array | None = None,
                  item_ego: jax.Array | None = None, l2: float = 0.0
                  ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """DirectAU: alignment + gamma * (uniformity(users) + uniformity(items)) / 2.

  No negatives: uniformity over the batch's users and, separately, its positive items pushes
  vectors apart on the sphere. Published settings: the authors' repository (THUwangcy/DirectAU)
  tunes gamma in {0.01, 0.1, 0.2, 0.5, 1, 2, 5, 10} and weight decay in {0, 1e-8, 1e-6, 1e-4},
  with batch 256, lr 1e-3, Adam; its default gamma is 1 (MF encoder); SELFRec's LightGCN
  encoder (3 layers) uses gamma 2. Both references rank by the dot product of the raw
  (unnormalised) final vectors, although the loss only sees their directions.

  Args:
    user, item: [B, d] final vectors of the batch's users and positive items.
    gamma: uniformity weight.
    mask: optional [B] row weights (0 for padding rows, which enter neither term).
    users, items: optional [B] node ids; when given, uniformity runs over the unique users
      (items) of the batch instead of its rows (the reference uses rows; repeats then add pairs
      at distance 0).
    user_ego, item_ego, l2: LightGCN's L2 term on the layer-0 vectors (see `losses`), optional.

  Returns:
    (loss, {"align", "uniform_user", "uniform_item", "reg"}).
  """
  align = alignment(user, item, mask=mask)
  umask = mask if users is None else first_occurrence(users, mask)
  imask = mask if items is None else first_occurrence(items, mask)
  unif_u = uniformity(user, mask=umask)
  unif_i = uniformity(item, mask=imask)
  reg = jnp.zeros((), user.dtype)
  if l2:
    if user_ego is None or item_ego is None:
      raise ValueError("l2 > 0 needs user_ego and item_ego")
    # No negatives here: a zero "negative" makes l2_reg (|u0|^2 + |i0|^2) / 2 / B.
    reg = l2 * l2_reg(user_ego=user_ego, pos_ego=item_ego, neg_ego=jnp.zeros_like(item_ego),
                      mask=mask)
  loss = align + gamma * (unif_u + unif_i) / 2 + reg
  return loss, {"align": align, "uniform_user": unif_u, "uniform_item": unif_i, "reg": reg}


# --- SimpleX -----------------------------------------------------------------------------------


def cosine_contrastive_loss(*, user: jax.Array, pos: jax.Array, neg: jax.Array, margin: float,
                            negative_weight: float | None = None,
                            mask: jax.Array | None = None, user_ego: jax.Array | None = None,
                            pos_ego: jax.Array | None = None, neg_ego: jax.Array | None = None,
                            l2: float = 0.0) -> tuple[jax.Array, dict[str, jax.Array]]:
  """SimpleX's cosine contrastive loss (CCL, eq. 2).

  loss_b = max(0, 1 - cos(u_b, p_b)) + w / K * sum_k max(0, cos(u_b, n_bk) - m).

  Only negatives whose cosine exceeds the margin m contribute, so many easy negatives cost
  nothing; w balances the negative term against the positive one. The max on the positive
  term is the reference code's (`relu(1 - y)`; cos <= 1 makes it a no-op up to rounding).
  Published settings (RecZoo's SimpleX configs): Gowalla m 0.9, w 250, K 2000, batch 256,
  lr 1e-4; MovieLens-1M m 0.9, w 10, K 1500; RecBole's SimpleX defaults m 0.5, w 10. The
  reference's `negative_weight=None` means w = K (a plain sum over negatives).

  Args:
    user, pos: [B, d] final vectors (scored by cosine whatever their norm).
    neg: [B, K, d] final vectors of each row's sampled negatives, or [K, d] negatives shared by
      every row (a [B, K] matmul instead of a [B, K, d] gather: with K = I, the whole catalogue).
    margin: m, in (-1, 1).
    negative_weight: w; None for w = K.
    mask: optional [B] row weights (0 for padding rows).
    user_ego, pos_ego, neg_ego, l2: LightGCN's L2 term on the layer-0 vectors, optional;
      shared negatives ([K, d] neg_ego) enter it once per batch, not once per row.

  Returns:
    (loss, {"ccl": the CCL term, "reg": l2 * reg term, "pos_cos": mean positive cosine,
    "active_neg": fraction of negatives above the margin}).
  """
  m, count = _weights(mask, user.shape[0], user.dtype)
  u = unit(user)
  pos_cos = jnp.sum(u * unit(pos), axis=-1)                              # [B]
  if neg.ndim == 2:
    neg_cos = u @ unit(neg).T                                            # [B, K]
  else:
    neg_cos = jnp.einsum("bd,bkd->bk", u, unit(neg))                     # [B, K]
  k = neg_cos.shape[1]
  w = float(k) if negative_weight is None else negative_weight
  per_row = (jax.nn.relu(1.0 - pos_cos)
             + w * jnp.mean(jax.nn.relu(neg_cos - margin), axis=-1))     # [B]
  ccl = jnp.sum(m * per_row) / count
  reg = jnp.zeros((), user.dtype)
  if l2:
    if user_ego is None or pos_ego is None or neg_ego is None:
      raise ValueError("l2 > 0 needs user_ego, pos_ego and neg_ego")
    if neg_ego.ndim == 2:  # shared: each negative's |n0|^2 once, over the same count
      reg = l2 * (l2_reg(user_ego=user_ego, pos_ego=pos_ego, neg_ego=jnp.zeros_like(pos_ego),
                         mask=mask) + jnp.sum(jnp.square(neg_ego)) / 2.0 / count)
    else:
      reg = l2 * l2_reg(user_ego=user_ego, pos_ego=pos_ego, neg_ego=neg_ego, mask=mask)
  active = jnp.mean((neg_cos > margin).astype(user.dtype), axis=-1)
  return ccl + reg, {"ccl": ccl, "reg": reg, "pos_cos": jnp.sum(m * pos_cos) / count,
                     "active_neg": jnp.sum(m * active) / count}
