"""A text-first GNN: frozen language-model item vectors -> MLP -> graph propagation, no ID table.

AlphaRec (Sheng et al., "Language Representations Can be What Recommenders Need", ICLR 2025):

  e_i^0 = MLP(z_i)                      z_i: the item's frozen LM vector (`text_features`)
  e_u^0 = mean_{i in N(u)} e_i^0        `user_input="history"`: the user is its items
          MLP(z_u)                      `"text"`: AlphaRec's rule, z_u = the (normalised) mean of
                                        the user's train items' LM vectors
          a learned [U, d] table        `"table"`
  E^(k+1) = D^-1/2 A D^-1/2 E^(k)       LightGCN propagation (`conv="lightgcn"`), or the seed's
                                        softmax rule (`conv="softmax"`, `SoftmaxEdgeConv` with
                                        softmax_gnn's fields)
  e = mean_k E^(k),  score(u, i) = cos(e_u, e_i)
  loss = InfoNCE with temperature tau over sampled negatives (`loss="softmax"`, `score="cosine"`)

The MLP is AlphaRec's Linear -> LeakyReLU -> Linear (`mlp_hidden` > 0) or one linear map without
bias (`mlp_hidden=0`, its "homo" variant). Items without text get a learned default vector.
AlphaRec's reference code (LehengTHU/AlphaRec, models/General/AlphaRec.py, README commands) uses
2 layers, tau 0.15-0.2, 256 negatives, cosine in training and prediction, lr 5e-4, batch 4096,
weight decay 1e-6; `gnnrec_jax/configs/textgnn.py` records what was chosen here and why.

With no ID vectors, every node is a function of text and the graph: a cold item (no train edge)
is scored from its text through the same MLP, and a new user (`history_scores`) is one extra
node that receives messages from its history items (closed form below), so neither needs
retraining. For a user already in the graph, `history_scores(its train items)` equals its
evaluated scores exactly (`tests/test_textgnn.py`).

`use_id_embedding=True` adds an item ID vector to the mapped text (e_i^0 = MLP(z_i) + keep_i
id_i, with DropoutNet `id_dropout` and cold items without it, as `node_inputs.NodeInputs` does):
the text-first model with an ID residual; with `warm_text=False` an item with an ID vector is
that vector alone (e_i^0 = keep_i id_i + (1 - keep_i) MLP(z_i)), the ID-only model for warm
items with the text map standing in for cold ones. `cold_view` > 0 adds a second softmax in which every
item is its text alone, as cold items are scored (`TextGNNRecommender.cold_view_loss`): the
recipe by which warm items keep their ID vectors in every step while the text map learns to
stand alone.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.graph import build as graph_lib
from gnnrec_jax.graph.propagate import normalize_per_receiver, resolve_backend, weighted_sum
from gnnrec_jax.models import embedding, explain_terms, inductive
from gnnrec_jax.models.closed_form import user_histories
from gnnrec_jax.models.layers import LightGCNConv, SoftmaxEdgeConv, check_heads
from gnnrec_jax.models.readout import combine_layers, score_space
from gnnrec_jax.objectives import sampling
from gnnrec_jax.objectives import select as objective
from gnnrec_jax.text.node_texts import user_history_vectors

USER_INPUTS = ("history", "text", "table")
CONVS = ("lightgcn", "softmax")


class TextMLP(nn.Module):
  """LM vectors [n, F] -> [n, d]: Dense -> LeakyReLU -> Dense, or one bias-free Dense."""

  embed_dim: int
  hidden: int = 0

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    z = z.astype(jnp.float32)
    if self.hidden <= 0:
      return nn.Dense(self.embed_dim, use_bias=False, name="linear")(z)
    z = jax.nn.leaky_relu(nn.Dense(self.hidden, name="hidden")(z))  # slope 0.01, as torch's
    return nn.Dense(self.embed_dim, name="out")(z)


class TextGNN(nn.Module):
  """The text-first GNN of the module docstring; the call contract of `embedding.EmbeddingModel`.

  Attributes:
    num_users: U.
    num_items: I.
    embed_dim: d, the MLP's output width.
    num_nodes: static N >= U + I (graph padding); None means U + I.
    mlp_hidden: the MLP's hidden width (0: one linear map).
    num_layers: propagation layers L.
    layer_combine: how E^0..E^L combine ("mean": LightGCN's and AlphaRec's).
    user_input: "history" | "text" | "table" (see the module docstring).
    conv: "lightgcn" | "softmax".
    heads, temperature, scale_logits, qk_proj, activation, attention_mix, initial_alpha: the
      softmax rule's settings (`SoftmaxEdgeConv`), read when conv="softmax".
    use_id_embedding: add item ID vectors to the mapped text (an ID residual).
    id_dropout: DropoutNet rate of zeroing an item's ID vector in training.
    warm_text: with use_id_embedding, whether an item with an ID vector also adds its mapped
      text (True), or is its ID vector alone, the mapped text standing in only where the ID
      vector is missing or dropped (False: warm items as in an ID-only model).
    init_std: stddev of the ID tables and default vectors.
    backend: `gnnrec_jax.graph.propagate.weighted_sum` backend.
    score: "cosine" (AlphaRec) or "dot".
  """

  num_users: int
  num_items: int
  embed_dim: int = 64
  num_nodes: int | None = None
  mlp_hidden: int = 0
  num_layers: int = 2
  layer_combine: str = "mean"
  user_input: str = "history"
  conv: str = "lightgcn"
  heads: int = 1
  temperature: float = 1.0
  scale_logits: bool = True
  qk_proj: bool = False
  activation: str = "identity"
  attention_mix: float = 1.0
  initial_alpha: str = "none"
  use_id_embedding: bool = False
  id_dropout: float = 0.0
  warm_text: bool = True
  init_std: float = 0.1
  backend: str = "auto"
  score: str = "cosine"

  @property
  def n(self) -> int:
    return self.num_nodes or self.num_users + self.num_items

  @classmethod
  def recommender_class(cls):
    return TextGNNRecommender

  @classmethod
  def from_config(cls, config, *, num_users: int, num_items: int, feature_dim: int | None,
                  num_nodes: int | None) -> "TextGNN":
    """The `TextGNN` of `config` (`embedding.create_model` for model "textgnn")."""
    c = config
    embedding.check_sizes(c, num_users=num_users, num_items=num_items, num_nodes=num_nodes)
    if feature_dim is None:
      raise ConfigError("textgnn needs text features: set text_features=history (items are "
                        "their text)")
    embedding.check_combine(c.layer_combine)
    if c.user_input not in USER_INPUTS:
      raise ConfigError(f"unknown user_input {c.user_input!r}; choose one of "
                        f"{', '.join(USER_INPUTS)}")
    if c.conv not in CONVS:
      raise ConfigError(f"unknown conv {c.conv!r}; choose one of {', '.join(CONVS)}")
    if c.side_features:
      raise ConfigError("textgnn does not read side_features (its nodes are their text)")
    if c.target_out and c.conv != "lightgcn":
      raise ConfigError("target_out needs conv=lightgcn (the softmax rule's alphas would need "
                        "renormalising without the target edge)")
    if c.conv == "softmax":
      check_heads(c.embed_dim, c.heads)
    return cls(num_users=num_users, num_items=num_items, embed_dim=c.embed_dim,
               num_nodes=num_nodes, mlp_hidden=c.mlp_hidden, num_layers=c.num_layers,
               layer_combine=c.layer_combine, user_input=c.user_input, conv=c.conv,
               heads=c.heads, temperature=c.temperature, scale_logits=c.scale_logits,
               qk_proj=c.qk_proj, activation=c.activation, attention_mix=c.attention_mix,
               initial_alpha=c.initial_alpha, use_id_embedding=c.use_id_embedding,
               id_dropout=c.id_dropout, warm_text=c.warm_text, init_std=c.init_std,
               backend=c.propagation, score=c.score)

  def conv_layer(self, k: int, num_nodes: int, backend: str, **kw):
    """Layer k's conv for a graph of `num_nodes` nodes (the model's own, or with `parent=None`
    a free-standing one for a new user's star graph)."""
    if self.conv == "lightgcn":
      return LightGCNConv(num_nodes, backend=backend, **kw)
    return SoftmaxEdgeConv(
        num_nodes, heads=self.heads, temperature=self.temperature,
        scale_logits=self.scale_logits, qk_proj=self.qk_proj, activation=self.activation,
        attention_mix=self.attention_mix,
        alpha_from_weights=(k == 0 and self.initial_alpha == "weights"), backend=backend, **kw)

  def setup(self):
    if self.user_input not in USER_INPUTS:
      raise ConfigError(f"unknown user_input {self.user_input!r}; choose one of "
                        f"{', '.join(USER_INPUTS)}")
    if self.conv not in CONVS:
      raise ConfigError(f"unknown conv {self.conv!r}; choose one of {', '.join(CONVS)}")
    self.mlp = TextMLP(self.embed_dim, self.mlp_hidden)
    self.default_text = self.param("default_text", nn.initializers.normal(self.init_std),
                                   (self.embed_dim,))
    if self.user_input == "table":
      self.user_table = self.param("user_embedding", nn.initializers.normal(self.init_std),
                                   (self.num_users, self.embed_dim))
    if self.use_id_embedding:
      self.item_table = self.param("item_embedding", nn.initializers.normal(self.init_std),
                                   (self.num_items, self.embed_dim))
    backend = resolve_backend(self.backend, self.n)
    # Named convs_0, convs_1, ... (setup names list entries by position).
    self.convs = [self.conv_layer(k, self.n, backend) for k in range(self.num_layers)]

  def map_text(self, z: jax.Array, has_text: jax.Array | None) -> jax.Array:
    """[n, F] LM vectors -> [n, d]; rows without text get the learned default vector."""
    out = self.mlp(z)
    if has_text is None:
      return out
    return jnp.where(has_text.astype(bool)[:, None], out, self.default_text)

  def items0(self, features, feature_mask=None, has_id=None, *, train: bool = False):
    """[I, d] the items' layer-0 vectors: mapped text (+ ID vectors with use_id_embedding)."""
    u, i = self.num_users, self.num_items
    mask = None if feature_mask is None else feature_mask[u:u + i]
    items = self.map_text(features[u:u + i], mask)  # [I, d]
    if self.use_id_embedding:
      keep = jnp.ones((i,), jnp.float32)
      if has_id is not None:
        keep = keep * has_id[u:u + i].astype(jnp.float32)
      if train and self.id_dropout > 0:
        keep = keep * jax.random.bernoulli(self.make_rng("dropout"), 1.0 - self.id_dropout, (i,))
      if self.warm_text:
        items = items + keep[:, None] * self.item_table
      else:
        items = keep[:, None] * self.item_table + (1.0 - keep[:, None]) * items
    return items

  def text_only_items(self, features, feature_mask=None) -> jax.Array:
    """[I, d_out] every item scored as a cold item is: its mapped text alone (no ID vector, no
    edges: E^0 = MLP(z_i), E^1..E^L = 0), combined and put in score space (`cold_view`)."""
    u, i = self.num_users, self.num_items
    mask = None if feature_mask is None else feature_mask[u:u + i]
    h0 = self.map_text(features[u:u + i], mask)  # [I, d]
    hs = [h0] + [jnp.zeros_like(h0)] * self.num_layers
    return score_space(combine_layers(hs, self.layer_combine), self.score)

  def user_text(self, z: jax.Array, has_text: jax.Array | None) -> jax.Array:
    """AlphaRec's user rule (`user_input="text"`): the mapped user LM vector."""
    return self.map_text(z, has_text)

  def layers(self, graph: jraph.GraphsTuple, features, feature_mask=None, has_id=None, *,
             train: bool = False) -> list[jax.Array]:
    """E^0..E^L, each [N, d] (rows past U + I are zeros at layer 0)."""
    u, n = self.num_users, self.n
    items = self.items0(features, feature_mask, has_id, train=train)  # [I, d]
    pad = jnp.zeros((n - u - self.num_items, self.embed_dim), items.dtype)
    if self.user_input == "table":
      users = self.user_table
    elif self.user_input == "text":
      users = self.user_text(features[:u], None if feature_mask is None else feature_mask[:u])
    else:
      # The plain mean over each user's item neighbours (AlphaRec's mean; interaction weights
      # are not read, so a new user's unweighted history gets the same rule): one propagation
      # with weights 1 / |N(u)| on item -> user edges, 0 elsewhere.
      into_user = (graph.receivers < u) & (graph.senders >= u)
      w = normalize_per_receiver(into_user.astype(jnp.float32), graph, num_nodes=n)
      only_items = jnp.concatenate([jnp.zeros((u, self.embed_dim), items.dtype), items, pad])
      users = weighted_sum(only_items, graph, w.astype(items.dtype), num_nodes=n,
                           backend=resolve_backend(self.backend, n))[:u]
    hs = [jnp.concatenate([users, items, pad])]
    for k, conv in enumerate(self.convs):
      out = conv(hs[-1], graph)
      if self.conv == "softmax":
        out, alpha = out
        self.sow("intermediates", f"alpha_{k}", alpha)
      hs.append(out)
    return hs

  def __call__(self, graph: jraph.GraphsTuple, features=None, feature_mask=None, has_id=None, *,
               side=None, side_mask=None, train: bool = False) -> tuple[jax.Array, jax.Array]:
    del side, side_mask  # refused by create_textgnn: the call contract of embedding models
    if features is None:
      raise ConfigError("textgnn needs text features (set text_features)")
    hs = self.layers(graph, features, feature_mask, has_id, train=train)
    final = combine_layers(hs, self.layer_combine)
    return score_space(final, self.score), hs[0]


