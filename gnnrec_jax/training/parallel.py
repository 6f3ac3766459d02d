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

Two ways of splitting the propagation, chosen by `for_mesh` from `propagation`:

  * "partitioned" (the default: every choice but segment and dense) runs `jax.shard_map` with
    one `all_to_all` per layer (`gnnrec_jax.graph.propagate`, backend "partitioned"). Nodes are
    receiver-partitioned (`partition_graph`): device p owns R node rows and the edges into them,
    and receives only the halo of sender rows its edges read, so it holds R + D M rows instead of
    all N. Gradients come from JAX's transposes (all_to_all's is an all_to_all back).
  * "segment" is GSPMD: sharding annotations on the jit inputs and outputs, and XLA's SPMD
    partitioner inserts the collectives. With the edge arrays sharded, XLA partitions the gather
    `x[senders]` (replicated operand, sharded indices) into local gathers and the `segment_sum`
    into local scatter-adds into a zeroed [N, d] buffer followed by an all-reduce of the partial
    sums; node activations are replicated. It needs no hook in the layers, forward or backward,
    and the softmax's segment max becomes an all-reduce with max.

The train step itself (`make_sharded_train_step`) is the single-device step of
`gnnrec_jax.training.step` with its inputs' and outputs' shardings pinned, whichever way the
layers propagate. `collectives` reads the compiled HLO so that tests can check which collectives
run.

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

`gnnrec-jax train --devices N` (`fit(exp, workdir, devices=N)`) does all of the above inside the
one fit loop: `for_mesh` lays the graph out (receiver-partitioned by default, see
`partition_graph`), `distribute` places inputs and state and returns the sharded step.

