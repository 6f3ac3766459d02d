"""One LightGCN propagation step, out = D^-1/2 A D^-1/2 x, per `weighted_sum` backend vs scipy.

  python benchmarks/bench_propagation.py [--datasets ml-100k gowalla] [--repeats 7] [--dim 64] \
      [--gowalla-dir /work/shared/data/gowalla] [--backends segment dense blocked csr scipy] \
      [--csr-threads 1 2] [--bcsr]

For each dataset the graph is built once, then the contenders run in turns (scipy, backend 1,
backend 2, ..., scipy, ...), so that on a shared machine all of them see the same load; min and
median of `--repeats` turns are reported, with the load average before and after. Two timings:

  fwd:      the jitted forward step (what the evaluation's embedding pass runs per layer).
  fwd+bwd:  value and gradient w.r.t. x of sum(out * c) (what a training step runs per layer).

The reference is scipy's single-threaded CSR product on a prebuilt matrix (fwd: A @ x; fwd+bwd:
A @ x and A^T @ c). "dense" is skipped when its [N, N] matrix would not fit
(`propagate.DENSE_MAX_NODES`). `--bcsr` adds `jax.experimental.sparse.BCSR @ x` (a matrix built
once on the host; not a backend, measured as the candidate for the O(N d + E) propagation).
Column "temp MB": XLA's temporary buffers of the compiled fwd+bwd program
(`compiled.memory_analysis().temp_size_in_bytes`), the memory a layer needs beyond its inputs
and outputs: O(E d) for segment, O(N d + E) for blocked and csr. Prints a table, then one JSON
line.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np


def _timed(fn) -> float:
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def _with_threads(fn, threads):
  if threads is None:
    return fn

  def run():
    old = os.environ.get("GNNREC_CSR_THREADS")
    os.environ["GNNREC_CSR_THREADS"] = str(threads)
    try:
      return fn()
    finally:
      if old is None:
        del os.environ["GNNREC_CSR_THREADS"]
      else:
        os.environ["GNNREC_CSR_THREADS"] = old

  return run


def bench_dataset(name: str, graph, *, backends, dim: int, repeats: int,
                  csr_threads=None, bcsr: bool = False) -> list[dict]:
  """Times every backend and scipy on `graph`; returns one row per (contender, pass)."""
  import jax
  import jax.numpy as jnp

  from gnnrec_jax.graph import build as graph_lib
  from gnnrec_jax.graph.propagate import DENSE_MAX_NODES, weighted_sum

  n = graph_lib.num_nodes(graph)
  num_edges = int(np.asarray(graph.senders).shape[0])
  rng = np.random.default_rng(0)
  x = rng.standard_normal((n, dim)).astype(np.float32)
  c = rng.standard_normal((n, dim)).astype(np.float32)
  adj = graph_lib.adjacency(graph).astype(np.float32)
  adj_t = adj.T.tocsr()
  ref = adj @ x

  g = jax.tree.map(jnp.asarray, graph)
  xj, cj = jnp.asarray(x), jnp.asarray(c)
  contenders = {
      "scipy": {"fwd": lambda: adj @ x, "fwd+bwd": lambda: (adj @ x, adj_t @ c)},
  }
  temp_mb = {}
  if bcsr:
    from jax.experimental import sparse
    mat = sparse.BCSR.from_scipy_sparse(adj)
    fwd_b = jax.jit(lambda x, m: m @ x)
    vg_b = jax.jit(jax.value_and_grad(lambda x, c, m: jnp.sum((m @ x) * c)))
    err = float(np.abs(np.asarray(fwd_b(xj, mat)) - ref).max())
    if err > 1e-4:
      raise AssertionError(f"{name}/bcsr: max |out - scipy| = {err}")
    vg_b(xj, cj, mat)[1].block_until_ready()
    temp_mb["bcsr"] = vg_b.lower(xj, cj, mat).compile().memory_analysis().temp_size_in_bytes / 2**20
    contenders["bcsr"] = {"fwd": lambda: fwd_b(xj, mat).block_until_ready(),
                          "fwd+bwd": lambda: vg_b(xj, cj, mat)[1].block_until_ready()}
  for b in backends:
    if b == "dense" and n > DENSE_MAX_NODES:
      print(f"  {name}: dense skipped (N = {n} > {DENSE_MAX_NODES})", file=sys.stderr)
      continue

    def fwd(x, g, b=b):
      return weighted_sum(x, g, g.edges["norm"], num_nodes=n, backend=b)

    for t in (csr_threads or [None]) if b in ("csr", "scipy") else [None]:
      # Fresh jits per thread count: the native kernels read the cap when tracing, scipy when
      # called, so both run under the variable.
      fwd_j = jax.jit(fwd)
      vg_j = jax.jit(jax.value_and_grad(lambda x, c, g, f=fwd: jnp.sum(f(x, g) * c)))
      out = np.asarray(_with_threads(lambda f=fwd_j: f(xj, g), t)())
      err = float(np.abs(out - ref).max())
      if err > 1e-4:
        raise AssertionError(f"{name}/{b}: max |out - scipy| = {err}")
      _with_threads(lambda f=vg_j: f(xj, cj, g)[1].block_until_ready(), t)()  # compile now
      label = b if t is None else f"{b}[t={t}]"
      stats = _with_threads(lambda f=vg_j: f.lower(xj, cj, g).compile().memory_analysis(), t)()
      temp_mb[label] = stats.temp_size_in_bytes / 2**20
      contenders[label] = {
          "fwd": _with_threads(lambda f=fwd_j: f(xj, g).block_until_ready(), t),
          "fwd+bwd": _with_threads(lambda f=vg_j: f(xj, cj, g)[1].block_until_ready(), t),
      }

  times = {(k, p): [] for k in contenders for p in ("fwd", "fwd+bwd")}
  for k in contenders:  # one warm-up turn each (thread pools, caches)
    for p in ("fwd", "fwd+bwd"):
      contenders[k][p]()
  for _ in range(repeats):
    for k in contenders:
      for p in ("fwd", "fwd+bwd"):
        times[(k, p)].append(_timed(contenders[k][p]))

  rows = []
  for (k, p), ts in times.items():
    base = min(times[("scipy", p)])
    rows.append({"dataset": name, "num_nodes": n, "num_edges": num_edges, "dim": dim,
                 "backend": k, "pass": p, "min_s": min(ts), "median_s": statistics.median(ts),
                 "vs_scipy_min": min(ts) / base, "temp_mb": temp_mb.get(k)})
  return rows


def load_graph(name: str, gowalla_dir: str):
  from gnnrec_jax.data import splits
  from gnnrec_jax.data.registry import load_dataset
  from gnnrec_jax.graph.build import build_graph

  if name == "gowalla":
    ds = load_dataset("gowalla", data_dir=gowalla_dir)
    train = ds.split.train  # LightGCN's predefined split
  else:
    ds = load_dataset(name)
    train = splits.make_split(ds, "random", ratios=(0.8, 0.1, 0.1), seed=2020).train
  return build_graph(train, ds.num_users, ds.num_items)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--datasets", nargs="+", default=["ml-100k", "gowalla"])
  parser.add_argument("--backends", nargs="+", default=["segment", "dense", "csr", "scipy"])
  parser.add_argument("--csr-threads", nargs="+", type=int, default=None,
                      help="time csr and scipy once per thread count (GNNREC_CSR_THREADS); "
                      "default: as set (csr: every core of XLA's pool; scipy: 1)")
  parser.add_argument("--bcsr", action="store_true",
                      help="also time jax.experimental.sparse.BCSR @ x")
  parser.add_argument("--dim", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--gowalla-dir", default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "gowalla"))
  args = parser.parse_args(argv)

  import jax

  from gnnrec_jax.graph import kernels
  from gnnrec_jax.graph.propagate import csr_threads

  load_start = os.getloadavg()
  rows = []
  for name in args.datasets:
    graph = load_graph(name, args.gowalla_dir)
    rows += bench_dataset(name, graph, backends=args.backends, dim=args.dim,
                          repeats=args.repeats, csr_threads=args.csr_threads, bcsr=args.bcsr)
  load_end = os.getloadavg()

  print(f"{'dataset':9} {'backend':10} {'pass':8} {'min ms':>9} {'median ms':>10} {'x scipy':>8} "
        f"{'temp MB':>8}")
  for r in rows:
    mem = "" if r["temp_mb"] is None or r["pass"] != "fwd+bwd" else f"{r['temp_mb']:8.1f}"
    print(f"{r['dataset']:9} {r['backend']:10} {r['pass']:8} {1e3 * r['min_s']:9.1f} "
          f"{1e3 * r['median_s']:10.1f} {r['vs_scipy_min']:8.2f} {mem:>8}")
  print(f"load average: start {load_start[0]:.2f}, end {load_end[0]:.2f}")
  print(json.dumps({
      "benchmark": "propagation", "device": str(jax.devices()[0]),
      "platform": jax.default_backend(), "jax_version": jax.__version__,
      "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
      "csr_threads": csr_threads(), "native_kernels": kernels.available(),
      "repeats": args.repeats,
      "loadavg_start": load_start, "loadavg_end": load_end, "results": rows}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
