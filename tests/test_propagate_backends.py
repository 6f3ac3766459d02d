"""Every `weighted_sum` backend (segment, dense, blocked, csr = native kernels, scipy) against a
hand-computed example and scipy: values and gradients (x and weights), one and several heads,
jit and no-jit, padded graphs, with and without the reverse-edge index, thread counts, and the
rules of `resolve_backend`.

Every test here runs with the CPU as JAX's default device (the `cpu_device` fixture of
conftest.py): `csr` and `scipy` are CPU backends, and on a GPU host they would otherwise resolve
to `segment`, so the native kernels would silently go untested."""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest

from gnnrec_jax.config import Config
from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.graph import kernels, propagate
from gnnrec_jax.graph.build import adjacency, build_graph, pad_graph, reverse_edges
from gnnrec_jax.graph.propagate import resolve_backend, weighted_sum
from gnnrec_jax.models.embedding import create_model

BACKENDS = ("segment", "dense", "blocked", "csr", "scipy")
pytestmark = pytest.mark.usefixtures("cpu_device")


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
  """Blocks of 16 edges x 8 floats for the `blocked` backend: these graphs (~80 edges) then
  take several full blocks and a remainder, the code paths a 10^8-edge graph takes."""
  monkeypatch.setenv("GNNREC_BLOCK_BYTES", str(16 * 8 * 4))
U, I = 6, 9
N_PAD, E_PAD = 20, 80


