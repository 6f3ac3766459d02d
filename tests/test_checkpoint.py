"""Checkpoints: round trip, corruption detection and fallback, fingerprints, atomic writes."""
import os
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training import train_state

from gnnrec_jax.errors import CheckpointError
from gnnrec_jax.training import checkpoint as ckpt

MODEL = nn.Dense(8)  # one instance each: TrainState's static apply_fn and tx are in the treedef
TX = optax.adam(1e-3)
FP_INPUTS = {"data": {"name": "ml-100k", "num_users": 943}, "config": {"lr": 1e-3, "dim": 8}}


def make_state(seed):
  params = MODEL.init(jax.random.PRNGKey(seed), jnp.ones((1, 4)))
  ts = train_state.TrainState.create(apply_fn=MODEL.apply, params=params, tx=TX)
  return {"train": ts, "rng": jax.random.key(seed), "raw_rng": jax.random.PRNGKey(seed + 1),
          "epoch": 0, "step": 0, "early_stop": {"best": -1.0, "bad_epochs": 0}}


def trained_state(seed=0, epoch=3):
  s = make_state(seed)
  grads = jax.tree_util.tree_map(jnp.ones_like, s["train"].params)
  s["train"] = s["train"].apply_gradients(grads=grads)
  s.update(rng=jax.random.split(s["rng"])[0], epoch=epoch, step=epoch * 10,
           early_stop={"best": 0.25 + epoch, "bad_epochs": 1})
  return s


def assert_same(a, b):
  la, ta = jax.tree_util.tree_flatten(a)
  lb, tb = jax.tree_util.tree_flatten(b)
  assert ta == tb
  for x, y in zip(la, lb):
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      assert jax.random.key_impl(x) == jax.random.key_impl(y)
      x, y = jax.random.key_data(x), jax.random.key_data(y)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert type(x) is type(y) or isinstance(x, jax.Array) == isinstance(y, jax.Array)


def test_round_trip(tmp_path):
  state = trained_state()
  meta = {"epoch": 3, "step": 30, "metrics": {"recall@20": np.float32(0.125)},
          "fingerprint_inputs": FP_INPUTS}
  path = ckpt.save(tmp_path, "latest", state, meta=meta)
  assert path == tmp_path / "latest.ckpt"
  restored, got_meta = ckpt.load(tmp_path, "latest", make_state(7), fingerprint=FP_INPUTS)
  assert_same(restored, state)
  assert got_meta["epoch"] == 3 and got_meta["metrics"]["recall@20"] == 0.125
  assert got_meta["fingerprint"] == ckpt.fingerprint(FP_INPUTS)
  # The restored RNG key draws the same numbers, and optimisation continues identically.
  np.testing.assert_array_equal(jax.random.normal(restored["rng"], (3,)),
                                jax.random.normal(state["rng"], (3,)))
  g = jax.tree_util.tree_map(jnp.ones_like, state["train"].params)
  assert_same(restored["train"].apply_gradients(grads=g).params,
              state["train"].apply_gradients(grads=g).params)
  # Only the checkpoint: no temp files left behind.
  assert sorted(os.listdir(tmp_path)) == ["latest.ckpt"]
  # Not a pickle: the file starts with the JSON header.
  assert path.read_bytes().startswith(b'{"created":')


def test_keep_rotates_previous_and_best_is_separate(tmp_path):
  for epoch in (1, 2, 3):
    ckpt.save(tmp_path, "latest", trained_state(epoch=epoch), meta={"epoch": epoch}, keep=2)
  ckpt.save(tmp_path, "best", trained_state(epoch=2), meta={"epoch": 2}, keep=1)
  assert sorted(os.listdir(tmp_path)) == ["best.ckpt", "latest.ckpt", "latest.prev.ckpt"]
  assert ckpt.load(tmp_path, "latest", make_state(0))[1]["epoch"] == 3
  assert ckpt.load(tmp_path, "latest", make_state(0),
                   path=tmp_path / "latest.prev.ckpt")[1]["epoch"] == 2
  assert ckpt.load(tmp_path, "best", make_state(0))[1]["epoch"] == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "header"])
