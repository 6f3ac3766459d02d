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