def random_graph(seed=0, padded=False):
  rng = np.random.default_rng(seed)
  key = np.unique(rng.integers(0, U, 40) * I + rng.integers(0, I - 1, 40))  # item I-1 isolated
  g = build_graph(Interactions(key // I, key % I, rng.uniform(0.5, 2.0, len(key))), U, I)
  return pad_graph(g, n_node=N_PAD, n_edge=E_PAD) if padded else g


def dev(g):
  return jax.tree.map(jnp.asarray, g)


def maybe_jit(f, jit):
  return jax.jit(f) if jit else f


def test_hand_computed_example():
  # Edges 1->0 (w 1), 2->0 (w 2), 0->1 (w 3), 0->2 (w 4), sorted by receiver:
  #   out[0] = 1 x[1] + 2 x[2],  out[1] = 3 x[0],  out[2] = 4 x[0].
  g = jraph.GraphsTuple(nodes=None, edges={}, senders=np.array([1, 2, 0, 0], np.int32),
                        receivers=np.array([0, 0, 1, 2], np.int32), n_node=np.array([3]),
                        n_edge=np.array([4]), globals=None)
  x = jnp.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
  w = jnp.array([1.0, 2.0, 3.0, 4.0])
  want = np.array([[8.0, 80.0], [3.0, 30.0], [4.0, 40.0]])
  # d sum(out) / d w_e = sum(x[s_e]); d sum(out) / d x[j] = sum of w over edges leaving j.
  want_dw = np.array([22.0, 33.0, 11.0, 11.0])
  want_dx = np.array([[7.0, 7.0], [1.0, 1.0], [2.0, 2.0]])
  for b in BACKENDS:
    for jit in (False, True):
      f = maybe_jit(lambda x, w, b=b: weighted_sum(x, g, w, num_nodes=3, backend=b), jit)
      np.testing.assert_allclose(f(x, w), want, rtol=1e-6)
      dx, dw = jax.grad(lambda x, w: jnp.sum(f(x, w)), argnums=(0, 1))(x, w)
      np.testing.assert_allclose(dx, want_dx, rtol=1e-6)
      np.testing.assert_allclose(dw, want_dw, rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_backends_match_scipy(jit, padded):
  g = random_graph(1, padded)
  n = N_PAD if padded else U + I
  x = np.random.default_rng(2).standard_normal((n, 5)).astype(np.float32)
  want = adjacency(g) @ x
  gd = dev(g)
  for b in BACKENDS:
    f = maybe_jit(lambda x, g, b=b: weighted_sum(x, g, g.edges["norm"], num_nodes=n, backend=b),
                  jit)
    np.testing.assert_allclose(f(jnp.asarray(x), gd), want, atol=1e-5, err_msg=b)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("heads", [1, 3])
def test_gradients_agree_across_backends(jit, heads):
  g = dev(random_graph(3, padded=True))
  rng = np.random.default_rng(4)
  num_edges = E_PAD
  if heads == 1:
    x = jnp.asarray(rng.standard_normal((N_PAD, 4)), jnp.float32)
    w = jnp.asarray(rng.uniform(0, 1, num_edges), jnp.float32)
  else:
    x = jnp.asarray(rng.standard_normal((N_PAD, heads, 2)), jnp.float32)
    w = jnp.asarray(rng.uniform(0, 1, (num_edges, heads)), jnp.float32)

  def loss(x, w, b):
    # A nonlinear loss, so that the cotangent g differs per node.
    return jnp.sum(jnp.sin(weighted_sum(x, g, w, num_nodes=N_PAD, backend=b)) * jnp.cos(x))

  results = {b: maybe_jit(jax.value_and_grad(lambda x, w, b=b: loss(x, w, b), argnums=(0, 1)),
                          jit)(x, w) for b in BACKENDS}
  ref_val, (ref_dx, ref_dw) = results["segment"]
  for b in BACKENDS[1:]:
    val, (dx, dw) = results[b]
    np.testing.assert_allclose(val, ref_val, atol=1e-5, err_msg=b)
    np.testing.assert_allclose(dx, ref_dx, atol=1e-5, err_msg=b)
    np.testing.assert_allclose(dw, ref_dw, atol=1e-5, err_msg=b)


def test_csr_gradient_matches_finite_differences():
  g = dev(random_graph(5))
  n = U + I
  x = jnp.asarray(np.random.default_rng(6).standard_normal((n, 3)), jnp.float64
                  if jax.config.jax_enable_x64 else jnp.float32)
  w = jnp.asarray(g.edges["weight"], x.dtype)
  f = lambda x, w: jnp.sum(jnp.tanh(weighted_sum(x, g, w, num_nodes=n, backend="csr")))
  dw = jax.grad(f, argnums=1)(x, w)
  eps = 1e-2
  for e in (0, 7, 20):
    bump = jnp.zeros_like(w).at[e].set(eps)
    fd = (f(x, w + bump) - f(x, w - bump)) / (2 * eps)
    np.testing.assert_allclose(dw[e], fd, rtol=2e-2, atol=1e-4)


def test_scipy_threads_give_the_same_result(monkeypatch):
  g = dev(random_graph(7))
  n = U + I
  x = jnp.asarray(np.random.default_rng(8).standard_normal((n, 6)), jnp.float32)
  c = jnp.asarray(np.random.default_rng(9).standard_normal((n, 6)), jnp.float32)
  f = jax.jit(jax.value_and_grad(
      lambda x: jnp.sum(weighted_sum(x, g, g.edges["norm"], num_nodes=n, backend="scipy") * c)))
  monkeypatch.setenv("GNNREC_CSR_THREADS", "1")
  one = f(x)
  monkeypatch.setattr(propagate, "_THREAD_MIN_WORK", 1)  # split even this tiny product
  for threads in ("2", "3"):
    monkeypatch.setenv("GNNREC_CSR_THREADS", threads)
    several = f(x)
    np.testing.assert_allclose(several[0], one[0], atol=1e-5)
    np.testing.assert_allclose(several[1], one[1], atol=1e-6)


@pytest.mark.parametrize("reverse", [True, False])
def test_native_threads_give_identical_results(monkeypatch, reverse):
  # Big enough (40k edges x 64) for the kernels to use every thread of XLA's pool; each output
  # row is summed by one thread in edge order, so the results are bitwise equal.
  rng = np.random.default_rng(14)
  users, items = 300, 500
  key = np.unique(rng.integers(0, users * items, 20_000))
  g = build_graph(Interactions(key // items, key % items, None), users, items)
  if not reverse:
    g = g._replace(edges={k: v for k, v in g.edges.items() if k != "reverse"})
  g = dev(g)
  n = users + items
  x = jnp.asarray(rng.standard_normal((n, 64)), jnp.float32)
  c = jnp.asarray(rng.standard_normal((n, 64)), jnp.float32)

  def run():  # traced anew each time: the thread cap is read when tracing
    f = lambda x, w: jnp.sum(weighted_sum(x, g, w, num_nodes=n, backend="csr") * c)
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(x, g.edges["norm"])

  monkeypatch.setenv("GNNREC_CSR_THREADS", "1")
  one = run()
  monkeypatch.delenv("GNNREC_CSR_THREADS")
  many = run()
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(many)):
    np.testing.assert_array_equal(a, b)
  want = adjacency(jax.tree.map(np.asarray, g)).T @ np.asarray(c)
  np.testing.assert_allclose(one[1][0], want, atol=1e-4)


def test_csr_under_vmap_and_bfloat16():
  g = dev(random_graph(10))
  n = U + I
  xs = jnp.asarray(np.random.default_rng(11).standard_normal((2, n, 3)), jnp.float32)
  f = lambda x, b: weighted_sum(x, g, g.edges["norm"], num_nodes=n, backend=b)
  for b in ("csr", "scipy"):
    np.testing.assert_allclose(jax.vmap(lambda x: f(x, b))(xs),
                               jax.vmap(lambda x: f(x, "segment"))(xs), atol=1e-5)
    out = f(xs[0].astype(jnp.bfloat16), b)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(out.astype(jnp.float32), f(xs[0], "segment"), atol=0.05)


@pytest.mark.parametrize("backend", ["csr", "scipy"])
def test_csr_refuses_unsorted_edges(backend):
  g = jraph.GraphsTuple(nodes=None, edges={}, senders=np.array([0, 1], np.int32),
                        receivers=np.array([1, 0], np.int32), n_node=np.array([2]),
                        n_edge=np.array([2]), globals=None)
  with pytest.raises(Exception, match="sorted by receiver"):
    jax.block_until_ready(weighted_sum(jnp.ones((2, 2)), g, jnp.ones(2), num_nodes=2,
                                       backend=backend))


def test_csr_x_gradient_skips_the_edge_gathers():
  # The weight cotangent needs [E, d] gathers; XLA must drop them when only dx is requested
  # (LightGCN's fixed norm), else the csr backward costs as much as the segment one.
  g = dev(random_graph(12))
  n, d = U + I, 7
  num_edges = int(g.senders.shape[0])
  x = jnp.ones((n, d))
  grad_x = jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.sin(
      weighted_sum(x, g, w, num_nodes=n, backend="csr")))))
  grad_w = jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.sin(
      weighted_sum(x, g, w, num_nodes=n, backend="csr"))), argnums=1))
  w = g.edges["norm"]
  # Native kernels: the weight cotangent is one SDDMM custom call, dropped for dx alone.
  assert "gnnrec_sddmm" not in grad_x.lower(x, w).compile().as_text()
  assert "gnnrec_sddmm" in grad_w.lower(x, w).compile().as_text()
  # scipy: XLA gathers of [E, 1, d] rows.
  grad_x, grad_w = (jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.sin(
      weighted_sum(x, g, w, num_nodes=n, backend="scipy"))), argnums=a)) for a in (0, 1))
  shape = f"[{num_edges},1,{d}]"
  assert shape not in grad_x.lower(x, w).compile().as_text()
  assert shape in grad_w.lower(x, w).compile().as_text()


