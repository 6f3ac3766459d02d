"""models.py and node_inputs.py: the trainer contract, references, padding, backends, errors."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gnnrec_jax.config import Config
from gnnrec_jax.data.types import Interactions
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.graph.build import adjacency, build_graph, pad_graph
from gnnrec_jax.models.embedding import create_model
from gnnrec_jax.models.gat import GAT
from gnnrec_jax.models.lightgcn import LightGCN
from gnnrec_jax.models.mf import MF
from gnnrec_jax.models.ngcf import NGCF
from gnnrec_jax.models.softmax_gnn import SoftmaxGNN
from gnnrec_jax.models.node_inputs import NodeInputs
from gnnrec_jax.objectives.losses import bpr_loss

U, I, D = 4, 6, 4
N = U + I


def graph(padded=False):
  rng = np.random.default_rng(0)
  key = np.unique(rng.integers(0, U - 1, 16) * I + rng.integers(0, I - 1, 16))
  g = build_graph(Interactions(key // I, key % I, rng.uniform(1, 5, len(key))), U, I)
  if padded:
    g = pad_graph(g, n_node=16, n_edge=40)
  return g


def dev(g):
  return jax.tree.map(jnp.asarray, g)


def cfg(**kw):
  return Config(embed_dim=D, **kw)


def init_apply(model, g, *args, jit=False, **kw):
  params = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, g, *args)
  f = lambda p, g: model.apply(p, g, *args, **kw)  # noqa: E731
  return params, (jax.jit(f) if jit else f)(params, g)


@pytest.mark.parametrize("name,cls", [("mf", MF), ("lightgcn", LightGCN),
                                      ("softmax_gnn", SoftmaxGNN), ("ngcf", NGCF), ("gat", GAT)])
def test_create_model_builds_every_model(name, cls):
  model = create_model(cfg(model=name), num_users=U, num_items=I)
  assert isinstance(model, cls) and model.num_users == U and model.num_items == I
  _, (final, ego) = init_apply(model, dev(graph()), jit=True)
  d_out = D * 4 if name == "ngcf" else D  # NGCF concatenates h^0..h^3
  assert final.shape == (N, d_out) and ego.shape == (N, D)
  assert np.all(np.isfinite(final))


@pytest.mark.parametrize("kw,match", [
    (dict(model="bert4rec"), "unknown model"),
    (dict(model="ease"), "closed-form"),
    (dict(propagation="sparse"), "unknown propagation backend 'sparse'"),
    (dict(model="softmax_gnn", activation="gelu"), "activation"),
    (dict(model="gat", heads=3), "divisible"),
    (dict(use_id_embedding=False), "needs text or side features"),
])
def test_create_model_config_errors(kw, match):
  with pytest.raises(ConfigError, match=match):
    create_model(cfg(**kw), num_users=U, num_items=I)


def test_mf_final_is_the_id_table():
  model = create_model(cfg(model="mf"), num_users=U, num_items=I)
  params, (final, ego) = init_apply(model, dev(graph()))
  table = params["params"]["inputs"]["embedding"]
  np.testing.assert_array_equal(final, table)
  np.testing.assert_array_equal(ego, table)
  assert 0.05 < float(jnp.std(table)) < 0.2  # normal(0, init_std = 0.1)


@pytest.mark.parametrize("combine", ["mean", "sum", "last", "concat"])
@pytest.mark.parametrize("backend", ["segment", "dense"])
def test_lightgcn_matches_scipy_powers(combine, backend):
  g = graph()
  model = create_model(cfg(model="lightgcn", layer_combine=combine, propagation=backend),
                       num_users=U, num_items=I)
  params, (final, ego) = init_apply(model, dev(g), jit=True)
  a = adjacency(g)  # D^-1/2 A D^-1/2 on the host
  e = [np.asarray(ego, np.float64)]
  for _ in range(3):
    e.append(a @ e[-1])
  expected = {"mean": np.mean(e, 0), "sum": np.sum(e, 0), "last": e[-1],
              "concat": np.concatenate(e, 1)}[combine]
  np.testing.assert_allclose(final, expected, atol=1e-6)


@pytest.mark.parametrize("name", ["lightgcn", "mf"])
def test_cosine_score_normalises_the_final_vectors(name):
  g = graph()
  dot = create_model(cfg(model=name), num_users=U, num_items=I)
  cos = create_model(cfg(model=name, score="cosine"), num_users=U, num_items=I)
  params, (final, ego) = init_apply(dot, dev(g))
  final_cos, ego_cos = cos.apply(params, dev(g))
  f = np.asarray(final, np.float64)
  np.testing.assert_allclose(final_cos, f / np.linalg.norm(f, axis=1, keepdims=True), atol=1e-6)
  np.testing.assert_array_equal(ego_cos, ego)  # the L2 term still sees layer 0 as it is
  # Scores are cosines: a user with itself is 1, every score within [-1, 1].
  s = np.asarray(final_cos) @ np.asarray(final_cos).T
  np.testing.assert_allclose(np.diag(s), 1.0, atol=1e-5)
  assert np.abs(s).max() <= 1 + 1e-5
  with pytest.raises(ConfigError, match="score"):
    create_model(cfg(model=name, score="euclid"), num_users=U, num_items=I)


@pytest.mark.parametrize("name", ["lightgcn", "softmax_gnn", "ngcf", "gat", "mf"])
def test_padded_graph_gives_the_same_vectors(name):
  c = cfg(model=name, heads=2 if name == "gat" else 1)
  m0 = create_model(c, num_users=U, num_items=I)
  m1 = create_model(c, num_users=U, num_items=I, num_nodes=16)
  g0, g1 = dev(graph()), dev(graph(padded=True))
  params, (f0, e0) = init_apply(m0, g0)
  f1, e1 = jax.jit(lambda p, g: m1.apply(p, g))(params, g1)  # same parameters
  assert f1.shape[0] == 16
  np.testing.assert_allclose(f1[:N], f0, atol=1e-6)
  np.testing.assert_allclose(e1[:N], e0, atol=1e-6)
  np.testing.assert_array_equal(e1[N:], 0.0)


def test_softmax_gnn_with_mix_zero_is_lightgcn():
  """attention_mix = 0 replaces alpha by LightGCN's norm, so the models must coincide."""
  g = dev(graph())
  light = create_model(cfg(model="lightgcn"), num_users=U, num_items=I)
  soft = create_model(cfg(model="softmax_gnn", attention_mix=0.0, initial_alpha="none"),
                      num_users=U, num_items=I)
  params, (f_light, _) = init_apply(light, g)
  f_soft, _ = soft.apply(params, g)
  np.testing.assert_allclose(f_soft, f_light, atol=1e-6)


