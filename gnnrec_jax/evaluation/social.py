"""Social recommendation: friendship splits, neighbourhood baselines, friend-ranking evaluation.

Two tasks use the trust network of a dataset (`Dataset.social`, [m, 2] undirected user pairs):

Every experiment on such a dataset splits the friendships into disjoint train / valid / test
pairs (`gnnrec_jax.data.friends`, `Experiment.friends`, ratios `config.friend_split`); a model
sees only the train pairs: as user–user edges of its propagation graph with `social=true`, and
as positives of the friendship objective with `social_weight > 0`
(`gnnrec_jax.objectives.losses.friendship_loss`).

Friend recommendation (user–user link prediction): every user with a held-out friend ranks ALL
users, itself and its train friends excluded (valid friends too at test time), exactly like
full-ranking item evaluation with "items" = users (`evaluate_friends` calls
`gnnrec_jax.evaluation.evaluate.evaluate_full_ranking`); `evaluate_model_friends` does it for a
trained model of an experiment, `recommend_friends` for one user (`recommend --friends`).

Scorers:
  * common neighbours, score(a, b) = |N(a) ∩ N(b)| over the train friendships, and Adamic–Adar,
    sum over common neighbours c of 1 / log|N(c)| (Liben-Nowell & Kleinberg 2007): the classic
    link-prediction baselines, as `neighbour_scores` (rows of A, then A W A).
  * a recommender's final user vectors, score(a, b) = final_a . final_b
    (`evaluate_friend_embeddings`). Trained on a graph with the train friendships as edges, a
    user's final vector mixes in its friends' vectors (and friends of friends), so friends of
    friends score high even with the item loss alone; the friendship objective trains the same
    dot product to rank friends directly, so one model serves both tasks.

The neighbour scorers hold one dense [U, U] matrix (Last.fm: 1,878 users, 14 MB), fine up to
~20k users.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from gnnrec_jax.data.friends import FriendSplit, canonical_pairs, split_friendships
from gnnrec_jax.data.types import Dataset, Interactions
from gnnrec_jax.errors import ConfigError, DataError
from gnnrec_jax.evaluation import evaluate
from gnnrec_jax.models.embedding import dot_scores

NEIGHBOUR_METHODS = ("common_neighbours", "adamic_adar")


def as_interactions(pairs: np.ndarray) -> Interactions:
  """Both directions of each pair as (user, "item" = friend) rows, for full-ranking evaluation."""
  p = np.asarray(pairs, np.int64).reshape(-1, 2)
  return Interactions(np.concatenate([p[:, 0], p[:, 1]]), np.concatenate([p[:, 1], p[:, 0]]))


def friend_matrix(pairs: np.ndarray, num_users: int) -> sp.csr_matrix:
  """The symmetric binary [U, U] friendship adjacency (zero diagonal)."""
  p = canonical_pairs(pairs, num_users)
  rows = np.concatenate([p[:, 0], p[:, 1]])
  cols = np.concatenate([p[:, 1], p[:, 0]])
  return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                       shape=(num_users, num_users))


def neighbour_score_params(train_pairs: np.ndarray, num_users: int, *,
                           method: str = "common_neighbours") -> tuple[jax.Array, jax.Array]:
  """Arrays for `neighbour_scores`: (A [U, U] float32, w [U] per-neighbour weights).

  common_neighbours: w = 1, so (A W A)[a, b] = |N(a) ∩ N(b)|.
  adamic_adar: w_c = 1 / log|N(c)| (0 for degree <= 1: such a c is no one's common neighbour
  twice, and log 1 = 0 would divide by zero).
  """
  if method not in NEIGHBOUR_METHODS:
    raise ConfigError(f"unknown neighbour method {method!r}; choose one of "
                      f"{', '.join(NEIGHBOUR_METHODS)}")
  adj = friend_matrix(train_pairs, num_users)
  deg = np.asarray(adj.sum(axis=1)).ravel()
  if method == "common_neighbours":
    w = np.ones(num_users)
  else:
    w = np.zeros(num_users)
    np.divide(1.0, np.log(np.maximum(deg, 1.0)), out=w, where=deg > 1)
  return jnp.asarray(adj.toarray()), jnp.asarray(w, jnp.float32)


def neighbour_scores(params: tuple[jax.Array, jax.Array], users: jax.Array) -> jax.Array:
  """Weighted common-neighbour counts of a batch of users against every user.

  Args:
    params: (A [U, U], w [U]) from `neighbour_score_params`.
    users: [B] int32 user indices.

  Returns:
    [B, U] scores, score[b, v] = sum_c A[users[b], c] w_c A[c, v].
  """
  adj, w = params
  return (adj[users] * w[None, :]) @ adj


def with_friendships(dataset: Dataset, pairs: np.ndarray) -> Dataset:
  """The dataset with `social` replaced by `pairs` (e.g. only the train friendships)."""
  return dataclasses.replace(dataset, social=canonical_pairs(pairs, dataset.num_users))


def evaluate_friends(score_fn, params, *, num_users: int, train: np.ndarray,
                     target: np.ndarray, also_exclude: Sequence[np.ndarray] = (),
                     ks: Sequence[int] = (20,), batch_size: int = 256) -> dict[str, float]:
  """Full-ranking friend recommendation metrics (Recall@K, NDCG@K, ... as for items).

  Args:
    score_fn: `score_fn(params, users [B]) -> [B, U]`, a module-level function (static under
      jit), e.g. `neighbour_scores` or `gnnrec_jax.models.embedding.dot_scores`.
    params: its arrays.
    num_users: U.
    train: [m, 2] the friendships the scorer was built on: never ranked.
    target: [t, 2] held-out friendships to find (valid or test); each pair counts for both users.
    also_exclude: more pairs never ranked (the valid friendships at test time).
    ks: cut-offs.
    batch_size: users per ranking step.

  Returns:
    `evaluate_full_ranking`'s dict ("recall@20", "ndcg@20", ..., "num_users").
  """
  me = np.arange(num_users)
  exclude = [Interactions(me, me), as_interactions(train),
             *(as_interactions(p) for p in also_exclude)]
  return evaluate.evaluate_full_ranking(
      score_fn, params, num_users=num_users, num_items=num_users, exclude=exclude,
      target=as_interactions(target), ks=tuple(ks), batch_size=batch_size)


def evaluate_friend_embeddings(user_emb, **kwargs) -> dict[str, float]:
  """`evaluate_friends` with score(a, b) = user_emb[a] . user_emb[b] ([U, d] final vectors)."""
  user_emb = jnp.asarray(user_emb)
  return evaluate_friends(dot_scores, (user_emb, user_emb),
                          num_users=int(user_emb.shape[0]), **kwargs)


def _row_standardise(x: jax.Array) -> jax.Array:
  """Each row minus its mean, over its standard deviation (a constant row becomes zeros)."""
  mu = jnp.mean(x, axis=-1, keepdims=True)
  sd = jnp.std(x, axis=-1, keepdims=True)
  return jnp.where(sd > 0, (x - mu) / jnp.where(sd > 0, sd, 1.0), 0.0)


def blend_score_params(user_emb, train_pairs: np.ndarray, num_users: int,
                       mix: float) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Arrays for `blend_scores`: (user_emb [U, d], A [U, U], w [U] Adamic-Adar weights, mix [])."""
  adj, w = neighbour_score_params(train_pairs, num_users, method="adamic_adar")
  return jnp.asarray(user_emb), adj, w, jnp.asarray(mix, jnp.float32)