def edge_position(graph: jraph.GraphsTuple, receivers: jax.Array, senders: jax.Array) -> jax.Array:
  """[B] index of the edge senders[b] -> receivers[b] in `graph` (edges sorted by receiver, then
  sender, as build_graph sorts them), by binary search inside the receiver's run; jittable.

  The pair must be an edge of the graph (a training pair); otherwise the result is some edge of
  that receiver.
  """
  lo = jnp.searchsorted(graph.receivers, receivers, side="left")
  hi = jnp.searchsorted(graph.receivers, receivers, side="right")
  for _ in range(32):  # static: halves [lo, hi) until one edge is left (runs of up to 2^32)
    mid = (lo + hi) // 2
    right = graph.senders[jnp.minimum(mid, graph.senders.shape[0] - 1)] < senders
    lo, hi = jnp.where(right, mid + 1, lo), jnp.where(right, hi, mid)
  return lo


def target_out_users(hs: list[jax.Array], graph: jraph.GraphsTuple, users: jax.Array,
                     targets: jax.Array, *, num_users: int, combine: str, score: str,
                     mean_layer0: bool) -> jax.Array:
  """[B, d] final user vectors without the edge from each row's positive item (node `targets`).

  Users of a training pair contain their positive: its mapped vector is 1 / |N(u)| of the
  user's layer-0 mean and norm_ut h_t^(k-1) of every layer k. Scored against the positive, that
  rewards an item for resembling itself, which ranking (which masks a user's items) never asks.
  FISM (Kabbur et al., KDD 2013) drops the target from the user's sum for this reason; here,
  the target's direct terms are removed from the user's side:

    h_u^0'  = (|N(u)| h_u^0 - h_t^0) / (|N(u)| - 1)       (0 when t was the only item)
    h_u^k'  = h_u^k - norm_ut h_t^(k-1)                    k = 1..L

  (paths of length >= 3 back through t, and the other edges' norms, keep their values: LightGCN
  propagation, `conv="lightgcn"`).

  Args:
    hs: the layers E^0..E^L ([N, d] each, `TextGNN.layers`).
    graph: the train graph.
    users: [B] user nodes.
    targets: [B] positive item nodes (U + i).
    num_users: U (nodes below it are users).
    combine: how layers combine. score: "cosine" or "dot". mean_layer0: layer 0 is the mean of
      the user's items (`user_input="history"`); otherwise it does not hold the target.
  """
  edge = edge_position(graph, users, targets)
  norm = graph.edges["norm"][edge].astype(hs[0].dtype)[:, None]  # [B, 1]
  out = [hs[0][users]]
  if mean_layer0:
    into_user = ((graph.receivers < num_users) & (graph.senders >= num_users)
                 & (graph.edges["mask"] > 0)).astype(jnp.float32)
    n_u = jax.ops.segment_sum(into_user, graph.receivers, num_segments=hs[0].shape[0],
                              indices_are_sorted=True)[users][:, None]  # [B, 1] |N(u)|
    rest = n_u * out[0] - hs[0][targets]
    out[0] = jnp.where(n_u > 1, rest / jnp.maximum(n_u - 1, 1), 0.0)
  for k in range(1, len(hs)):
    out.append(hs[k][users] - norm * hs[k - 1][targets])
  return score_space(combine_layers(out, combine), score)