def test_softmax_gnn_over_the_normalised_adjacency_with_flat_logits_is_lightgcn():
  """Pure softmax alphas (mix 1) with norm_prior 1 and receiver_scale: equal logits (a huge
  temperature) leave alpha = norm, so the model is LightGCN; a learned scale is a parameter."""
  g = dev(graph())
  light = create_model(cfg(model="lightgcn"), num_users=U, num_items=I)
  soft = create_model(cfg(model="softmax_gnn", attention_mix=1.0, initial_alpha="none",
                          norm_prior=1.0, receiver_scale=True, temperature=1e9),
                      num_users=U, num_items=I)
  params, (f_light, _) = init_apply(light, g)
  f_soft, _ = soft.apply(params, g)
  np.testing.assert_allclose(f_soft, f_light, atol=1e-6)
  learned = create_model(cfg(model="softmax_gnn", attention_logits="cosine",
                             learn_temperature=True), num_users=U, num_items=I)
  p = learned.init(jax.random.key(0), g)["params"]
  assert p["conv_1"]["log_scale"].shape == (1,)
  assert "conv_0" not in p  # layer 0 takes its alphas from the weights: no logits


def test_softmax_gnn_sows_alphas_and_trains():
  g = dev(graph())
  model = create_model(cfg(model="softmax_gnn", qk_proj=True, heads=2), num_users=U,
                       num_items=I)
  params = model.init(jax.random.key(0), g)["params"]
  (_, _), state = model.apply({"params": params}, g, mutable=["intermediates"])
  alphas = state["intermediates"]
  assert sorted(alphas) == ["alpha_0", "alpha_1", "alpha_2"]
  e = g.senders.shape[0]
  sums = jax.ops.segment_sum(alphas["alpha_1"][0], g.receivers, num_segments=N)
  has_in = np.bincount(np.asarray(g.receivers), minlength=N) > 0
  np.testing.assert_allclose(sums[has_in], 1.0, atol=1e-5)
  assert alphas["alpha_0"][0].shape == (e, 2)

  def loss(p):
    final, ego = model.apply({"params": p}, g)
    u, pos, neg = jnp.array([0, 1]), jnp.array([U, U + 1]), jnp.array([U + 2, U + 3])
    return bpr_loss(user=final[u], pos=final[pos], neg=final[neg], user_ego=ego[u],
                    pos_ego=ego[pos], neg_ego=ego[neg], l2=1e-4)[0]

  grads = jax.grad(loss)(params)
  leaves = jax.tree.leaves(grads)
  assert all(np.all(np.isfinite(x)) for x in leaves)
  assert float(jnp.abs(grads["conv_1"]["query"]["kernel"]).sum()) > 0


