"""Decoder LLMs (Llama, Mistral, Qwen2, Qwen3) and RoBERTa / XLM-R against transformers' PyTorch.

The fixtures in tests/fixtures/llm/ are tiny random checkpoints saved by transformers' own
classes, with the hidden states and pooled vectors transformers computed for each text run alone
(scripts/make_llm_fixtures.py; neither torch nor transformers is needed here). Our states must
equal them to 1e-5 in float32, whichever side the batch is padded on.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gnnrec_jax.errors import ConfigError
from gnnrec_jax.text import llm
from gnnrec_jax.text.encoder import (
  EncoderSpec,
  TextEncoder,
  language_model,
  read_pipeline,
)

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "llm"
DECODERS = ("llama", "mistral", "qwen2", "qwen3")
ENCODERS = ("roberta", "xlm-roberta")
# The texts of scripts/make_llm_fixtures.py (Qwen3's reference has a fifth: a query).
TEXTS = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "hello",
    "Amélie (2001), une comédie à Montmartre. 千と千尋. Zürich!",
    "The ship sailed across the northern sea while the crew argued about maps, stars, storms "
    "and the price of salt in distant harbours.",
]
QWEN3_TASK = "Given a web search query, retrieve relevant passages that answer the query"
# bfloat16 compute (parameters and activations; softmax and norms' statistics in float32) against
# the float32 reference: the worst pooled cosine over the six fixtures measured 0.9995.
BF16_MIN_COSINE = 0.998


def reference(name):
  r = np.load(FIXTURES / name / "reference.npz")
  bounds = np.concatenate([[0], np.cumsum(r["lengths"])])
  ids = [r["ids"][a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:])]
  hidden = [r["hidden"][a:b] for a, b in zip(bounds[:-1], bounds[1:])]
  return ids, hidden, r


def load(name, **kwargs):
  """The fixture's encoder; Mistral's reference appends </s> as e5-mistral's card does."""
  spec = EncoderSpec(str(FIXTURES / name), batch_size=8, **kwargs)
  pipeline = None
  if name == "mistral":
    pipeline = dataclasses.replace(
        read_pipeline(FIXTURES / name, FIXTURES / name, spec.name), append_eos=True)
  return TextEncoder.from_spec(spec, pipeline=pipeline)


@pytest.fixture(scope="module")
def encoders():
  return {name: load(name) for name in DECODERS + ENCODERS}


@pytest.mark.parametrize("name", DECODERS + ENCODERS)
def test_tokenisation_equals_transformers(encoders, name):
  ids, _, _ = reference(name)
  assert encoders[name].tokenize(TEXTS) == ids[:len(TEXTS)]


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("name", DECODERS + ENCODERS)
def test_hidden_states_equal_transformers_either_padding(encoders, name, side):
  enc = encoders[name]
  ids, hidden, _ = reference(name)
  ids, hidden = ids[:len(TEXTS)], hidden[:len(TEXTS)]
  width = max(map(len, ids)) + 3  # every row padded, the longest too
  old, enc.padding_side = enc.padding_side, side
  try:
    input_ids, mask = enc.pad(ids, width)
  finally:
    enc.padding_side = old
  out = np.asarray(language_model(enc.config, "float32").apply(
      {"params": enc.params}, input_ids, mask))  # [4, width, d]
  for row, (x, h) in enumerate(zip(ids, hidden)):
    got = out[row][mask[row] > 0]
    assert got.shape == h.shape
    np.testing.assert_allclose(got, h, atol=1e-5, rtol=0, err_msg=f"{name} text {row}")


@pytest.mark.parametrize("name", DECODERS + ENCODERS)
def test_pooled_vectors_equal_transformers_both_poolings(encoders, name):
  _, _, ref = reference(name)
  n = len(TEXTS)
  default = encoders[name]
  vecs = default.encode(TEXTS, progress=False)
  np.testing.assert_allclose(vecs, ref[default.pooling][:n], atol=1e-5, rtol=0)
  other = {"last": "mean", "mean": "cls"}[default.pooling]
  vecs = load(name, pooling=other).encode(TEXTS, progress=False)
  np.testing.assert_allclose(vecs, ref[other][:n], atol=1e-5, rtol=0)


