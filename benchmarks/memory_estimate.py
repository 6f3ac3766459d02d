"""Per-device memory of one LightGCN train step at web scale, under gnnrec_jax.training.parallel's scheme.

  /work/venv/bin/python benchmarks/memory_estimate.py [--users 10e6 --items 2e6 --interactions 1e9]

Nothing is allocated: the shapes come from `jax.eval_shape` of the real model init, optimizer
init, one propagation layer, the per-edge message and the whole `fit.make_train_step` step
(global shapes, E = 2 x interactions directed edges), and the bytes per device are summed by
hand from those shapes under the sharding of `gnnrec_jax.training.parallel`:

  edges (senders, receivers int32; weight, norm, mask float32)   split over D devices
  params, Adam moments, gradients                                 replicated (model_parallel=1)
                                                                  or row-split (model_parallel=D)
  node activations h^0..h^L and the layer mean, [N, d] each       replicated in both modes
  per-edge messages x[senders] * norm, [E / D, d], one layer      split (an upper bound: XLA
                                                                  may fuse it into the scatter)

Prints a human table, then one JSON line. Sizes are in GB (1e9 bytes).
"""
from __future__ import annotations

import argparse
import json
import math
import types

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gnnrec_jax.config import Config
from gnnrec_jax.models.embedding import EmbeddingRecommender
from gnnrec_jax.models.layers import LightGCNConv
from gnnrec_jax.training import fit

GB = 1e9


def nbytes(tree) -> int:
  """Bytes of every array (ShapeDtypeStruct) leaf of a pytree."""
  return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def abstract_graph(num_nodes: int, num_edges: int) -> jraph.GraphsTuple:
  """A GraphsTuple of ShapeDtypeStructs with the dtypes `graph.build_graph` produces (the two
  counts are concrete: the model reads its static node count from them)."""
  e = jax.ShapeDtypeStruct((num_edges,), jnp.float32)
  idx = jax.ShapeDtypeStruct((num_edges,), jnp.int32)
  return jraph.GraphsTuple(nodes=None, edges={"weight": e, "norm": e, "mask": e},
                           senders=idx, receivers=idx, n_node=np.array([num_nodes], np.int32),
                           n_edge=np.array([num_edges], np.int32), globals=None)


