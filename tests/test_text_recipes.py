"""Named text recipes through the CLI on tiny data, the dataset protocol defaults, and the refusal
of text models run without text (issue 25, items 3-4)."""
from __future__ import annotations

import argparse
import contextlib
import io
import json

import numpy as np
import pytest

from gnnrec_jax import cli, configs
from gnnrec_jax.commands.config_args import (add_config_arguments, config_from_args,
                                             with_dataset_defaults)
from gnnrec_jax.data.splits import split_random
from gnnrec_jax.data.synthetic import make_synthetic
from test_text import _write_tiny_model  # a tiny BERT folder (the text encoder's own tests)

HEADER = "user_id\titem_id\trating\n"
WORDS = ["hello", "world", "the", "cat", "sat", "on", "mat", "a"]


def _rows(inter):
  return "".join(f"u{u}\ti{i}\t{w:g}\n" for u, i, w in zip(inter.user, inter.item, inter.weight))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  d = tmp_path_factory.mktemp("textdata")
  ds = make_synthetic(seed=2)
  s = split_random(ds.interactions, seed=0)
  for name, part in (("train", s.train), ("valid", s.valid), ("test", s.test)):
    (d / f"{name}.tsv").write_text(HEADER + _rows(part))
  (d / "all.csv").write_text("user,item,rating\n" + "".join(
      f"u{u},i{i},{w:g}\n" for u, i, w in zip(ds.interactions.user, ds.interactions.item,
                                              ds.interactions.weight)))
  items = sorted(set(ds.interactions.item.tolist()))
  rng = np.random.default_rng(0)
  title = lambda i: " ".join(rng.choice(WORDS, 3))  # noqa: E731
  (d / "items.tsv").write_text("item_id\ttitle\n" + "".join(f"i{i}\t{title(i)}\n" for i in items))
  # Text for 60% and for 10% of the items.
  (d / "items_60.tsv").write_text("item_id\ttitle\n" + "".join(
      f"i{i}\t{title(i) if k < 0.6 * len(items) else ''}\n" for k, i in enumerate(items)))
  (d / "items_10.tsv").write_text("item_id\ttitle\n" + "".join(
      f"i{i}\t{title(i) if k < 0.1 * len(items) else ''}\n" for k, i in enumerate(items)))
  _write_tiny_model(d / "tiny_bert")
  return d


from conftest import run_cli as _main  # noqa: E402 (the one helper, tests/conftest.py)


def _split(d, meta=None):
  args = ["--train", d / "train.tsv", "--valid", d / "valid.tsv", "--test", d / "test.tsv"]
  return args + (["--item-meta", d / meta] if meta else [])


def _tiny(d, *sets):
  return ["--no-progress", "--set", f"text_model={d / 'tiny_bert'}", "eval_batch_size=64", "topk=10,20", *sets]


@pytest.mark.parametrize("model", ["textgnn", "l3ae"])
def test_text_model_without_item_text_refuses_in_one_line(data, tmp_path, model):
  code, _, err = _main("train", "--model", model, *_split(data), "--workdir", tmp_path / "w",
                       "--no-progress")
  assert code == 2
  line = err.strip().splitlines()[-1]
  assert len(err.strip().splitlines()) == 1, err
  assert line.startswith("gnnrec-jax train: error: ") and "needs item text" in line
  assert "0 of" in line and "--item-meta FILE" in line
  assert not (tmp_path / "w" / "metrics.json").exists()


def test_small_text_share_refuses_and_partial_share_is_a_counted_warning(data, tmp_path):
  code, _, err = _main("train", "--model", "l3ae", *_split(data, "items_10.tsv"),
                       "--workdir", tmp_path / "a", *_tiny(data))
  assert code == 2 and "below 20%" in err and "l3ae" in err
  code, out, err = _main("train", "--model", "l3ae", *_split(data, "items_60.tsv"),
                         "--workdir", tmp_path / "b", *_tiny(data))
  assert code == 0, err
  warned = [l for l in err.splitlines() if "have no text" in l]
  assert len(warned) == 1 and warned[0].startswith("gnnrec-jax train: warning: text_features: ")
  assert "recall@20" in json.loads(out.strip().splitlines()[-1])
  # An extra text input (an ID model with text features) is not refused at 10%, only warned.
  code, _, err = _main("train", "--model", "lightgcn", *_split(data, "items_10.tsv"),
                       "--workdir", tmp_path / "c", "--config", "test", *_tiny(
                           data, "epochs=1", "text_features=history", "model=lightgcn"))
  assert code == 0, err
  assert "have no text" in err


@pytest.mark.parametrize("name,sets", [
    ("textgnn_scientific", ("epochs=1", "eval_every=1", "embed_dim=8", "mlp_hidden=8")),
    ("l3ae_scientific", ()),
    ("chebycf_text", ("svd_rank=4",)),
    ("textgnn_cold", ("epochs=1", "eval_every=1", "embed_dim=8", "mlp_hidden=8")),
])
def test_each_named_recipe_trains_through_the_cli(data, tmp_path, name, sets):
  want = configs.get_config(name)
  # textgnn_cold makes its own cold-item split: a dataset without one (csv), not the 3 files.
  source = (["--dataset", "csv", "--data-dir", data / "all.csv", "--columns",
             "user=user,item=item,weight=rating", "--item-meta", data / "items.tsv"]
            if want.split == "cold_item" else _split(data, "items.tsv"))
  code, out, err = _main("train", "--config", name, *source, "--workdir", tmp_path / "w",
                         *_tiny(data, *sets))
  assert code == 0, err
  saved = json.loads((tmp_path / "w" / "config.json").read_text())
  saved = saved.get("config", saved)
  overridden = {s.split("=")[0] for s in sets} | {"text_model", "eval_batch_size", "split", "topk"}
  for key, value in want.to_dict().items():
    if key not in overridden:
      assert saved[key] == (list(value) if isinstance(value, tuple) else value), key
  assert saved["split"] == ("cold_item" if want.split == "cold_item" else "predefined")
  metrics = json.loads(out.strip().splitlines()[-1])
  assert ("cold/recall@20" in metrics) == (want.split == "cold_item")


def _args(*argv):
  p = argparse.ArgumentParser()
  add_config_arguments(p)
  p.add_argument("--dataset", default=None)
  return p.parse_args(argv)


def test_train_textgnn_on_scientific_starts_from_its_measured_recipe_and_protocol():
  class Sci:  # what with_dataset_defaults reads of a dataset
    name, split = "scientific", object()

  args = _args("--model", "textgnn", "--dataset", "scientific")
  cfg = with_dataset_defaults(args, config_from_args(args), Sci)
  assert cfg == configs.get_config("textgnn_scientific").replace(
      split="predefined", test_history="train+valid", topk=(10, 20, 50),
      select_metric="ndcg@10")
  # --set wins over the protocol; an explicit --config textgnn is the model's own config.
  args = _args("--model", "textgnn", "--dataset", "scientific", "--set", "test_history=train")
  assert with_dataset_defaults(args, config_from_args(args), Sci).test_history == "train"
  args = _args("--config", "textgnn", "--dataset", "scientific")
  assert config_from_args(args) == configs.get_config("textgnn")
  # Elsewhere textgnn keeps its own defaults.
  assert config_from_args(_args("--model", "textgnn")) == configs.get_config("textgnn")