def test_corrupt_file_is_named_and_falls_back(tmp_path, damage):
  ckpt.save(tmp_path, "latest", trained_state(epoch=1), meta={"epoch": 1})
  ckpt.save(tmp_path, "latest", trained_state(epoch=2), meta={"epoch": 2})
  path = tmp_path / "latest.ckpt"
  data = bytearray(path.read_bytes())
  if damage == "truncate":
    data = data[:len(data) - 100]
  elif damage == "flip":
    data[-50] ^= 0xFF
  else:
    data[:20] = b"x" * 20
  path.write_bytes(bytes(data))
  with pytest.raises(CheckpointError, match="latest.ckpt"):
    ckpt.load(tmp_path, "latest", make_state(0))
  with pytest.warns(UserWarning, match="latest.prev.ckpt"):
    state, meta = ckpt.load_latest_good(tmp_path, "latest", make_state(0))
  assert meta["epoch"] == 1 and meta["path"].endswith("latest.prev.ckpt")
  assert_same(state, trained_state(epoch=1))
  # The next save must not rotate the corrupt file over the good previous one.
  ckpt.save(tmp_path, "latest", trained_state(epoch=3), meta={"epoch": 3})
  assert ckpt.load(tmp_path, "latest", make_state(0), path=tmp_path / "latest.prev.ckpt"
                   )[1]["epoch"] == 1


def test_all_corrupt_or_missing(tmp_path):
  with pytest.raises(CheckpointError, match="no checkpoint"):
    ckpt.load_latest_good(tmp_path, "latest", make_state(0))
  (tmp_path / "latest.ckpt").write_bytes(b"garbage")
  with pytest.raises(CheckpointError, match="latest.ckpt: not a gnnrec-jax checkpoint"):
    ckpt.load_latest_good(tmp_path, "latest", make_state(0))


def test_fingerprint_mismatch_refused_with_differing_keys(tmp_path):
  ckpt.save(tmp_path, "latest", trained_state(), meta={"fingerprint_inputs": FP_INPUTS})
  other = {"data": {"name": "ml-100k", "num_users": 943}, "config": {"lr": 1e-2, "dim": 8}}
  with pytest.raises(CheckpointError, match=r"another dataset/config.*config\.lr"):
    ckpt.load_latest_good(tmp_path, "latest", make_state(0), fingerprint=other)
  with pytest.raises(CheckpointError, match="another dataset/config"):
    ckpt.load(tmp_path, "latest", make_state(0), fingerprint=ckpt.fingerprint(other))
  ckpt.load(tmp_path, "latest", make_state(0), fingerprint=ckpt.fingerprint(FP_INPUTS))


def test_fingerprint_is_canonical():
  a = ckpt.fingerprint({"b": 1, "a": (1, 2), "x": np.arange(3)})
  assert a == ckpt.fingerprint({"a": [1, 2], "x": np.arange(3), "b": 1})
  assert a != ckpt.fingerprint({"a": [1, 2], "x": np.arange(1, 4), "b": 1})
  assert len(a) == 64


def test_shape_mismatch_names_leaf(tmp_path):
  ckpt.save(tmp_path, "latest", trained_state(), meta={})
  target = make_state(0)
  target["train"] = target["train"].replace(
      params={"params": {"kernel": jnp.zeros((5, 8)), "bias": jnp.zeros(8)}})
  with pytest.raises(CheckpointError, match="kernel"):
    ckpt.load(tmp_path, "latest", target)


def test_interrupted_save_leaves_previous_loadable(tmp_path):
  ckpt.save(tmp_path, "latest", trained_state(epoch=1), meta={"epoch": 1})
  # A crash mid-write: garbage in the temp file, never renamed.
  tmp = ckpt.temp_path(tmp_path, "latest")
  tmp.write_bytes(b'{"format": "gnnrec-jax-checkpoint", trunc')
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # the intact newest file is used without any warning
    state, meta = ckpt.load_latest_good(tmp_path, "latest", make_state(0))
  assert meta["epoch"] == 1
  assert_same(state, trained_state(epoch=1))
  # A crash between rotating and renaming: only the previous file remains.
  os.replace(tmp_path / "latest.ckpt", tmp_path / "latest.prev.ckpt")
  with pytest.warns(UserWarning, match="missing"):
    assert ckpt.load_latest_good(tmp_path, "latest", make_state(0))[1]["epoch"] == 1
  # The next save cleans up the stale temp file.
  ckpt.save(tmp_path, "latest", trained_state(epoch=2), meta={"epoch": 2})
  assert sorted(os.listdir(tmp_path)) == ["latest.ckpt", "latest.prev.ckpt"]


def test_load_without_target_gives_raw_state(tmp_path):
  b = np.arange(6, dtype=np.float32).reshape(2, 3)
  ckpt.save(tmp_path, "best", {"B": b, "rng": jax.random.key(3)}, meta={"fingerprint": "abc"})
  raw, meta = ckpt.load(tmp_path, "best", None, fingerprint="abc")
  np.testing.assert_array_equal(raw["B"], b)
  np.testing.assert_array_equal(raw["rng"], jax.random.key_data(jax.random.key(3)))
  assert meta["fingerprint"] == "abc"
