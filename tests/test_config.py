"""The config's single source: every field declares its reason and what it allows, and
`validate` is generated from those declarations (issue 16 item 9: every field has a range)."""

import pytest

from gnnrec_jax import configs
from gnnrec_jax.config import Config, apply_overrides, check_field, config_from_dict, field_specs
from gnnrec_jax.errors import ConfigError


def test_every_field_declares_a_reason_and_what_it_allows():
  for spec in field_specs().values():
    assert spec.doc.strip(), spec.name
    if spec.type in (int, float) or spec.type is tuple:
      assert spec.range is not None, f"{spec.name}: a number needs a range"
    elif spec.type is str:
      assert spec.choices is not None or spec.allowed, f"{spec.name}: say what a string allows"
    assert check_field(spec, spec.default) is None, spec.name  # defaults pass their own checks


def test_choices_come_from_the_modules_that_own_them():
  from gnnrec_jax.data.splits import METHODS
  from gnnrec_jax.graph.propagate import BACKENDS
  from gnnrec_jax.models import MODELS
  from gnnrec_jax.models.readout import COMBINES, SCORES
  from gnnrec_jax.training.fit import LR_SCHEDULES, OPTIMIZERS
  specs = field_specs()
  assert specs["model"].choice_names() == MODELS
  assert specs["split"].choice_names() == METHODS
  assert specs["propagation"].choice_names() == BACKENDS
  assert specs["layer_combine"].choice_names() == COMBINES
  assert specs["score"].choice_names() == SCORES == ("dot", "cosine", "pearson")
  assert specs["optimizer"].choice_names() == OPTIMIZERS
  assert specs["lr_schedule"].choice_names() == LR_SCHEDULES


def test_named_configs_keep_their_values():
  assert configs.get_config("lightgcn").loss == "softmax"
  assert configs.get_config("mf").num_layers == 0
  assert Config().seed == 2020 and Config().topk == (10, 20, 50)


@pytest.mark.parametrize("field,value", [
    ("checkpoint_every", 0), ("seed", -1), ("seed", 2**32), ("seed", 10**30),
    ("softmax_temperature", -0.5), ("softmax_temperature", 0.0), ("lr", float("inf")),
    ("lr", float("nan")), ("weight_decay", -1e-4), ("topk", (10.5,)), ("topk", (0,)),
    ("batch_size", 0), ("epochs", -1), ("patience", 0), ("num_negatives", 0), ("heads", 0),
    ("dropout", 1.0), ("id_dropout", -0.1), ("attention_mix", 1.5), ("cold_fraction", 1.0),
    ("l2", -1.0), ("grad_clip", float("inf")), ("ease_l2", 0.0), ("init_std", 0.0),
    ("temperature", -1.0), ("embed_dim", 0), ("num_layers", -1), ("eval_every", 0),
    ("eval_batch_size", 0), ("split_seed", -2), ("split_ratios", (0.8, 0.1, 0.1, 0.0)),
    ("split_ratios", (1.2, -0.1, -0.1)), ("score", "l1"), ("text_model", "  "),
    ("scale_logits", 1), ("lr", "0.1"), ("embed_dim", 64.0), ("embed_dim", True),
])
def test_out_of_range_or_wrong_type_is_one_line(field, value):
  with pytest.raises(ConfigError) as e:
    config_from_dict({field: value}, source="c.json")
  msg = str(e.value)
  assert "\n" not in msg and field in msg and msg.startswith("c.json: ")


def test_cross_field_rules():
  with pytest.raises(ConfigError, match="embed_dim 64 is not divisible by heads 3"):
    apply_overrides(Config(model="gat"), ["heads=3"])
  with pytest.raises(ConfigError, match="use_id_embedding=false needs text_features"):
    apply_overrides(Config(), ["use_id_embedding=false"])
  with pytest.raises(ConfigError, match="select_metric 'ndcg@20' must be"):
    apply_overrides(Config(), ["topk=10"])


def test_set_accepts_nested_lists_from_argparse():
  c = apply_overrides(Config(), [["lr=0.002", "epochs=1"], ["l2=0.5"], "seed=3"])
  assert (c.lr, c.epochs, c.l2, c.seed) == (0.002, 1, 0.5, 3)

