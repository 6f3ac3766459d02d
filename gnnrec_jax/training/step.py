"""One gradient step of a trained model: the body that single-device and sharded training share.

`gnnrec_jax.training.fit` runs it on one device; `gnnrec_jax.training.parallel` pins its inputs'
and outputs' shardings over a mesh. Neither imports the other for it.
"""
from __future__ import annotations

import functools

import jax

from gnnrec_jax import precision
from gnnrec_jax.models.base import Recommender


def make_train_step(rec: Recommender):
  """Returns `train_step(state, batch, inputs, rng) -> (state, metrics)`, jitted.

  `batch` holds `user`, `item` ([B] int32) and `mask` ([B] float32, 0 for padding rows of the
  last batch), so every step has the same shape and compiles once; `inputs` is `rec.inputs`.
  """

  @functools.partial(jax.jit, donate_argnums=(0,))
  def train_step(state, batch, inputs, rng):
    with precision.training(rec.config.matmul_precision):  # gnnrec_jax/precision.py
      (loss, aux), grads = jax.value_and_grad(rec.loss, has_aux=True)(
          state.params, inputs, batch, rng)
    state = state.apply_gradients(grads=grads)
    return state, {"loss": loss, **aux}

  return train_step
