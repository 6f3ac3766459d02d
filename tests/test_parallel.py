"""Tests of gnnrec_jax.training.parallel: host-side padding and parsing here, the 8-device step in a child.

The child process gets `--xla_force_host_platform_device_count=8`, which must be set before JAX
is imported (so not in this pytest process), and compares the single-device `train_step` with
the sharded one from the same params, batch and rng.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.graph import build as graph_lib
from gnnrec_jax.training import parallel

DEVICES = 8

# Runs in a child with 8 CPU devices; prints one JSON line of measurements.
_CHILD = textwrap.dedent("""
  import dataclasses, json, sys
  import jax, jax.numpy as jnp, numpy as np, optax
  from gnnrec_jax import models
  from gnnrec_jax.config import Config
  from gnnrec_jax.data.synthetic import make_synthetic
  from gnnrec_jax.data.types import Interactions, Split
  from gnnrec_jax.experiment import Experiment
  from gnnrec_jax.graph import build as graph_lib
  from gnnrec_jax.training import fit as train, parallel

  assert jax.device_count() == 8, jax.devices()
  ds = make_synthetic(num_users=60, num_items=36)   # U + I = 96 rows: divides over 8 devices
  U, I = ds.num_users, ds.num_items
  # 597 interactions -> 1194 directed edges: not a multiple of 8, so padding is exercised.
  part = ds.interactions.take(np.arange(597))
  g = graph_lib.build_graph(part, U, I)
  cfg = Config(model="lightgcn", embed_dim=8, num_layers=2, batch_size=64,
               propagation="segment", l2=1e-2)
  empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64))
  exp = Experiment(cfg, ds, Split(part, empty, empty), g, None, None, "")
  single = models.create(exp)
  inputs1 = single.inputs
  params = single.init(jax.random.key(0))
  tx = train.create_optimizer(cfg, 10)
  batches = list(train.epoch_batches(ds.interactions, batch_size=64, seed=0, epoch=1))[:2]
  rngs = [jax.random.key(10 + s) for s in range(2)]

  def fresh_state():
    # A copy each time: the steps donate their state.
    return train.TrainState.create(apply_fn=None, params=jax.tree.map(jnp.copy, params), tx=tx)

  def grads(state):  # Adam's first moment after one step is (1 - b1) g
    return jax.tree.map(lambda m: m / 0.1, state.opt_state[0].mu)

  def maxdiff(a, b):
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b)))

  step1 = train.make_train_step(single)
  s1, losses1 = fresh_state(), []
  for b, r in zip(batches, rngs):
    s1, m = step1(s1, b, inputs1, r)
    losses1.append(float(m["loss"]))
    if not losses1[1:]:
      g1 = grads(s1)

  out = {"edges": int(g.senders.shape[0])}
  for mp in (1, 8):
    mesh = parallel.make_mesh(model_parallel=mp)
    gp = parallel.pad_graph_for_mesh(g, mesh)
    rec = models.create(dataclasses.replace(exp, graph=gp))
    inputs = parallel.shard_inputs(rec.inputs, mesh)
    state = parallel.shard_state(fresh_state(), mesh)
    step = parallel.make_sharded_train_step(rec, mesh)
    b0 = parallel.shard_batch(batches[0], mesh)
    hlo = step.lower(state, b0, inputs, rngs[0]).compile().as_text()
    losses = []
    for b, r in zip(batches, rngs):
      sb = parallel.shard_batch(b, mesh)
      state, m = step(state, sb, inputs, r)
      losses.append(float(m["loss"]))
      if not losses[1:]:
        g8 = grads(state)
    emb = state.params["inputs"]["embedding"]
    snd = inputs["graph"].senders
    out[f"mp{mp}"] = {
        "num_nodes": graph_lib.num_nodes(gp), "padded_edges": int(gp.senders.shape[0]),
        "loss_diff": max(abs(a - b) for a, b in zip(losses1, losses)),
        "grad_diff": maxdiff(g1, g8), "param_diff": maxdiff(s1.params, state.params),
        "grad_scale": max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(g1)),
        "sender_devices": len(snd.sharding.device_set),
        "sender_shards": sorted({s.data.shape[0] for s in snd.addressable_shards}),
        "batch_shards": sorted({s.data.shape[0] for s in sb["user"].addressable_shards}),
        "batch_devices": len(sb["user"].sharding.device_set),
        "table_shards": sorted({s.data.shape[0] for s in emb.addressable_shards}),
        "table_devices": len(emb.sharding.device_set),
        "mu_shards": sorted({s.data.shape[0] for s in
                             state.opt_state[0].mu["inputs"]["embedding"].addressable_shards}),
        "collectives": parallel.collectives(hlo),
    }
  print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def child():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mp", [1, 8])
