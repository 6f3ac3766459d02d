"""Precomputed vectors files (issue 24): formats, memory mapping, matching by id, bad files
through the CLI, the fingerprint, and the encode -> train round trip on a tiny BERT."""
from __future__ import annotations

import json
import re
import tracemalloc
import warnings

import numpy as np
import pytest
from test_cli import FAST, _error, _main, _write_part
from test_text import _write_tiny_model

from gnnrec_jax import experiment
from gnnrec_jax.config import Config
from gnnrec_jax.data.checks import DataWarning
from gnnrec_jax.data.splits import split_random
from gnnrec_jax.data.synthetic import make_synthetic
from gnnrec_jax.errors import DataError
from gnnrec_jax.text import vectors as V

_WORDS = ["hello", "world", "the", "cat", "cats", "sat", "on", "a", "mat"]


def _table(n=6, d=4, seed=0, dtype=np.float32):
  rng = np.random.default_rng(seed)
  return [f"i{k}" for k in range(n)], rng.normal(size=(n, d)).astype(dtype)


# --- formats ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["v.npz", "v.npy", "v.safetensors"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_write_read_round_trip_memory_mapped(tmp_path, name, dtype):
  ids, x = _table(dtype=dtype)
  written = V.write_vectors(tmp_path / name, ids, x, encoder="some/model")
  assert written[-1].name == ("v.ids.txt" if name.endswith(".npy") else name)
  vf = V.read_vectors(tmp_path / name)
  assert vf.ids == tuple(ids) and vf.vectors.dtype == x.dtype
  np.testing.assert_array_equal(vf.vectors, x)
  assert isinstance(vf.vectors, np.memmap) and vf.memory_mapped  # a view of the file, no copy
  assert vf.encoder == (None if name.endswith(".npy") else "some/model")
  info = vf.info()
  assert info["shape"] == [6, 4] and info["dtype"] == dtype and len(info["sha256"]) == 64


def test_safetensors_is_readable_by_safetensors_and_bfloat16(tmp_path):
  import ml_dtypes
  from safetensors import safe_open
  from safetensors.numpy import save_file
  ids, x = _table()
  V.write_vectors(tmp_path / "a.safetensors", ids, x, encoder="m")
  with safe_open(str(tmp_path / "a.safetensors"), "np") as f:  # the reference reader agrees
    np.testing.assert_array_equal(f.get_tensor("vectors"), x)
    assert json.loads(f.metadata()["ids"]) == ids and f.metadata()["encoder"] == "m"
  # Written by safetensors itself, ids in the sidecar (no metadata), bfloat16.
  save_file({"vectors": x.astype(np.float16), "other": np.zeros(3, np.float32)},
            str(tmp_path / "b.safetensors"))
  (tmp_path / "b.ids.txt").write_text("\n".join(ids) + "\n")
  vf = V.read_vectors(tmp_path / "b.safetensors")
  assert vf.ids == tuple(ids) and vf.sidecar == tmp_path / "b.ids.txt" and vf.encoder is None
  np.testing.assert_array_equal(vf.vectors, x.astype(np.float16))
  V.write_vectors(tmp_path / "c.safetensors", ids, x.astype(ml_dtypes.bfloat16))
  vf = V.read_vectors(tmp_path / "c.safetensors")
  assert vf.vectors.dtype == ml_dtypes.bfloat16
  np.testing.assert_array_equal(np.asarray(vf.vectors, np.float32),
                                x.astype(ml_dtypes.bfloat16).astype(np.float32))


def test_npz_integer_ids_and_compressed_npz_warns_of_its_copy(tmp_path):
  _, x = _table()
  np.savez(tmp_path / "i.npz", ids=np.arange(10, 16), vectors=x)
  assert V.read_vectors(tmp_path / "i.npz").ids == tuple(str(k) for k in range(10, 16))
  np.savez_compressed(tmp_path / "c.npz", ids=np.array(["a", "b", "c", "d", "e", "f"]), vectors=x)
  with pytest.warns(DataWarning, match="compressed, so it is read into memory"):
    vf = V.read_vectors(tmp_path / "c.npz")
  assert not vf.memory_mapped
  np.testing.assert_array_equal(vf.vectors, x)