def test_lightgcn_model_csr_equals_dense():
  g = dev(random_graph(13))
  outs = {}
  for b in ("dense", "csr", "scipy", "blocked"):
    model = create_model(Config(model="lightgcn", embed_dim=8, propagation=b),
                         num_users=U, num_items=I)
    params = model.init(jax.random.key(0), g)
    loss = lambda p: jnp.sum(jnp.sin(model.apply(p, g)[0]))
    outs[b] = jax.jit(jax.value_and_grad(loss))(params)
  for b in ("csr", "scipy", "blocked"):
    np.testing.assert_allclose(outs[b][0], outs["dense"][0], atol=1e-5)
    for x, y in zip(jax.tree.leaves(outs[b][1]), jax.tree.leaves(outs["dense"][1])):
      np.testing.assert_allclose(x, y, atol=1e-5)


def test_resolve_backend():
  assert resolve_backend("auto", 10, platform="cpu") == "csr"
  assert resolve_backend("auto", 10**6, platform="cpu") == "csr"
  assert resolve_backend("auto", 10, platform="gpu") == "segment"
  assert resolve_backend("csr", 10, platform="cpu") == "csr"
  assert resolve_backend("csr", 10, platform="tpu") == "segment"  # no host round trip there
  assert resolve_backend("dense", 10**6, platform="cpu") == "dense"  # explicit choice kept
  assert resolve_backend("scipy", 10, platform="cpu") == "scipy"
  assert resolve_backend("scipy", 10, platform="gpu") == "segment"
  with pytest.raises(ConfigError, match="csr"):
    resolve_backend("cusparse", 10)


