"""Nodes without train interactions: which they are, and new users scored without retraining.

A node is *cold* when it has no train interaction: its ID vector never received a positive
gradient, so it is embedded with `has_id=False` (text path only, see
`gnnrec_jax.models.node_inputs`); `EmbeddingRecommender.inputs["has_id"]` carries the mask.

New users (`embed_new_user`): a user who is not in the graph is one extra node that receives
messages from its history items and sends none, so no other node changes (inductive, no
retraining). For LightGCN (and MF, zero layers) its layer vectors have the closed form

  h_n^0     = text_proj(x_n) [+ side_proj(s_n)]   x_n = re-normalised mean of the history items'
                                                text vectors, s_n = the side-feature row of a user
                                                without metadata (every user column missing)
  h_n^(k+1) = sum_{i in H} h_i^(k) / sqrt(|H| deg_i)   (+ h_n^(k) / deg_n with self-loops)

with the items' h_i^(k) those of the trained graph: for a user already in the graph, embedded "as
new" from its own train history, every layer k >= 1 equals its real one exactly, and only the
layer-0 ID vector is missing (`tests/test_coldstart.py` checks this). A model with side features
but no text takes the same closed form with h_n^0 = side_proj(s_n). ID-only models fold the user
in as the mean of its history items' final vectors.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError, DataError
from gnnrec_jax.graph import build as graph_lib
from gnnrec_jax.graph.propagate import weighted_sum
from gnnrec_jax.models.node_inputs import NodeInputs
from gnnrec_jax.models.readout import combine_layers, score_space


def train_presence(train: Interactions, num_users: int, num_items: int
                   ) -> tuple[np.ndarray, np.ndarray]:
  """`(user_in_train [U], item_in_train [I])` bool: nodes with >= 1 train interaction."""
  user = np.bincount(np.asarray(train.user, np.int64), minlength=num_users)[:num_users] > 0
  item = np.bincount(np.asarray(train.item, np.int64), minlength=num_items)[:num_items] > 0
  return user, item


def has_id_mask(train: Interactions, num_users: int, num_items: int) -> np.ndarray:
  """[U + I] bool in node order: False for cold nodes, whose ID vector must not be used."""
  return np.concatenate(train_presence(train, num_users, num_items))


def history_text_vector(item_features: np.ndarray, item_has_text: np.ndarray,
                        history: np.ndarray) -> tuple[np.ndarray, bool]:
  """A new user's text vector: the re-normalised mean of its history items' vectors.

  The rule of `gnnrec_jax.text.node_texts.user_history_vectors` ("history" users), so a user in
  the graph gets back its own feature row. Returns `(vector [D], has_text)`.
  """
  vecs = np.asarray(item_features, np.float64)[history]
  vecs = vecs[np.asarray(item_has_text, bool)[history]]  # items without text have zero rows
  total = vecs.sum(axis=0) if len(vecs) else np.zeros(item_features.shape[1])
  norm = float(np.linalg.norm(total))
  if norm <= 1e-12:
    return np.zeros(item_features.shape[1], np.float32), False
  return (total / norm).astype(np.float32), True


def check_history(history, num_items: int) -> np.ndarray:
  """`history` as [m] int64 item indices; DataError when empty or outside [0, num_items)."""
  history = np.asarray(history, np.int64).reshape(-1)
  if len(history) == 0:
    raise DataError("a new user needs at least one history item")
  bad = (history < 0) | (history >= num_items)
  if bad.any():
    raise DataError(f"history item index {int(history[bad][0])} is outside the catalogue "
                    f"[0, {num_items})")
  return history


def pad_len(m: int) -> int:
  """The padded length of a history of m items: a power of two >= 8, so that few lengths
  compile."""
  return max(8, 1 << int(np.ceil(np.log2(m))))


def embed_new_user(rec, params, history: np.ndarray) -> np.ndarray:
  """The final vector of a user who is not in the graph, from its history item indices.

  Text models (LightGCN, MF): the inductive closed form of the module docstring. The user's text
  is its history mean when `config.text_features` is "history" or "both" (a new user has no
  profile), else none (the learned default vector). It has no ID vector. ID-only models: the
  mean of the history items' final vectors (cold items with `has_id=False`).

  Args:
    rec: the model (`gnnrec_jax.models.embedding.EmbeddingRecommender`).
    params: its trained parameters.
    history: [m] item indices (repeats count as repeated interactions).

  Returns:
    [d_out] float32, comparable with the item vectors of `rec.embed` (score = dot product).

  Raises:
    DataError: an empty history or an item outside the catalogue.
    ConfigError: a text model other than LightGCN / MF (no inductive form implemented).
  """
  exp, model, inputs = rec.exp, rec.module, rec.inputs
  history = check_history(history, exp.num_items)
  u, i = exp.num_users, exp.num_items
  if exp.features is None and exp.side is None:
    _, item_emb = rec.embed(params, inputs)
    return np.asarray(item_emb)[history].mean(axis=0)
  has_id = jnp.asarray(has_id_mask(exp.split.train, u, i))
  layers = model.new_user_layers()  # (num_layers, combine) of its closed form, or None
  if layers is None:
    raise ConfigError(f"embed_new_user: no inductive form for text model {type(model).__name__}"
                      " (supported: lightgcn, mf); train it ID-only or add the user and retrain")
  cfg = exp.config
  if exp.features is None:  # side features only: no text row to stand in
    x, has_text = None, False
  elif cfg.text_features in ("history", "both"):
    x, has_text = history_text_vector(exp.features[u:], exp.feature_mask[u:], history)
  else:
    x, has_text = np.zeros(exp.features.shape[1], np.float32), False
  # A new user has no metadata: every user column missing, encoded by the train statistics.
  side_row = None if exp.side is None else jnp.asarray(exp.side.new_user)
  # Degrees as build_graph counts them (binary or weighted); an item without train edges counts
  # the new user's edge only (its own layers k >= 1 are zero anyway).
  g = exp.graph
  weighted = graph_lib.use_weighted_norm(cfg.weighted_norm, exp.split.train)
  a = np.asarray(g.edges["mask"]) * (np.asarray(g.edges["weight"]) if weighted else 1.0)
  deg = np.bincount(np.asarray(g.receivers), weights=a, minlength=u + i)[u + history]
  deg_n = len(history) + (1.0 if cfg.self_loops else 0.0)
  m = pad_len(len(history))
  nodes = np.zeros(m, np.int32)
  nodes[:len(history)] = u + history
  coef = np.zeros(m, np.float32)  # padding rows get weight 0
  coef[:len(history)] = 1.0 / np.sqrt(deg_n * np.maximum(deg, 1.0))
  num_layers, combine = layers
  out = _new_user_layers(
      _node_inputs_of(model), params, inputs, has_id, None if x is None else jnp.asarray(x),
      jnp.asarray(has_text), side_row, jnp.asarray(nodes), jnp.asarray(coef),
      num_layers=num_layers, combine=combine,
      self_weight=(1.0 / deg_n) if cfg.self_loops else 0.0, num_nodes=model.n,
      backend=model._backend, score=model.score)
  return np.asarray(out)


def _node_inputs_of(model) -> NodeInputs:
  """The model's layer-0 module, to be applied to `params["inputs"]` on its own."""
  return NodeInputs(model.num_users, model.num_items, model.embed_dim, num_nodes=model.n,
                    init_std=model.init_std, use_id_embedding=model.use_id_embedding,
                    id_dropout=model.id_dropout)