def test_sharded_step_matches_single_device(child, mp):
  r = child[f"mp{mp}"]
  assert child["edges"] == 1194 and r["padded_edges"] == 1200 and r["num_nodes"] == 97
  assert r["grad_scale"] > 1e-4  # the gradients compared are not all ~0
  assert r["grad_diff"] < 1e-5
  assert r["loss_diff"] < 1e-5   # both steps: the sharded state is reusable after donation
  assert r["param_diff"] < 1e-5


@pytest.mark.parametrize("mp", [1, 8])
def test_arrays_are_split_over_eight_devices(child, mp):
  r = child[f"mp{mp}"]
  assert r["sender_devices"] == 8 and r["sender_shards"] == [1200 // 8]
  assert r["batch_devices"] == 8 and r["batch_shards"] == [64 // 8]
  assert r["table_devices"] == 8
  # model_parallel=1 replicates the [96, 8] table; 8 splits it (and Adam's moments) by rows.
  assert r["table_shards"] == ([96] if mp == 1 else [12])
  assert r["mu_shards"] == r["table_shards"]


@pytest.mark.parametrize("mp", [1, 8])
def test_partial_sums_are_all_reduced_and_edges_never_gathered(child, mp):
  colls = child[f"mp{mp}"]["collectives"]
  reduced = [s for op, shapes in colls if op == "all-reduce" for s in shapes]
  # One [N, d] partial sum per layer forward (2) and per transposed layer backward (2), at least.
  assert reduced.count("f32[97,8]") >= 4, colls
  for _, shapes in colls:  # no device ever holds the whole edge list
    assert not any(s.split("[")[1].startswith(("1194", "1200")) for s in shapes), colls
  gathered = [s for op, shapes in colls if op == "all-gather" for s in shapes]
  if mp == 8:
    # The row-sharded table (96 rows, or the 97-row ego padded by XLA to 8 x 13) is gathered
    # once per propagation; nothing of node size is gathered without row sharding.
    assert any(s.endswith(",8]") and int(s[4:s.index(",")]) >= 96 for s in gathered), colls
  else:
    assert not gathered


def test_pad_graph_for_mesh_keeps_the_adjacency():
  ds = make_synthetic(num_users=6, num_items=5, num_clusters=1, per_user=3)
  g = graph_lib.build_graph(ds.interactions, 6, 5)  # 36 edges
  assert parallel.pad_graph_for_mesh(g, 4) is g   # already a multiple
  gp = parallel.pad_graph_for_mesh(g, 8)
  assert gp.senders.shape == (40,) and graph_lib.num_nodes(gp) == 12
  np.testing.assert_array_equal(gp.edges["mask"][36:], 0)
  np.testing.assert_array_equal(gp.edges["norm"][36:], 0)
  assert np.all(np.diff(gp.receivers) >= 0)  # still sorted by receiver
  a, ap = graph_lib.adjacency(g).toarray(), graph_lib.adjacency(gp).toarray()
  assert ap.shape == (12, 12) and a.shape == (11, 11)
  np.testing.assert_array_equal(ap[:11, :11], a)
  assert not ap[11].any() and not ap[:, 11].any()  # the padding node is isolated


def test_collectives_parses_tuple_and_async_results():
  hlo = textwrap.dedent("""
    %all-reduce.4 = f32[100,8]{1,0} all-reduce(%wrapped_scatter), channel_id=9
    %all-reduce.18 = (f32[100,8]{1,0}, f32[], /*index=5*/f32[]) all-reduce(%a, %b, %c)
    ROOT %ag = s32[64,1]{1,0} all-gather-start(%x), dimensions={0}
    %ag.done = s32[64,1]{1,0} all-gather-done(%ag)
    %add = f32[100,8]{1,0} add(%p, %q)
  """)
  assert parallel.collectives(hlo) == [
      ("all-reduce", ("f32[100,8]",)),
      ("all-reduce", ("f32[100,8]", "f32[]", "f32[]")),
      ("all-gather", ("s32[64,1]",)),
  ]


def test_mesh_and_inputs_validation():
  import jax
  with pytest.raises(ConfigError, match="model_parallel=3"):
    parallel.make_mesh(jax.devices() * 2, model_parallel=3)
  mesh = parallel.make_mesh(jax.devices()[:1])
  assert dict(mesh.shape) == {"data": 1, "model": 1}


def test_dense_backend_is_refused():
  from gnnrec_jax import models
  from gnnrec_jax.config import Config
  from gnnrec_jax.experiment import prepare
  exp = prepare(Config(model="lightgcn", propagation="dense"), make_synthetic(num_users=20))
  with pytest.raises(ConfigError, match="propagation=segment"):
    parallel.make_sharded_train_step(models.create(exp), parallel.make_mesh())


def test_initialize_distributed_is_a_noop_for_one_process(monkeypatch):
  for var in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID",
              "SLURM_NTASKS", "OMPI_MCA_orte_hnp_uri"):
    monkeypatch.delenv(var, raising=False)
  assert parallel.initialize_distributed() is False
  monkeypatch.setenv("JAX_NUM_PROCESSES", "1")
  assert parallel.initialize_distributed(coordinator_address="10.0.0.1:1234") is False


# --- receiver-partitioned propagation and `fit(devices=N)` ----------------------------------------


def _small_graph(seed=0, users=7, items=6):
  rng = np.random.default_rng(seed)
  key = np.unique(rng.integers(0, users * (items - 1), 30))  # the last item stays isolated
  return graph_lib.build_graph(Interactions(key // (items - 1), key % (items - 1)), users, items)


@pytest.mark.parametrize("devices", [1, 2, 3, 8])
def test_partition_graph_layout_and_halo_plan(devices):
  g = _small_graph()
  n0 = graph_lib.num_nodes(g)  # 13
  pg = parallel.partition_graph(g, devices)
  n = graph_lib.num_nodes(pg)
  rows = n // devices
  assert n == -(-n0 // devices) * devices and n % devices == 0
  s, r = np.asarray(pg.senders), np.asarray(pg.receivers)
  emax = len(s) // devices
  assert len(s) == devices * emax
  # Every edge sits in the slice of the device that owns its receiver, sorted by receiver.
  np.testing.assert_array_equal(r // rows, np.repeat(np.arange(devices), emax))
  assert np.all(np.diff(r) >= 0)
  # The same adjacency (padding edges carry norm 0), padding nodes isolated.
  a, ap = graph_lib.adjacency(g).toarray(), graph_lib.adjacency(pg).toarray()
  np.testing.assert_array_equal(ap[:n0, :n0], a)
  assert not ap[n0:].any() and not ap[:, n0:].any()
  assert int(pg.edges["mask"].sum()) == len(np.asarray(g.senders))
  # The reverse index is still the reverse.
  rev = np.asarray(pg.edges["reverse"])
  np.testing.assert_array_equal(s[rev], r)
  np.testing.assert_array_equal(r[rev], s)
  # The halo plan finds every edge's sender: row halo_src = q M + j is row send_idx[q, p, j] of
  # device q.
  send_idx = np.asarray(pg.globals["send_idx"])
  m = send_idx.shape[2]
  src = np.asarray(pg.edges["halo_src"])
  p = np.repeat(np.arange(devices), emax)
  q, j = src // m, src % m
  np.testing.assert_array_equal(q * rows + send_idx[q, p, j], s)
  assert parallel.halo_rows(pg) == devices * m


def _mesh_of_one():
  import jax
  return parallel.make_mesh(jax.devices()[:1])


@pytest.mark.parametrize("heads", [1, 2])
def test_partitioned_backend_equals_segment_on_one_device(heads):
  import jax
  import jax.numpy as jnp

  from gnnrec_jax.graph import propagate
  pg = jax.tree.map(jnp.asarray, parallel.partition_graph(_small_graph(1), 1))
  n = int(pg.n_node[0])
  e = pg.senders.shape[0]
  rng = np.random.default_rng(2)
  shape = (n, 4) if heads == 1 else (n, heads, 2)
  x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  w = jnp.asarray(rng.uniform(size=(e,) if heads == 1 else (e, heads)), jnp.float32)

  def loss(x, w, b):
    out = propagate.weighted_sum(x, pg, w, num_nodes=n, backend=b)
    logits = propagate.edge_dot(x, jnp.cos(x), pg, num_nodes=n, backend=b)
    return jnp.sum(jnp.sin(out) * x) + jnp.sum(jnp.tanh(logits) * w)

  ref = jax.value_and_grad(loss, argnums=(0, 1))(x, w, "segment")
  with jax.set_mesh(_mesh_of_one()):
    got = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), static_argnums=2)(
        x, w, "partitioned")
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_partitioned_backend_outside_a_mesh_is_a_config_error():
  import jax
  import jax.numpy as jnp

  from gnnrec_jax.graph import propagate
  pg = jax.tree.map(jnp.asarray, parallel.partition_graph(_small_graph(), 2))
  with pytest.raises(ConfigError, match="laid out for 2 devices but the current mesh has 0"):
    propagate.weighted_sum(jnp.ones((14, 2)), pg, pg.edges["norm"], num_nodes=14,
                           backend="partitioned")
  g = jax.tree.map(jnp.asarray, _small_graph())
  with pytest.raises(ConfigError, match="partition_graph"):
    propagate.weighted_sum(jnp.ones((13, 2)), g, g.edges["norm"], num_nodes=13,
                           backend="partitioned")


def test_devices_beyond_the_process_are_refused():
  import jax
  n = jax.device_count()
  with pytest.raises(ConfigError, match=f"--devices {n + 1}: this process sees {n}"):
    parallel.check_devices(n + 1)


# Runs `gnnrec-jax train` (cli.main) with --devices 1 and 8 (and 8 with row-sharded tables) on the
# same files in a child with 8 CPU devices; resumes an 8-device run; prints one JSON line.
_CLI_CHILD = textwrap.dedent("""
  import contextlib, io, json, sys
  import jax, jax.numpy as jnp, numpy as np
  from gnnrec_jax import cli, models
  from gnnrec_jax.graph import propagate
  from gnnrec_jax.training import parallel
  data, root = sys.argv[1], sys.argv[2]
  files = ["--train", f"{data}/train.tsv", "--valid", f"{data}/valid.tsv", "--test",
           f"{data}/test.tsv"]
  def train(name, *extra):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      code = cli.main(["train", *files, "--config", "test", "--set", "epochs=2", "--set",
                       "batch_size=128", "--set", "lr=1e-2", "--workdir", f"{root}/{name}",
                       "--no-progress", *extra])
    assert code == 0
    return json.loads(out.getvalue().splitlines()[-1])
  res = {"one": train("one"), "eight": train("eight", "--devices", "8"),
         "eight_rows": train("eight_rows", "--devices", "8", "--shard-tables")}
  # Resume: 1 epoch, then the same run continued to 2 on 8 devices.
  train("resumed", "--devices", "8", "--set", "epochs=1")
  res["resumed"] = train("resumed", "--devices", "8", "--resume")
  # What the 8-device step holds: the model's backend, the compiled step's collectives and the
  # largest node-row array a device holds.
  from gnnrec_jax.training import fit, workdir
  exp = workdir.load(f"{root}/one")[1].exp  # the experiment of the runs above
  cfg = exp.config
  mesh = parallel.make_mesh()
  rec = models.create(parallel.for_mesh(exp, mesh))
  with jax.set_mesh(mesh):  # the partitioned backend runs inside a mesh, init included
    params = rec.init(jax.random.key(0))
  state = fit.TrainState.create(apply_fn=None, params=params, tx=fit.create_optimizer(cfg, 10))
  step, state = parallel.distribute(rec, state, mesh)
  batch = parallel.shard_batch(next(fit.epoch_batches(exp.split.train, batch_size=cfg.batch_size,
                                                      seed=0, epoch=1)), mesh)
  hlo = parallel.make_sharded_train_step(rec, mesh).lower(
      state, batch, rec.inputs, jax.random.key(1)).compile().as_text()
  res["backend"] = rec.module._backend
  res["num_nodes"] = int(rec.inputs["graph"].n_node[0])
  res["halo_rows"] = parallel.halo_rows(rec.inputs["graph"])
  res["collectives"] = parallel.collectives(hlo)
  res["edge_devices"] = len(rec.inputs["graph"].senders.sharding.device_set)
  print(json.dumps(res))
""")


@pytest.fixture(scope="module")
def cli_child(tmp_path_factory):
  from gnnrec_jax.data.splits import split_random
  data = tmp_path_factory.mktemp("dp_data")
  s = split_random(make_synthetic(num_users=200, num_items=120, per_user=12, seed=4).interactions,
                   seed=0)
  for name, part in (("train", s.train), ("valid", s.valid), ("test", s.test)):
    rows = "".join(f"u{u}\ti{i}\t{w:g}\n" for u, i, w in zip(part.user, part.item, part.weight))
    (data / f"{name}.tsv").write_text("user_id\titem_id\trating\n" + rows)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", _CLI_CHILD, str(data),
                         str(tmp_path_factory.mktemp("dp_runs"))], env=env, check=False,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cli_devices_8_gives_the_metrics_of_devices_1(cli_child):
  one = cli_child["one"]
  assert one["ndcg@10"] > 0.07  # a model that learned something (random ranking: ~0.04)
  for run in ("eight", "eight_rows", "resumed"):
    other = cli_child[run]
    assert other.keys() == one.keys()
    for k, v in one.items():
      assert abs(other[k] - v) <= 1e-5, (run, k, other[k], v)


def test_eight_devices_propagate_receiver_partitioned(cli_child):
  assert cli_child["backend"] == "partitioned"
  assert cli_child["edge_devices"] == 8
  n, halo = cli_child["num_nodes"], cli_child["halo_rows"]
  assert n == 320  # 200 + 120 rows: 40 per device
  colls = cli_child["collectives"]
  m = halo // 8
  exchanged = [s for op, shapes in colls if op == "all-to-all" for s in shapes]
  # The halo exchange: one all-to-all per layer forward and per layer backward (2 + 2), each
  # sending a [1, M, d] block to every device.
  assert len(exchanged) >= 4 * 8 and set(exchanged) == {f"f32[1,{m},8]"}, colls
  # No [N, d] partial sum is all-reduced (the segment path all-reduces one per layer and
  # direction): node-sized arrays move only as the replicated table's gradient (all-gather).
  reduced = [s for op, shapes in colls if op == "all-reduce" for s in shapes]
  assert f"f32[{n},8]" not in reduced, colls
