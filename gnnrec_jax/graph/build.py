"""The user–item graph as a `jraph.GraphsTuple`.

Node space: users at `[0, U)`, items at `[U, U + I)` (as PyG's LightGCN does), so one embedding
table and one set of message-passing ops serve both sides. Every interaction becomes two directed
edges (user→item and item→user). Edges are sorted by receiver so that segment ops can use
`indices_are_sorted=True` and CSR kernels need no re-sort.

Edge features (`graph.edges`, a dict of [E] float32 arrays):
  weight: the interaction weight (1.0 when the data has none, and for self-loops/social edges).
  norm:   the symmetric normalisation of LightGCN (He et al. 2020, eq. 3),
          `1 / sqrt(|N(i)| |N(j)|)`, i.e. the entries of D^-1/2 A D^-1/2, computed on the host.
  mask:   1.0 for real edges, 0.0 for padding (see `pad_graph`).
"""
from __future__ import annotations

import jraph
import numpy as np
import scipy.sparse as sp

from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError

# Config `weighted_norm`: "auto" (weighted exactly when the weights differ), "true", "false".
WEIGHTED_NORM = ("auto", "true", "false")


def use_weighted_norm(setting: bool | str, train: Interactions) -> bool:
  """Whether `build_graph` normalises with the weighted adjacency.

  "auto": when the train weights differ (behaviour types, ratings, counts), binary when they are
  all equal or absent (without self-loops or social edges a constant weight cancels in
  w / sqrt(d_i d_j) anyway). True/"true" and False/"false" force either.
  """
  if isinstance(setting, (bool, np.bool_)):
    return bool(setting)
  if setting not in WEIGHTED_NORM:
    raise ConfigError(f"weighted_norm must be {'|'.join(WEIGHTED_NORM)}, got {setting!r}")
  if setting != "auto":
    return setting == "true"
  w = train.weight
  return w is not None and len(w) > 0 and bool(w.min() != w.max())