def _new_user_layers_impl(node_inputs, params, inputs, has_id, x, has_text, side_row, nodes,
                          coef, *, num_layers, combine, self_weight, num_nodes, backend, score):
  """Closed-form LightGCN layers of one extra receiving node. Returns [d_out]."""
  features, mask = inputs["features"], inputs["feature_mask"]
  side, side_mask = inputs.get("side"), inputs.get("side_mask")
  ego = node_inputs.apply({"params": params["inputs"]}, features, mask, has_id, side=side,
                          side_mask=side_mask)  # [N, d]
  # Row 0 (a user) stands in for the new user: the same module computes its layer-0 vector
  # from its text (when the model reads text) and its side row, without an ID vector.
  features0 = mask0 = side0 = None
  if features is not None:
    features0 = features.at[0].set(x.astype(features.dtype))
    mask0 = (jnp.ones(features.shape[0], bool) if mask is None else mask.astype(bool))
    mask0 = mask0.at[0].set(has_text)
  if side is not None:
    side0 = side.at[0].set(side_row.astype(side.dtype))
  h_new = node_inputs.apply({"params": params["inputs"]}, features0, mask0,
                            has_id.at[0].set(False), side=side0, side_mask=side_mask)[0]  # [d]
  graph, h = inputs["graph"], ego
  hs_new = [h_new]
  for _ in range(num_layers):
    # The new node receives from its history items' layer-k vectors and sends nothing.
    hs_new.append(coef @ h[nodes] + self_weight * hs_new[-1])  # [d]
    h = weighted_sum(h, graph, graph.edges["norm"].astype(h.dtype), num_nodes=num_nodes,
                     backend=backend)  # [N, d]
  return score_space(combine_layers(hs_new, combine), score)


_new_user_layers = jax.jit(_new_user_layers_impl, static_argnames=(
    "node_inputs", "num_layers", "combine", "self_weight", "num_nodes", "backend",
    "score"))
