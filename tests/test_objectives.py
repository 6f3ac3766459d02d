"""The contrastive objectives as options of every embedding model (issue 11 part 3).

`EmbeddingRecommender.loss` with loss=directau|ccl and cl=simgcl|xsimgcl: each trains on the
planted-cluster set with a finite, decreasing loss; SimGCL's noise moves each layer's output by
exactly eps; the loss through the model equals the pure functions of
`gnnrec_jax/objectives/contrastive.py` on the same vectors.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gnnrec_jax import configs, models
from gnnrec_jax.config import apply_overrides
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.experiment import prepare
from gnnrec_jax.graph.build import adjacency
from gnnrec_jax.objectives import contrastive, losses, sampling

SMALL = dict(loss="softmax", embed_dim=8, num_layers=2, batch_size=32, lr=0.01, l2=1e-3, num_negatives=8,
             softmax_temperature=0.2)


def rec_for(model="lightgcn", **kw):
  cfg = configs.get_config("test").replace(model=model, **{**SMALL, **kw})
  if model == "mf":
    cfg = cfg.replace(num_layers=0)
  if model == "ngcf":
    cfg = cfg.replace(layer_combine="concat")
  from gnnrec_jax.config import validate
  exp = prepare(validate(cfg), make_synthetic())
  return models.create(exp)


def a_batch(rec, size=32):
  train = rec.exp.split.train
  idx = np.arange(size) % len(train)
  mask = np.ones(size, np.float32)
  mask[-3:] = 0.0  # padding rows, as the last batch of an epoch has
  return {"user": jnp.asarray(train.user[idx]), "item": jnp.asarray(train.item[idx]),
          "mask": jnp.asarray(mask)}


OPTIONS = [
    dict(loss="bpr"),
    dict(loss="softmax"),
    dict(loss="full_softmax"),
    dict(loss="directau", directau_gamma=0.5),
    dict(loss="directau", directau_unique=True),
    dict(loss="ccl", ccl_margin=0.5, ccl_negative_weight=4.0),
    dict(loss="ccl", ccl_shared_negatives=16),
    dict(loss="softmax", cl="simgcl"),
    dict(loss="softmax", cl="xsimgcl", cl_layer=2),
]
MODEL_OPTIONS = ([("lightgcn", o) for o in OPTIONS]
                 + [(m, dict(loss="softmax", cl="simgcl"))
                    for m in ("mf", "softmax_gnn", "ngcf", "gat")]
                 + [(m, dict(loss="softmax", cl="xsimgcl")) for m in ("softmax_gnn", "gat")]
                 + [(m, dict(loss="directau")) for m in ("mf", "ngcf")]
                 + [("gat", dict(loss="ccl", ccl_shared_negatives=16))])


@pytest.mark.parametrize("model,opts", MODEL_OPTIONS,
                         ids=[f"{m}-" + "-".join(f"{v}" for v in o.values())
                              for m, o in MODEL_OPTIONS])
def test_every_option_trains_with_a_finite_decreasing_loss(model, opts):
  rec = rec_for(model, **opts)
  params = rec.init(jax.random.key(0))
  tx = optax.adam(0.01)
  batch, inputs, rng = a_batch(rec), rec.inputs, jax.random.key(3)

  @jax.jit
  def step(params, opt_state):
    (loss, aux), grads = jax.value_and_grad(rec.loss, has_aux=True)(params, inputs, batch, rng)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, aux

  opt_state = tx.init(params)
  seen = []
  for _ in range(8):  # the same batch and keys: the loss is one function of the parameters
    params, opt_state, loss, aux = step(params, opt_state)
    seen.append(float(loss))
    assert all(np.isfinite(np.asarray(v)).all() for v in jax.tree.leaves(aux))
  assert np.isfinite(seen).all(), seen
  assert seen[-1] < seen[0], seen
  if opts.get("cl"):
    assert "cl_user" in aux and "cl_item" in aux


def test_simgcl_noise_moves_each_layer_output_by_eps():
  """h^k - A h^(k-1) is SimGCL's noise: norm eps in every row, in the orthant of A h^(k-1)."""
  rec = rec_for("lightgcn", num_layers=2, cl="simgcl", cl_eps=0.3)
  params = rec.init(jax.random.key(0))
  inputs = rec.inputs
  a = adjacency(rec.exp.graph).toarray()
  clean, ego, hs_clean = rec.forward(params, inputs, train=False, return_layers=True)
  noisy, ego_n, hs = rec.forward(params, inputs, train=False, noise_rng=jax.random.key(5),
                                 noise_eps=0.3, return_layers=True)
  np.testing.assert_allclose(ego_n, ego)  # layer 0 (and so the L2 term) stays clean
  assert len(hs) == 3
  for k in (1, 2):
    propagated = a @ np.asarray(hs[k - 1], np.float64)
    noise = np.asarray(hs[k], np.float64) - propagated
    full = np.all(propagated != 0, axis=1)  # sign(0) = 0: such entries get no noise
    assert full.sum() > 50
    np.testing.assert_allclose(np.linalg.norm(noise[full], axis=1), 0.3, rtol=1e-4)
    assert np.all(np.sign(noise[full]) == np.sign(propagated[full]))
  np.testing.assert_allclose(hs_clean[2], a @ (a @ np.asarray(ego, np.float64)), atol=1e-5)
  np.testing.assert_allclose(noisy, np.mean(np.stack(hs), 0), atol=1e-6)
  # Two keys, two views; the same key, the same view.
  again, _ = rec.forward(params, inputs, train=False, noise_rng=jax.random.key(5), noise_eps=0.3)
  other, _ = rec.forward(params, inputs, train=False, noise_rng=jax.random.key(6), noise_eps=0.3)
  np.testing.assert_array_equal(again, noisy)
  assert np.abs(np.asarray(other) - np.asarray(noisy)).max() > 1e-3