def test_native_kernels_are_built_where_a_compiler_exists():
  # A silent fallback to scipy would cost 3-5x; fail loudly instead where the build should work.
  if kernels._compiler() is None or os.environ.get("GNNREC_NATIVE") == "0":
    pytest.skip("no C++ compiler (or GNNREC_NATIVE=0): the scipy fallback is tested instead")
  assert kernels.available(), kernels.unavailable_reason()


def test_csr_falls_back_to_scipy_without_the_kernels(monkeypatch):
  monkeypatch.setattr(kernels, "available", lambda: False)
  assert resolve_backend("csr", 10, platform="cpu") == "scipy"
  assert resolve_backend("auto", 10, platform="cpu") == "scipy"


def test_kernel_build_failure_names_the_compiler_error(monkeypatch, tmp_path):
  monkeypatch.setenv("GNNREC_JAX_CACHE", str(tmp_path))
  fake = tmp_path / "fake-c++"
  fake.write_text("#!/bin/sh\necho 'fake-c++: error: no such toolchain' >&2\nexit 1\n")
  fake.chmod(0o755)
  monkeypatch.setenv("CXX", str(fake))
  with pytest.raises(RuntimeError, match="(?s)compiling csr_kernels.cc failed.*no such toolchain"):
    kernels.build()
  assert not list((tmp_path / "kernels").glob("*.so*"))  # no half-written library left


def test_stale_reverse_index_is_an_error():
  g = dev(random_graph(16))
  n = U + I
  rev = g.edges["reverse"]
  stale = g._replace(edges={**g.edges, "reverse": jnp.roll(rev, 1)})
  f = lambda g: jax.grad(lambda x: jnp.sum(jnp.sin(weighted_sum(
      x, g, g.edges["norm"], num_nodes=n, backend="csr"))))(jnp.ones((n, 4)))
  jax.block_until_ready(f(g))
  with pytest.raises(Exception, match="is not the reverse of edge"):
    jax.block_until_ready(f(stale))


