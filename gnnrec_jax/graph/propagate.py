"""Message passing primitives: the weighted neighbour sum and the per-receiver edge softmax.

Every layer in `gnnrec_jax.models.layers` aggregates through `weighted_sum`, so a faster backend (a CSR
kernel, a bipartite [U, I] matmul) can be added here without touching the layers.

Backends of `weighted_sum` and `edge_dot`:
  segment: `x[senders] * w` then `jax.ops.segment_sum` over receivers, O(E d). Edges are sorted by
    receiver (`gnnrec_jax.graph.build.build_graph` guarantees it), hence `indices_are_sorted=True`.
    The choice on GPU/TPU.
  dense:   scatter the edge weights into an [N, N] matrix inside jit, then one matmul, O(N^2 d).
    Memory is N^2 floats per head; kept for small graphs and as a cross-check.
  csr:     (CPU) native CSR kernels (`gnnrec_jax.graph.kernels`: C++ XLA FFI custom calls built on first
    use): SpMM for the neighbour sum, SDDMM for edge dot products, each walking the edges once
    with the output row in registers, on XLA's own thread pool, no [E, d] intermediate and no
    host round trip. A `custom_vjp` gives the gradients with the same kernels: dx = A^T g, which
    for a structurally symmetric graph (every graph `build_graph` makes; it stores the reverse
    of each edge in `graph.edges["reverse"]`) is A's own product with each edge reading its
    reverse's weight, else the kernel re-sorts the edges by sender; dw_e = <g[r_e], x[s_e]> by
    SDDMM, which XLA removes when the weights need no gradient (LightGCN's fixed norm). Measured
    on the 2-core development CPU (benchmarks/bench_propagation.py, benchmarks/RESULTS.md): one
    Gowalla layer (1.6M edges, d = 64) forward 6.7 ms and forward + backward 12.9 ms, against
    16.4 / 32.7 ms for scipy's CSR product and 91 / 200 ms for segment. Where the kernels cannot be
    built (no C++ compiler) or `GNNREC_NATIVE=0`, "csr" means "scipy".
  scipy:   (CPU) scipy's CSR product on the host through `jax.pure_callback`, with the same
    custom VJP (A^T g through the CSC view). The fallback of "csr", 3-5x slower than the native
    kernels and a host round trip per call; float64 inputs always take it (the native kernels
    are float32). Threads: `GNNREC_CSR_THREADS` (default 1, see `csr_threads`).
  auto:    CPU: csr. GPU/TPU: segment (not measured: no accelerator was available when this was
    written).

Both functions take the static node count `num_nodes` as an argument: `graph.n_node` is a traced
array under jit, so the count must come from a static module attribute.
"""
from __future__ import annotations

import concurrent.futures
import functools
import os

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import scipy.sparse as sp

from gnnrec_jax.errors import ConfigError
from gnnrec_jax.graph import kernels

BACKENDS = ("auto", "segment", "dense", "csr", "scipy")
DENSE_MAX_NODES = 8192  # one [N, N] float32 matrix is 256 MiB at this size (edge_dot's limit)


def resolve_backend(backend: str, num_nodes: int, *, platform: str | None = None) -> str:
  """The concrete backend that `backend` means for `num_nodes` nodes on `platform`.

  Args:
    backend: "auto" | "segment" | "dense" | "csr" | "scipy".
    num_nodes: N, static.
    platform: "cpu", "gpu", "tpu", ...; default `jax.default_backend()`.

  Returns:
    "segment", "dense", "csr" or "scipy" ("csr" and "scipy" only on CPU, "csr" only where the
    native kernels are available; see the module docstring).

  Raises:
    ConfigError: an unknown backend name.
  """
  if backend not in BACKENDS:
    raise ConfigError(f"unknown propagation backend {backend!r}; choose one of "
                      f"{', '.join(BACKENDS)}")
  del num_nodes  # every rule measured so far is size-independent; kept for size-based rules
  on_cpu = (platform or jax.default_backend()) == "cpu"
  if backend in ("auto", "csr", "scipy"):
    if not on_cpu:
      return "segment"
    if backend == "scipy" or not kernels.available():
      return "scipy"
    return "csr"
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
    backend: "segment" | "dense" | "csr" | "scipy" | "auto" (see the module docstring).

  Returns:
    [N, d] (or [N, H, dh]) aggregated messages; a node without incoming edges gets zeros.
  """
  backend = resolve_backend(backend, num_nodes)
  senders, receivers = graph.senders, graph.receivers
  multi_head = weights.ndim == 2
  if multi_head and x.ndim != 3:
    raise ValueError(f"weights of shape {weights.shape} need x of shape [N, H, dh], got {x.shape}")
  if backend in ("csr", "scipy") and x.shape[0] != num_nodes:
    raise ValueError(f"x has {x.shape[0]} rows but num_nodes is {num_nodes}")
  if backend == "csr" and x.dtype != jnp.float64:
    w2 = weights if multi_head else weights[:, None]  # [E, H]
    out = _native_weighted_sum(x.reshape(num_nodes, -1).astype(jnp.float32), senders,
                               receivers, w2.astype(jnp.float32), _reverse(graph))
    return out.reshape(x.shape).astype(x.dtype)
  if backend in ("csr", "scipy"):
    return _csr_weighted_sum(x, senders, receivers, weights.astype(x.dtype))
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


# --- csr backend: native kernels ----------------------------------------------------------------
def _reverse(graph: jraph.GraphsTuple) -> jax.Array | None:
  edges = graph.edges if isinstance(graph.edges, dict) else {}
  return edges.get("reverse")


def _transposed(receivers, senders, weights, x, reverse):
  """A^T x: through the reverse-edge index when the graph has one, else the kernel's re-sort."""
  if reverse is None:
    return kernels.spmm(receivers, senders, weights, x, transpose=True)
  return kernels.spmm(receivers, senders, weights, x, weight_index=reverse)