def test_reading_copies_the_table_at_most_once(tmp_path):
  """Opening maps the file (nothing allocated); aligning fills one float32 table: traced peak
  memory ~1x the table, where np.load + astype would take 2x (float16 -> 3x)."""
  ids, x = _table(n=4000, d=1024, dtype=np.float16)
  for name in ("v.npz", "v.npy", "v.safetensors"):
    V.write_vectors(tmp_path / name, ids, x)
    table_bytes = 4000 * 1024 * 4  # the float32 result
    tracemalloc.start()
    vf = V.read_vectors(tmp_path / name)
    opened, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    out, has, _ = V.load_aligned(tmp_path / name, ids[::-1])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert opened < 0.1 * x.nbytes, (name, opened)  # the ids only
    assert peak < 1.4 * table_bytes, (name, peak / table_bytes)
    np.testing.assert_array_equal(out, x[::-1].astype(np.float32))
    assert has.all() and isinstance(vf.vectors, np.memmap)


# --- matching by id ---------------------------------------------------------------------------

def test_rows_are_matched_by_id_not_position(tmp_path):
  ids, x = _table()
  perm = [3, 0, 5, 1, 4, 2]
  V.write_vectors(tmp_path / "p.npz", [ids[k] for k in perm], x[perm])
  out, has, _ = V.load_aligned(tmp_path / "p.npz", ids)
  np.testing.assert_array_equal(out, x)
  assert has.all()


def test_missing_ids_warn_counted_extra_ids_ignored_strict_refuses(tmp_path):
  ids, x = _table()
  V.write_vectors(tmp_path / "m.npz", ids[:4] + ["zzz"], np.concatenate([x[:4], x[:1]]))
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out, has, _ = V.load_aligned(tmp_path / "m.npz", ids)
  msgs = [str(w.message) for w in caught if w.category is DataWarning]
  assert any("2 of the 6 items of the catalogue have no vector (e.g. 'i4')" in m for m in msgs)
  assert any("1 of its 5 ids are not items of the catalogue (e.g. 'zzz'); ignored" in m
             for m in msgs)
  np.testing.assert_array_equal(has, [True] * 4 + [False] * 2)
  np.testing.assert_array_equal(out[:4], x[:4])
  assert not out[4:].any()  # the missing-text policy: zero rows, has_text False
  with pytest.raises(DataError, match=r"m\.npz: 2 of the 6 items .* e\.g\. item 'i4'"):
    V.load_aligned(tmp_path / "m.npz", ids, strict=True)


# --- the CLI: bad files, each one line --------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory):
  """Planted-cluster split files, item titles from the tiny BERT's vocabulary, a tiny BERT."""
  d = tmp_path_factory.mktemp("vdata")
  ds = make_synthetic(seed=2)
  s = split_random(ds.interactions, seed=0)
  for part in ("train", "valid", "test"):
    _write_part(d / f"{part}.tsv", getattr(s, part))
  rng = np.random.default_rng(0)
  titles = [" ".join(rng.choice(_WORDS, size=rng.integers(2, 6))) for _ in range(ds.num_items)]
  titles[7] = "unknown"  # an item without text: the text path gives it no vector
  (d / "items.tsv").write_text("item_id\ttitle\n" + "".join(
      f"i{k}\t{t}\n" for k, t in enumerate(titles)))
  _write_tiny_model(d / "bert")
  return d, ds


def _args(d):
  return ["--train", d / "train.tsv", "--valid", d / "valid.tsv", "--test", d / "test.tsv",
          "--item-meta", d / "items.tsv"]


@pytest.fixture
def cache(monkeypatch, tmp_path):
  monkeypatch.setenv("GNNREC_JAX_CACHE", str(tmp_path / "cache"))