def test_mf_noise_is_on_the_id_vectors():
  rec = rec_for("mf", cl="simgcl", cl_eps=0.2)
  params = rec.init(jax.random.key(0))
  final, ego = rec.forward(params, rec.inputs, train=False, noise_rng=jax.random.key(1),
                           noise_eps=0.2)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(final) - np.asarray(ego), axis=1), 0.2,
                             rtol=1e-4)


def test_noise_without_a_key_is_an_error():
  rec = rec_for("lightgcn")
  with pytest.raises(ValueError, match="noise_rng"):
    rec.forward(rec.init(jax.random.key(0)), rec.inputs, train=False, noise_eps=0.1)


def _keys(rng):
  drop, neg = jax.random.split(rng)
  noise1, noise2 = jax.random.split(jax.random.fold_in(rng, 7))
  return drop, neg, noise1, noise2


def _rows(rec, final, ego, batch):
  u, p = batch["user"], batch["item"] + rec.num_users
  return u, p, dict(user=final[u], pos=final[p], user_ego=ego[u], pos_ego=ego[p])


def _negatives(rec, neg_rng, batch):
  neg = sampling.sample_negatives(neg_rng, batch_users=batch["user"], num_items=rec.num_items,
                                  num_negatives=rec.config.num_negatives)
  return neg + rec.num_users


def test_simgcl_loss_through_the_model_equals_the_pure_functions():
  rec = rec_for("gat", cl="simgcl", cl_weight=0.3, cl_eps=0.1, cl_temperature=0.25)
  params, batch, rng = rec.init(jax.random.key(0)), a_batch(rec), jax.random.key(9)
  inputs = rec.inputs
  drop, neg_rng, noise1, noise2 = _keys(rng)
  final, ego = rec.forward(params, inputs, train=True, rng=drop)
  u, p, rows = _rows(rec, final, ego, batch)
  n = _negatives(rec, neg_rng, batch)
  want, _ = losses.sampled_softmax_loss(**rows, neg=final[n], neg_ego=ego[n], l2=1e-3,
                                        temperature=0.2, mask=batch["mask"])
  v1, _ = rec.forward(params, inputs, train=True, rng=drop, noise_rng=noise1, noise_eps=0.1)
  v2, _ = rec.forward(params, inputs, train=True, rng=drop, noise_rng=noise2, noise_eps=0.1)
  # The InfoNCE over unique ids, written out with the pure info_nce on deduplicated rows.
  real = np.asarray(batch["mask"]) > 0
  uu = np.unique(np.asarray(u)[real])
  ii = np.unique(np.asarray(p)[real])
  cl = 0.3 * (contrastive.info_nce(v1[uu], v2[uu], temperature=0.25)
              + contrastive.info_nce(v1[ii], v2[ii], temperature=0.25))
  got, aux = rec.loss(params, inputs, batch, rng)
  np.testing.assert_allclose(got, want + cl, rtol=1e-5)
  parts = aux["softmax"] + aux["reg"] + 0.3 * (aux["cl_user"] + aux["cl_item"])
  np.testing.assert_allclose(parts, got, rtol=1e-5)


