"""The precision policy (gnnrec_jax/precision.py) and the device-selection rules of the
propagation backends, proven on CPU by reading the traced programs and by faking the platform.

The suite pins `jax_default_matmul_precision="highest"` (conftest.py); the precision tests lift
that pin (`jax.default_matmul_precision("default")`) so that what they see is the library's own
explicit choice, not the pin.
"""
from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gnnrec_jax import models, precision
from gnnrec_jax.config import Config, apply_overrides
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.evaluation.evaluate import evaluate_full_ranking
from gnnrec_jax.experiment import prepare
from gnnrec_jax.graph import kernels, propagate
from gnnrec_jax.graph.build import build_graph
from gnnrec_jax.models.embedding import create_model, dot_scores
from gnnrec_jax.training import fit

U, I = 6, 9


def graph():
  rng = np.random.default_rng(0)
  key = np.unique(rng.integers(0, U * I, 30))
  return jax.tree.map(jnp.asarray, build_graph(Interactions(key // I, key % I, None), U, I))


def precisions(hlo: str) -> list[str]:
  """The precision of every dot_general of a lowered StableHLO module, e.g. ["HIGHEST"]."""
  return re.findall(r"stablehlo\.dot_general.*?precision = \[(\w+), \w+\]", hlo)


@pytest.fixture
def unpinned():
  with jax.default_matmul_precision("default"):
    yield


# --- precision -----------------------------------------------------------------------------------


def test_unpinned_matmuls_lower_at_default_precision(unpinned):
  # The baseline that makes the tests below meaningful: without an explicit precision a matmul
  # traced here lowers at DEFAULT (TF32 on a GPU).
  hlo = jax.jit(lambda a: a @ a).lower(jnp.ones((3, 3))).as_text()
  assert precisions(hlo) == ["DEFAULT"]


@pytest.mark.parametrize("heads", [1, 2])
def test_dense_backend_is_exact(unpinned, heads):
  g = graph()
  n = U + I
  e = g.senders.shape[0]
  x = jnp.ones((n, 4) if heads == 1 else (n, heads, 2))
  w = jnp.ones((e,) if heads == 1 else (e, heads))
  ws = jax.jit(jax.grad(lambda x, w: jnp.sum(propagate.weighted_sum(
      x, g, w, num_nodes=n, backend="dense")), argnums=(0, 1)))
  ed = jax.jit(jax.grad(lambda x: jnp.sum(propagate.edge_dot(
      x, x, g, num_nodes=n, backend="dense"))))
  for hlo in (ws.lower(x, w).as_text(), ed.lower(x).as_text()):
    found = precisions(hlo)
    assert found and set(found) == {"HIGHEST"}, found  # forward and both transposes


def test_evaluation_scores_are_exact(unpinned):
  # dot_scores carries its own precision; any other score function is traced under exact().
  hlo = jax.jit(dot_scores).lower((jnp.ones((4, 3)), jnp.ones((5, 3))), jnp.arange(2)).as_text()
  assert precisions(hlo) == ["HIGHEST"]
  seen = []

  def plain_scores(params, users):  # no precision argument: the evaluation's context decides
    seen.append(jax.config.jax_default_matmul_precision)
    return params["u"][users] @ params["i"].T

  rng = np.random.default_rng(1)
  params = {"u": jnp.asarray(rng.standard_normal((4, 3)), jnp.float32),
            "i": jnp.asarray(rng.standard_normal((5, 3)), jnp.float32)}
  target = Interactions(np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4]))
  evaluate_full_ranking(plain_scores, params, num_users=4, num_items=5, exclude=[],
                        target=target, ks=(2,))
  assert seen == ["highest"]


@pytest.mark.parametrize("setting,expected", [("default", "DEFAULT"), ("highest", "HIGHEST")])
def test_training_precision_follows_the_config(unpinned, setting, expected):
  # GAT has Dense projections (matmuls) in every layer, the loss an einsum over negatives.
  cfg = apply_overrides(Config(model="gat", embed_dim=8, num_layers=1, batch_size=16,
                               propagation="segment"), [f"matmul_precision={setting}"])
  exp = prepare(cfg, make_synthetic(num_users=12, num_items=10))
  rec = models.create(exp)
  state = fit.TrainState.create(apply_fn=None, params=rec.init(jax.random.key(0)),
                                tx=fit.create_optimizer(cfg, 10))
  batch = next(fit.epoch_batches(exp.split.train, batch_size=16, seed=0, epoch=1))
  hlo = fit.make_train_step(rec).lower(state, batch, rec.inputs, jax.random.key(1)).as_text()
  found = precisions(hlo)
  assert len(found) >= 4 and set(found) == {expected}, found


def test_unknown_precision_is_a_config_error():
  with pytest.raises(ConfigError, match=re.escape("matmul_precision must be one of default | high | highest, got 'tf32'")):
    apply_overrides(Config(), ["matmul_precision=tf32"])
  with pytest.raises(ConfigError, match="unknown matmul_precision"):
    precision.training("tf32")


# --- device selection ----------------------------------------------------------------------------


@pytest.fixture
def fake_gpu_host(monkeypatch):
  """A process whose default backend says "gpu" (what a CUDA jax reports), on this CPU."""
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")


def test_accelerator_host_resolves_cpu_backends_to_segment(fake_gpu_host):
  assert propagate.current_platform() == "gpu"
  for name in ("auto", "csr", "scipy", "segment"):
    assert propagate.resolve_backend(name, 10) == "segment"
  assert propagate.resolve_backend("dense", 10) == "dense"
  assert propagate.resolve_backend("blocked", 10) == "blocked"
  model = create_model(Config(model="lightgcn", propagation="csr"), num_users=U, num_items=I)
  assert model._backend == "segment"


def test_cpu_device_context_selects_the_cpu_backends_on_an_accelerator_host(fake_gpu_host):
  with jax.default_device(jax.devices("cpu")[0]):
    assert propagate.current_platform() == "cpu"
    assert propagate.resolve_backend("scipy", 10) == "scipy"
    want = "csr" if kernels.available() else "scipy"
    assert propagate.resolve_backend("csr", 10) == want
    assert propagate.resolve_backend("auto", 10) == want
    model = create_model(Config(model="lightgcn", propagation="auto"), num_users=U, num_items=I)
    assert model._backend == want
  with jax.default_device("cpu"):  # the platform-name form of the context
    assert propagate.resolve_backend("csr", 10) == want
  assert propagate.resolve_backend("csr", 10) == "segment"  # the context is gone


def test_platform_name_contexts(monkeypatch):
  with jax.default_device("gpu"):  # only read here, never run on
    assert propagate.current_platform() == "gpu"
    assert propagate.resolve_backend("csr", 10) == "segment"
  assert propagate.current_platform() == jax.default_backend()


def test_native_kernels_run_under_the_cpu_context_of_a_gpu_host(fake_gpu_host, cpu_device):
  if not kernels.available():
    pytest.skip(f"native kernels unavailable: {kernels.unavailable_reason()}")
  g = graph()
  n = U + I
  f = jax.jit(lambda x: propagate.weighted_sum(x, g, g.edges["norm"], num_nodes=n,
                                               backend="csr"))
  assert "gnnrec_spmm" in f.lower(jnp.ones((n, 4))).compile().as_text()