def test_reverse_edges():
  # Edges sorted by (receiver, sender): 1->0, 2->0, 0->1, 0->2, 2->2.
  s, r = np.array([1, 2, 0, 0, 2]), np.array([0, 0, 1, 2, 2])
  np.testing.assert_array_equal(reverse_edges(s, r, 3), [2, 3, 0, 1, 4])
  assert reverse_edges(np.array([1, 2, 0]), np.array([0, 0, 1]), 3) is None  # 0->2 missing
  assert reverse_edges(np.array([1, 1, 0]), np.array([0, 0, 1]), 3) is None  # duplicate
  g = random_graph(15, padded=True)
  rev = np.asarray(g.edges["reverse"])
  np.testing.assert_array_equal(np.asarray(g.senders)[rev], np.asarray(g.receivers))
  np.testing.assert_array_equal(np.asarray(g.receivers)[rev], np.asarray(g.senders))
  np.testing.assert_array_equal(rev[rev], np.arange(len(rev)))


def test_native_kernels_really_run_in_the_csr_backend():
  # The compiled program calls the C++ SpMM (not a segment_sum the backend silently became).
  if not kernels.available():
    pytest.skip(f"native kernels unavailable: {kernels.unavailable_reason()}")
  g = dev(random_graph(17))
  n = U + I
  f = jax.jit(lambda x: weighted_sum(x, g, g.edges["norm"], num_nodes=n, backend="csr"))
  hlo = f.lower(jnp.ones((n, 4))).compile().as_text()
  assert "gnnrec_spmm" in hlo and "scatter" not in hlo


@pytest.mark.parametrize("multi_head", [False, True])
def test_blocked_edge_dot_matches_segment(multi_head):
  g = dev(random_graph(18, padded=True))
  rng = np.random.default_rng(19)
  shape = (N_PAD, 2, 3) if multi_head else (N_PAD, 5)
  q = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  k = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  for graph in (g, g._replace(edges={k: v for k, v in g.edges.items() if k != "reverse"})):
    def loss(q, k, b, graph=graph):
      logits = propagate.edge_dot(q, k, graph, num_nodes=N_PAD, backend=b)
      return jnp.sum(jnp.tanh(logits) * jnp.arange(logits.size).reshape(logits.shape) / 50)

    ref = jax.value_and_grad(loss, argnums=(0, 1))(q, k, "segment")
    got = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), static_argnums=2)(q, k, "blocked")
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
      np.testing.assert_allclose(a, b, atol=1e-5)


def test_edge_block_sizes(monkeypatch):
  monkeypatch.delenv("GNNREC_BLOCK_BYTES")
  assert propagate.edge_block(10**8, 64) == 1 << 18   # 64 MiB of [block, 64] float32
  assert propagate.edge_block(1000, 64) == 1000       # never more than the edges
  assert propagate.edge_block(10**8, 1 << 30) == 1    # at least one edge
  monkeypatch.setenv("GNNREC_BLOCK_BYTES", str(1 << 20))
  assert propagate.edge_block(10**8, 64) == 1 << 12


def test_blocked_backend_never_holds_edge_messages():
  # The point of the backend: O(N d + E) memory. Neither the forward nor the backward program
  # has an [E, d] (or [E, 1, d]) array, which the segment backend needs in both; the dw loop is
  # dropped when only dx is asked for (two loops: forward and A^T g).
  g = dev(random_graph(20, padded=True))
  d = 8
  x = jnp.ones((N_PAD, d))

  def hlo(backend, argnums=0):
    f = lambda x, w: jnp.sum(jnp.sin(weighted_sum(x, g, w, num_nodes=N_PAD, backend=backend)))
    return jax.jit(jax.grad(f, argnums=argnums)).lower(x, g.edges["norm"]).compile().as_text()

  per_edge = (f"f32[{E_PAD},{d}]", f"f32[{E_PAD},1,{d}]")
  assert any(s in hlo("segment") for s in per_edge)
  blocked = hlo("blocked")
  assert not any(s in blocked for s in per_edge)
  assert blocked.count(" while(") == 2
  assert hlo("blocked", argnums=(0, 1)).count(" while(") == 3  # + the blocked SDDMM for dw