def test_xsimgcl_loss_through_the_model_equals_the_pure_functions():
  rec = rec_for("lightgcn", num_layers=3, cl="xsimgcl", cl_layer=2, cl_eps=0.2,
                cl_weight=0.1, loss="bpr")
  params, batch, rng = rec.init(jax.random.key(0)), a_batch(rec), jax.random.key(4)
  inputs = rec.inputs
  drop, neg_rng, noise1, _ = _keys(rng)
  final, ego, hs = rec.forward(params, inputs, train=True, rng=drop, noise_rng=noise1,
                               noise_eps=0.2, return_layers=True)
  u, p, rows = _rows(rec, final, ego, batch)
  n = _negatives(rec, neg_rng, batch)
  want, _ = losses.bpr_loss(**rows, neg=final[n], neg_ego=ego[n], l2=1e-3, mask=batch["mask"])
  cl, _ = contrastive.simgcl_loss(user_view1=final[u], user_view2=hs[2][u],
                                  item_view1=final[p], item_view2=hs[2][p], users=u, items=p,
                                  temperature=0.2, weight=0.1, mask=batch["mask"])
  got, _ = rec.loss(params, inputs, batch, rng)
  np.testing.assert_allclose(got, want + cl, rtol=1e-5)
  # The ranking term reads the noisy pass: it differs from the clean model's.
  clean, _ = rec.forward(params, inputs, train=True, rng=drop)
  assert np.abs(np.asarray(clean) - np.asarray(final)).max() > 1e-3


def test_directau_and_ccl_through_the_model_equal_the_pure_functions():
  for opts in (dict(loss="directau", directau_gamma=0.7, directau_unique=True),
               dict(loss="ccl", ccl_margin=0.4, ccl_negative_weight=3.0),
               dict(loss="ccl", ccl_margin=0.4, ccl_shared_negatives=1000)):
    rec = rec_for("softmax_gnn", **opts)
    params, batch, rng = rec.init(jax.random.key(0)), a_batch(rec), jax.random.key(2)
    drop, neg_rng, _, _ = _keys(rng)
    final, ego = rec.forward(params, rec.inputs, train=True, rng=drop)
    u, p, rows = _rows(rec, final, ego, batch)
    mask = batch["mask"]
    if opts["loss"] == "directau":
      want, _ = contrastive.directau_loss(user=final[u], item=final[p], gamma=0.7, mask=mask,
                                          users=u, items=p, user_ego=ego[u], item_ego=ego[p],
                                          l2=1e-3)
    elif "ccl_shared_negatives" in opts:  # all 40 items, shared by every row
      n = jnp.arange(rec.num_items) + rec.num_users
      want, _ = contrastive.cosine_contrastive_loss(**rows, neg=final[n], neg_ego=ego[n],
                                                    margin=0.4, negative_weight=None,
                                                    mask=mask, l2=1e-3)
    else:
      n = _negatives(rec, neg_rng, batch)
      want, _ = contrastive.cosine_contrastive_loss(**rows, neg=final[n], neg_ego=ego[n],
                                                    margin=0.4, negative_weight=3.0,
                                                    mask=mask, l2=1e-3)
    got, _ = rec.loss(params, rec.inputs, batch, rng)
    np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=str(opts))


