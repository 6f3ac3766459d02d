"""The one model interface: parameters + a score function.

Every model, trained or closed-form, is a `Recommender`. The fit loop (`gnnrec_jax.training.fit`),
evaluation, `recommend`, explanations and comparisons use only this interface, so none of them
asks which kind of model it holds:

  rec = gnnrec_jax.models.create(exp)          # the model named by exp.config.model
  params = rec.init(key)                       # random init (trained) or the closed form (fitted)
  loss, aux = rec.loss(params, inputs, batch, rng)   # trained models only (rec.trainable)
  sp = rec.score_params(params)                # what scoring reads, e.g. the final vectors
  scores = rec.score_fn(sp, users)             # [B] user indices -> [B, I] scores, jittable
  scores = rec.history_scores(params, items)   # [I] scores of a new user from its history
  terms = rec.explain_terms(params, user=u, items=top)   # why those items, see explain.py

`params` is what a checkpoint holds (`best.ckpt`); `inputs` are the arrays derived from the data
(graph, text features, padded histories) that jitted functions read as arguments, never as
closed-over constants; `score_fn` is a module-level function (a static argument of the
evaluator's jit, so it compiles once).

Two families implement it: embedding models (`gnnrec_jax.models.embedding`: a Linen module gives
every node a final vector, score = dot product) and linear item models
(`gnnrec_jax.models.closed_form`: scores = x_u F for a user's interaction row x_u and an item-item
operator F, e.g. EASE).
"""
from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar

import jax
import numpy as np

from gnnrec_jax.errors import ConfigError

ScoreFn = Callable[[Any, jax.Array], jax.Array]


class Recommender(abc.ABC):
  """A model of one experiment (`gnnrec_jax.experiment.Experiment`), behind one interface.

  Attributes:
    exp: the experiment (config, dataset, split, graph, features).
    trainable: True when parameters are learned by gradient steps (`loss` is defined); False
      for closed-form models, whose `init` is their fit.
    score_fn: `score_fn(score_params, users [B] int32) -> [B, I]`, a module-level function.
  """

  trainable: ClassVar[bool] = False
  # True when scores are dot products of final vectors whose score space (dot, cosine,
  # pearson) can be switched after training (`recommend --score`).
  rescorable: ClassVar[bool] = False
  score_fn: ScoreFn

  @classmethod
  def recommender_class(cls) -> type["Recommender"]:
    """What `gnnrec_jax.models.create` builds for a name registered with this class: itself."""
    return cls

  @classmethod
  def from_config(cls, config, **sizes):
    """A Linen module of `config`: none, this model has no parameters to train."""
    raise ConfigError(f"{config.model} is a closed-form model without parameters to train; "
                      f"fit it with {cls.__module__}.{cls.__qualname__} (its init is the fit)")

  def __init__(self, exp):
    self.exp = exp
    self.config = exp.config

  @property
  def num_users(self) -> int:
    return self.exp.num_users

  @property
  def num_items(self) -> int:
    return self.exp.num_items

  @property
  def inputs(self) -> dict[str, Any]:
    """Device arrays that `loss` reads (passed to jit as an argument); empty by default."""
    return {}

  @abc.abstractmethod
  def init(self, key: jax.Array) -> Any:
    """The initial parameters (trained models) or the fitted ones (closed-form models)."""

  def template(self) -> Any | None:
    """A pytree with the structure of `params` for restoring a checkpoint, or None when the
    raw restored arrays are the parameters (closed-form models: no random init to mirror)."""
    return None

  def loss(self, params, inputs, batch, rng) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The training objective of one batch (trained models only); traced under jit."""
    raise ConfigError(f"{self.config.model} is not trained by gradient steps")

  @abc.abstractmethod
  def score_params(self, params) -> Any:
    """The pytree `score_fn` reads (e.g. final user and item vectors)."""

  def scores(self, params, users) -> np.ndarray:
    """[len(users), I] scores of the given user indices (a convenience over score_fn)."""
    users = np.asarray(users, np.int32).reshape(-1)
    return np.asarray(self.score_fn(self.score_params(params), jax.numpy.asarray(users)))

  def at_test_time(self, extra) -> "Recommender":
    """This model as the test pass sees it when each user's history grows by the interactions
    `extra` (the valid items, config `test_history="train+valid"`), without retraining.

    Default: the same model over the experiment rebuilt with `extra` in the graph and the users'
    text (`experiment.with_test_history`), parameters unchanged. Models with a rule of their own
    for users given by a history override it (the text-first GNN re-embeds each user).
    """
    from gnnrec_jax import models
    from gnnrec_jax.experiment import with_test_history
    return models.create(with_test_history(self.exp, extra))

  @abc.abstractmethod
  def history_scores(self, params, history: np.ndarray) -> np.ndarray:
    """[I] scores of a user who is not in the train graph, from its history item indices."""

  @abc.abstractmethod
  def explain_terms(self, params, *, user: int | None, history: np.ndarray | None,
                    items: np.ndarray) -> tuple[dict[str, np.ndarray], str, bool]:
    """Why `items` score as they do for `user` (or a new user's `history`).

    Returns:
      (terms, method, exact): terms = {"score": [K], "self": [K], "constant": [K],
      "neighbours": [n] node indices (items at U + i, users below U), "values": [n, K]};
      method says how the split was made; exact is True when self + constant + values.sum(0)
      equals the score (up to float rounding).
    """