def build_graph(
    train: Interactions,
    num_users: int,
    num_items: int,
    *,
    weighted_norm: bool | str = False,
    self_loops: bool = False,
    social: np.ndarray | None = None,
) -> jraph.GraphsTuple:
  """Builds the bipartite (optionally social) interaction graph.

  Args:
    train: the training interactions (valid/test edges must never enter the graph).
    num_users: U, the size of the user catalogue (users without edges are isolated nodes).
    num_items: I, the size of the item catalogue.
    weighted_norm: normalise with the weighted adjacency (degrees are sums of interaction
      weights) instead of the binary one LightGCN uses; "auto" when the train weights differ
      (`use_weighted_norm`).
    self_loops: add an edge i→i of weight 1 for every node (counted in the degrees).
    social: optional [m, 2] user–user pairs; each becomes two directed edges of weight 1.

  Returns:
    A single `GraphsTuple` with `n_node = [U + I]`, `nodes = None` (features live in the model)
    and `edges = {"weight", "norm", "mask", "reverse"}`; `reverse[e]` is the index of the edge
    going the other way (every edge has one: the graph is built in both directions), which
    lets the native `csr` propagation compute A^T x without re-sorting (gnnrec_jax/graph/propagate.py).
  """
  m = len(train)
  u = train.user.astype(np.int32)
  i = (train.item.astype(np.int64) + num_users).astype(np.int32)
  w = train.weights_or_ones().astype(np.float32)
  # Every edge is listed with its reverse: edge j and edge `pair[j]` go opposite ways.
  senders, receivers, weights, pair = [u, i], [i, u], [w, w], [_range(m, 2 * m), _range(0, m)]
  if social is not None and len(social):
    s = np.asarray(social, dtype=np.int32)
    k, base = len(s), 2 * m
    senders += [s[:, 0], s[:, 1]]
    receivers += [s[:, 1], s[:, 0]]
    ones = np.ones(k, np.float32)
    weights += [ones, ones]
    pair += [_range(base + k, base + 2 * k), _range(base, base + k)]
  n = num_users + num_items
  if self_loops:
    base = sum(len(p) for p in pair)
    loop = np.arange(n, dtype=np.int32)
    senders.append(loop)
    receivers.append(loop)
    weights.append(np.ones(n, np.float32))
    pair.append(_range(base, base + n))
  senders = np.concatenate(senders)
  receivers = np.concatenate(receivers)
  weights = np.concatenate(weights)

  order = _receiver_order(senders, receivers, n)
  unique = order is not None
  if not unique:  # an edge repeats (a social pair repeating another): by receiver, then sender
    order = np.lexsort((senders, receivers))
  senders, receivers, weights = senders[order], receivers[order], weights[order]

  a = weights if use_weighted_norm(weighted_norm, train) else np.ones_like(weights)
  deg = np.bincount(receivers, weights=a, minlength=n).astype(np.float64)
  inv_sqrt = np.zeros(n)
  np.divide(1.0, np.sqrt(deg), out=inv_sqrt, where=deg > 0)
  norm = np.empty(len(senders), np.float32)
  for lo in range(0, len(senders), _CHUNK):  # in float64, a chunk at a time: no [E] float64
    sl = slice(lo, lo + _CHUNK)
    norm[sl] = inv_sqrt[senders[sl]] * a[sl] * inv_sqrt[receivers[sl]]

  e = len(senders)
  edges = {"weight": weights, "norm": norm, "mask": np.ones(e, np.float32)}
  if unique:
    # The reverse of sorted edge k is edge pair[order[k]] of the listing, which the sort moved
    # to position inv[pair[order[k]]]: O(E), no search.
    inv = np.empty(e, np.int64 if e >= 2**31 else np.int32)
    inv[order] = np.arange(e, dtype=inv.dtype)
    edges["reverse"] = inv[np.concatenate(pair)[order]].astype(np.int32)
  # With duplicate edges A^T is not A's structure read backwards: no "reverse" (the kernels
  # re-sort instead).
  return jraph.GraphsTuple(
      nodes=None,
      edges=edges,
      senders=senders.astype(np.int32, copy=False),
      receivers=receivers.astype(np.int32, copy=False),
      n_node=np.array([n], np.int32),
      n_edge=np.array([e], np.int32),
      globals=None,
  )


_CHUNK = 1 << 24  # edges per chunk of host-side float64 work


def _range(lo: int, hi: int) -> np.ndarray:
  """np.arange in int32 while indices fit (half the memory of int64 at 10^8 edges)."""
  return np.arange(lo, hi, dtype=np.int32 if hi < 2**31 else np.int64)


def _receiver_order(senders: np.ndarray, receivers: np.ndarray, n: int) -> np.ndarray | None:
  """The permutation that sorts edges by (receiver, sender), or None when an edge repeats.

  A counting sort by receiver and a sort of each receiver's senders (scipy's COO -> CSR
  conversion, O(E + N) plus per-row sorts, in C++) carrying each edge's position as its value:
  at 2 x 10^8 edges several times faster than `np.lexsort` or an `argsort` of (r, s) keys, and
  no [E] int64 key is built. Duplicates are summed by the conversion, so a shrunken matrix means
  a repeated edge.
  """
  e = len(senders)
  if e == 0:
    return np.zeros(0, np.int64)
  ids = np.arange(e, dtype=np.int64 if e >= 2**31 else np.int32)
  mat = sp.coo_matrix((ids, (receivers, senders)), shape=(n, n)).tocsr()
  mat.sum_duplicates()  # sorts each row's senders (a no-op where scipy already did)
  if mat.nnz != e:
    return None
  return mat.data