# ------------------------------------------------------------------------------------------------
# Users from a history: nodes that receive from their history items and send nothing.


def history_graph(users: np.ndarray, items: np.ndarray, num_users: int, item_degree: np.ndarray,
                  *, self_loops: bool, pad_edges: int | None = None) -> jraph.GraphsTuple:
  """The graph over which users are (re-)embedded from histories, items as trained.

  Nodes: `num_users` users at [0, U'), then the catalogue's items at [U', U' + I). Edges: item ->
  user for each distinct (user, item) pair, nothing towards items (so no item changes), weight 1
  and LightGCN norm 1 / sqrt(|H_u| deg_i), deg_i the item's degree in the train graph (+ a
  self-loop per user with norm 1 / (|H_u| + 1), and |H_u| + 1 as its degree, when the train
  graph has self-loops). For a user of the train graph with its own train items this is its
  place in the train graph exactly, as a receiver.

  Args:
    users: [n] user index in [0, num_users) of each pair.
    items: [n] item index of each pair.
    num_users: U', the number of users embedded.
    item_degree: [I] the items' degrees in the train graph, as build_graph counts them.
    self_loops: whether the train graph has self-loops.
    pad_edges: pad to this many edges (masked, weight 0) so that few shapes compile.

  Returns:
    A GraphsTuple of U' + I nodes, edges sorted by receiver.
  """
  num_items = len(item_degree)
  key = np.unique(np.asarray(users, np.int64) * num_items + np.asarray(items, np.int64))
  u, i = key // num_items, key % num_items
  size = np.bincount(u, minlength=num_users).astype(np.float64)  # |H_u|
  deg_user = size + (1.0 if self_loops else 0.0)
  senders, receivers = list(num_users + i), list(u)
  norm = list(1.0 / np.sqrt(deg_user[u] * np.maximum(item_degree[i], 1.0)))
  if self_loops:
    has = np.flatnonzero(size > 0)
    senders += list(has)
    receivers += list(has)
    norm += list(1.0 / deg_user[has])
  real = len(senders)
  pad = max(0, (pad_edges or real) - real)
  last = num_users + num_items - 1  # padding edges: the last node to itself, masked
  senders = np.asarray(senders + [last] * pad, np.int32)
  receivers = np.asarray(receivers + [last] * pad, np.int32)
  mask = np.concatenate([np.ones(real), np.zeros(pad)]).astype(np.float32)
  norm = np.concatenate([np.asarray(norm, np.float64), np.zeros(pad)]).astype(np.float32)
  order = np.lexsort((senders, receivers))
  return jraph.GraphsTuple(
      nodes=None, globals=None,
      edges={"weight": mask[order], "norm": norm[order], "mask": mask[order]},
      senders=senders[order], receivers=receivers[order],
      n_node=np.array([num_users + num_items], np.int32),
      n_edge=np.array([real + pad], np.int32))


