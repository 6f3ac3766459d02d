"""LightGCN training at 10^6-10^8 interactions on one device: preparation, step time, memory.

  flock /work/cpu.lock python benchmarks/scale.py [--sizes 1e6 1e7 3e7 1e8] \
      [--batches 8192 131072] [--steps 3] [--backend auto] [--max-gb 20] [--memory-only]

A synthetic power-law dataset per size (`power_law`: U = n / 15 users, I = n / 30 items, as the
issue's 2M x 1M x 29.9M graph; user activity and item popularity ~ rank^-0.8, distinct pairs),
then, per size:

  1. XLA's memory of the compiled train step (`compiled.memory_analysis()`: arguments + outputs
     + temporaries) for the `segment`, `blocked` and `csr` backends, from shapes alone (nothing
     is allocated, so even rows that cannot run get this column): segment holds [E, d] messages
     per layer (O(E d)); blocked and csr hold O(N d + E).
  2. When the row fits `--max-gb` (host RAM needed: `host_gb_needed`, preparation peak plus the
     step's memory): the dataset made from the arrays (vocabularies included), `prepare` (random
     80/10/10 split per user, graph, fingerprint) timed as "prep s"; then `--steps` train steps
     per batch size after one compiling step (LightGCN, d = 64, 3 layers, BPR, Adam): median
     ms/step, and epoch s = ceil(train interactions / batch) x ms/step (extrapolated from the
     measured steps: an epoch at 10^8 interactions is hours on 2 cores). Peak RSS of the process
     (`resource.getrusage`) after the row.

Rows that do not fit are printed with the memory they need and the reason. Prints a table per
part, then one JSON line.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import statistics
import sys
import time
import types

import numpy as np

GB = 1e9
ALPHA = 0.8


def power_law(n: int, num_users: int, num_items: int, *, alpha: float = ALPHA,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """n distinct (user, item) pairs, users and items drawn ~ rank^-alpha (continuous inverse CDF),
  sorted by (user, item). Duplicates are removed with scipy's COO -> CSR conversion (a counting
  sort, O(n)), and a random subset of the surplus dropped to leave exactly n pairs."""
  import scipy.sparse as sp
  rng = np.random.default_rng(seed)

  def draw(count: int, k: int) -> np.ndarray:
    # Inverse CDF of p(x) ~ x^-alpha on [1, k + 1): floor gives ranks 1..k, most popular first.
    top = (k + 1) ** (1 - alpha)
    x = (1 + rng.random(count) * (top - 1)) ** (1 / (1 - alpha))
    return np.minimum(x.astype(np.int64) - 1, k - 1).astype(np.int32)

  got, m = 0, n
  users = items = None
  while got < n:
    m = int(m * 1.15) + 1000
    u, i = draw(m, num_users), draw(m, num_items)
    mat = sp.coo_matrix((np.ones(m, np.int8), (u, i)), shape=(num_users, num_items)).tocsr()
    del u, i
    mat.sum_duplicates()
    got = mat.nnz
    if got >= n:
      users = np.repeat(np.arange(num_users, dtype=np.int32), np.diff(mat.indptr))
      items = mat.indices.astype(np.int32)
    del mat
  drop = rng.choice(got, got - n, replace=False) if got > n else np.zeros(0, np.int64)
  keep = np.ones(got, bool)
  keep[drop] = False
  return users[keep], items[keep]


def host_gb_needed(n: int, step_gb: float) -> float:
  """Host RAM a row needs: ~150 bytes per interaction while preparing (interactions and their
  split, the graph's 2n edges x 6 arrays of 4 bytes, the sort's listing and CSR copies,
  vocabularies), measured at 10^6-10^7, plus the step's XLA memory (on CPU the device is the
  host)."""
  return 150 * n / GB + step_gb


def abstract_step_memory(num_users: int, num_items: int, num_edges: int, *, backend: str,
                         batch: int, dim: int, layers: int) -> float:
  """GB of XLA's compiled train step (arguments + outputs + temporaries - aliased), from shapes."""
  import jax
  import jax.numpy as jnp
  import jraph

  from gnnrec_jax.config import Config
  from gnnrec_jax.models.embedding import EmbeddingRecommender
  from gnnrec_jax.training import fit

  cfg = Config(model="lightgcn", embed_dim=dim, num_layers=layers, batch_size=batch,
               propagation=backend)
  n = num_users + num_items
  f = jax.ShapeDtypeStruct((num_edges,), jnp.float32)
  idx = jax.ShapeDtypeStruct((num_edges,), jnp.int32)
  graph = jraph.GraphsTuple(nodes=None, edges={"weight": f, "norm": f, "mask": f, "reverse": idx},
                            senders=idx, receivers=idx, n_node=np.array([n], np.int32),
                            n_edge=np.array([num_edges], np.int32), globals=None)
  rec = EmbeddingRecommender(types.SimpleNamespace(
      config=cfg, num_users=num_users, num_items=num_items, graph=graph, features=None))
  key = jax.random.key(0)
  params = jax.eval_shape(rec.module.init, key, graph)["params"]
  tx = fit.create_optimizer(cfg, 1)
  state = jax.eval_shape(lambda p: fit.TrainState.create(apply_fn=None, params=p, tx=tx), params)
  b = jax.ShapeDtypeStruct((batch,), jnp.int32)
  batch_s = {"user": b, "item": b, "mask": jax.ShapeDtypeStruct((batch,), jnp.float32)}
  inputs = {"graph": graph, "features": None, "feature_mask": None, "has_id": None,
            "neg_pool": None}
  m = fit.make_train_step(rec).lower(state, batch_s, inputs, key).compile().memory_analysis()
  return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
          - m.alias_size_in_bytes) / GB