def test_each_folder_decides_its_pipeline(encoders):
  # Decoders: last token, left padding; sentence-transformers' Pooling config where there is one.
  for name in DECODERS:
    assert encoders[name].pooling == "last" and encoders[name].padding_side == "left"
  assert EncoderSpec(str(FIXTURES / "qwen3")).pooling == "last"  # resolved before loading
  # RoBERTa's folder: mean pooling and no Normalize module -> vectors keep their length.
  rob = encoders["roberta"]
  assert (rob.pooling, rob.pipeline.normalize, rob.padding_side) == ("mean", False, "right")
  norms = np.linalg.norm(rob.encode(TEXTS, progress=False), axis=1)
  assert np.all(np.abs(norms - 1) > 0.05), norms
  # XLM-R is a plain folder: mean + normalise; the tokenizer's own post-processor adds <s> </s>.
  xlm = encoders["xlm-roberta"]
  assert (xlm.pooling, xlm.pipeline.normalize) == ("mean", True)
  assert all(x[0] == 0 and x[-1] == 2 for x in xlm.tokenize(TEXTS))
  # RoBERTa-family positions start after the padding row (padding_idx + 1 = 2).
  assert xlm.config.position_offset == 2 and xlm.max_length == 128


def test_qwen3_query_instruction_from_the_sentence_transformers_prompt(encoders):
  ids, _, ref = reference("qwen3")
  enc = load("qwen3", instruction=QWEN3_TASK)
  assert enc.prefix() == f"Instruct: {QWEN3_TASK}\nQuery:"  # Qwen3's punctuation: no space
  assert enc.tokenize(["toy story"]) == [ids[-1]]
  np.testing.assert_allclose(enc.encode(["toy story"], progress=False), ref["last"][-1:],
                             atol=1e-5)
  # Documents are encoded without it; the EOS comes from the tokenizer's post-processor.
  assert encoders["qwen3"].prefix() == "" and encoders["qwen3"].tokenize(["x"])[0][-1] == 0


def test_model_card_pipeline_by_name(tmp_path):
  # A folder named like e5-mistral gets its card's pipeline: last token, </s> appended by hand.
  folder = tmp_path / "e5-mistral-7b-instruct-tiny"
  shutil.copytree(FIXTURES / "mistral", folder)
  enc = TextEncoder.load(str(folder), batch_size=8)
  assert enc.pipeline.append_eos and enc.pooling == "last"
  ids, _, ref = reference("mistral")
  assert enc.tokenize(TEXTS) == ids
  np.testing.assert_allclose(enc.encode(TEXTS, progress=False), ref["last"], atol=1e-5)
  assert enc.prefix() == ""


@pytest.mark.parametrize("name", DECODERS + ENCODERS)
def test_bfloat16_within_stated_tolerance(name):
  _, _, ref = reference(name)
  enc = load(name, dtype="bfloat16")
  if enc.decoder:
    leaf = enc.params["layers_0"]["mlp"]["up_proj"]["weight"]
    assert leaf.dtype == jnp.bfloat16  # weights stored in the compute dtype
  vecs = enc.encode(TEXTS, progress=False)
  want = ref[enc.pooling][:len(TEXTS)]
  cos = (vecs * want).sum(1) / np.linalg.norm(vecs, axis=1) / np.linalg.norm(want, axis=1)
  assert np.all(cos >= BF16_MIN_COSINE), cos
  assert np.any(cos < 1 - 1e-6), cos  # really computed in bfloat16


