"""Crash-safe checkpoints of a training-state pytree (never pickle).

File format (`<workdir>/<name>.ckpt`): one line of JSON (the header), a newline, then the
payload: `flax.serialization.to_bytes(state)` (msgpack). The header holds the format version,
the fingerprint of the data and config, the caller's `meta` (epoch, step, metrics, ...) and the
sha256 and length of the payload, so a truncated or corrupted file is detected before msgpack
reads it. JSON escapes newlines inside strings, so the first b"\\n" always ends the header.

Atomicity: the file is written to a temp file in the same folder, flushed and fsynced, then
`os.replace`d over the old one and the folder is fsynced. A crash leaves either the old file or
the new one, plus at worst a stale temp file that `load` ignores and the next `save` removes.
With `keep=2` the previous good file survives as `<name>.prev.ckpt` (`keep=3` adds
`<name>.prev2.ckpt`, ...); `load_latest_good` falls back to it. Keep the best model under its
own name: `save(workdir, "best", state, meta=..., keep=1)`. One writer per workdir.

Sharded state (`gnnrec-jax train --devices N`): `save` gathers every shard to the host
(`jax.device_get`) and writes this same file, so the guarantees above hold unchanged and a run
resumes on any device count (the loop re-shards what `load` returns). orbax-checkpoint (0.12.8,
installed with flax) was considered and not used: its CheckpointManager writes a temp directory
and renames it (atomic), but verifies no checksum of the array data (zarr3 checksums only its
shard index, crc32c) and does not fall back to an older step when the newest is damaged, so the
sha256 check, the fallback to `<name>.prev.ckpt` and the kill -9 + resume test would have to be
rebuilt around it. What it would add is writing from several processes, each its own shards; one
process per run is all `gnnrec-jax train` starts, and one host holds the gathered state (a
10M-user table of 64 floats with Adam moments is 7.7 GB). A multi-host trainer would need it.

PRNG keys: typed keys (`jax.random.key`) cannot be msgpack'd; they are stored as their uint32
key data and re-wrapped with the target's key implementation on load. Raw uint32 keys
(`jax.random.PRNGKey`) are plain arrays.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np
from flax import serialization

from gnnrec_jax.errors import CheckpointError, ConfigError

FORMAT = "gnnrec-jax-checkpoint"
VERSION = 1
SUFFIX = ".ckpt"


class CorruptCheckpointError(CheckpointError):
  """The file is truncated, corrupted or not a checkpoint (a fallback may be tried)."""


# ----------------------------------------------------------------------------------- fingerprint

def fingerprint(obj: Any) -> str:
  """sha256 (hex) of the canonical JSON of `obj` (dicts, lists, scalars, dataclasses, arrays).

  Canonical: sorted keys, no whitespace, tuples as lists; numpy arrays stand as their dtype,
  shape and content hash, so a data fingerprint can include e.g. the train interactions.
  """
  text = json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=True)
  return hashlib.sha256(text.encode()).hexdigest()


def _jsonable(obj: Any) -> Any:
  if isinstance(obj, Mapping):
    return {str(k): _jsonable(v) for k, v in obj.items()}
  if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
    return _jsonable(dataclasses.asdict(obj))
  if isinstance(obj, (list, tuple)):
    return [_jsonable(v) for v in obj]
  if isinstance(obj, (set, frozenset)):
    return sorted(_jsonable(v) for v in obj)
  if isinstance(obj, (str, bool, int, float)) or obj is None:
    return obj
  if isinstance(obj, np.generic):
    return obj.item()
  if isinstance(obj, (np.ndarray, jax.Array)):
    a = np.ascontiguousarray(np.asarray(obj))
    return {"__array__": str(a.dtype), "shape": list(a.shape),
            "sha256": hashlib.sha256(a.tobytes()).hexdigest()}
  if isinstance(obj, os.PathLike):
    return os.fspath(obj)
  raise ConfigError(f"cannot fingerprint or store a {type(obj).__name__} ({obj!r:.60})")


# ------------------------------------------------------------------------------------------ save

def checkpoint_paths(workdir: str | os.PathLike, name: str, keep: int = 8) -> list[Path]:
  """The existing files of checkpoint `name`, newest first (`name.ckpt`, `name.prev.ckpt`, ...)."""
  return [p for p in _slots(Path(workdir), name, keep) if p.exists()]


def save(workdir: str | os.PathLike, name: str, state: Any, *, meta: Mapping[str, Any],
         keep: int = 2) -> Path:
  """Writes `state` atomically to `<workdir>/<name>.ckpt`, keeping `keep - 1` previous files.

  Args:
    workdir: the run folder (created if missing).
    name: checkpoint name, e.g. "latest" or "best" (no path separators).
    state: a pytree flax can serialise (dicts, lists, flax structs such as TrainState, optax
      states, arrays, PRNG keys, Python scalars).
    meta: JSON-able facts about it: "epoch", "step", "metrics", and "fingerprint" (or
      "fingerprint_inputs", a dict such as {"data": ..., "config": ...} whose fingerprint is
      then computed, and which lets a mismatch name the differing keys).
    keep: how many files to keep (the new one and keep - 1 previous good ones).

  Returns:
    The path written.
  """
  if keep < 1:
    raise ConfigError(f"keep must be >= 1, got {keep}")
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  slots = _slots(workdir, name, keep)
  meta = _jsonable(dict(meta))
  if "fingerprint" not in meta and "fingerprint_inputs" in meta:
    meta["fingerprint"] = fingerprint(meta["fingerprint_inputs"])

  payload = serialization.to_bytes(_keys_to_data(jax.device_get(state)))
  header = {
      "format": FORMAT, "version": VERSION, "name": name, "created": time.time(),
      "fingerprint": meta.get("fingerprint"), "epoch": meta.get("epoch"),
      "step": meta.get("step"), "meta": meta,
      "payload_bytes": len(payload), "payload_sha256": hashlib.sha256(payload).hexdigest(),
  }
  head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()

  tmp = temp_path(workdir, name)
  try:
    with open(tmp, "wb") as f:
      f.write(head + b"\n" + payload)
      f.flush()
      os.fsync(f.fileno())
    # Shift the previous good files down one slot; a corrupt current file is not worth keeping.
    if keep > 1 and slots[0].exists() and _is_valid(slots[0]):
      for older, newer in zip(reversed(slots[1:]), reversed(slots[:-1])):
        if newer.exists():
          os.replace(newer, older)
    os.replace(tmp, slots[0])
    _fsync_dir(workdir)
  finally:
    if tmp.exists():
      tmp.unlink()
  for stale in workdir.glob(f".{name}{SUFFIX}.tmp*"):  # left by an earlier crash
    stale.unlink(missing_ok=True)
  return slots[0]


def temp_path(workdir: str | os.PathLike, name: str) -> Path:
  """The temp file `save` writes before renaming (hidden, in the same folder for os.replace)."""
  return Path(workdir) / f".{name}{SUFFIX}.tmp{os.getpid()}"


# ------------------------------------------------------------------------------------------ load

def load(workdir: str | os.PathLike, name: str, target_state: Any, *,
         fingerprint: str | Mapping[str, Any] | None = None,
         path: str | os.PathLike | None = None) -> tuple[Any, dict]:
  """Restores checkpoint `name` into the structure of `target_state`.

  Args:
    workdir: the run folder.
    name: checkpoint name ("latest", "best", ...).
    target_state: a pytree of the same structure, shapes and dtypes (e.g. a freshly
      initialised train state); its PRNG key leaves give the key implementation. None: the
      raw state dict (nested dicts of NumPy arrays; PRNG keys as their uint32 key data).
    fingerprint: the expected fingerprint (str), or the fingerprint inputs (a dict, whose
      fingerprint is computed; a mismatch then names the differing keys). None: not checked.
    path: read this file instead of `<workdir>/<name>.ckpt` (used by `load_latest_good`).

  Returns:
    (state, meta), with meta["path"] the file read.

  Raises:
    CorruptCheckpointError: missing, truncated or corrupted file (named).
    CheckpointError: fingerprint mismatch, or a state of another structure/shape.
  """
  path = Path(path) if path is not None else _slots(Path(workdir), name, 1)[0]
  header, payload = _read(path)
  meta = dict(header["meta"])
  _check_fingerprint(path, header, meta, fingerprint)
  meta["path"] = str(path)
  if target_state is None:
    try:
      return serialization.msgpack_restore(payload), meta
    except Exception as e:  # the sha matched, so this is a writer bug, not disk damage
      raise CheckpointError(f"{path}: cannot decode the payload: {e}") from None
  target_host = _keys_to_data(jax.device_get(target_state))
  try:
    restored = serialization.from_bytes(target_host, payload)
  except Exception as e:  # flax raises ValueError/KeyError/TypeError on structure mismatch
    raise CheckpointError(f"{path}: checkpoint state does not match the target structure: {e}"
                          ) from None
  _check_shapes(path, target_host, restored)
  state = jax.tree_util.tree_map(_restore_leaf, target_state, restored,
                                 is_leaf=lambda x: x is None)
  return state, meta


def load_latest_good(workdir: str | os.PathLike, name: str, target_state: Any, *,
                     fingerprint: str | Mapping[str, Any] | None = None) -> tuple[Any, dict]:
  """`load` of the newest intact file of `name`, warning when it had to fall back.

  A fingerprint or structure mismatch is raised at once (an older file of the same run would
  not match either); only corrupt files are skipped.
  """
  paths = checkpoint_paths(workdir, name)
  if not paths:
    raise CorruptCheckpointError(f"no checkpoint {name!r} in {workdir}")
  newest = _slots(Path(workdir), name, 1)[0]
  # A crash between rotating and renaming leaves no newest file: say so when falling back.
  problems = [] if paths[0] == newest else [f"{newest}: missing"]
  for p in paths:
    try:
      state, meta = load(workdir, name, target_state, fingerprint=fingerprint, path=p)
    except CorruptCheckpointError as e:
      problems.append(str(e))
      continue
    if problems:
      warnings.warn(f"using checkpoint {p} (epoch {meta.get('epoch')}) because a newer one "
                    f"is unusable: {'; '.join(problems)}", stacklevel=2)
    return state, meta
  raise CorruptCheckpointError("no usable checkpoint: " + "; ".join(problems))


# --------------------------------------------------------------------------------------- helpers

def _slots(workdir: Path, name: str, keep: int) -> list[Path]:
  if not name or "/" in name or os.sep in name or name.startswith("."):
    raise ConfigError(f"invalid checkpoint name {name!r}")
  suffixes = ["", ".prev"] + [f".prev{i}" for i in range(2, keep)]
  return [workdir / f"{name}{s}{SUFFIX}" for s in suffixes[:keep]]


def _read(path: Path) -> tuple[dict, bytes]:
  try:
    data = path.read_bytes()
  except FileNotFoundError:
    raise CorruptCheckpointError(f"{path}: no such checkpoint") from None
  except OSError as e:
    raise CorruptCheckpointError(f"{path}: cannot read: {e}") from None
  end = data.find(b"\n")
  try:
    header = json.loads(data[:end]) if end >= 0 else None
  except ValueError:
    header = None
  if not isinstance(header, dict) or header.get("format") != FORMAT:
    raise CorruptCheckpointError(f"{path}: not a gnnrec-jax checkpoint (bad or missing header)")
  if header.get("version") != VERSION:
    raise CheckpointError(f"{path}: format version {header.get('version')} is not supported "
                          f"(this gnnrec-jax reads version {VERSION})")
  payload = data[end + 1:]
  if len(payload) != header["payload_bytes"]:
    raise CorruptCheckpointError(f"{path}: truncated or padded: payload has {len(payload)} "
                                 f"bytes, header says {header['payload_bytes']}")
  if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
    raise CorruptCheckpointError(f"{path}: corrupted: payload sha256 does not match the header")
  return header, payload


def _is_valid(path: Path) -> bool:
  try:
    _read(path)
    return True
  except CheckpointError:
    return False


def _check_fingerprint(path, header, meta, expected) -> None:
  if expected is None:
    return
  inputs = expected if isinstance(expected, Mapping) else None
  want = fingerprint(inputs) if inputs is not None else expected
  got = header.get("fingerprint")
  if got == want:
    return
  msg = (f"{path} belongs to another dataset/config (fingerprint {str(got)[:12]}, "
         f"expected {str(want)[:12]})")
  stored = meta.get("fingerprint_inputs")
  if inputs is not None and isinstance(stored, Mapping):
    a, b = _flatten(stored), _flatten(_jsonable(inputs))
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k, "<missing>") != b.get(k, "<missing>"))
    shown = ", ".join(f"{k}: {a.get(k, '<missing>')!r:.40} -> {b.get(k, '<missing>')!r:.40}"
                      for k in diff[:8])
    msg += f"; differing keys: {shown}" + (f" (+{len(diff) - 8} more)" if len(diff) > 8 else "")
  raise CheckpointError(msg)


def _flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, Mapping) and "__array__" not in v:
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _is_key(x) -> bool:
  return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _keys_to_data(tree):
  return jax.tree_util.tree_map(lambda x: np.asarray(jax.random.key_data(x)) if _is_key(x) else x,
                                tree)


def _check_shapes(path, target, restored) -> None:
  t_leaves, _ = jax.tree_util.tree_flatten_with_path(target)
  r_leaves = jax.tree_util.tree_leaves(restored)
  for (kp, t), r in zip(t_leaves, r_leaves):
    if hasattr(t, "shape") and hasattr(t, "dtype"):
      r = np.asarray(r)
      if r.shape != tuple(t.shape) or r.dtype != t.dtype:
        raise CheckpointError(
            f"{path}: leaf {jax.tree_util.keystr(kp)} has {r.dtype}{list(r.shape)} in the "
            f"checkpoint but {t.dtype}{list(t.shape)} in the target (another model/config?)")


def _restore_leaf(target, value):
  if _is_key(target):
    return jax.random.wrap_key_data(value, impl=jax.random.key_impl(target))
  if isinstance(target, jax.Array):
    return jax.numpy.asarray(value)
  return value


def _fsync_dir(folder: Path) -> None:
  """Makes the rename durable (POSIX; Windows cannot open folders and needs no such step)."""
  try:
    fd = os.open(folder, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  finally:
    os.close(fd)
