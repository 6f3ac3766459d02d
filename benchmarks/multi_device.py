"""Data-parallel training on simulated CPU devices: `--devices 8` against `--devices 1`, and the
per-device memory of a Gowalla train step on 1, 2, 4 and 8 devices.

  python benchmarks/multi_device.py [--epochs 5] [--gowalla-dir ../shared/data/gowalla] \
      [--devices 1 2 4 8] [--skip-cli] [--skip-memory]

The process simulates 8 CPU devices (`--xla_force_host_platform_device_count=8`, set here before
JAX is imported). Two parts:

  1. ml-100k, `gnnrec-jax train --config lightgcn --set epochs=E` (LightGCN d = 64, 3 layers,
     batch 2048, Adam, BPR) run through `cli.main` with `--devices 1` (the `csr` backend) and
     `--devices 8` (receiver-partitioned propagation over 8 devices, global batch 2048 = 8 x 256),
     and `--devices 8 --shard-tables`: the test metrics and their largest difference.
  2. Gowalla (LightGCN protocol graph, d = 64, 3 layers, batch 2048): the sharded train step
     compiled for D devices and `compiled.memory_analysis()` read (per device: arguments +
     outputs + temporaries - aliased, in MB), for the receiver-partitioned layout with tables
     replicated and row-sharded, and for GSPMD over edges (`propagation=segment`: node
     activations replicated). Also R (node rows a device owns) and D M (halo rows it receives
     per propagation). Nothing is run: memory only.

Prints tables, then one JSON line. Simulated devices share the host's 2 cores, so no timing is
reported.
"""
from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse
import contextlib
import dataclasses
import io
import json
import sys
import tempfile

MB = 2**20


def cli_metrics(epochs: int, devices: int, shard_tables: bool, root: str) -> dict:
  from gnnrec_jax import cli
  argv = ["train", "--config", "lightgcn", "--dataset", "ml-100k", "--set", f"epochs={epochs}",
          "--workdir", os.path.join(root, f"d{devices}{'s' if shard_tables else ''}"),
          "--no-progress", "--devices", str(devices)] + (["--shard-tables"] if shard_tables
                                                         else [])
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    code = cli.main(argv)
  if code:
    raise SystemExit(f"gnnrec-jax {' '.join(argv)} failed with {code}")
  return json.loads(out.getvalue().splitlines()[-1])


def step_memory(exp, devices: int, *, backend: str, shard_tables: bool) -> dict:
  import jax

  from gnnrec_jax import models
  from gnnrec_jax.training import fit, parallel

  mesh = parallel.make_mesh(jax.devices()[:devices],
                            model_parallel=devices if shard_tables else 1)
  mexp = parallel.for_mesh(
      dataclasses.replace(exp, config=exp.config.replace(propagation=backend)), mesh)
  rec = models.create(mexp)
  rec.inputs = inputs = parallel.shard_inputs(rec.inputs, mesh)  # before any trace reads them
  with jax.set_mesh(mesh):
    params = jax.eval_shape(rec.init, jax.random.key(0))
  tx = fit.create_optimizer(rec.config, 100)
  state = jax.eval_shape(lambda p: fit.TrainState.create(apply_fn=None, params=p, tx=tx), params)
  state = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), state,
                       parallel.state_shardings(state, mesh))
  b = rec.config.batch_size
  batch = parallel.put({"user": jax.numpy.zeros(b, "int32"), "item": jax.numpy.zeros(b, "int32"),
                        "mask": jax.numpy.ones(b, "float32")},
                       parallel.batch_shardings({"user": 0, "item": 0, "mask": 0}, mesh))
  compiled = parallel.make_sharded_train_step(rec, mesh).lower(
      state, batch, inputs, jax.random.key(1)).compile()
  m = compiled.memory_analysis()
  g = inputs["graph"]
  n = int(g.n_node[0])
  row = {"devices": devices, "layout": backend if backend == "segment" else "partitioned",
         "tables": "row-sharded" if shard_tables else "replicated",
         "num_nodes": n, "edges_per_device": int(g.senders.shape[0]) // devices,
         "argument_mb": m.argument_size_in_bytes / MB, "output_mb": m.output_size_in_bytes / MB,
         "temp_mb": m.temp_size_in_bytes / MB, "alias_mb": m.alias_size_in_bytes / MB}
  row["total_mb"] = (row["argument_mb"] + row["output_mb"] + row["temp_mb"] - row["alias_mb"])
  if backend != "segment":
    row["rows_owned"] = n // devices
    row["halo_rows"] = parallel.halo_rows(g)
  return row


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--epochs", type=int, default=5)
  p.add_argument("--gowalla-dir", default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "gowalla"))
  p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
  p.add_argument("--skip-cli", action="store_true")
  p.add_argument("--skip-memory", action="store_true")
  a = p.parse_args(argv)
  out = {"benchmark": "multi_device", "loadavg_start": os.getloadavg()}

  if not a.skip_cli:
    with tempfile.TemporaryDirectory() as root:
      runs = {"devices 1": cli_metrics(a.epochs, 1, False, root),
              "devices 8": cli_metrics(a.epochs, 8, False, root),
              "devices 8, tables row-sharded": cli_metrics(a.epochs, 8, True, root)}
    base = runs["devices 1"]
    keys = sorted(k for k in base if "@" in k)
    print(f"ml-100k LightGCN, {a.epochs} epochs: test metrics")
    print(f"{'run':32} " + " ".join(f"{k:>12}" for k in ("recall@20", "ndcg@20", "max |diff|")))
    for name, m in runs.items():
      diff = max(abs(m[k] - base[k]) for k in keys)
      print(f"{name:32} {m['recall@20']:12.6f} {m['ndcg@20']:12.6f} {diff:12.2e}")
    out["cli"] = {"epochs": a.epochs, "runs": runs,
                  "max_abs_diff": {k: max(abs(m[x] - base[x]) for x in keys)
                                   for k, m in runs.items()}}

  if not a.skip_memory:
    from gnnrec_jax.config import Config
    from gnnrec_jax.data.registry import load_dataset
    from gnnrec_jax.experiment import prepare
    ds = load_dataset("gowalla", data_dir=a.gowalla_dir)
    exp = prepare(Config(model="lightgcn", split="predefined", batch_size=2048), ds)
    rows = []
    for d in a.devices:
      rows.append(step_memory(exp, d, backend="partitioned", shard_tables=False))
      rows.append(step_memory(exp, d, backend="partitioned", shard_tables=True))
      rows.append(step_memory(exp, d, backend="segment", shard_tables=False))
    print("\nGowalla LightGCN train step, per-device memory (MB, XLA memory analysis)")
    print(f"{'devices':>7} {'layout':>12} {'tables':>12} {'rows R':>7} {'halo DM':>8} "
          f"{'edges/dev':>10} {'args':>8} {'temp':>8} {'total':>8}")
    for r in rows:
      print(f"{r['devices']:>7} {r['layout']:>12} {r['tables']:>12} "
            f"{r.get('rows_owned', r['num_nodes']):>7} {r.get('halo_rows', ''):>8} "
            f"{r['edges_per_device']:>10} {r['argument_mb']:>8.1f} {r['temp_mb']:>8.1f} "
            f"{r['total_mb']:>8.1f}")
    out["memory"] = rows
  out["loadavg_end"] = os.getloadavg()
  print(json.dumps(out))
  return 0


if __name__ == "__main__":
  sys.exit(main())
