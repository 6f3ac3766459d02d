"""Why was item i recommended? Exact per-neighbour decompositions of the score.

LightGCN (He et al. 2020, eqs. 3-4). With layer weights a_l (1/(L+1) for `layer_combine="mean"`)
the user's final vector is final_u = sum_l a_l h_u^l, and every propagated layer is a weighted sum
over the user's graph neighbours, h_u^l = sum_{j in N(u)} w^l_uj h_j^(l-1) with w^l = norm.
Hence

  score(u, i) = final_u . final_i
              = a_0 h_u^0 . final_i  +  sum_{j in N(u)} c_j . final_i,
  c_j         = sum_{l >= 1} a_l w^l_uj h_j^(l-1),

an exact split into the user's own ID/text term ("self") and one term per neighbour j: the
user's train items and, with social edges, their friends. Multi-hop paths are credited to the
first hop, i.e. to the neighbour through which they reach u.

SoftmaxGNN with sigma = identity is the same sum with the layer's alpha^l_uj (per head) in place
of norm_uj; the alphas themselves depend on every vector, but given the alphas the split is
exact. With a nonlinear sigma, h_u^l = sigma(z), z = sum_j m_j, is split per coordinate in
proportion to each message, h_u^l = sigma(0) + sum_j m_j (sigma(z) - sigma(0)) / z. The terms
still add up to the score exactly (sigma(0) terms are reported as "constant"), but crediting the
nonlinearity in proportion to the pre-activation messages is an approximation (the z-rule of
layer-wise relevance propagation); the output says so.

Linear item models (EASE, Steck 2019, and every closed-form model of
`gnnrec_jax.models.closed_form`): score(u, i) = x_u F[:, i] = sum_{j in history} F[j, i], exact.

A new user given by a history (`gnnrec-jax recommend --history`) of an ID-only model is folded in
as the mean of the history items' final vectors, so score = sum_j final_j . final_i / |H|, exact.
A text model embeds it inductively (`gnnrec_jax.models.inductive.embed_new_user`): see below.

Scores are those `recommend` ranks by: nodes without train interactions (cold items and users)
are embedded without their untrained ID vectors (`has_id`, see `gnnrec_jax.models.inductive`).

Other models (MF, NGCF, GAT) have no such split through their layers; for them each of the
user's train items is credited with its similarity final_j . final_i to the recommended item,
labelled as a similarity, not a decomposition.

A new user of a text model is not linear in its history (a normalised text mean, 1/sqrt(|H|)
degrees): each history item is credited with its exact leave-one-out effect,
score(H) - score(H without j), computed with `history_scores`; those terms need not add up and the
rest is reported as the remainder.

Each model's `explain_terms` (the `gnnrec_jax.models.base.Recommender` interface) picks its split
from the functions below, so the maths sits beside the models it reads. The presentation is in
`gnnrec_jax.evaluation`: `explain.explain_user` labels the terms of any model and
`explain.print_explanations` prints them; `explain_view` builds what a person reads (`recommend
--explain`): the terms that differ between the recommended items, as shares of each item's lead.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gnnrec_jax.errors import ConfigError
from gnnrec_jax.models.layers import activation_fn


def layer_outputs(model, params, inputs
                  ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
  """Runs the model once and returns its final vectors, layer outputs and per-layer edge weights.

  The layers are read with `capture_intermediates` (every submodule's output), so models.py
  needs no explanation-specific code.

  Args:
    model: a `LightGCN` or `SoftmaxGNN` module.
    params: its parameters.
    inputs: `EmbeddingRecommender.inputs` (graph, features, feature_mask, has_id: cold nodes
      are embedded without their ID vectors, as `recommend` ranks them).

  Returns:
    final: [N, d_out] the vectors used for scoring.
    hs: [h^0, ..., h^L], each [N, d] (h^0 = the layer-0 input vectors).
    weights: [w^1, ..., w^L], each [E, H] the edge weights of layer l (norm, H = 1, for
      LightGCN; the sown alphas for SoftmaxGNN).
  """
  graph = inputs["graph"]

  # Arrays are arguments, not closed over, so XLA does not constant-fold the graph.
  @jax.jit
  def forward(params, inputs):
    return model.apply({"params": params}, inputs["graph"], inputs["features"],
                       feature_mask=inputs["feature_mask"], has_id=inputs.get("has_id"),
                       side=inputs.get("side"), side_mask=inputs.get("side_mask"),
                       train=False, capture_intermediates=True, mutable=["intermediates"])

  (final, _), state = forward(params, inputs)
  inter = state["intermediates"]
  hs = [np.asarray(inter["inputs"]["__call__"][0], np.float64)]
  weights = []
  for k in range(model.num_layers):
    out = inter[f"conv_{k}"]["__call__"][0]
    if f"alpha_{k}" in inter:  # an attention layer (SoftmaxEdgeConv) returns (h, alpha)
      h, _ = out
      alpha = np.asarray(inter[f"alpha_{k}"][0], np.float64)  # [E, H], attention_mix applied
    else:
      h = out
      alpha = (np.asarray(graph.edges["norm"], np.float64)
               * np.asarray(graph.edges["mask"], np.float64))[:, None]  # [E, 1]
    hs.append(np.asarray(h, np.float64))
    weights.append(alpha)
  return np.asarray(final, np.float64), hs, weights


def _layer_coefficients(how: str, num_layers: int) -> np.ndarray:
  """a_l of final = sum_l a_l h^l ([L + 1]); "concat" is handled as a_l = 1 on blocks."""
  if how == "mean":
    return np.full(num_layers + 1, 1.0 / (num_layers + 1))
  if how in ("sum", "concat"):
    return np.ones(num_layers + 1)
  if how == "last":
    return np.eye(num_layers + 1)[-1]
  raise ConfigError(f"unknown layer_combine {how!r}")


def _item_blocks(final_items: np.ndarray, how: str, layer: int, d: int) -> np.ndarray:
  """The part of final_i that h_u^layer is dotted with: [K, d]."""
  if how == "concat":
    return final_items[:, layer * d:(layer + 1) * d]
  return final_items


def decompose_user(model, final: np.ndarray, hs: list[np.ndarray], weights: list[np.ndarray],
                   graph, *, node: int, targets: np.ndarray) -> dict[str, Any]:
  """Splits final[node] . final[t] into self, constant and per-neighbour terms.

  Args:
    model: the LightGCN / SoftmaxGNN module (reads num_layers, layer_combine, heads, activation).
    final, hs, weights: from `layer_outputs`.
    graph: the graph the model ran on (host or device arrays).
    node: the query node (a user index).
    targets: [K] node indices of the recommended items (U + item).

  Returns:
    {"score": [K], "self": [K], "constant": [K], "neighbours": [n] node indices,
     "values": [n, K] one row per distinct neighbour, "layer_values": [L, n, K] the same split
     by layer (values = layer_values.sum(0)), "layer_weights": [L, n] the edge weight
     w^l_uj of each neighbour at each layer (mean over heads), "layer_weight_mean": [L] the
     mean of w^l_uj over the user's neighbours, "self_parts": [L + 1, K] the self term by the
     item's layer (`_self_parts`), "self_loop": [K] what self-loops add to it}; self + constant
     + values.sum(0) equals score up to float rounding, for any activation, and self equals
     self_parts.sum(0) + self_loop.
  """
  how = model.layer_combine
  num_layers = model.num_layers
  a = _layer_coefficients(how, num_layers)
  d = hs[0].shape[1]
  heads = getattr(model, "heads", 1)
  name = getattr(model, "activation", "identity")
  act = activation_fn(name)
  sigma0 = float(act(jnp.zeros((), jnp.float32)))
  # sigma'(0): the share ratio where a coordinate's pre-activation is exactly 0.
  eps = 1e-3
  slope0 = float((act(jnp.float32(eps)) - act(jnp.float32(-eps))) / (2 * eps))
  receivers = np.asarray(graph.receivers)
  senders = np.asarray(graph.senders)
  mask = np.asarray(graph.edges["mask"]) > 0
  edges = np.flatnonzero((receivers == node) & mask)  # [E_u]
  nbrs = senders[edges]
  fin_t = final[targets]  # [K, d_out]
  score = fin_t @ final[node]
  self_term = a[0] * (_item_blocks(fin_t, how, 0, d) @ hs[0][node])
  self_parts = _self_parts(model, a, hs, node=node, targets=targets, self_term=self_term)
  const = np.zeros(len(targets))
  per_edge = np.zeros((num_layers, len(edges), len(targets)))  # [L, E_u, K]
  edge_w = np.stack([w[edges].mean(axis=1) for w in weights]) if num_layers else np.zeros(
      (0, len(edges)))  # [L, E_u]
  for l in range(1, num_layers + 1):
    if a[l] == 0:
      continue
    w = weights[l - 1][edges]  # [E_u, H]
    prev = hs[l - 1][nbrs].reshape(len(edges), heads, d // heads)
    msgs = (w[:, :, None] * prev).reshape(len(edges), d)  # [E_u, d]
    if name == "identity":
      ratio = np.ones(d)
    else:
      # sigma(z) - sigma(0) shared out in proportion to each message (see the module docstring).
      z = msgs.sum(axis=0)  # [d], the pre-activation of h_u^l
      h_z = np.asarray(act(jnp.asarray(z, jnp.float32)), np.float64)
      nonzero = np.abs(z) > 1e-12
      ratio = np.where(nonzero, (h_z - sigma0) / np.where(nonzero, z, 1.0), slope0)
    blocks = _item_blocks(fin_t, how, l, d)  # [K, d]
    per_edge[l - 1] = a[l] * (msgs * ratio) @ blocks.T
    const += a[l] * sigma0 * blocks.sum(axis=1)
  score_name = getattr(model, "score", "dot")
  if score_name in ("cosine", "pearson"):
    # final_u = C pre_u / |C pre_u| (C: centring for pearson, identity for cosine). final_i is
    # already centred, so (C pre_u) . final_i = pre_u . final_i: every term of pre_u . final_i
    # is scaled by the same 1 / |C pre_u|.
    pre = [a[l] * hs[l][node] for l in range(num_layers + 1)]
    pre_u = np.concatenate(pre) if how == "concat" else np.sum(pre, axis=0)
    if score_name == "pearson":
      pre_u = pre_u - pre_u.mean()
    norm = float(np.linalg.norm(pre_u))
    scale = 1.0 / norm if norm > 0 else 0.0
    self_term, const, per_edge = self_term * scale, const * scale, per_edge * scale
    self_parts = self_parts * scale
  # Self-loops reach u from u: credit them to the self term.
  loop = nbrs == node
  self_loop = per_edge[:, loop].sum(axis=(0, 1))  # [K]
  self_term = self_term + self_loop
  uniq, inv = np.unique(nbrs[~loop], return_inverse=True)
  layer_values = np.zeros((num_layers, len(uniq), len(targets)))  # [L, n, K]
  layer_weights = np.zeros((num_layers, len(uniq)))  # [L, n]
  for l in range(num_layers):
    np.add.at(layer_values[l], inv, per_edge[l][~loop])
    np.add.at(layer_weights[l], inv, edge_w[l][~loop])
  return {"score": score, "self": self_term, "constant": const, "neighbours": uniq,
          "values": layer_values.sum(axis=0), "layer_values": layer_values,
          "layer_weights": layer_weights,
          "layer_weight_mean": (layer_weights.mean(axis=1) if len(uniq)
                                else np.zeros(num_layers)),
          "self_parts": self_parts, "self_loop": self_loop}


def _self_parts(model, a: np.ndarray, hs: list[np.ndarray], *, node: int, targets: np.ndarray,
                self_term: np.ndarray) -> np.ndarray:
  """The self term a_0 h_u^0 . final_i split by the item's layer m: [L + 1, K] (unscaled by a
  cosine score's 1 / |pre_u|).

  final_i = sum_m a_m h_i^m, so self = sum_m a_0 a_m h_u^0 . h_i^m: m = 0 matches the user's
  vector with the item's own, m = 1 with the users who had the item (h_i^1 aggregates them),
  m = 2 with items two steps from it, and so on. With a cosine score final_i is divided by
  |pre_i| as well; with "concat" the user's layer-0 block meets only the item's (m = 0).
  """
  how, num_layers = model.layer_combine, model.num_layers
  parts = np.zeros((num_layers + 1, len(targets)))
  if how == "concat":
    parts[0] = self_term
    return parts
  item_scale = np.ones(len(targets))
  if getattr(model, "score", "dot") == "cosine":
    pre_i = sum(a[m] * hs[m][targets] for m in range(num_layers + 1))  # [K, d]
    norm = np.linalg.norm(pre_i, axis=1)
    item_scale = np.where(norm > 0, 1.0 / np.where(norm > 0, norm, 1.0), 0.0)
  for m in range(num_layers + 1):
    parts[m] = a[0] * a[m] * item_scale * (hs[m][targets] @ hs[0][node])
  return parts


def _is_exact(model) -> bool:
  return getattr(model, "activation", "identity") == "identity"


def _terms(score, neighbours, values):
  zeros = np.zeros(values.shape[1])
  return {"score": score, "self": zeros, "constant": zeros, "neighbours": neighbours,
          "values": values}


def train_history(exp, user: int) -> np.ndarray:
  """The distinct train items of `user` (sorted item indices)."""
  train = exp.split.train
  return np.unique(train.item[train.user == user]).astype(np.int64)


# ------------------------------------------------------------------------------------------------
# The splits each model family makes (called by its `explain_terms`)


def propagation_terms(rec, params, user: int, items: np.ndarray):
  """LightGCN / SoftmaxGNN: exact self + per-neighbour split through the layers (see above)."""
  model = rec.module
  final, hs, weights = layer_outputs(model, params, rec.inputs)
  res = decompose_user(model, final, hs, weights, rec.inputs["graph"], node=user,
                       targets=items + rec.num_users)
  res["weight_name"] = model.edge_weight_name  # what `weights` are: "norm" or "alpha"
  exact = _is_exact(model)
  method = ("exact: self + one term per graph neighbour" if exact else
            f"approximate: sigma = {model.activation} is nonlinear; its effect is split in "
            "proportion to each neighbour's pre-activation message (terms still sum to the "
            "score)")
  return res, method, exact


def new_user_terms(rec, params, history: np.ndarray, items: np.ndarray):
  """A new user of an embedding model, one term per history item.

  ID-only models fold the user in as the mean of its items' final vectors, which is linear in
  the history: item j contributes final_j . final_i / |history|, exactly. A text model's
  inductive vector is not linear in the history (a normalised text mean, 1/sqrt(|H|) degrees):
  each item is credited with its exact leave-one-out effect (`leave_one_out_terms`).
  """
  hist = np.unique(history)
  if rec.exp.features is not None or getattr(rec.exp, "side", None) is not None:
    return leave_one_out_terms(rec, params, hist, items)
  _, item_emb = (np.asarray(a, np.float64) for a in rec.score_params(params))
  values = item_emb[hist] @ item_emb[items].T / len(hist)  # [h, K]
  res = _terms(values.sum(axis=0), hist + rec.num_users, values)
  return res, ("exact: the new user is the mean of its items' final vectors, so each item j "
               "contributes final_j . final_i / |history|"), True


def leave_one_out_terms(rec, params, history: np.ndarray, items: np.ndarray):
  """Per history item j: score(H) - score(H without j), each from `rec.history_scores`.

  Exact counterfactuals (the score drops by that much without j), but for a model that is not
  linear in the history they need not add up to the score: the rest is reported as the
  remainder (what the items do only together, and what no item carries, e.g. a bias). A
  history of one item credits it with the whole score (without it there is no user).

  Returns:
    (terms, method, exact=False), as `Recommender.explain_terms`.
  """
  hist = np.unique(np.asarray(history, np.int64))
  items = np.asarray(items, np.int64)
  score = np.asarray(rec.history_scores(params, hist), np.float64)[items]  # [K]
  if len(hist) == 1:
    values = score[None, :]
  else:
    values = np.stack([score - np.asarray(rec.history_scores(params, np.delete(hist, k)),
                                          np.float64)[items]
                       for k in range(len(hist))])  # [h, K]
  return _terms(score, hist + rec.num_users, values), (
      "not a decomposition: exact leave-one-out, each history item j is credited with "
      "score(history) - score(history without j) (the model is not linear in the history; "
      "the terms need not add up, the rest is the remainder)"), False


def similarity_terms(rec, params, user: int, items: np.ndarray):
  """MF, NGCF, GAT: each train item credited with its similarity to the recommended item."""
  user_emb, item_emb = (np.asarray(a, np.float64) for a in rec.score_params(params))
  hist = train_history(rec.exp, user)
  values = item_emb[hist] @ item_emb[items].T  # [h, K]
  res = _terms(item_emb[items] @ user_emb[user], hist + rec.num_users, values)
  return res, (f"not a decomposition: {type(rec.module).__name__} has no exact per-neighbour "
               "split; each train item is credited with its similarity final_j . final_i"), False


def linear_item_terms(rec, params, user: int | None, history: np.ndarray | None,
                      items: np.ndarray):
  """Linear item models (score = x_u F): item j of the history contributes F[j, i], exact."""
  hist = train_history(rec.exp, user) if history is None else np.unique(history)
  values = rec.item_item(params, hist, items)  # [h, K]: F[j, i]
  return (_terms(values.sum(axis=0), hist + rec.num_users, values),
          f"exact: score = sum of F[j, i] over the user's items j ({rec.config.model})", True)
