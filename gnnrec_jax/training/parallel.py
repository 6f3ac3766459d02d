"""Multi-device (SPMD) training: a device mesh, sharded inputs and a sharded train step.

The scheme (D devices in a ("data", "model") mesh of shape (D / m, m); m = `model_parallel`):

  what                                  shape        PartitionSpec          per device
  edges: senders, receivers, features   [E]          P(("data", "model"))   E / D
  train batch: user, item, mask         [B]          P(("data", "model"))   B / D
  params + Adam moments, 2-D tables     [U + I, d]   P("model", None)       (U + I) / m rows
  other params (biases, scalars)        any          P()                    replicated
  node activations h^k, k = 0..L        [N, d]       chosen by XLA          N rows (m = 1)

With m = 1 (the default) embeddings are replicated and training is plain data parallelism over
edges and batch; with m = D every table and its optimizer state is row-sharded over all devices
(FSDP/ZeRO-3 style), which is what a 10M-user table needs (see benchmarks/memory_estimate.py).

Partitioning is GSPMD (sharding annotations on the jit inputs and outputs; XLA's SPMD partitioner
inserts the collectives), not `jax.shard_map` with a hand-written `psum`. Why: every layer
aggregates through `gnnrec_jax.graph.propagate.weighted_sum`, called deep inside Linen modules, and
GAT/SoftmaxGNN also use `edge_softmax` (a segment max and a segment sum); a `psum` would need a
hook in `propagate.py` and in every layer, forward and backward. With the edge arrays sharded,
XLA partitions the gather `x[senders]` (replicated operand, sharded indices) into local gathers
and the `segment_sum` (a scatter-add with sharded updates) into local scatter-adds into a zeroed
[N, d] buffer followed by an all-reduce of the partial sums, i.e. exactly the psum one would
write by hand, and it does the same for every model, for the backward pass (the gradient of the
gather is a scatter-add, hence another all-reduce) and for the softmax's segment max (an
all-reduce with max). `collectives` reads the compiled HLO so that tests can check it.

Usage (one host, all local devices):

  mesh = parallel.make_mesh()
  exp = dataclasses.replace(exp, graph=parallel.pad_graph_for_mesh(exp.graph, mesh))
  rec = gnnrec_jax.models.create(exp)                         # cfg.propagation = "segment"
  inputs = parallel.shard_inputs(rec.inputs, mesh)            # E -> multiple of D (padded above)
  state = parallel.shard_state(state, mesh)
  step = parallel.make_sharded_train_step(rec, mesh)
  for batch in fit.epoch_batches(...):      # cfg.batch_size is the GLOBAL batch (D * per-device)
    state, metrics = step(state, parallel.shard_batch(batch, mesh), inputs, rng)

Several hosts: start one process per host (each sees its local accelerators) and call
`initialize_distributed()` before any other JAX call, e.g. on host k of n

  JAX_COORDINATOR_ADDRESS=10.0.0.1:1234 JAX_NUM_PROCESSES=n JAX_PROCESS_ID=k \\
      python my_sharded_training.py      # a script built on the usage above

(`gnnrec-jax train` itself trains on one device; the sharded step is a library API.)

(under Slurm or Open MPI the three variables are detected automatically: `srun python ...`).
`jax.devices()` then lists the devices of all hosts, `make_mesh()` spans them, and every process
runs the same program on the same global batch: batches come from `epoch_batches` seeded by
(seed, epoch), so all hosts draw identical ones, and `shard_batch` / `shard_inputs` copy to each
local device only its own slice (`jax.make_array_from_callback`). Scalars returned by the step
(the loss) are replicated, so every host can log them; only process 0 should write files.
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Any

import jax
import jraph
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gnnrec_jax.errors import ConfigError
from gnnrec_jax.graph import build as graph_lib

DATA, MODEL = "data", "model"
ALL = (DATA, MODEL)  # edges and batch rows are split over every device


def make_mesh(devices=None, *, model_parallel: int = 1) -> Mesh:
  """A ("data", "model") mesh of shape (D / model_parallel, model_parallel) over `devices`.

  Args:
    devices: the devices to span; None means `jax.devices()` (all hosts' devices).
    model_parallel: m, the number of devices that split the rows of each embedding table (and
      its optimizer state); 1 replicates the tables, D shards them over every device.

  Returns:
    A `Mesh` with Auto axes (GSPMD decides what the annotations leave open).
  """
  devices = list(jax.devices() if devices is None else devices)
  d = len(devices)
  if model_parallel < 1 or d % model_parallel:
    raise ConfigError(f"model_parallel={model_parallel} must divide the device count {d}")
  grid = np.array(devices, dtype=object).reshape(d // model_parallel, model_parallel)
  return Mesh(grid, ALL, axis_types=(AxisType.Auto, AxisType.Auto))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def row_sharding(mesh: Mesh) -> NamedSharding:
  """Sharding of per-edge and per-example arrays: the leading axis split over all devices."""
  return NamedSharding(mesh, P(ALL))


def pad_graph_for_mesh(graph: jraph.GraphsTuple, mesh_or_count: Mesh | int) -> jraph.GraphsTuple:
  """Pads the edge count to a multiple of the device count (host side, `graph_lib.pad_graph`).

  Padding edges carry weight, norm and mask 0 and connect one added padding node to itself, so
  they add nothing; the model must then be built with `num_nodes=graph_lib.num_nodes(result)`
  (the parameter tables keep U + I rows, so checkpoints do not change). A graph whose edge
  count already divides is returned unchanged.
  """
  d = mesh_or_count.size if isinstance(mesh_or_count, Mesh) else int(mesh_or_count)
  e = int(np.asarray(graph.senders).shape[0])
  if e % d == 0:
    return graph
  return graph_lib.pad_graph(graph, n_node=graph_lib.num_nodes(graph) + 1,
                             n_edge=graph_lib.round_up(e, d))


def param_sharding(x, mesh: Mesh) -> NamedSharding:
  """Rows of 2-D+ arrays over "model" when they divide evenly; everything else replicated.

  Applied leaf by leaf to the whole train state, so Adam's moments follow their parameters.
  """
  m = mesh.shape[MODEL]
  shape = np.shape(x)
  if m == 1 or len(shape) < 2:
    return replicated(mesh)
  if shape[0] % m:
    if np.prod(shape) >= 1 << 20:  # a big table silently replicated would defeat the purpose
      warnings.warn(f"a [{', '.join(map(str, shape))}] array is replicated: its {shape[0]} rows "
                    f"do not divide over model_parallel={m} devices", stacklevel=3)
    return replicated(mesh)
  return NamedSharding(mesh, P(MODEL, *([None] * (len(shape) - 1))))


def state_shardings(state, mesh: Mesh):
  """The sharding of every leaf of a train state (params, optimizer state, step)."""
  return jax.tree.map(lambda x: param_sharding(x, mesh), state)


def inputs_shardings(inputs: dict[str, Any], mesh: Mesh):
  """Shardings of a model's `inputs` dict (`EmbeddingRecommender.inputs`): edges split, nodes
  not.

  Per-edge arrays (senders, receivers, every edge feature) are split over all devices; graph
  counts are replicated; node features [U + I, F] and the feature mask follow the tables' rule.
  """
  def graph_sh(g: jraph.GraphsTuple):
    rows = row_sharding(mesh)
    return g._replace(
        senders=rows, receivers=rows, edges=jax.tree.map(lambda _: rows, g.edges),
        nodes=jax.tree.map(lambda x: param_sharding(x, mesh), g.nodes),
        globals=jax.tree.map(lambda _: replicated(mesh), g.globals),
        n_node=replicated(mesh), n_edge=replicated(mesh))

  out = {}
  for k, v in inputs.items():
    if isinstance(v, jraph.GraphsTuple):
      out[k] = graph_sh(v)
    else:
      out[k] = jax.tree.map(lambda x: param_sharding(x, mesh), v)
  return out


def batch_shardings(batch, mesh: Mesh):
  """Every [B, ...] array of a train batch split over all devices (B must divide by D)."""
  return jax.tree.map(lambda _: row_sharding(mesh), batch)


def put(tree, shardings):
  """Places host or device arrays on the mesh; each process copies only its addressable slices.

  Every process must pass the same global values (true for the graph, the seeded params and
  `epoch_batches`), which is what makes this work unchanged on several hosts.
  """
  def one(x, sh: NamedSharding):
    shape = np.shape(x)
    if sh.spec and shape and shape[0] % _spec_size(sh, 0):
      raise ConfigError(f"an array of shape {shape} cannot be split over "
                        f"{_spec_size(sh, 0)} devices: pad its leading axis to a multiple "
                        "(pad_graph_for_mesh for graphs, a global batch_size divisible by D)")
    if jax.process_count() == 1:
      return jax.device_put(x, sh)
    host = np.asarray(x)
    return jax.make_array_from_callback(shape, sh, lambda idx: host[idx])

  return jax.tree.map(one, tree, shardings)


def shard_state(state, mesh: Mesh):
  return put(state, state_shardings(state, mesh))


def shard_inputs(inputs: dict[str, Any], mesh: Mesh):
  """Places the trainer's inputs; the graph's edge count must divide (`pad_graph_for_mesh`)."""
  return put(inputs, inputs_shardings(inputs, mesh))


def shard_batch(batch, mesh: Mesh):
  return put(batch, batch_shardings(batch, mesh))


def make_sharded_train_step(rec, mesh: Mesh):
  """The single-device `fit.make_train_step` partitioned over `mesh` (same loss, same grads).

  The step's body is the trainer's own `train_step` (loss, negatives, optimizer update), so the
  two cannot drift apart; this function only pins the shardings of its inputs and outputs and
  lets XLA partition the rest. Negative sampling gives the same draws under any sharding
  because JAX's threefry PRNG is partitionable (`jax_threefry_partitionable`, on by default).

  Args:
    rec: a trained model (`gnnrec_jax.models.create`) of an experiment whose graph is padded
      for the mesh (`pad_graph_for_mesh`), with the "segment" propagation backend (dense would
      all-reduce an [N, N] matrix per layer; csr is a native custom call and scipy a host
      callback, neither of which XLA can partition).
    mesh: from `make_mesh`.

  Returns:
    `step(state, batch, inputs, rng) -> (state, metrics)`, jitted, state donated. `state` as
    placed by `shard_state`, `batch` by `shard_batch` (a global batch of `config.batch_size`
    rows), `inputs` by `shard_inputs`; the new state keeps the input state's shardings and the
    metrics are replicated.
  """
  model = rec.module
  backend = getattr(model, "_backend", "segment")
  if backend != "segment":
    why = {"csr": "a native custom call that XLA cannot partition",
           "scipy": "a host callback that XLA cannot partition"}.get(
               backend, "an [N, N] adjacency that would be all-reduced in every layer")
    raise ConfigError(f"sharded training needs propagation=segment (the model resolves "
                      f"{getattr(model, 'backend', backend)!r} to {backend!r}: {why}); "
                      "--set propagation=segment")
  from gnnrec_jax.training import (
    fit,  # fit imports the whole stack; keep parallel importable alone
  )
  single = fit.make_train_step(rec)

  def step(state, batch, inputs, rng):
    wsc = jax.lax.with_sharding_constraint
    # Constraints rather than jit in_shardings: they need only the tree structure, which is
    # known once traced, and they make the step correct (if slower) for unplaced inputs too.
    state = wsc(state, state_shardings(state, mesh))
    batch = wsc(batch, batch_shardings(batch, mesh))
    inputs = wsc(inputs, inputs_shardings(inputs, mesh))
    new_state, metrics = single(state, batch, inputs, rng)
    new_state = wsc(new_state, state_shardings(new_state, mesh))
    metrics = wsc(metrics, jax.tree.map(lambda _: replicated(mesh), metrics))
    return new_state, metrics

  return jax.jit(step, donate_argnums=(0,))


_COLLECTIVE_RE = re.compile(
    r"^\s*(?:ROOT\s+)?%?\S+\s*=\s*(.+?)\s+"
    r"(all-reduce|all-gather|reduce-scatter|all-to-all|collective-permute)(?:-start)?\(", re.M)


def collectives(hlo_text: str) -> list[tuple[str, tuple[str, ...]]]:
  """Every collective of a compiled HLO module (`jit(f).lower(...).compile().as_text()`).

  Returns:
    (op, shapes) per instruction, e.g. ("all-reduce", ("f32[100,8]", "f32[]")): XLA combines
    several all-reduces into one instruction with a tuple result, so one op may carry several
    arrays.
  """
  return [(op, tuple(re.findall(r"\b[a-z]+\d*\[[\d,]*\]", types)))
          for types, op in _COLLECTIVE_RE.findall(hlo_text)]


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None, **kwargs) -> bool:
  """Joins a multi-host run (`jax.distributed.initialize`); a no-op for a single process.

  Call it once, first thing, before any other JAX call. Arguments not given are read from
  JAX_COORDINATOR_ADDRESS ("host:port" of process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID, or
  detected by JAX under Slurm / Open MPI / Cloud TPU.

  Args:
    coordinator_address: "host:port" of process 0, reachable from every host.
    num_processes: the number of processes (one per host, usually).
    process_id: this process's index in [0, num_processes).
    **kwargs: passed to `jax.distributed.initialize` (local_device_ids, timeouts, ...).

  Returns:
    True when the distributed runtime was started, False for a single-process run.
  """
  env = os.environ
  coordinator_address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS")
  if num_processes is None and env.get("JAX_NUM_PROCESSES"):
    num_processes = int(env["JAX_NUM_PROCESSES"])
  if process_id is None and env.get("JAX_PROCESS_ID"):
    process_id = int(env["JAX_PROCESS_ID"])
  in_cluster = (int(env.get("SLURM_NTASKS", "1")) > 1 or "OMPI_MCA_orte_hnp_uri" in env
                or kwargs.get("cluster_detection_method") not in (None, "deactivate"))
  if num_processes == 1 or (coordinator_address is None and num_processes is None
                            and not in_cluster):
    return False
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id, **kwargs)
  return True


def _spec_size(sh: NamedSharding, dim: int) -> int:
  axes = sh.spec[dim] if dim < len(sh.spec) else None
  if axes is None:
    return 1
  axes = axes if isinstance(axes, tuple) else (axes,)
  return int(np.prod([sh.mesh.shape[a] for a in axes]))