@functools.partial(jax.jit, static_argnames=("model", "num_users"))
def _users_final(model: TextGNN, params, inputs, user_graph, user_z, user_has_text, *,
                 num_users: int):
  """[U', d_out] final vectors of the users of `user_graph` (items: the trained graph's)."""
  hs = model.apply({"params": params}, inputs["graph"], inputs["features"],
                   inputs["feature_mask"], inputs.get("has_id"), method=TextGNN.layers)
  u, i = model.num_users, model.num_items
  n = num_users + i
  if model.user_input == "text":
    h = model.apply({"params": params}, user_z, user_has_text, method=TextGNN.user_text)
  else:  # "history" (and "table", which has no row for a new user): the mean of its items
    into_user = (user_graph.receivers < num_users) & (user_graph.senders >= num_users)
    w = normalize_per_receiver(into_user.astype(jnp.float32), user_graph, num_nodes=n)
    only_items = jnp.concatenate([jnp.zeros((num_users, hs[0].shape[1]), hs[0].dtype),
                                  hs[0][u:u + i]])
    h = weighted_sum(only_items, user_graph, w, num_nodes=n, backend="segment")[:num_users]
  out = [h]
  for k in range(model.num_layers):
    x = jnp.concatenate([out[-1], hs[k][u:u + i]])  # [U' + I, d]
    conv = model.conv_layer(k, n, "segment", parent=None)
    res = conv.apply({"params": params.get(f"convs_{k}", {})}, x, user_graph)
    out.append((res[0] if model.conv == "softmax" else res)[:num_users])
  return score_space(combine_layers(out, model.layer_combine), model.score)


