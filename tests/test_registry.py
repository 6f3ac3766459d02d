"""Adding a model is one module and one registry line: a toy model registered here trains
through the fit loop like a built-in one."""
from __future__ import annotations

import flax.linen as nn
import pytest

from gnnrec_jax import configs, models
from gnnrec_jax.config import validate
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.errors import ConfigError
from gnnrec_jax.experiment import prepare
from gnnrec_jax.models.embedding import EmbeddingModel
from gnnrec_jax.models.readout import score_space
from gnnrec_jax.training.fit import fit


class ToyMF(EmbeddingModel):
  """MF written from scratch: final = the layer-0 vectors (the ID table)."""

  @nn.compact
  def __call__(self, graph, features=None, feature_mask=None, has_id=None, *, side=None,
               side_mask=None, train=False, noise_eps=0.0, return_layers=False):
    ego = self._ego(features, feature_mask, has_id, train, side, side_mask)
    final = score_space(ego, self.score)
    return (final, ego, [ego]) if return_layers else (final, ego)

  @classmethod
  def from_config(cls, config, **sizes):
    return cls(**cls.common_fields(config, **sizes))


@pytest.fixture
def toy(monkeypatch):
  monkeypatch.setitem(models.REGISTRY, "toy_mf", ToyMF)  # the one registry line


def _fit(model, tmp_path):
  cfg = configs.get_config("test").replace(model=model, epochs=3, embed_dim=8, lr=0.05)
  ds = make_synthetic(num_users=40, num_items=30, seed=0)
  return fit(prepare(cfg, ds), str(tmp_path / model), progress=False)


def test_a_registered_toy_model_trains_through_the_fit_loop_as_mf_does(toy, tmp_path):
  # The toy is MF (no dropout, no noise at these settings): the same parameters, the same
  # draws, hence exactly MF's metrics and loss history.
  toy = _fit("toy_mf", tmp_path)
  mf = _fit("mf", tmp_path)
  assert isinstance(toy.rec.module, ToyMF) and type(mf.rec.module).__name__ == "MF"
  assert toy.metrics == mf.metrics
  assert [r["loss"] for r in toy.history] == [r["loss"] for r in mf.history]
  assert toy.history[-1]["loss"] < toy.history[0]["loss"]


def test_an_unregistered_name_is_refused_with_the_registered_ones(toy):
  with pytest.raises(ConfigError, match="unknown model 'toy_gcn'.*toy_mf"):
    validate(configs.get_config("test").replace(model="toy_gcn"))
  with pytest.raises(ConfigError, match="unknown model 'toy_gcn'"):
    models.model_class("toy_gcn")