def shapes(*, num_users: int, num_items: int, num_edges: int, embed_dim: int, num_layers: int,
           global_batch: int, devices: int) -> dict:
  """eval_shape of everything one step holds; returns the ShapeDtypeStruct trees."""
  cfg = Config(model="lightgcn", embed_dim=embed_dim, num_layers=num_layers,
               batch_size=global_batch, propagation="segment")
  n = num_users + num_items
  graph = abstract_graph(n, num_edges)
  # The library's model on an experiment of shapes only (no data: nothing is allocated).
  rec = EmbeddingRecommender(types.SimpleNamespace(
      config=cfg, num_users=num_users, num_items=num_items, graph=graph, features=None))
  model = rec.module
  key = jax.random.key(0)
  params = jax.eval_shape(model.init, key, graph)["params"]
  tx = fit.create_optimizer(cfg, 1)
  opt_state = jax.eval_shape(tx.init, params)
  h = jax.ShapeDtypeStruct((n, embed_dim), jnp.float32)
  layer_out = jax.eval_shape(LightGCNConv(n).init_with_output, key, h, graph)[0]
  edge_shard = abstract_graph(n, num_edges // devices)
  messages = jax.eval_shape(lambda x, g: x[g.senders] * g.edges["norm"][:, None], h, edge_shard)
  final, ego = jax.eval_shape(lambda p, g: model.apply({"params": p}, g), params, graph)
  # The whole step (loss, negatives, grads, Adam) traced at full size: it must accept these.
  state = jax.eval_shape(
      lambda p: fit.TrainState.create(apply_fn=None, params=p, tx=tx), params)
  b = jax.ShapeDtypeStruct((global_batch,), jnp.int32)
  batch = {"user": b, "item": b, "mask": jax.ShapeDtypeStruct((global_batch,), jnp.float32)}
  step = fit.make_train_step(rec)
  new_state, _ = jax.eval_shape(step, state, batch,
                                {"graph": graph, "features": None, "feature_mask": None}, key)
  assert nbytes(new_state.params) == nbytes(params)
  return {"params": params, "opt_state": opt_state, "layer": layer_out, "messages": messages,
          "final": final, "ego": ego, "graph": graph, "edge_shard": edge_shard, "batch": batch}


def per_device(s: dict, *, devices: int, row_sharded: bool, num_layers: int) -> dict[str, float]:
  """Bytes per device (GB) of each part of one step, and the per-step all-reduce traffic."""
  m = devices if row_sharded else 1
  node = nbytes(s["layer"])  # one [N, d] activation
  out = {
      "params": nbytes(s["params"]) / m,
      "adam": nbytes(s["opt_state"]) / m,
      "grads": nbytes(s["params"]) / m,
      "edges": nbytes(s["edge_shard"]) - 2 * 4,  # n_node, n_edge are not per-edge
      "batch": nbytes(s["batch"]) / devices,
      # h^0 (the gathered table when row-split), h^1..h^L and their mean stay live to the end
      # of the forward pass; the backward pass of a linear model needs only ~3 of them.
      "node_acts": (num_layers + 1) * node + nbytes(s["final"]),
      "messages": nbytes(s["messages"]),
  }
  out["total"] = sum(out.values())
  out["total_fused"] = out["total"] - out["messages"]
  # Ring all-reduce sends 2 (D - 1) / D of the buffer per device: one [N, d] partial sum per
  # layer forward, one per layer backward, one for the gradient of the batch's rows.
  out["allreduce_per_step"] = (2 * num_layers + 1) * node * 2 * (devices - 1) / devices
  if row_sharded:  # plus the table gathered for the forward pass and again for the backward
    out["allreduce_per_step"] += 2 * node * (devices - 1) / devices
  return {k: v / GB for k, v in out.items()}


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--users", type=float, default=10e6)
  p.add_argument("--items", type=float, default=2e6)
  p.add_argument("--interactions", type=float, default=1e9)
  p.add_argument("--embed-dim", type=int, default=64)
  p.add_argument("--layers", type=int, default=3)
  p.add_argument("--batch-per-device", type=int, default=2048)
  p.add_argument("--devices", type=int, nargs="+", default=[8, 64, 256])
  a = p.parse_args(argv)
  users, items, edges = int(a.users), int(a.items), 2 * int(a.interactions)
  rows = []
  for d in a.devices:
    s = shapes(num_users=users, num_items=items, num_edges=edges, embed_dim=a.embed_dim,
               num_layers=a.layers, global_batch=a.batch_per_device * d, devices=d)
    for row_sharded in (False, True):
      r = per_device(s, devices=d, row_sharded=row_sharded, num_layers=a.layers)
      rows.append({"devices": d, "tables": "row-split" if row_sharded else "replicated",
                   **{k: round(v, 3) for k, v in r.items()}})
  cols = ["params", "adam", "grads", "edges", "node_acts", "messages", "total", "total_fused",
          "allreduce_per_step"]
  print(f"LightGCN step, U={users:,} I={items:,} E={edges:,} directed edges, d={a.embed_dim}, "
        f"L={a.layers}, batch {a.batch_per_device}/device; GB per device")
  print(f"{'devices':>7} {'tables':>10} " + " ".join(f"{c:>10}" for c in cols[:-3])
        + f" {'total':>8} {'no msgs':>8} {'AR GB/step':>10}")
  for r in rows:
    print(f"{r['devices']:>7} {r['tables']:>10} " + " ".join(f"{r[c]:>10.3f}" for c in cols[:-3])
          + f" {r['total']:>8.2f} {r['total_fused']:>8.2f} {r['allreduce_per_step']:>10.2f}")
  print(json.dumps({"benchmark": "memory_estimate", "users": users, "items": items,
                    "directed_edges": edges, "embed_dim": a.embed_dim, "layers": a.layers,
                    "batch_per_device": a.batch_per_device, "unit": "GB per device",
                    "rows": rows}))


if __name__ == "__main__":
  main()