def blend_scores(params, users: jax.Array) -> jax.Array:
  """The model's friend score blended with Adamic-Adar's, each standardised per user.

    score(a, b) = (1 - mix) * z_a(final_a . final_b) + mix * z_a(AA(a, b))

  where z_a standardises over all users b (mean 0, std 1 per row): the two scales differ (dot
  products vs sums of 1 / log degree), and within a row only the order matters. mix = 0 ranks by
  the model alone, mix = 1 by Adamic-Adar alone; in between, graph structure (friends of
  friends, weighted by how selective the common friend is) and the embeddings (shared taste,
  and friends of friends through the propagation) vote together. `mix` is an array, so every
  value of a grid shares one compiled function; choose it on the valid friendships
  (`choose_blend`).

  Args:
    params: (user_emb [U, d], A [U, U], w [U], mix []) from `blend_score_params`.
    users: [B] int32 user indices.

  Returns:
    [B, U] scores.
  """
  emb, adj, w, mix = params
  model = emb[users] @ emb.T  # [B, U]
  aa = (adj[users] * w[None, :]) @ adj  # [B, U]
  return (1.0 - mix) * _row_standardise(model) + mix * _row_standardise(aa)


# ------------------------------------------------------------------------------------------------
# A model of an experiment: its friend split, its user vectors


def _friends_of(exp) -> FriendSplit:
  if exp.friends is None:
    raise DataError(f"dataset {exp.dataset.name!r} has no social network (user-user "
                    "friendships): friend recommendation needs one, e.g. --dataset lastfm")
  return exp.friends


def friend_vectors(rec, params) -> np.ndarray:
  """[U, d] the vectors a model ranks friends with: its final user vectors in score space
  (score(a, b) = final_a . final_b, cosines with `score=cosine`).

  Raises:
    ConfigError: a model without user vectors (closed-form item models such as EASE).
  """
  if not hasattr(rec, "embed"):
    raise ConfigError(f"friend recommendation needs a model with user vectors; "
                      f"{rec.config.model} has none (use lightgcn, softmax_gnn, mf, ngcf, gat)")
  user_emb, _ = rec.score_params(params)
  return np.asarray(user_emb)