class TextGNNRecommender(embedding.EmbeddingRecommender):
  """`TextGNN` behind the `Recommender` interface: an embedding model whose users can be
  (re-)embedded from any history without retraining (`user_vectors`, `history_scores`)."""

  history = None  # set on the test-time copy (`at_test_time`): users' histories to embed from

  @property
  def inputs(self):
    inputs = super().inputs
    full = self.config.loss == "full_softmax"
    seen = inputs["seen"]
    if self.config.target_out and (seen is None or full != hasattr(seen, "shape")):
      # The users' train items: a padded [U, L] table for the full softmax's [B, I] mask, a CSR
      # for sampled negatives (the base class leaves None, or a CSR for `neg_resample`).
      if full:
        inputs["seen"] = jnp.asarray(user_histories(self.exp.trained, num_users=self.num_users,
                                                    num_items=self.num_items))
      else:
        inputs["seen"] = tuple(jnp.asarray(a) for a in sampling.train_csr(
            self.exp.trained, num_users=self.num_users, num_items=self.num_items))
    return inputs

  def loss(self, params, inputs, batch, rng):
    """The configured objective; with `target_out` each row is a leave-one-out prediction: the
    user is embedded without its edge to the row's positive item (`target_out_users`) and its
    other train items are left out of the softmax, as ranking masks them. With `cold_view` > 0,
    plus `cold_view` x `cold_view_loss`."""
    if self.config.target_out:
      total, aux = self._target_out_loss(params, inputs, batch, rng)
    else:
      total, aux = super().loss(params, inputs, batch, rng)
    if self.config.cold_view > 0:
      cold = self.cold_view_loss(params, inputs, batch, rng)
      total = total + self.config.cold_view * cold
      aux = {**aux, "cold_view": cold}
    return total, aux

  def cold_view_loss(self, params, inputs, batch, rng) -> jax.Array:
    """The cold-item view: a softmax over the train items with every item as its text alone.

    Each row's user (its ordinary final vector, the dropout draw of the main objective) scores
    the positive and every train item as `text_only_items` makes them, i.e. exactly as a cold
    item is scored at test time; the mean negative log-likelihood (temperature
    `softmax_temperature`) over unmasked rows. DropoutNet (Volkovs et al., NeurIPS 2017) gets
    this signal by zeroing ID vectors, which also trains warm items without theirs; here the
    warm items' ordinary vectors are never dropped, and only the shared MLP is pulled towards
    text that stands alone (CLCRec's and ALDI's aim of aligning the content view with the
    collaborative one, as a second softmax rather than a distillation).
    """
    cfg = self.config
    drop_rng, _ = jax.random.split(rng)
    final, _ = self.forward(params, inputs, train=True, rng=drop_rng)
    user = final[batch["user"]]  # [B, d]
    if self.module.use_id_embedding and not self.module.warm_text:
      # Warm items are their ID vectors alone: the cold view trains the text map only, so the
      # users, items and graph of the warm model are the ID-only model's (ALDI's rule, Huang et
      # al., SIGIR 2023: the warm model is fixed while the cold-item generator learns from it).
      user = jax.lax.stop_gradient(user)
    items = self.module.apply({"params": params}, inputs["features"], inputs["feature_mask"],
                              method=TextGNN.text_only_items)  # [I, d]
    logits = user @ items.T / cfg.softmax_temperature  # [B, I]
    pool = inputs.get("neg_pool")
    if pool is not None:  # items never in train are unknown while training
      in_train = jnp.zeros((self.num_items,), bool).at[pool].set(True)
      logits = jnp.where(in_train[None, :], logits, -jnp.inf)
    pos = jnp.take_along_axis(logits, batch["item"][:, None], axis=1)[:, 0]  # [B]
    nll = jax.nn.logsumexp(logits, axis=-1) - pos
    m = batch["mask"]
    return jnp.sum(m * nll) / jnp.maximum(jnp.sum(m), 1.0)

  def _target_out_loss(self, params, inputs, batch, rng):
    """The `target_out` objective (see `loss`)."""
    cfg, model, u = self.config, self.module, self.num_users
    drop_rng, neg_rng = jax.random.split(rng)
    hs = model.apply({"params": params}, inputs["graph"], inputs["features"],
                     inputs["feature_mask"], inputs.get("has_id"), train=True,
                     rngs={"dropout": drop_rng}, method=TextGNN.layers)
    final = score_space(combine_layers(hs, model.layer_combine), model.score)
    items = final[u:u + self.num_items]  # [I, d]
    user = target_out_users(hs, inputs["graph"], batch["user"], batch["item"] + u,
                            num_users=u, combine=model.layer_combine, score=model.score,
                            mean_layer0=model.user_input == "history")  # [B, d]
    pos = jnp.sum(user * items[batch["item"]], axis=-1, keepdims=True)  # [B, 1]
    if cfg.loss == "full_softmax":
      neg = user @ items.T  # [B, I]; the positive is one of the user's items, so masked here
      hist = inputs["seen"][batch["user"]]  # [B, L], padded with I (dropped)
      rows = jnp.broadcast_to(jnp.arange(hist.shape[0])[:, None], hist.shape)
      mask = jnp.zeros(neg.shape, bool).at[rows, hist].set(True, mode="drop")
    else:
      pool = inputs.get("neg_pool")
      cand = sampling.sample_negatives(
          neg_rng, batch_users=batch["user"],
          num_items=self.num_items if pool is None else pool.shape[0],
          num_negatives=cfg.num_negatives)  # [B, K]
      if pool is not None:
        cand = pool[cand]
      neg = jnp.einsum("bd,bkd->bk", user, items[cand])
      indptr, indices = inputs["seen"]
      mask = sampling.is_seen(batch["user"], cand, indptr=indptr, indices=indices)
    nll = objective.masked_ranking_nll(cfg.loss, pos, neg, mask,
                                       temperature=cfg.softmax_temperature)  # [B]
    m = batch["mask"]
    loss = jnp.sum(m * nll) / jnp.maximum(jnp.sum(m), 1.0)
    reg = jnp.zeros((), loss.dtype)
    if cfg.l2:
      ego = hs[0]
      reg = cfg.l2 * jnp.sum(m * (jnp.sum(ego[batch["user"]] ** 2, -1)
                                  + jnp.sum(ego[batch["item"] + u] ** 2, -1))) / 2.0 / jnp.maximum(
                                      jnp.sum(m), 1.0)
    return loss + reg, {"nll": loss, "reg": reg}

  def _item_degree(self) -> np.ndarray:
    exp = self.exp
    weighted = graph_lib.use_weighted_norm(self.config.weighted_norm, exp.split.train)
    return graph_lib.degrees(exp.graph, weighted=weighted)[exp.num_users:
                                                           exp.num_users + exp.num_items]

  def user_vectors(self, params, history, *, num_users: int | None = None,
                   pad_edges: int | None = None) -> jax.Array:
    """[U', d_out] final vectors of users given by `history` (an `Interactions` whose users are
    in [0, U')), each embedded as the model embeds a new user: no retraining, items as trained.

    A user of the train graph given its train items gets its own vector back exactly.
    """
    exp = self.exp
    num_users = exp.num_users if num_users is None else num_users
    u = exp.num_users
    graph = history_graph(history.user, history.item, num_users, self._item_degree(),
                          self_loops=self.config.self_loops, pad_edges=pad_edges)
    # `user_input="text"`: the users' LM vectors as text_features=history makes them.
    z, has = user_history_vectors(exp.features[u:], history, num_users)
    return _users_final(self.module, params, self.inputs, jax.tree.map(jnp.asarray, graph),
                        jnp.asarray(z), jnp.asarray(has), num_users=num_users)

  def score_params(self, params):
    users, items = self.embed(params, self.inputs)
    if self.history is not None:
      users = self.user_vectors(params, self.history)
    return users, items

  def at_test_time(self, extra):
    """This model with every user re-embedded from its train items plus `extra` (the valid
    items: `test_history="train+valid"`) by its new-user rule; items stay as trained."""
    copy = type(self).__new__(type(self))
    copy.__dict__.update(self.__dict__)
    copy.history = Interactions.concat([
        Interactions(self.exp.split.train.user, self.exp.split.train.item),
        Interactions(extra.user, extra.item)])
    return copy

  def history_scores(self, params, history):
    history = inductive.check_history(history, self.num_items)
    h = Interactions(np.zeros(len(history), np.int32), history)
    pad = inductive.pad_len(len(history)) + 1  # + the self-loop
    final = self.user_vectors(params, h, num_users=1, pad_edges=pad)[0]
    _, item_emb = self.embed(params, self.inputs)
    return np.asarray(item_emb) @ np.asarray(final)

  def explain_terms(self, params, *, user, history, items):
    if history is None and self.module.user_input != "table":
      # A user in the graph is its train history: leave-one-out through `history_scores`
      # (which reproduces its scores exactly) is exact per item.
      history = explain_terms.train_history(self.exp, user)
    if history is not None and len(history):
      return explain_terms.leave_one_out_terms(self, params, history, items)
    return explain_terms.similarity_terms(self, params, user, items)
