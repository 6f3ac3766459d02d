"""Top-K ranking metrics: a jittable JAX path and an independent NumPy reference.

Conventions (RecBole's full-ranking evaluation, Zhao et al. 2021):
  * Every item the user has not seen is a candidate ("full ranking", no sampled negatives);
    excluded items (train, and valid at test time) and items outside `item_mask` are never ranked.
  * The ground truth `T` of a user is their target items that are rankable (an item the ranker
    may not return can never count for or against it); duplicates count once.
  * Metrics are computed per user, then averaged over users with |T| >= 1.
  * Recall@K = hits/|T|; Precision@K = hits/K (K even when fewer than K items are rankable);
    Hit@K = 1[hits > 0]; MRR@K = 1/rank of the first hit (0 if none);
    NDCG@K = DCG/IDCG with binary gains, DCG = sum_{hits at rank r} 1/log2(r + 1), and IDCG the
    DCG of min(|T|, K) hits at the top; Coverage@K = distinct items in all users' top-K lists /
    number of rankable items.
  * Every K in `ks` is read from one top-max(K) call (a top-K list is a prefix of a longer one).

Ties: equal scores rank the lower item index first. This is what `lax.top_k` does and what a
stable `np.argsort(-scores)` does (both verified in tests/test_metrics.py). Two details make
the two agree exactly: `lax.top_k` orders floats totally (-0.0 below +0.0, NaN above all), so
scores are canonicalised with `where(s == 0, 0, s)` (`s + 0.0` would be simplified away by
XLA); and XLA on CPU flushes subnormal floats to zero, so subnormal scores tie with 0.
Scores must not be NaN (`gnnrec_jax.evaluation.evaluate` refuses them) and should be > -inf: -inf is the
exclusion sentinel, and a rankable item scored -inf may be listed after excluded slots.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

METRICS = ("recall", "ndcg", "precision", "hit", "mrr")


def rank_topk(scores: jax.Array, rankable: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """The `k` best rankable items of each row.

  Args:
    scores: [B, I] float scores.
    rankable: [B, I] bool, False for excluded / masked items.
    k: static list length (<= I).

  Returns:
    items: [B, k] int32 item indices, -1 where fewer than k items are rankable.
    top_scores: [B, k] their scores (-inf at the -1 slots).
  """
  scores = jnp.where(scores == 0, 0.0, scores)  # -0.0 -> +0.0: top_k orders floats totally
  masked = jnp.where(rankable, scores, -jnp.inf)
  top_scores, items = jax.lax.top_k(masked, k)
  # The gathered mask, not `score > -inf`, says which slots hold a real item.
  valid = jnp.take_along_axis(rankable, items, axis=1)
  return jnp.where(valid, items, -1), top_scores


def metrics_from_hits(
    hits: jax.Array, num_relevant: jax.Array, ks: Sequence[int]
) -> dict[str, jax.Array]:
  """Per-user metrics from the hit pattern of a top-max(ks) list.

  Args:
    hits: [B, K] 0/1 (bool or float), hits[b, r] = the item at rank r + 1 is relevant.
    num_relevant: [B] |T| per user (rows with 0 give 0 for every metric).
    ks: cut-offs, each <= K.

  Returns:
    {"recall@k", "ndcg@k", "precision@k", "hit@k", "mrr@k"} -> [B] float32.
  """
  hits = hits.astype(jnp.float32)
  big_k = hits.shape[1]
  ranks = jnp.arange(1, big_k + 1, dtype=jnp.float32)  # [K]
  discount = 1.0 / jnp.log2(ranks + 1.0)  # [K]
  cum_hits = jnp.cumsum(hits, axis=1)  # [B, K]
  cum_dcg = jnp.cumsum(hits * discount, axis=1)  # [B, K]
  cum_idcg = jnp.cumsum(discount)  # [K]
  # 1/rank is decreasing, so the largest hits/rank over a prefix is 1/(first hit's rank).
  rr = hits / ranks  # [B, K]
  n = num_relevant.astype(jnp.int32)
  safe_n = jnp.maximum(n, 1).astype(jnp.float32)
  out = {}
  for k in ks:
    h = cum_hits[:, k - 1]
    idcg = cum_idcg[jnp.clip(jnp.minimum(n, k) - 1, 0, big_k - 1)]
    has = n > 0
    out[f"recall@{k}"] = jnp.where(has, h / safe_n, 0.0)
    out[f"ndcg@{k}"] = jnp.where(has, cum_dcg[:, k - 1] / idcg, 0.0)
    out[f"precision@{k}"] = h / k
    out[f"hit@{k}"] = (h > 0).astype(jnp.float32)
    out[f"mrr@{k}"] = jnp.max(rr[:, :k], axis=1)
  return out


def dense_metrics(
    scores: jax.Array, relevant: jax.Array, rankable: jax.Array, ks: Sequence[int]
) -> tuple[dict[str, jax.Array], jax.Array, jax.Array]:
  """Per-user metrics from dense scores and dense relevance (jittable, `ks` static).

  Args:
    scores: [B, I] float scores.
    relevant: [B, I] bool ground truth (only rankable entries count).
    rankable: [B, I] bool candidates.
    ks: cut-offs.

  Returns:
    (per-user metrics as in `metrics_from_hits`, top items [B, max(ks)] with -1 padding,
     their scores [B, max(ks)]; a row with a NaN among its rankable scores has NaN first,
     since `lax.top_k` ranks NaN above everything).
  """
  relevant = relevant & rankable
  items, top_scores = rank_topk(scores, rankable, max(ks))
  hits = jnp.take_along_axis(relevant, jnp.maximum(items, 0), axis=1) & (items >= 0)
  return metrics_from_hits(hits, relevant.sum(axis=1), ks), items, top_scores


def coverage_update(covered: jax.Array, items: jax.Array, ks: Sequence[int]) -> jax.Array:
  """Marks the items of each user's top-k lists as recommended.

  Args:
    covered: [len(ks), I] bool, the items seen so far in top-k lists, one row per k.
    items: [B, max(ks)] int32 top items, -1 for empty slots (and for padded users).
    ks: cut-offs, aligned with the rows of `covered`.

  Returns:
    The updated [len(ks), I] bool.
  """
  num_items = covered.shape[1]
  rows = []
  for j, k in enumerate(ks):
    idx = jnp.where(items[:, :k] >= 0, items[:, :k], num_items)  # out of range -> dropped
    rows.append(covered[j].at[idx.ravel()].set(True, mode="drop"))
  return jnp.stack(rows)


def metrics_numpy(
    scores: np.ndarray,
    ground_truth: Sequence[Sequence[int]],
    exclude: Sequence[Sequence[int]],
    ks: Sequence[int],
    item_mask: np.ndarray | None = None,
) -> dict[str, float]:
  """Reference implementation: a plain loop over users with a stable `np.argsort`.

  Written independently of the JAX path (no shared code) to test it.

  Args:
    scores: [U, I] scores.
    ground_truth: per user, the target item indices (may be empty, may repeat).
    exclude: per user, the item indices never to rank (seen items).
    ks: cut-offs.
    item_mask: optional [I] bool, the rankable items.

  Returns:
    {"<metric>@k": mean over users with a non-empty ground truth, ..., "coverage@k",
     "num_users"}.
  """
  scores = np.asarray(scores, dtype=np.float64)
  num_users, num_items = scores.shape
  allowed = np.ones(num_items, bool) if item_mask is None else np.asarray(item_mask, bool)
  sums = {f"{m}@{k}": 0.0 for k in ks for m in METRICS}
  recommended = {k: set() for k in ks}
  evaluated = 0
  for u in range(num_users):
    seen = set(int(i) for i in exclude[u])
    candidates = [i for i in range(num_items) if allowed[i] and i not in seen]
    truth = set(int(i) for i in ground_truth[u]) & set(candidates)
    if not truth:
      continue
    evaluated += 1
    cand = np.array(candidates, dtype=np.int64)
    order = cand[np.argsort(-scores[u, cand], kind="stable")]
    for k in ks:
      top = [int(i) for i in order[:k]]
      recommended[k].update(top)
      hit_ranks = [r + 1 for r, i in enumerate(top) if i in truth]
      dcg = sum(1.0 / np.log2(r + 1) for r in hit_ranks)
      idcg = sum(1.0 / np.log2(r + 1) for r in range(1, min(len(truth), k) + 1))
      sums[f"recall@{k}"] += len(hit_ranks) / len(truth)
      sums[f"ndcg@{k}"] += dcg / idcg
      sums[f"precision@{k}"] += len(hit_ranks) / k
      sums[f"hit@{k}"] += 1.0 if hit_ranks else 0.0
      sums[f"mrr@{k}"] += 1.0 / hit_ranks[0] if hit_ranks else 0.0
  out = {key: (v / evaluated if evaluated else 0.0) for key, v in sums.items()}
  num_rankable = int(allowed.sum())
  for k in ks:
    out[f"coverage@{k}"] = len(recommended[k]) / num_rankable if num_rankable else 0.0
  out["num_users"] = evaluated
  return out