@jax.custom_vjp
def _native_weighted_sum(x, senders, receivers, weights, reverse):
  del reverse
  return kernels.spmm(receivers, senders, weights, x)


def _native_ws_fwd(x, senders, receivers, weights, reverse):
  out = kernels.spmm(receivers, senders, weights, x)
  return out, (x, senders, receivers, weights, reverse)


def _native_ws_bwd(res, g):
  x, senders, receivers, weights, reverse = res
  dx = _transposed(receivers, senders, weights, g, reverse)
  # Dead code (removed by XLA) when no gradient w.r.t. the weights is used.
  dw = kernels.sddmm(receivers, senders, g, x, heads=weights.shape[1])
  return dx, None, None, dw, None


_native_weighted_sum.defvjp(_native_ws_fwd, _native_ws_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _native_edge_dot(q, k, senders, receivers, reverse, heads):
  del reverse
  return kernels.sddmm(receivers, senders, q, k, heads=heads)


def _native_ed_fwd(q, k, senders, receivers, reverse, heads):
  return kernels.sddmm(receivers, senders, q, k, heads=heads), (q, k, senders, receivers, reverse)


def _native_ed_bwd(heads, res, g):
  del heads
  q, k, senders, receivers, reverse = res
  dq = kernels.spmm(receivers, senders, g, k)  # dq[r] = sum_e g_e k[s_e]
  dk = _transposed(receivers, senders, g, q, reverse)  # dk[s] = sum_e g_e q[r_e]
  return dq, dk, None, None, None


_native_edge_dot.defvjp(_native_ed_fwd, _native_ed_bwd)


# --- scipy backend (the csr fallback) ------------------------------------------------------------
# Below this many multiply-adds (nnz * d) per thread, handing work to a second thread cost more
# than it saved (ml-100k, 10M: 2 threads were slower; Gowalla, 104M: see bench_propagation).
_THREAD_MIN_WORK = 1 << 25


@functools.cache
def _pool(threads: int) -> concurrent.futures.ThreadPoolExecutor:
  return concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="gnnrec-csr")


def csr_threads() -> int:
  """Threads of one scipy CSR product (backend "scipy"): $GNNREC_CSR_THREADS, default 1.

  (The native "csr" kernels read the same variable as a cap, default: every thread of XLA's
  pool; see `gnnrec_jax.graph.kernels.max_threads`.) One by default because that was faster where it
  was measured: on 2 cores shared with other jobs (load average 8) two threads made a Gowalla
  layer slower (fwd 45 -> 89 ms, fwd+bwd 123 -> 172 ms, benchmarks/bench_propagation.py
  --csr-threads 1 2). On a dedicated machine with idle cores, set GNNREC_CSR_THREADS to their
  number.
  """
  return max(1, int(os.environ.get("GNNREC_CSR_THREADS") or 1))


def _row_pointers(receivers: jax.Array, num_nodes: int) -> tuple[jax.Array, jax.Array]:
  """CSR row pointers [N + 1] of edges sorted by receiver, and whether they are sorted ([])."""
  # Computed by XLA rather than on the host: the host then receives N + 1 pointers instead of
  # the E receivers, and XLA shares the result between the layers of a model (same operand).
  indptr = jnp.searchsorted(receivers, jnp.arange(num_nodes + 1, dtype=receivers.dtype),
                            side="left", method="scan")
  ok = jnp.all(receivers[1:] >= receivers[:-1]) if receivers.shape[0] > 1 else jnp.array(True)
  return indptr.astype(jnp.int32), ok