def evaluate_model_friends(rec, params, part: str = "test", *,
                           ks: Sequence[int] | None = None, blend: float = 0.0,
                           vectors: np.ndarray | None = None) -> dict[str, float]:
  """Friend-ranking metrics of a trained model on its experiment's held-out friendships.

  Train friendships are never ranked (the model may have seen them); at test time the valid
  ones are excluded too, as valid items are in item evaluation.

  Args:
    rec: an embedding model (`gnnrec_jax.models.create`) of an experiment with friendships.
    params: its parameters.
    part: "valid" or "test".
    ks: cut-offs (default `config.topk`).
    blend: Adamic-Adar's share of the score (`blend_scores`); 0: the model's vectors alone.
    vectors: the model's friend vectors when already computed (`friend_vectors`).
  """
  fr = _friends_of(rec.exp)
  if part not in ("valid", "test"):
    raise ConfigError(f"part must be valid or test, got {part!r}")
  if not 0.0 <= blend <= 1.0:
    raise ConfigError(f"blend must be in [0, 1], got {blend}")
  target, also = (fr.valid, []) if part == "valid" else (fr.test, [fr.valid])
  vecs = friend_vectors(rec, params) if vectors is None else vectors
  ks = tuple(ks or rec.config.topk)
  if blend == 0.0:
    return evaluate_friend_embeddings(vecs, train=fr.train, target=target, also_exclude=also,
                                      ks=ks)
  return evaluate_friends(blend_scores, blend_score_params(vecs, fr.train, rec.exp.num_users,
                                                           blend),
                          num_users=rec.exp.num_users, train=fr.train, target=target,
                          also_exclude=also, ks=ks)


BLEND_GRID = tuple(round(0.1 * i, 1) for i in range(11))  # 0, 0.1, ..., 1


def choose_blend(rec, params, *, grid: Sequence[float] = BLEND_GRID,
                 metric: str = "recall@20") -> tuple[float, dict[float, dict]]:
  """The blend (`blend_scores`) with the best `metric` on the VALID friendships.

  Returns:
    (the chosen blend, {blend: valid metrics}); ties go to the smaller blend (more model).
  """
  vecs = friend_vectors(rec, params)
  k = int(metric.split("@")[1])
  valid = {float(b): evaluate_model_friends(rec, params, "valid", ks=(k,), blend=float(b),
                                            vectors=vecs) for b in grid}
  best = max(valid, key=lambda b: (valid[b][metric], -b))
  return best, valid


def evaluate_neighbour_baselines(exp, part: str = "test", *,
                                 ks: Sequence[int] | None = None) -> dict[str, dict]:
  """Common neighbours and Adamic–Adar on the experiment's train friendships, ranked as
  `evaluate_model_friends` ranks a model: {method: metrics}."""
  fr = _friends_of(exp)
  target, also = (fr.valid, []) if part == "valid" else (fr.test, [fr.valid])
  out = {}
  for method in NEIGHBOUR_METHODS:
    params = neighbour_score_params(fr.train, exp.num_users, method=method)
    out[method] = evaluate_friends(neighbour_scores, params, num_users=exp.num_users,
                                   train=fr.train, target=target, also_exclude=also,
                                   ks=tuple(ks or exp.config.topk))
  return out


def recommend_friends(rec, params, user: int, *, k: int, blend: float = 0.0) -> dict:
  """The top-k users for `user` by the model's vectors (blended with Adamic-Adar on the train
  friendships when `blend > 0`, `blend_scores`), known friends and the user excluded.

  "Known" means every friendship of the dataset (train, valid and test pairs): like `recommend`
  for items, a person is never offered someone they are already linked to. Each candidate comes
  with the known friends the two share (what a person checks first; the model itself never
  reads them at ranking time).

  Returns:
    {"users": [k] indices, "scores": [k], "common": [k] lists of shared friends' indices,
     "known_friends": the user's number of known friends}.

  Raises:
    DataError: no social network, or fewer than k users left to recommend.
  """
  fr = _friends_of(rec.exp)
  num_users = rec.exp.num_users
  adj = friend_matrix(fr.all_pairs(), num_users)
  mine = adj.indices[adj.indptr[user]:adj.indptr[user + 1]]
  left = num_users - 1 - len(mine)
  if k > left:
    raise DataError(f"-k {k} is larger than the {left} users left to recommend (of "
                    f"{num_users}: the user and its {len(mine)} friends are excluded)")
  vecs = friend_vectors(rec, params)
  if blend:
    scores = np.array(blend_scores(blend_score_params(vecs, fr.train, num_users, blend),
                                   jnp.asarray([user], jnp.int32))[0])  # [U]
  else:
    scores = vecs @ vecs[user]  # [U]
  scores[mine] = -np.inf
  scores[user] = -np.inf
  top = np.argsort(-scores, kind="stable")[:k]  # ties: the lower index first
  friends_of = lambda v: set(adj.indices[adj.indptr[v]:adj.indptr[v + 1]].tolist())
  mine_set = set(mine.tolist())
  return {"users": top, "scores": scores[top],
          "common": [sorted(mine_set & friends_of(int(v))) for v in top],
          "known_friends": len(mine)}
