"""Safetensors checkpoints read tensor by tensor, memory-mapped, onto (sharded) devices.

A checkpoint folder holds `model.safetensors`, or shards listed by `model.safetensors.index.json`.
Each file is memory-mapped and each tensor is a NumPy view into the map (bfloat16 through
`ml_dtypes`, which jax ships), so reading a 16 GB checkpoint allocates no 16 GB host buffer: the
only host copy is the current tensor, cast to the dtype it runs in, and it goes to its device(s)
(`jax.device_put` with its sharding) before the next tensor is read.

The format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length N, N
bytes of JSON `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`,
then the data, offsets counted from the end of the header.
"""
from __future__ import annotations

import json
import mmap
import pathlib
from typing import Iterator

import ml_dtypes
import numpy as np

from gnnrec_jax.errors import ConfigError

DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
    "BOOL": np.bool_,
}


class SafetensorsFile:
  """One memory-mapped `.safetensors` file; `get(name)` is a read-only view, no copy."""

  def __init__(self, path: str | pathlib.Path):
    self.path = pathlib.Path(path)
    try:
      with open(self.path, "rb") as f:
        self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
      n = int.from_bytes(self._map[:8], "little")
      if not 2 <= n <= len(self._map) - 8:
        raise ValueError(f"header length {n} does not fit a {len(self._map)}-byte file")
      header = json.loads(bytes(self._map[8:8 + n]))
    except (OSError, ValueError) as e:
      raise ConfigError(f"{self.path}: not a safetensors file ({e})") from None
    header.pop("__metadata__", None)
    self._start = 8 + n
    self.header = header

  def keys(self) -> list[str]:
    return list(self.header)

  def get(self, name: str) -> np.ndarray:
    info = self.header[name]
    dtype = DTYPES.get(info.get("dtype"))
    if dtype is None:
      raise ConfigError(f"{self.path}: tensor {name!r} has dtype {info.get('dtype')!r}; expected "
                        f"one of {tuple(DTYPES)}")
    begin, end = info["data_offsets"]
    shape = tuple(int(s) for s in info["shape"])
    count = int(np.prod(shape, dtype=np.int64))
    if end - begin != count * np.dtype(dtype).itemsize or self._start + end > len(self._map):
      raise ConfigError(f"{self.path}: tensor {name!r} ({info['dtype']} {list(shape)}) does not "
                        f"match its byte range {begin}-{end} (truncated or corrupt file?)")
    return np.frombuffer(self._map, dtype, count, self._start + begin).reshape(shape)


def checkpoint_files(folder: str | pathlib.Path) -> list[pathlib.Path]:
  """The safetensors files of a model folder: `model.safetensors` or the index's shards."""
  folder = pathlib.Path(folder)
  index = folder / "model.safetensors.index.json"
  if (folder / "model.safetensors").is_file():
    return [folder / "model.safetensors"]
  if index.is_file():
    try:
      shards = json.loads(index.read_text())["weight_map"].values()
      files = [folder / f for f in sorted(set(shards))]
    except (OSError, ValueError, KeyError, AttributeError) as e:
      raise ConfigError(f"{index}: unreadable shard index ({e})") from None
    for f in files:
      if not f.is_file():
        raise ConfigError(f"{index}: lists shard {f.name}, which is not in {folder}")
    return files
  raise ConfigError(f"{folder}: no model.safetensors or model.safetensors.index.json (the text "
                    f"encoder reads safetensors weights only; convert pytorch_model.bin first)")


def iter_tensors(folder: str | pathlib.Path) -> Iterator[tuple[str, np.ndarray, pathlib.Path]]:
  """(name, read-only memory-mapped view, file) for every tensor of the checkpoint, file by file."""
  for path in checkpoint_files(folder):
    f = SafetensorsFile(path)
    for name in f.keys():
      yield name, f.get(name), path


def read_model_config(path: pathlib.Path) -> dict:
  """A checkpoint's `config.json` as a dict; `ConfigError` naming the file when unreadable."""
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise ConfigError(f"{path}: cannot read the model config ({e})") from None