def _items(ds, d=4, seed=0):
  return [ds.items.tokens[k] for k in range(ds.num_items)], np.random.default_rng(seed).normal(
      size=(ds.num_items, d)).astype(np.float32)


def _bad_npz(tmp_path, ds, kind):
  ids, x = _items(ds)
  f = tmp_path / "bad.npz"
  if kind == "nan":
    x[5, 2] = np.nan
    np.savez(f, ids=np.array(ids), vectors=x)
    return f, r"bad\.npz: row 5 \(id 'i5'\) holds a NaN or infinite value"
  if kind == "inf":
    x[9, 0] = -np.inf
    np.savez(f, ids=np.array(ids), vectors=x)
    return f, r"bad\.npz: row 9 \(id 'i9'\) holds a NaN or infinite value"
  if kind == "duplicate":
    ids[6] = ids[2]
    np.savez(f, ids=np.array(ids), vectors=x)
    return f, r"bad\.npz: duplicate id 'i2' at rows 2 and 6"
  if kind == "count":
    np.savez(f, ids=np.array(ids[:-1]), vectors=x)
    return f, r"bad\.npz: 39 ids for 40 rows of vectors in bad\.npz"
  if kind == "dtype":
    np.savez(f, ids=np.array(ids), vectors=(x * 10).astype(np.int32))
    return f, r"bad\.npz: vectors have dtype int32; expected float16, bfloat16, float32"
  if kind == "shape":
    np.savez(f, ids=np.array(ids), vectors=x[:, 0])
    return f, r"bad\.npz: vectors have shape \[40\]; expected \[rows, dim\]"
  if kind == "no_ids":
    np.savez(f, vectors=x)
    return f, r"bad\.npz: no array 'ids' \(the file holds vectors"
  if kind == "object_ids":
    np.savez(f, ids=np.array(ids, dtype=object), vectors=x, allow_pickle=True)
    return f, r"bad\.npz: 'ids' is an object array"
  if kind == "garbage":
    f.write_bytes(b"not a zip file at all")
    return f, r"bad\.npz: unreadable vectors file \(BadZipFile"
  if kind == "npy_sidecar_count":
    f = tmp_path / "bad.npy"
    np.save(f, x)
    (tmp_path / "bad.ids.txt").write_text("\n".join(ids[:-2]) + "\n")
    return f, r"bad\.ids\.txt: 38 ids for 40 rows of vectors in bad\.npy"
  if kind == "npy_no_sidecar":
    f = tmp_path / "bad.npy"
    np.save(f, x)
    return f, r"bad\.npy: a \.npy has no ids file bad\.ids\.txt beside it"
  if kind == "npy_empty_id":
    f = tmp_path / "bad.npy"
    np.save(f, x)
    (tmp_path / "bad.ids.txt").write_text("\n".join(ids[:3] + [""] + ids[4:]) + "\n")
    return f, r"bad\.ids\.txt:4: empty id"
  if kind == "safetensors_truncated":
    f = tmp_path / "bad.safetensors"
    V.write_vectors(f, ids, x)
    f.write_bytes(f.read_bytes()[:-7])
    return f, r"bad\.safetensors: 'vectors' of shape \[40, 4\] float32 does not fit"
  if kind == "suffix":
    f = tmp_path / "bad.pt"
    f.write_bytes(b"x")
    return f, r"bad\.pt: unknown vectors format '\.pt'; expected one of \.npz, \.npy, \.safetensors"
  if kind == "absent":
    return tmp_path / "nope.npz", r"nope\.npz: no such vectors file"
  raise AssertionError(kind)