def test_ngcf_concatenates_ego_and_dropout_needs_train():
  g = dev(graph())
  model = create_model(cfg(model="ngcf", dropout=0.5), num_users=U, num_items=I)
  params, (final, ego) = init_apply(model, g)
  np.testing.assert_array_equal(final[:, :D], ego)
  # Layer outputs are L2-normalised rows (nodes with neighbours).
  norms = np.linalg.norm(np.asarray(final[:, D:2 * D]), axis=1)
  np.testing.assert_allclose(norms[norms > 0], 1.0, atol=1e-5)
  train_out, _ = model.apply(params, g, train=True, rngs={"dropout": jax.random.key(5)})
  assert not np.allclose(train_out, final)


def test_gat_attention_dropout_only_in_training():
  g = dev(graph())
  model = create_model(cfg(model="gat", heads=2, dropout=0.5), num_users=U, num_items=I)
  params, (final, _) = init_apply(model, g)
  again, _ = model.apply(params, g)
  np.testing.assert_array_equal(final, again)
  train_out, _ = model.apply(params, g, train=True, rngs={"dropout": jax.random.key(7)})
  assert not np.allclose(train_out, final)


# --- NodeInputs --------------------------------------------------------------------------------


def test_node_inputs_text_projection_default_and_padding():
  feats = jnp.asarray(np.random.default_rng(0).normal(size=(N, 3)), jnp.float32)
  has_text = jnp.arange(N) % 2 == 0
  mod = NodeInputs(U, I, D, num_nodes=12)
  params = mod.init(jax.random.key(0), feats, has_text)["params"]
  ego = mod.apply({"params": params}, feats, has_text)
  proj = feats @ params["text_proj"]["kernel"] + params["text_proj"]["bias"]
  text = jnp.where(has_text[:, None], proj, params["default_text"])
  np.testing.assert_allclose(ego[:N], params["embedding"] + text, atol=1e-6)
  np.testing.assert_array_equal(ego[N:], 0.0)
  # Cold nodes (has_id False) use text only.
  has_id = jnp.arange(N) < 7
  cold = mod.apply({"params": params}, feats, has_text, has_id)
  np.testing.assert_allclose(cold[7:N], text[7:], atol=1e-6)
  np.testing.assert_allclose(cold[:7], ego[:7], atol=1e-6)


def test_node_inputs_id_dropout_zeroes_whole_id_vectors():
  n_users, n_items = 200, 300
  feats = jnp.ones((n_users + n_items, 2))
  mod = NodeInputs(n_users, n_items, D, id_dropout=0.3)
  params = mod.init(jax.random.key(0), feats)["params"]
  text = feats @ params["text_proj"]["kernel"] + params["text_proj"]["bias"]
  ego = mod.apply({"params": params}, feats, train=True, rngs={"dropout": jax.random.key(1)})
  dropped = np.all(np.isclose(ego, text, atol=1e-7), axis=1)
  kept = np.all(np.isclose(ego, params["embedding"] + text, atol=1e-6), axis=1)
  assert np.all(dropped | kept)
  assert 0.25 < dropped.mean() < 0.35  # 500 nodes at p = 0.3: sd 0.02
  evaluated = mod.apply({"params": params}, feats)  # eval: no dropout
  np.testing.assert_allclose(evaluated, params["embedding"] + text, atol=1e-6)


def test_node_inputs_text_only_has_no_id_table():
  feats = jnp.ones((N, 3))
  model = create_model(cfg(model="lightgcn", use_id_embedding=False), num_users=U, num_items=I,
                       feature_dim=3)
  params, (final, ego) = init_apply(model, dev(graph()), feats)
  assert "embedding" not in params["params"]["inputs"]
  p = params["params"]["inputs"]["text_proj"]
  np.testing.assert_allclose(ego, feats @ p["kernel"] + p["bias"], atol=1e-6)