def _spmm(mat, x: np.ndarray, threads: int, *, transpose: bool) -> np.ndarray:
  """(mat or mat^T) @ x for a CSR `mat` and x [N, d], split over threads when it is big enough."""
  d = x.shape[1]
  threads = min(threads, max(1, mat.nnz * d // _THREAD_MIN_WORK))
  if threads <= 1:
    return np.asarray((mat.T if transpose else mat) @ x, dtype=x.dtype)
  out = np.empty((mat.shape[0], d), x.dtype)
  if not transpose:
    # Row blocks with equal numbers of nonzeros: no work is repeated and no reduction needed.
    cuts = np.searchsorted(mat.indptr, np.linspace(0, mat.nnz, threads + 1)[1:-1])
    bounds = [0, *cuts.tolist(), mat.shape[0]]

    def block(k):
      lo, hi = bounds[k], bounds[k + 1]
      out[lo:hi] = mat[lo:hi] @ x
  else:
    # A^T scatters into every output row, so split the feature columns instead.
    bounds = np.linspace(0, d, min(threads, d) + 1).astype(int).tolist()

    def block(k):
      lo, hi = bounds[k], bounds[k + 1]
      out[:, lo:hi] = mat.T @ np.ascontiguousarray(x[:, lo:hi])

  list(_pool(threads).map(block, range(len(bounds) - 1)))
  return out


def _spmm_host(indptr, senders, weights, x, ok, *, transpose: bool) -> np.ndarray:
  """Host side of the csr backend: (A or A^T) @ x per head; x [N, d] or [N, H, dh]."""
  if not bool(ok):
    raise ValueError("propagation backends 'csr' and 'scipy' need edges sorted by receiver "
                     "(as gnnrec_jax.graph.build.build_graph and pad_graph make them)")
  indptr, senders = np.asarray(indptr), np.asarray(senders)
  weights, x = np.asarray(weights), np.asarray(x)
  n = x.shape[0]
  threads = csr_threads()

  def matrix(w):  # shares the buffers: building it costs microseconds
    return sp.csr_matrix((w, senders, indptr), shape=(n, n), copy=False)

  if weights.ndim == 1:
    return _spmm(matrix(weights), x, threads, transpose=transpose)
  out = np.empty_like(x)
  for h in range(weights.shape[1]):
    out[:, h] = _spmm(matrix(np.ascontiguousarray(weights[:, h])),
                      np.ascontiguousarray(x[:, h]), threads, transpose=transpose)
  return out


def _csr_product(x, indptr, senders, weights, ok, *, transpose: bool):
  # scipy multiplies float32/float64; other dtypes (bfloat16) go through float32.
  work = x if x.dtype in (jnp.float32, jnp.float64) else x.astype(jnp.float32)
  out = jax.pure_callback(
      functools.partial(_spmm_host, transpose=transpose),
      jax.ShapeDtypeStruct(work.shape, work.dtype),
      indptr, senders, weights.astype(work.dtype), work, ok,
      vmap_method="sequential")
  return out.astype(x.dtype)


@jax.custom_vjp
def _csr_weighted_sum(x, senders, receivers, weights):
  indptr, ok = _row_pointers(receivers, x.shape[0])
  return _csr_product(x, indptr, senders, weights, ok, transpose=False)


def _csr_fwd(x, senders, receivers, weights):
  indptr, ok = _row_pointers(receivers, x.shape[0])
  out = _csr_product(x, indptr, senders, weights, ok, transpose=False)
  return out, (x, senders, receivers, weights, indptr, ok)


def _csr_bwd(res, g):
  x, senders, receivers, weights, indptr, ok = res
  dx = _csr_product(g, indptr, senders, weights, ok, transpose=True)  # A^T g, [N, d]
  # d out[r] / d w_e = x[s_e] for the edge e = (s_e -> r_e); XLA drops these gathers when no
  # gradient w.r.t. the weights is requested (fixed LightGCN/NGCF norms).
  dw = jnp.sum(g[receivers] * x[senders], axis=-1).astype(weights.dtype)  # [E] or [E, H]
  return dx, None, None, dw


_csr_weighted_sum.defvjp(_csr_fwd, _csr_bwd)


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
      row gathers, and above all their scatter-add gradients, dominate otherwise). "csr" uses
      the native SDDMM kernel (gradients by SpMM); "scipy" (no sampled product there) uses the
      dense product when N <= DENSE_MAX_NODES and the gathers above it.

  Returns:
    [E] (or [E, H]) logits.
  """
  backend = resolve_backend(backend, num_nodes)
  if backend == "csr" and q.dtype != jnp.float64:
    heads = q.shape[1] if q.ndim == 3 else 1
    out = _native_edge_dot(q.reshape(num_nodes, -1).astype(jnp.float32),
                           k.reshape(num_nodes, -1).astype(jnp.float32), graph.senders,
                           graph.receivers, _reverse(graph), heads)
    return (out if q.ndim == 3 else out[:, 0]).astype(q.dtype)
  if backend in ("csr", "scipy") and num_nodes <= DENSE_MAX_NODES:
    backend = "dense"  # scipy has no sampled dense-dense product; the matmul is the fast one
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