def run_row(n: int, *, batches, steps: int, backend: str, dim: int, layers: int) -> list[dict]:
  """Prepares the size-n dataset and times train steps per batch size (see the module doc)."""
  import jax

  from gnnrec_jax import models
  from gnnrec_jax.config import Config
  from gnnrec_jax.data.types import Dataset, Interactions, Vocab
  from gnnrec_jax.experiment import prepare
  from gnnrec_jax.graph.propagate import resolve_backend
  from gnnrec_jax.training import fit

  num_users, num_items = n // 15, n // 30
  t0 = time.perf_counter()
  u, i = power_law(n, num_users, num_items)
  gen_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  ds = Dataset(name=f"powerlaw-{n}", users=Vocab(tuple(map(str, range(num_users)))),
               items=Vocab(tuple(map(str, range(num_items)))), interactions=Interactions(u, i),
               source="benchmarks/scale.py")
  del u, i
  dataset_s = time.perf_counter() - t0
  cfg = Config(model="lightgcn", embed_dim=dim, num_layers=layers, propagation=backend,
               loss="bpr", batch_size=batches[0])
  t0 = time.perf_counter()
  exp = prepare(cfg, ds)
  prepare_s = time.perf_counter() - t0
  num_edges = int(exp.graph.senders.shape[0])
  train = exp.split.train
  rows = []
  for batch in batches:
    exp.config = cfg.replace(batch_size=batch)
    rec = models.create(exp)
    params = rec.init(jax.random.key(0))
    state = fit.TrainState.create(apply_fn=None, params=params,
                                  tx=fit.create_optimizer(exp.config, 100))
    step = fit.make_train_step(rec)
    def endless(batch=batch):
      for epoch in range(1, 10**6):
        yield from fit.epoch_batches(train, batch_size=batch, seed=0, epoch=epoch)

    batches_iter = endless()
    times = []
    for s in range(steps + 1):
      b = next(batches_iter)
      t1 = time.perf_counter()
      state, m = step(state, b, rec.inputs, jax.random.key(s))
      jax.block_until_ready(m["loss"])
      if s:  # the first step compiles
        times.append(time.perf_counter() - t1)
    ms = 1e3 * statistics.median(times)
    per_epoch = math.ceil(len(train) / batch)
    rows.append({
        "interactions": n, "users": num_users, "items": num_items, "train": len(train),
        "edges": num_edges, "batch": batch, "backend": resolve_backend(backend, num_users +
                                                                       num_items),
        "ms_per_step": ms, "steps_per_epoch": per_epoch, "epoch_s": per_epoch * ms / 1e3,
        "gen_s": gen_s, "dataset_s": dataset_s, "prepare_s": prepare_s,
        "prep_s": dataset_s + prepare_s, "loss": float(m["loss"]),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB})
    del state, step, rec, params
    gc.collect()
  return rows


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7, 3e7, 1e8])
  p.add_argument("--batches", type=int, nargs="+", default=[8192, 131072])
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--backend", default="auto")
  p.add_argument("--dim", type=int, default=64)
  p.add_argument("--layers", type=int, default=3)
  p.add_argument("--max-gb", type=float, default=20.0,
                 help="run a row only when host_gb_needed is below this (the machine's RAM "
                 "minus what other jobs hold)")
  p.add_argument("--memory-only", action="store_true", help="only the XLA memory table")
  a = p.parse_args(argv)
  load_start = os.getloadavg()

  memory = []
  for size in a.sizes:
    n = int(size)
    users, items, edges = n // 15, n // 30, 2 * int(0.8 * n)  # train edges, both directions
    row = {"interactions": n, "users": users, "items": items, "edges": edges,
           "batch": a.batches[0]}
    for backend in ("segment", "blocked", "csr"):
      row[f"{backend}_gb"] = abstract_step_memory(users, items, edges, backend=backend,
                                                  batch=a.batches[0], dim=a.dim,
                                                  layers=a.layers)
    row["messages_gb_per_layer"] = edges * a.dim * 4 / GB
    memory.append(row)
  print(f"XLA memory of one train step (LightGCN d={a.dim}, L={a.layers}, batch "
        f"{a.batches[0]}; arguments + outputs + temporaries, GB)")
  print(f"{'interactions':>12} {'users':>10} {'items':>10} {'edges':>12} {'segment':>8} "
        f"{'blocked':>8} {'csr':>8} {'[E,d] GB':>9}")
  for r in memory:
    print(f"{r['interactions']:>12,} {r['users']:>10,} {r['items']:>10,} {r['edges']:>12,} "
          f"{r['segment_gb']:>8.2f} {r['blocked_gb']:>8.2f} {r['csr_gb']:>8.2f} "
          f"{r['messages_gb_per_layer']:>9.2f}")

  timed, skipped = [], []
  if not a.memory_only:
    for r in memory:
      n = r["interactions"]
      need = host_gb_needed(n, r["csr_gb"])
      if need > a.max_gb:
        skipped.append({"interactions": n, "host_gb_needed": need,
                        "reason": f"needs ~{need:.0f} GB of host RAM, over --max-gb "
                        f"{a.max_gb:g}"})
        continue
      timed += run_row(n, batches=a.batches, steps=a.steps, backend=a.backend, dim=a.dim,
                       layers=a.layers)
      gc.collect()
    print(f"\nTraining (backend {a.backend}; epoch s extrapolated from the median of "
          f"{a.steps} steps)")
    print(f"{'interactions':>12} {'edges':>12} {'batch':>7} {'ms/step':>9} {'epoch s':>9} "
          f"{'prep s':>7} {'peak RSS GB':>11}")
    for r in timed:
      print(f"{r['interactions']:>12,} {r['edges']:>12,} {r['batch']:>7} "
            f"{r['ms_per_step']:>9.0f} {r['epoch_s']:>9.0f} {r['prep_s']:>7.1f} "
            f"{r['peak_rss_gb']:>11.2f}")
    for s in skipped:
      print(f"{s['interactions']:>12,}  skipped: {s['reason']}")
  print(json.dumps({"benchmark": "scale", "loadavg_start": load_start,
                    "loadavg_end": os.getloadavg(), "memory": memory, "timed": timed,
                    "skipped": skipped}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
