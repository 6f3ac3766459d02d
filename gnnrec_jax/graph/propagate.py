"""Message passing primitives: the weighted neighbour sum and the per-receiver edge softmax.

Every layer in `gnnrec_jax.models.layers` aggregates through `weighted_sum`, so a faster backend (a CSR
kernel, a bipartite [U, I] matmul) can be added here without touching the layers.

Backends of `weighted_sum` and `edge_dot`:
  segment: `x[senders] * w` then `jax.ops.segment_sum` over receivers, O(E d). Edges are sorted by
    receiver (`gnnrec_jax.graph.build.build_graph` guarantees it), hence `indices_are_sorted=True`.
    The choice on GPU/TPU.
  dense:   scatter the edge weights into an [N, N] matrix inside jit, then one matmul, O(N^2 d).
    Memory is N^2 floats per head; kept for small graphs and as a cross-check, hence its matmuls
    run at `Precision.HIGHEST` on every platform (gnnrec_jax/precision.py).
  blocked: (any platform) the segment computation one block of edges at a time: a `fori_loop`
    over blocks of `edge_block(E, d)` edges (64 MiB of messages, 262,144 edges at d = 64), each
    gathering its senders' rows and scatter-adding into the [N, d] accumulator carried by the
    loop, with a custom VJP (dx = A^T g by the same loop over the reverse-edge weights, dw by a
    blocked SDDMM that XLA drops when unused). Memory O(N d + E) instead of segment's O(E d):
    the backend for graphs whose [E, d] messages do not fit (10^8 edges x 64 floats = 25.6 GB
    per layer, forward and backward), at the cost of a sequential loop over blocks. `edge_dot`
    likewise (blocked SDDMM forward, blocked SpMMs backward).
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
  partitioned: (several devices; what `fit(devices=N)` / `gnnrec-jax train --devices N` uses)
    receiver-partitioned propagation over the devices of the current mesh (`jax.set_mesh`):
    device p owns node rows [pR, (p+1)R) and the edges into them (the graph laid out by
    `gnnrec_jax.training.parallel.partition_graph`); it receives from every other device only
    the rows its edges read (one all_to_all of a [D, M, d] halo, the plan precomputed on the
    host), then sums its edges locally. Per device: R + D M rows and E / D edges, instead of
    every row of the full [N, d] activations. Gradients by JAX's transposes (all_to_all's is
    an all_to_all back).
  auto:    CPU: csr. GPU/TPU: segment (measured on an H200: a Gowalla epoch in 0.69 s; set
    `blocked` when [E, d] does not fit in device memory).

The platform is the one JAX will run on here (`current_platform`): inside
`jax.default_device(jax.devices("cpu")[0])` a GPU host resolves "csr" to the native kernels.

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
from gnnrec_jax.precision import EXACT

BACKENDS = ("auto", "segment", "dense", "blocked", "csr", "scipy", "partitioned")
DENSE_MAX_NODES = 8192  # one [N, N] float32 matrix is 256 MiB at this size (edge_dot's limit)


def current_platform() -> str:
  """The platform that jitted code runs on here: "cpu", "gpu", "tpu", ...

  The device of an enclosing `jax.default_device(...)` context when there is one (so that
  `with jax.default_device(jax.devices("cpu")[0]):` on a GPU host selects the CPU backends, and
  the native kernels really run), else `jax.default_backend()`.
  """
  dev = jax.config.jax_default_device
  if dev is None:
    return jax.default_backend()
  name = dev if isinstance(dev, str) else dev.platform
  return "gpu" if name in ("cuda", "rocm") else name


def resolve_backend(backend: str, num_nodes: int, *, platform: str | None = None) -> str:
  """The concrete backend that `backend` means for `num_nodes` nodes on `platform`.

  Args:
    backend: one of `BACKENDS`.
    num_nodes: N, static.
    platform: "cpu", "gpu", "tpu", ...; default `current_platform()` (the device context's).

  Returns:
    "segment", "dense", "blocked", "csr" or "scipy" ("csr" and "scipy" only on CPU, "csr" only
    where the native kernels are available; see the module docstring). "csr" and "scipy" asked
    for on an accelerator mean "segment": the native kernels are CPU code and scipy's product
    would cost a device-host round trip per layer.

  Raises:
    ConfigError: an unknown backend name.
  """
  if backend not in BACKENDS:
    raise ConfigError(f"unknown propagation backend {backend!r}; choose one of "
                      f"{', '.join(BACKENDS)}")
  del num_nodes  # every rule measured so far is size-independent; kept for size-based rules
  on_cpu = (platform or current_platform()) == "cpu"
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
  if backend == "partitioned":
    return _partitioned_weighted_sum(x, graph, weights, num_nodes)
  if backend == "blocked":
    x3 = x if multi_head else x[:, None, :]  # [N, H, dh]
    w2 = (weights if multi_head else weights[:, None]).astype(x.dtype)  # [E, H]
    block = edge_block(senders.shape[0], x3.shape[1] * x3.shape[2])
    out = _blocked_weighted_sum(x3, senders, receivers, w2, _reverse(graph), num_nodes, block)
    return out.reshape(x.shape)
  if backend == "dense":
    if multi_head:
      heads = weights.shape[1]
      adj = jnp.zeros((heads, num_nodes, num_nodes), x.dtype)
      adj = adj.at[:, receivers, senders].add(weights.T.astype(x.dtype))  # [H, N, N]
      return jnp.einsum("hrs,shd->rhd", adj, x, precision=EXACT)
    adj = jnp.zeros((num_nodes, num_nodes), x.dtype)
    adj = adj.at[receivers, senders].add(weights.astype(x.dtype))  # [N, N]
    return jnp.matmul(adj, x, precision=EXACT)  # exact: the cross-check backend (precision.py)
  w = weights.astype(x.dtype)
  msgs = x[senders] * w[..., None]  # [E, d] or [E, H, dh]
  return jax.ops.segment_sum(msgs, receivers, num_segments=num_nodes, indices_are_sorted=True)


# --- blocked backend: O(N d + E) memory on any platform ------------------------------------------
BLOCK_BYTES = 1 << 26  # 64 MiB of messages per block; see `edge_block`


def edge_block(num_edges: int, width: int) -> int:
  """Edges per block of the `blocked` backend: a power of two whose [block, width] float32
  messages take about $GNNREC_BLOCK_BYTES (default `BLOCK_BYTES`, 64 MiB: 262,144 edges at
  d = 64), at most the edge count. Static (a Python int), read when tracing."""
  target = int(os.environ.get("GNNREC_BLOCK_BYTES") or BLOCK_BYTES)
  rows = max(1, target // (4 * max(width, 1)))
  return max(1, min(num_edges, 1 << (rows.bit_length() - 1)))


def _by_blocks(num_edges: int, block: int, body, carry):
  """carry = body(carry, start, size) over the edge blocks [start, start + size): a `fori_loop`
  over the full blocks, then the remainder with its own static size (no padded copy of the
  edge arrays, which at 10^8 edges would cost gigabytes per layer)."""
  full = num_edges // block
  if full:
    carry = jax.lax.fori_loop(0, full, lambda b, c: body(c, b * block, block), carry)
  if num_edges % block:
    carry = body(carry, full * block, num_edges % block)
  return carry


def _blocked_scatter(x, src, dst, w, num_out: int, block: int, *, sorted_dst: bool):
  """out[dst[e], h] += w[e, h] * x[src[e], h], block by block: x [N, H, dh], w [E, H].

  Only one block's [block, H, dh] messages exist at a time, and the [num_out, H, dh]
  accumulator is the loop carry, updated in place."""
  def body(acc, start, size):
    s = jax.lax.dynamic_slice_in_dim(src, start, size)
    r = jax.lax.dynamic_slice_in_dim(dst, start, size)
    msg = x[s] * jax.lax.dynamic_slice_in_dim(w, start, size)[:, :, None]  # [size, H, dh]
    return acc.at[r].add(msg, indices_are_sorted=sorted_dst, mode="promise_in_bounds")

  acc = jnp.zeros((num_out, *x.shape[1:]), x.dtype)
  return _by_blocks(src.shape[0], block, body, acc)


def _blocked_dot(a, b, rows_a, rows_b, block: int):
  """out[e, h] = <a[rows_a[e], h], b[rows_b[e], h]> block by block (SDDMM): a, b [N, H, dh]."""
  def body(out, start, size):
    ra = jax.lax.dynamic_slice_in_dim(rows_a, start, size)
    rb = jax.lax.dynamic_slice_in_dim(rows_b, start, size)
    return jax.lax.dynamic_update_slice_in_dim(out, jnp.sum(a[ra] * b[rb], axis=-1), start, 0)

  out = jnp.zeros((rows_a.shape[0], a.shape[1]), a.dtype)
  return _by_blocks(rows_a.shape[0], block, body, out)


def _blocked_transposed(g, senders, receivers, w, reverse, num_nodes, block):
  """A^T g: with the reverse-edge index, A's own edge order with each edge reading its reverse's
  weight (receivers stay sorted); without it, a scatter into the senders (unsorted)."""
  if reverse is None:
    return _blocked_scatter(g, receivers, senders, w, num_nodes, block, sorted_dst=False)
  return _blocked_scatter(g, senders, receivers, w[reverse], num_nodes, block, sorted_dst=True)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _blocked_weighted_sum(x, senders, receivers, weights, reverse, num_nodes, block):
  del reverse
  return _blocked_scatter(x, senders, receivers, weights, num_nodes, block, sorted_dst=True)


def _blocked_ws_fwd(x, senders, receivers, weights, reverse, num_nodes, block):
  out = _blocked_scatter(x, senders, receivers, weights, num_nodes, block, sorted_dst=True)
  # Residuals are the inputs: O(N d + E), where autodiff through the loop would keep every
  # block's messages, i.e. O(E d) again.
  return out, (x, senders, receivers, weights, reverse)


def _blocked_ws_bwd(num_nodes, block, res, g):
  x, senders, receivers, weights, reverse = res
  dx = _blocked_transposed(g, senders, receivers, weights, reverse, num_nodes, block)
  # dw[e] = <g[r_e], x[s_e]>: a loop XLA removes when the weights need no gradient.
  dw = _blocked_dot(g, x, receivers, senders, block)
  return dx, None, None, dw, None


_blocked_weighted_sum.defvjp(_blocked_ws_fwd, _blocked_ws_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _blocked_edge_dot(q, k, senders, receivers, reverse, num_nodes, block):
  del reverse, num_nodes
  return _blocked_dot(q, k, receivers, senders, block)


def _blocked_ed_fwd(q, k, senders, receivers, reverse, num_nodes, block):
  out = _blocked_dot(q, k, receivers, senders, block)
  return out, (q, k, senders, receivers, reverse)


def _blocked_ed_bwd(num_nodes, block, res, g):
  q, k, senders, receivers, reverse = res
  g = g.astype(q.dtype)
  dq = _blocked_scatter(k, senders, receivers, g, num_nodes, block, sorted_dst=True)
  dk = _blocked_transposed(q, senders, receivers, g, reverse, num_nodes, block)
  return dq, dk, None, None, None


_blocked_edge_dot.defvjp(_blocked_ed_fwd, _blocked_ed_bwd)


# --- partitioned backend: receivers split over the devices of a mesh ------------------------------
def _partition_plan(graph: jraph.GraphsTuple, num_nodes: int):
  """(mesh axes, devices D, rows per device R, send_idx [D, D, M]) of a partitioned graph."""
  plan = graph.globals if isinstance(graph.globals, dict) else {}
  if "send_idx" not in plan or "halo_src" not in (graph.edges or {}):
    raise ConfigError("propagation=partitioned needs a graph laid out by "
                      "gnnrec_jax.training.parallel.partition_graph (gnnrec-jax train --devices N)")
  mesh = jax.sharding.get_abstract_mesh()
  send_idx = plan["send_idx"]
  d = send_idx.shape[0]
  if mesh.empty or mesh.size != d:
    raise ConfigError(f"propagation=partitioned: the graph is laid out for {d} devices but the "
                      f"current mesh has {0 if mesh.empty else mesh.size} (run it inside "
                      "jax.set_mesh(mesh), as fit(devices=N) does)")
  if num_nodes % d:
    raise ConfigError(f"propagation=partitioned: {num_nodes} nodes do not split over {d} devices")
  return tuple(mesh.axis_names), d, num_nodes // d, send_idx


def _halo(x_local, send_idx, axes):
  """The rows of other devices this device's edges read: [D * M, ...] (row q * M + j is the j-th
  row device q sends), by one all_to_all. x_local [R, ...]; send_idx [D, D, M] replicated."""
  me = jax.lax.axis_index(axes)
  rows = x_local[send_idx[me]]  # [D, M, ...]: what this device sends to each device
  got = jax.lax.all_to_all(rows, axes, 0, 0, tiled=True)  # [D, M, ...]: from each device
  return got.reshape(-1, *x_local.shape[1:])


def _partitioned_weighted_sum(x, graph, weights, num_nodes):
  from jax.sharding import PartitionSpec as P
  axes, _, rows, send_idx = _partition_plan(graph, num_nodes)

  def local(x_loc, send_idx, halo_src, receivers, w):
    halo = _halo(x_loc, send_idx, axes)  # [D M, d] or [D M, H, dh]
    msg = halo[halo_src] * w.astype(x_loc.dtype)[..., None]
    first = jax.lax.axis_index(axes) * rows  # this device's first node row
    return jax.ops.segment_sum(msg, receivers - first, num_segments=rows,
                               indices_are_sorted=True)

  split = P(axes)
  return jax.shard_map(local, in_specs=(split, P(), split, split, split), out_specs=split)(
      x, send_idx, graph.edges["halo_src"], graph.receivers, weights)


def _partitioned_edge_dot(q, k, graph, num_nodes):
  from jax.sharding import PartitionSpec as P
  axes, _, rows, send_idx = _partition_plan(graph, num_nodes)

  def local(q_loc, k_loc, send_idx, halo_src, receivers):
    halo = _halo(k_loc, send_idx, axes)
    first = jax.lax.axis_index(axes) * rows
    return jnp.sum(q_loc[receivers - first] * halo[halo_src], axis=-1)

  split = P(axes)
  return jax.shard_map(local, in_specs=(split, split, P(), split, split), out_specs=split)(
      q, k, send_idx, graph.edges["halo_src"], graph.receivers)


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
  if backend == "partitioned":
    return _partitioned_edge_dot(q, k, graph, num_nodes)
  if backend == "blocked":
    q3 = q if q.ndim == 3 else q[:, None, :]  # [N, H, dh]
    k3 = k if k.ndim == 3 else k[:, None, :]
    block = edge_block(graph.senders.shape[0], q3.shape[1] * q3.shape[2])
    out = _blocked_edge_dot(q3, k3, graph.senders, graph.receivers, _reverse(graph), num_nodes,
                            block)  # [E, H]
    return out if q.ndim == 3 else out[:, 0]
  if backend in ("csr", "scipy") and num_nodes <= DENSE_MAX_NODES:
    backend = "dense"  # scipy has no sampled dense-dense product; the matmul is the fast one
  if backend == "dense":
    if q.ndim == 3:
      scores = jnp.einsum("nhd,mhd->hnm", q, k, precision=EXACT)  # [H, N, N]
      return scores[:, graph.receivers, graph.senders].T
    return jnp.matmul(q, k.T, precision=EXACT)[graph.receivers, graph.senders]
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