(under Slurm or Open MPI the three variables are detected automatically: `srun python ...`).
`jax.devices()` then lists the devices of all hosts, `make_mesh()` spans them, and every process
runs the same program on the same global batch: batches come from `epoch_batches` seeded by
(seed, epoch), so all hosts draw identical ones, and `shard_batch` / `shard_inputs` copy to each
local device only its own slice (`jax.make_array_from_callback`). Scalars returned by the step
(the loss) are replicated, so every host can log them; only process 0 should write files.
"""
from __future__ import annotations

import contextlib
import dataclasses
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
from gnnrec_jax.training.step import make_train_step

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


def partition_graph(graph: jraph.GraphsTuple, devices: int) -> jraph.GraphsTuple:
  """The graph laid out for receiver-partitioned propagation over `devices` devices (host side).

  Nodes are padded to N' = D R (isolated padding nodes); device p owns node rows [pR, (p+1)R)
  and the edges into them, which are already contiguous (edges are sorted by receiver). Each
  device's edge range is padded to the largest one's length Emax with edges of weight, norm and
  mask 0 from its last row to itself (their own reverse), so every per-edge array is [D Emax],
  and `row_sharding` hands device p exactly its edges. Senders and receivers keep their global
  node ids (edge softmax and the GSPMD path read them as before).

  The halo plan, for `propagate`'s "partitioned" backend: device p reads the sender rows of its
  edges; those owned by device q are listed (sorted, once each) as local row indices in
  `globals["send_idx"][q, p, :]` (padded with 0 to the longest list, M), and each edge's sender
  is found at `edges["halo_src"][e] = q M + j` of the [D M, d] rows device p receives.

  Returns:
    A GraphsTuple with n_node = [D R], n_edge = [D Emax], edges {weight, norm, mask, reverse
    (when the input has one), halo_src}, globals {"send_idx": [D, D, M] int32}.
  """
  n0 = graph_lib.num_nodes(graph)
  rows = -(-n0 // devices)
  n = rows * devices
  senders = np.asarray(graph.senders).astype(np.int64)
  receivers = np.asarray(graph.receivers).astype(np.int64)
  if len(receivers) > 1 and np.any(receivers[1:] < receivers[:-1]):
    raise ConfigError("partition_graph needs edges sorted by receiver (as build_graph makes them)")
  e = len(senders)
  owner = receivers // rows  # [E] the device of each edge
  counts = np.bincount(owner, minlength=devices)
  emax = max(int(counts.max()), 1)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  pos = owner * emax + (np.arange(e) - starts[owner])  # [E] new position of each edge
  total = devices * emax
  # Padding edges: each device's last row to itself, so its receivers stay sorted.
  last = np.repeat(np.arange(1, devices + 1) * rows - 1, emax)  # [D Emax]
  new_s, new_r = last.copy(), last.copy()
  new_s[pos], new_r[pos] = senders, receivers
  edges = {}
  for k, v in graph.edges.items():
    if k == "reverse":
      rev = np.arange(total, dtype=np.int64)  # padding edges (self-loops) are their own reverse
      rev[pos] = pos[np.asarray(v)]
      edges[k] = rev.astype(np.int32)
    else:
      col = np.zeros(total, np.asarray(v).dtype)
      col[pos] = np.asarray(v)
      edges[k] = col
  # Halo plan: per device p, the distinct senders of its edges, grouped by owner q.
  lists = []
  for p in range(devices):
    sl = slice(p * emax, (p + 1) * emax)
    need = np.unique(new_s[sl])  # sorted, so grouped by owner q = need // rows
    group_start = np.searchsorted(need, np.arange(devices) * rows)
    at = np.searchsorted(need, new_s[sl])
    lists.append((need, group_start, at))
  m = max(int(np.max(np.diff(np.append(gs, len(need))))) for need, gs, _ in lists)
  m = max(m, 1)
  send_idx = np.zeros((devices, devices, m), np.int32)
  halo_src = np.zeros(total, np.int64)
  for p, (need, group_start, at) in enumerate(lists):
    q = need[at] // rows
    halo_src[p * emax:(p + 1) * emax] = q * m + (at - group_start[q])
    ends = np.append(group_start[1:], len(need))
    for qq in range(devices):
      local = need[group_start[qq]:ends[qq]] - qq * rows
      send_idx[qq, p, :len(local)] = local
  edges["halo_src"] = halo_src.astype(np.int32)
  return graph._replace(
      edges=edges, senders=new_s.astype(np.int32), receivers=new_r.astype(np.int32),
      n_node=np.array([n], np.int32), n_edge=np.array([total], np.int32),
      globals={"send_idx": send_idx})


def halo_rows(graph: jraph.GraphsTuple) -> int:
  """Rows one device receives per partitioned propagation (D M) of a `partition_graph` layout."""
  d, _, m = np.asarray(graph.globals["send_idx"]).shape
  return d * m


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
  """The single-device `step.make_train_step` partitioned over `mesh` (same loss, same grads).

  The step's body is the trainer's own `train_step` (loss, negatives, optimizer update), so the
  two cannot drift apart; this function only pins the shardings of its inputs and outputs and
  lets XLA partition the rest. Negative sampling gives the same draws under any sharding
  because JAX's threefry PRNG is partitionable (`jax_threefry_partitionable`, on by default).

  Args:
    rec: a trained model (`gnnrec_jax.models.create`) of an experiment whose graph is padded
      for the mesh (`pad_graph_for_mesh`) with the "segment" propagation backend, or laid out by
      `partition_graph` with the "partitioned" backend (`for_mesh` makes either). Dense would
      all-reduce an [N, N] matrix per layer; csr is a native custom call and scipy a host
      callback, neither of which XLA can partition.
    mesh: from `make_mesh`.

  Returns:
    `step(state, batch, inputs, rng) -> (state, metrics)`, jitted, state donated, traced and run
    inside `jax.set_mesh(mesh)` (the partitioned backend's shard_map reads the mesh). `state` as
    placed by `shard_state`, `batch` by `shard_batch` (a global batch of `config.batch_size`
    rows), `inputs` by `shard_inputs`; the new state keeps the input state's shardings and the
    metrics are replicated.
  """
  model = rec.module
  backend = getattr(model, "_backend", "segment")
  if backend not in ("segment", "partitioned"):
    why = {"csr": "a native custom call that XLA cannot partition",
           "scipy": "a host callback that XLA cannot partition"}.get(
               backend, "an [N, N] adjacency that would be all-reduced in every layer")
    raise ConfigError(f"sharded training needs propagation=segment or partitioned (the model "
                      f"resolves {getattr(model, 'backend', backend)!r} to {backend!r}: {why}); "
                      "--set propagation=segment")
  single = make_train_step(rec)

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

  jitted = jax.jit(step, donate_argnums=(0,))

  def run(state, batch, inputs, rng):
    with jax.set_mesh(mesh):
      return jitted(state, batch, inputs, rng)

  run.lower = lambda *args: _lower_in(mesh, jitted, *args)  # for HLO and memory inspection
  return run


def _lower_in(mesh: Mesh, jitted, *args):
  with jax.set_mesh(mesh):
    return jitted.lower(*args)


# --- data-parallel training from the fit loop (`fit(devices=N)`, `gnnrec-jax train --devices N`)

def mesh_context(mesh: Mesh | None):
  """`jax.set_mesh(mesh)`, or nothing for a single-device run."""
  return contextlib.nullcontext() if mesh is None else jax.set_mesh(mesh)


def check_devices(devices: int, model_parallel: int = 1) -> list:
  """The first `devices` of `jax.devices()`; ConfigError when there are fewer."""
  have = jax.devices()
  if devices < 1 or devices > len(have):
    raise ConfigError(
        f"--devices {devices}: this process sees {len(have)} {have[0].platform} device(s) "
        f"({', '.join(str(d) for d in have[:4])}{', ...' if len(have) > 4 else ''}); on a CPU, "
        f"XLA_FLAGS=--xla_force_host_platform_device_count={devices} simulates {devices}")
  if devices % model_parallel:
    raise ConfigError(f"--devices {devices} does not split into row shards of "
                      f"{model_parallel} devices")
  return have[:devices]


def for_mesh(exp, mesh: Mesh):
  """The experiment with its graph laid out for `mesh` (the fingerprint and saved config stay).

  propagation=segment: edges padded to a multiple of D and split; node activations replicated,
  partial sums all-reduced (GSPMD). Any other choice but dense (auto, csr, scipy, blocked,
  partitioned): receiver-partitioned (`partition_graph`, backend "partitioned"), where each
  device holds R + D M node rows instead of all N.
  """
  backend = exp.config.propagation
  if backend == "dense":
    raise ConfigError("propagation=dense cannot be split over devices (it would all-reduce an "
                      "[N, N] matrix per layer); use auto, partitioned or segment")
  if backend == "segment":
    return dataclasses.replace(exp, graph=pad_graph_for_mesh(exp.graph, mesh))
  return dataclasses.replace(exp, graph=partition_graph(exp.graph, mesh.size),
                             config=exp.config.replace(propagation="partitioned"))


def distribute(rec, state, mesh: Mesh):
  """Places a model's inputs and train state on `mesh`; returns `(step, state)` where `step` is
  `step.make_train_step`'s signature with host batches (sharded here) and `rec.inputs` are now
  the placed arrays (so that validation reads the same ones).

  Raises:
    ConfigError: a global batch size that does not divide over the devices.
  """
  batch_size = rec.config.batch_size
  if batch_size % mesh.size:
    raise ConfigError(f"batch_size {batch_size} does not split over {mesh.size} devices: use a "
                      f"multiple of {mesh.size} (the batch is global)")
  rec.inputs = shard_inputs(rec.inputs, mesh)
  sharded = make_sharded_train_step(rec, mesh)

  def step(state, batch, inputs, rng):
    return sharded(state, shard_batch(batch, mesh), inputs, rng)

  return step, shard_state(state, mesh)


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