def reverse_edges(senders: np.ndarray, receivers: np.ndarray, n: int) -> np.ndarray | None:
  """rev[e] = the index of the edge receivers[e] -> senders[e], for edges sorted by (receiver,
  sender); None when some edge has no reverse or an edge repeats (then A^T is not A's structure
  read backwards, and the kernels re-sort instead). A search over the sorted keys, for any
  graph (`build_graph` derives the index from its own listing instead)."""
  key = receivers.astype(np.int64) * n + senders
  if len(key) > 1 and not np.all(key[1:] > key[:-1]):
    return None  # not strictly sorted: duplicates (or not sorted by (receiver, sender))
  want = senders.astype(np.int64) * n + receivers
  rev = np.searchsorted(key, want)
  # A missing reverse lands on a different key (or past the end, clipped to the last key).
  if len(key) and np.any(key[np.minimum(rev, len(key) - 1)] != want):
    return None
  return rev.astype(np.int32)


def num_nodes(graph: jraph.GraphsTuple) -> int:
  """Total nodes, padding included; a static int (`jnp.sum(n_node)` is not jittable)."""
  return int(np.sum(np.asarray(graph.n_node)))


def degrees(graph: jraph.GraphsTuple, *, weighted: bool = False) -> np.ndarray:
  """In-degree of every node (host-side), counting only real (unmasked) edges."""
  mask = np.asarray(graph.edges["mask"])
  a = mask * (np.asarray(graph.edges["weight"]) if weighted else 1.0)
  return np.bincount(np.asarray(graph.receivers), weights=a, minlength=num_nodes(graph))


def adjacency(graph: jraph.GraphsTuple, *, values: str = "norm") -> sp.csr_matrix:
  """The [N, N] sparse matrix with `A[receiver, sender] = edges[values]` (host-side).

  With `values="norm"` this is LightGCN's D^-1/2 A D^-1/2, so `adjacency(g) @ x` is one
  propagation step.
  """
  n = num_nodes(graph)
  vals = np.asarray(graph.edges[values]) * np.asarray(graph.edges["mask"])
  return sp.csr_matrix((vals, (np.asarray(graph.receivers), np.asarray(graph.senders))),
                       shape=(n, n))


def pad_graph(graph: jraph.GraphsTuple, *, n_node: int, n_edge: int) -> jraph.GraphsTuple:
  """Pads to exactly `n_node` nodes and `n_edge` edges for static shapes under jit.

  Padding edges connect the last padding node to itself with weight and norm 0 and mask 0 (and
  are their own reverse), so sums over them add nothing; padding nodes have no real neighbours.
  Like `jraph.pad_with_graphs` but keeping one graph, since the whole interaction graph is one
  graph.
  """
  n0, e0 = num_nodes(graph), int(np.asarray(graph.senders).shape[0])
  if n_node < n0 + (1 if n_edge > e0 else 0) or n_edge < e0:
    raise ValueError(f"cannot pad a graph of {n0} nodes/{e0} edges to {n_node}/{n_edge} "
                     "(padding edges need at least one padding node)")
  pad_e = n_edge - e0
  last = n_node - 1
  edges = {k: np.concatenate([np.asarray(v), np.zeros(pad_e, np.float32)])
           for k, v in graph.edges.items() if k != "reverse"}
  if "reverse" in graph.edges:  # a padding edge last -> last is its own reverse
    edges["reverse"] = np.concatenate([np.asarray(graph.edges["reverse"]),
                                       np.arange(e0, n_edge, dtype=np.int32)])
  return graph._replace(
      edges=edges,
      senders=np.concatenate([np.asarray(graph.senders), np.full(pad_e, last, np.int32)]),
      receivers=np.concatenate([np.asarray(graph.receivers), np.full(pad_e, last, np.int32)]),
      n_node=np.array([n_node], np.int32),
      n_edge=np.array([n_edge], np.int32),
  )


def round_up(x: int, multiple: int) -> int:
  """Smallest multiple of `multiple` that is >= x (padding sizes that few graphs share)."""
  return -(-x // multiple) * multiple
