"""Message passing primitives: the weighted neighbour sum and the per-receiver edge softmax.

Every layer in `gnnrec_jax.layers` aggregates through `weighted_sum`, so a faster backend (a CSR
kernel, a bipartite [U, I] matmul) can be added here without touching the layers.

Backends of `weighted_sum`:
  segment: `x[senders] * w` then `jax.ops.segment_sum` over receivers, O(E d). Edges are sorted by
    receiver (`gnnrec_jax.graph.build_graph` guarantees it), hence `indices_are_sorted=True`.
  dense:   scatter the edge weights into an [N, N] matrix inside jit, then one matmul, O(N^2 d).
    On CPU the matmul is far faster than the scatter of [E, d] rows when N is a few thousand
    (ml-100k: N = 2,625, E = 160k); memory is N^2 floats per head.
  auto:    dense when N <= 8192 (256 MiB for one [N, N] float32 matrix), else segment.

Both functions take the static node count `num_nodes` as an argument: `graph.n_node` is a traced
array under jit, so the count must come from a static module attribute.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph

from gnnrec_jax.errors import ConfigError

BACKENDS = ("auto", "segment", "dense")
DENSE_MAX_NODES = 8192  # one [N, N] float32 matrix is 256 MiB at this size


def resolve_backend(backend: str, num_nodes: int) -> str:
  """Maps "auto" to "dense" or "segment" for `num_nodes`; raises ConfigError on unknown names."""
  if backend == "auto":
    return "dense" if num_nodes <= DENSE_MAX_NODES else "segment"
  if backend not in BACKENDS:
    raise ConfigError(f"unknown propagation backend {backend!r}; choose one of "
                      f"{', '.join(BACKENDS)} (csr is not implemented yet)")
  return backend


def weighted_sum(x: jax.Array, graph: jraph.GraphsTuple, weights: jax.Array, *,
                 num_nodes: int, backend: str = "segment") -> jax.Array:
  """out[r] = sum over edges e with receivers[e] == r of weights[e] * x[senders[e]].

  Args:
    x: [N, d] node vectors, or [N, H, dh] per-head vectors when `weights` is [E, H].
    graph: the graph; only `senders` and `receivers` are read (sorted by receiver).
    weights: [E] or [E, H] edge weights. Padding edges must carry weight 0 (the graph's `norm`
      and `edge_softmax` both guarantee it), which is why no mask is applied here.
    num_nodes: N, static.
    backend: "segment" | "dense" | "auto" (see the module docstring).

  Returns:
    [N, d] (or [N, H, dh]) aggregated messages; a node without incoming edges gets zeros.
  """
  backend = resolve_backend(backend, num_nodes)
  senders, receivers = graph.senders, graph.receivers
  multi_head = weights.ndim == 2
  if multi_head and x.ndim != 3:
    raise ValueError(f"weights of shape {weights.shape} need x of shape [N, H, dh], got {x.shape}")
  if backend == "dense":
    if multi_head:
      heads = weights.shape[1]
      adj = jnp.zeros((heads, num_nodes, num_nodes), x.dtype)
      adj = adj.at[:, receivers, senders].add(weights.T.astype(x.dtype))  # [H, N, N]
      return jnp.einsum("hrs,shd->rhd", adj, x)
    adj = jnp.zeros((num_nodes, num_nodes), x.dtype)
    adj = adj.at[receivers, senders].add(weights.astype(x.dtype))  # [N, N]
    return adj @ x
  w = weights.astype(x.dtype)
  msgs = x[senders] * w[..., None]  # [E, d] or [E, H, dh]
  return jax.ops.segment_sum(msgs, receivers, num_segments=num_nodes, indices_are_sorted=True)


def edge_dot(q: jax.Array, k: jax.Array, graph: jraph.GraphsTuple, *, num_nodes: int,
             backend: str = "segment") -> jax.Array:
  """Per-edge dot products q[receivers[e]] . k[senders[e]] (attention logits).

  Args:
    q: [N, d] or [N, H, dh] receiver-side vectors.
    k: same shape, sender-side vectors.
    graph: the graph; reads `senders` and `receivers`.
    num_nodes: N, static.
    backend: "segment" gathers [E, d] rows; "dense" computes all [N, N] products with one matmul
      and gathers E scalars, which on CPU is several times faster for N of a few thousand (the
      row gathers, and above all their scatter-add gradients, dominate otherwise).

  Returns:
    [E] (or [E, H]) logits.
  """
  backend = resolve_backend(backend, num_nodes)
  if backend == "dense":
    if q.ndim == 3:
      scores = jnp.einsum("nhd,mhd->hnm", q, k)  # [H, N, N]
      return scores[:, graph.receivers, graph.senders].T
    return (q @ k.T)[graph.receivers, graph.senders]
  return jnp.sum(q[graph.receivers] * k[graph.senders], axis=-1)


def edge_softmax(logits: jax.Array, graph: jraph.GraphsTuple, *, num_nodes: int) -> jax.Array:
  """Softmax of edge logits over each receiver's incoming edges (GAT's alpha_ij over j in N(i)).

  Like `jraph.segment_softmax(logits, graph.receivers, num_nodes)`, but padding edges (mask 0)
  are excluded from every denominator and get alpha = 0, and a receiver whose incoming edges are
  all padding gets alphas of 0 rather than NaN. The per-receiver maximum is subtracted before
  `exp`, so logits of any finite size (tested up to 1e4) stay finite.

  Args:
    logits: [E] or [E, H] edge logits.
    graph: the graph; reads `receivers` and `edges["mask"]` (all ones when absent).
    num_nodes: N, static.

  Returns:
    alpha with the shape of `logits`; each receiver's real incoming alphas sum to 1 (per head).
  """
  receivers = graph.receivers
  mask = _edge_mask(graph, logits.dtype)
  if logits.ndim == 2:
    mask = mask[:, None]
  lowest = jnp.finfo(logits.dtype).min
  masked = jnp.where(mask > 0, logits, lowest)
  # The shift cancels in the ratio, so no gradient needs to flow through it.
  seg_max = jax.ops.segment_max(masked, receivers, num_segments=num_nodes,
                                indices_are_sorted=True)
  shift = jax.lax.stop_gradient(seg_max)[receivers]
  # exp(lowest - shift) underflows to 0 for padding edges whose receiver has real edges; the
  # mask zeroes the remaining case (receiver with padding edges only, where masked == shift).
  ex = jnp.exp(masked - shift) * mask
  denom = jax.ops.segment_sum(ex, receivers, num_segments=num_nodes,
                              indices_are_sorted=True)[receivers]
  return ex / jnp.where(denom > 0, denom, 1.0)


def normalize_per_receiver(values: jax.Array, graph: jraph.GraphsTuple, *,
                           num_nodes: int) -> jax.Array:
  """values[e] / sum of values over the receiver's real incoming edges (0 where that sum is 0).

  Used for the seed's first-layer alpha from interaction weights: w_ij / sum_k w_ik.

  Args:
    values: [E] non-negative edge values.
    graph: the graph; reads `receivers` and `edges["mask"]`.
    num_nodes: N, static.

  Returns:
    [E] values normalised per receiver.
  """
  v = values * _edge_mask(graph, values.dtype)
  denom = jax.ops.segment_sum(v, graph.receivers, num_segments=num_nodes,
                              indices_are_sorted=True)[graph.receivers]
  return v / jnp.where(denom > 0, denom, 1.0)


def _edge_mask(graph: jraph.GraphsTuple, dtype) -> jax.Array:
  edges = graph.edges if isinstance(graph.edges, dict) else {}
  if "mask" in edges:
    return jnp.asarray(edges["mask"], dtype)
  return jnp.ones(graph.receivers.shape[0], dtype)