def test_param_bytes_per_device_and_specs():
  cfg = llm.DecoderConfig.from_json(FIXTURES / "qwen3" / "config.json")
  shapes = llm.expected_shapes(cfg)
  total = sum(int(np.prod(s)) for s in shapes.values())
  assert llm.param_bytes_per_device(cfg, 1, "float32") == 4 * total
  # Over 4 devices, everything but the norms (2 * 3 per layer + 1 final, of width 32 or 16)
  # is split four ways.
  norms = sum(int(np.prod(s)) for p, s in shapes.items() if "norm" in p[-2])
  assert llm.param_bytes_per_device(cfg, 4, "bfloat16") == 2 * ((total - norms) // 4 + norms)
  assert llm.partition_spec(("layers_0", "self_attn", "q_proj", "weight"), (64, 32), 4) == \
      jax.sharding.PartitionSpec("model", None)
  assert llm.partition_spec(("layers_0", "mlp", "down_proj", "weight"), (32, 64), 4) == \
      jax.sharding.PartitionSpec(None, "model")
  assert llm.partition_spec(("layers_0", "mlp", "down_proj", "weight"), (32, 6), 4) == \
      jax.sharding.PartitionSpec()  # does not divide: replicated


# Runs with 4 CPU devices (XLA_FLAGS must be set before jax is imported, so in a child).
_SHARDED = textwrap.dedent("""
  import json, sys
  import jax, numpy as np
  from gnnrec_jax.text import llm
  from gnnrec_jax.text.encoder import EncoderSpec, TextEncoder
  assert jax.device_count() == 4, jax.devices()
  texts = json.loads(sys.argv[2])
  out = {}
  for name in ("llama", "qwen3"):
    folder = f"{sys.argv[1]}/{name}"
    spec = EncoderSpec(folder, batch_size=4)
    sharded = TextEncoder.from_spec(spec)  # several devices: a 'model' mesh over all four
    one = TextEncoder.from_spec(spec, mesh=llm.model_mesh(1))
    w = sharded.params["layers_0"]["mlp"]["gate_proj"]["weight"]
    out[name] = {
        "mesh": dict(sharded.mesh.shape),
        "gate_shard": list(w.addressable_shards[0].data.shape), "gate": list(w.shape),
        "diff": float(np.abs(sharded.encode(texts, progress=False)
                             - one.encode(texts, progress=False)).max()),
        "vectors": sharded.encode(texts, progress=False).tolist()}
  print(json.dumps(out))
""")


def test_sharded_over_four_devices_equals_one_device():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", _SHARDED, str(FIXTURES), json.dumps(TEXTS)],
                        env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  for name in ("llama", "qwen3"):
    got = out[name]
    assert got["mesh"] == {"model": 4}
    assert got["gate_shard"] == [got["gate"][0] // 4, got["gate"][1]]  # really split
    assert got["diff"] <= 1e-5, got["diff"]
    np.testing.assert_allclose(got["vectors"], reference(name)[2]["last"][:len(TEXTS)],
                               atol=1e-5)


def _copy(tmp_path, name):
  folder = tmp_path / name
  shutil.copytree(FIXTURES / name, folder)
  return folder


def _edit_config(folder, **changes):
  path = folder / "config.json"
  cfg = json.loads(path.read_text())
  for k, v in changes.items():
    if v is None:
      cfg.pop(k, None)
    else:
      cfg[k] = v
  path.write_text(json.dumps(cfg))


@pytest.mark.parametrize("damage, message", [
    ("rope", r"rope_scaling type 'yarn' is not supported"),
    ("qwen_window", r"use_sliding_window=true is not supported for qwen2"),
    ("model_type", r"model_type 'gpt_neox' is not supported"),
    ("missing", r"no weights for layers_1\.mlp\.down_proj\.weight"),
    ("shape", r"'layers\.0\.mlp\.\w+_proj\.weight' has shape \[\d+, \d+\], expected"),
    ("truncated", r"does not match its byte range"),
    ("st_module", r"sentence-transformers module 'Dense' is not supported"),
    ("st_pooling", r"pooling pooling_mode_max_tokens is not supported"),
])
def test_bad_checkpoints_are_one_line_errors(tmp_path, damage, message):
  from safetensors.numpy import load_file, save_file
  name = "qwen3" if damage.startswith("st_") else "qwen2"
  folder = _copy(tmp_path, name)
  weights = folder / "model.safetensors"
  if damage == "rope":
    _edit_config(folder, rope_parameters={"rope_type": "yarn", "factor": 4.0,
                                          "rope_theta": 1e6})
  elif damage == "qwen_window":
    _edit_config(folder, use_sliding_window=True)
  elif damage == "model_type":
    _edit_config(folder, model_type="gpt_neox")
  elif damage == "missing":
    t = load_file(str(weights))
    del t["layers.1.mlp.down_proj.weight"]
    save_file(t, str(weights))
  elif damage == "shape":
    _edit_config(folder, intermediate_size=48)
  elif damage == "truncated":
    weights.write_bytes(weights.read_bytes()[:-100])
  elif damage == "st_module":
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense",
                    "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
  elif damage == "st_pooling":
    cfg = json.loads((folder / "1_Pooling" / "config.json").read_text())
    cfg["pooling_mode_max_tokens"] = True
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(cfg))
  with pytest.raises(ConfigError, match=message) as e:
    TextEncoder.load(str(folder), pooling="last")
  assert "\n" not in str(e.value)


def test_config_reads_both_transformers_layouts(tmp_path):
  # transformers 4 wrote rope_theta / rope_scaling at the top level (as the hub's Qwen3 and
  # Llama 3.1 configs do); 5 writes rope_parameters. Same architecture either way.
  new = llm.DecoderConfig.from_json(FIXTURES / "llama" / "config.json")
  folder = _copy(tmp_path, "llama")
  rope = json.loads((folder / "config.json").read_text())["rope_parameters"]
  _edit_config(folder, rope_parameters=None, rope_theta=rope.pop("rope_theta"),
               rope_scaling=dict(rope, type=rope.pop("rope_type")))
  assert llm.DecoderConfig.from_json(folder / "config.json") == new
  assert dict(new.rope_scaling)["rope_type"] == "llama3" and new.rope_theta == 500000.0