def test_runs_without_a_contrastive_term_are_unchanged():
  """cl="" reads the same keys as before the option existed: the plain softmax, by hand."""
  rec = rec_for("lightgcn")
  params, batch, rng = rec.init(jax.random.key(0)), a_batch(rec), jax.random.key(1)
  drop, neg_rng, _, _ = _keys(rng)
  final, ego = rec.forward(params, rec.inputs, train=True, rng=drop)
  _, _, rows = _rows(rec, final, ego, batch)
  n = _negatives(rec, neg_rng, batch)
  want, _ = losses.sampled_softmax_loss(**rows, neg=final[n], neg_ego=ego[n], l2=1e-3,
                                        temperature=0.2, mask=batch["mask"])
  np.testing.assert_allclose(rec.loss(params, rec.inputs, batch, rng)[0], want, rtol=1e-6)


@pytest.mark.parametrize("model,sets,match", [
    ("mf", ["cl=xsimgcl"], "mf has no layers"),
    ("ngcf", ["cl=xsimgcl"], "concatenate"),
    ("lightgcn", ["cl=xsimgcl", "cl_layer=4"], "cl_layer"),
    ("lightgcn", ["cl=infonce"], "cl must be"),
    ("lightgcn", ["loss=directaux"], "loss must be"),
    ("lightgcn", ["ccl_margin=1.0"], "ccl_margin"),
    ("lightgcn", ["cl_temperature=0"], "cl_temperature"),
])
def test_config_errors(model, sets, match):
  with pytest.raises(ConfigError, match=match):
    apply_overrides(configs.get_config(model), sets)


def test_embed_dropout_drops_layer_zero_while_training_and_keeps_ego_clean():
  rec = rec_for("lightgcn", embed_dropout=0.5)
  params = rec.init(jax.random.key(0))
  ego_vectors = rec.forward(params, rec.inputs, train=False)[1]
  final, ego, hs = rec.forward(params, rec.inputs, train=True, rng=jax.random.key(1),
                               return_layers=True)
  np.testing.assert_array_equal(ego, ego_vectors)  # the L2 term reads clean vectors
  h0, e = np.asarray(hs[0]), np.asarray(ego)
  kept = h0 != 0
  assert 0.4 < kept.mean() < 0.6
  np.testing.assert_allclose(h0[kept], 2.0 * e[kept], rtol=1e-6)  # inverted dropout: / (1 - p)
  clean = rec_for("lightgcn")
  np.testing.assert_allclose(rec.forward(params, rec.inputs, train=False)[0],
                             clean.forward(params, clean.inputs, train=False)[0])


def test_neg_resample_redraws_negatives_among_the_users_train_items():
  rec = rec_for("lightgcn", neg_resample=3)
  params, batch, rng = rec.init(jax.random.key(0)), a_batch(rec), jax.random.key(8)
  drop, neg_rng, _, _ = _keys(rng)
  final, ego = rec.forward(params, rec.inputs, train=True, rng=drop)
  _, _, rows = _rows(rec, final, ego, batch)
  first = sampling.sample_negatives(neg_rng, batch_users=batch["user"], num_items=rec.num_items,
                                    num_negatives=8)
  indptr, indices = rec.inputs["seen"]
  neg = sampling.resample_if_seen(jax.random.fold_in(neg_rng, 1), first,
                                  batch_users=batch["user"], num_items=rec.num_items,
                                  indptr=indptr, indices=indices, num_retries=3)
  seen = sampling.is_seen(batch["user"], neg, indptr=indptr, indices=indices)
  was_seen = sampling.is_seen(batch["user"], first, indptr=indptr, indices=indices)
  assert float(was_seen.mean()) > 0.1 and float(seen.mean()) < float(was_seen.mean()) / 5
  n = neg + rec.num_users
  want, _ = losses.sampled_softmax_loss(**rows, neg=final[n], neg_ego=ego[n], l2=1e-3,
                                        temperature=0.2, mask=batch["mask"])
  np.testing.assert_allclose(rec.loss(params, rec.inputs, batch, rng)[0], want, rtol=1e-6)