BAD = ["nan", "inf", "duplicate", "count", "dtype", "shape", "no_ids", "object_ids", "garbage",
       "npy_sidecar_count", "npy_no_sidecar", "npy_empty_id", "safetensors_truncated", "suffix",
       "absent"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_vectors_file_is_one_line_through_the_cli(data, tmp_path, kind):
  d, ds = data
  f, pattern = _bad_npz(tmp_path, ds, kind)
  code, _, err = _main("train", *_args(d), *FAST, "--item-vectors", f, "--workdir", tmp_path / "w")
  line = _error(code, err, "train")
  assert str(f.parent) in line  # the file is named in full
  assert re.search(pattern, line), line
  assert not (tmp_path / "w" / "run.json").exists()


def test_wrong_dimension_of_user_vectors_is_one_line(data, tmp_path):
  d, ds = data
  ids, x = _items(ds, d=4)
  V.write_vectors(tmp_path / "items.npz", ids, x)
  V.write_vectors(tmp_path / "users.npz", list(ds.users.tokens),
                  np.ones((ds.num_users, 3), np.float32))
  code, _, err = _main("train", *_args(d), *FAST, "--item-vectors", tmp_path / "items.npz",
                       "--user-vectors", tmp_path / "users.npz", "--workdir", tmp_path / "w")
  line = _error(code, err, "train")
  assert "users.npz: user vectors are 3-d but the item vectors are 4-d" in line, line


def test_missing_items_warn_once_counted_and_train(data, tmp_path):
  d, ds = data
  ids, x = _items(ds)
  V.write_vectors(tmp_path / "some.npy", ids[:30] + ["stranger"], np.concatenate([x[:30], x[:1]]))
  code, out, err = _main("train", *_args(d), *FAST, "--item-vectors", tmp_path / "some.npy",
                         "--workdir", tmp_path / "w")
  assert code == 0, err
  warn = [l for l in err.splitlines() if "warning" in l]
  assert any("some.npy: 10 of the 40 items of the catalogue have no vector (e.g. 'i30')" in l
             for l in warn), err
  assert any("1 of its 31 ids are not items of the catalogue (e.g. 'stranger'); ignored" in l
             for l in warn), err
  run = json.loads((tmp_path / "w" / "run.json").read_text())
  info = run["vectors"]["items"]
  assert info["shape"] == [31, 4] and info["dtype"] == "float32"
  assert info["sha256"] == V.read_vectors(tmp_path / "some.npy").sha256()  # file + ids file
  assert info["ids_file"].endswith("some.ids.txt") and "encoder" not in info
  assert run["config"]["text_features"] == "history"  # set by --item-vectors
  code, _, err = _main("train", *_args(d), *FAST, "--item-vectors", tmp_path / "some.npy",
                       "--strict-vectors", "--workdir", tmp_path / "w2")
  line = _error(code, err, "train")
  assert "some.npy: 10 of the 40 items of the catalogue have no vector, e.g. item 'i30'" in line


# --- fingerprint ------------------------------------------------------------------------------

def test_fingerprint_follows_the_file_bytes_not_its_path(data, tmp_path):
  d, ds = data
  ids, x = _items(ds)
  f = tmp_path / "a.safetensors"
  V.write_vectors(f, ids, x, encoder="m")
  cfg = Config(text_features="history", item_vectors=str(f))
  exp = experiment.prepare(cfg, ds)
  assert exp.vectors["items"]["sha256"] == V.file_sha256(f)
  assert exp.vectors["items"]["encoder"] == "m"
  base = exp.fingerprint
  moved = tmp_path / "sub" / "b.safetensors"
  moved.parent.mkdir()
  moved.write_bytes(f.read_bytes())
  assert experiment.prepare(cfg.replace(item_vectors=str(moved)), ds).fingerprint == base
  assert experiment.prepare(cfg.replace(strict_vectors=True), ds).fingerprint == base
  raw = bytearray(f.read_bytes())
  raw[-3] ^= 0x01  # one bit of one vector value
  f.write_bytes(bytes(raw))
  changed = experiment.prepare(cfg, ds)
  assert changed.fingerprint != base
  # The ids file of a .npy counts too.
  V.write_vectors(tmp_path / "n.npy", ids, x)
  cfg = cfg.replace(item_vectors=str(tmp_path / "n.npy"))
  before = experiment.prepare(cfg, ds).fingerprint
  side = tmp_path / "n.ids.txt"
  side.write_text(side.read_text().replace("i0\ni1\n", "i1\ni0\n"))
  assert experiment.prepare(cfg, ds).fingerprint != before


# --- encode -> train round trip ---------------------------------------------------------------

def _metrics(out):
  return json.loads(out.strip().splitlines()[-1])


def test_encode_out_then_train_item_vectors_gives_the_text_paths_metrics(data, cache, tmp_path):
  d, ds = data
  model = str(d / "bert")
  code, out, err = _main("encode", *_args(d), "--model", model, "--no-progress",
                         "--out", tmp_path / "items.npz")
  assert code == 0, err
  vf = V.read_vectors(tmp_path / "items.npz")
  assert len(vf.ids) == 39 and "i7" not in vf.ids and vf.encoder == str(d / "bert")
  text_run = ["--set", "text_features=history", f"text_model={model}"]
  code, out, err = _main("train", *_args(d), *FAST, *text_run, "--workdir", tmp_path / "text")
  assert code == 0, err
  want = _metrics(out)
  code, out, err = _main("train", *_args(d), *FAST, "--item-vectors", tmp_path / "items.npz",
                         "--workdir", tmp_path / "vec")
  assert code == 0, err
  assert "1 of the 40 items of the catalogue have no vector (e.g. 'i7')" in err
  got = _metrics(out)
  assert got.keys() == want.keys()
  for k in want:
    assert got[k] == pytest.approx(want[k], abs=1e-6), k
  run = json.loads((tmp_path / "vec" / "run.json").read_text())
  assert run["vectors"]["items"]["encoder"] == model
  assert run["vectors"]["items"]["sha256"] == V.file_sha256(tmp_path / "items.npz")
  # recommend --history reads the same file again (the workdir's config holds its path).
  code, out, err = _main("recommend", "--workdir", tmp_path / "vec", "--history", "i1,i2", "-k", 3)
  assert code == 0, err
  assert len(json.loads(out.splitlines()[-1])["recommendations"]) == 3


def test_encode_texts_writes_each_line_in_order(data, cache, tmp_path):
  from gnnrec_jax.text.encoder import TextEncoder
  d, _ = data
  lines = ["the cat sat", "", "hello world", "a mat"]
  (tmp_path / "t.txt").write_text("\n".join(lines) + "\n")
  code, out, err = _main("encode", "--texts", tmp_path / "t.txt", "--model", d / "bert",
                         "--no-progress", "--out", tmp_path / "t.safetensors")
  assert code == 0, err
  vf = V.read_vectors(tmp_path / "t.safetensors")
  assert vf.ids == ("1", "2", "3", "4")
  want = TextEncoder.load(str(d / "bert")).encode(lines, progress=False)
  np.testing.assert_allclose(vf.vectors, want, atol=1e-6)
  (tmp_path / "ids.txt").write_text("x\ny\nz\nw\n")
  code, out, err = _main("encode", "--texts", tmp_path / "t.txt", "--ids", tmp_path / "ids.txt",
                         "--model", d / "bert", "--no-progress", "--out", tmp_path / "t.npy")
  assert code == 0, err
  assert V.read_vectors(tmp_path / "t.npy").ids == ("x", "y", "z", "w")
  (tmp_path / "ids.txt").write_text("x\ny\nx\n")
  code, _, err = _main("encode", "--texts", tmp_path / "t.txt", "--ids", tmp_path / "ids.txt",
                       "--model", d / "bert", "--out", tmp_path / "u.npz")
  assert "ids.txt: 3 ids for the 4 lines" in _error(code, err, "encode")
  code, _, err = _main("encode", "--texts", tmp_path / "t.txt", "--model", d / "bert")
  assert "--texts needs --out FILE" in _error(code, err, "encode")
