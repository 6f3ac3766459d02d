"""Precomputed node vectors from a file: any encoder's output, matched to the catalogue by id.

    gnnrec-jax encode --dataset ml-100k --out items.npz      # our encoder, written as a file
    gnnrec-jax train --dataset ml-100k --item-vectors items.npz --workdir runs/v

Three formats, told apart by the suffix; each holds `ids` (the dataset's own string ids, as in
its files; integers are read as their decimal text) and `vectors` [n, d] in float16, bfloat16
(safetensors only), float32 or float64:

  * `.npz`: arrays `ids` [n] (strings or integers) and `vectors` [n, d], optionally `encoder`
    (a 0-d string: the model's name, recorded in run.json). `np.savez` (uncompressed) is
    memory-mapped through the zip member's offset; a compressed `np.savez_compressed` file is
    inflated into memory once (one copy of the table; a warning says so).
  * `.npy`: the [n, d] array, memory-mapped, plus a sidecar beside it with the same name and
    `.ids.txt` instead of `.npy` (`items.npy` -> `items.ids.txt`): UTF-8, one id per line, row i
    of the array is line i + 1.
  * `.safetensors`: a tensor `vectors`, memory-mapped at its offset after the header (parsed here,
    no copy); the ids in the header's `__metadata__` as `"ids"`, a JSON list of strings (what
    `write_vectors` writes), else in the `.ids.txt` sidecar (for catalogues whose ids would make
    the header too large for other readers); `"encoder"` in the metadata names the model.

Rows are matched to the catalogue by the file's ids, never by position. Catalogue ids absent from
the file get the missing-text policy (a zero vector and `has_text=False`, as an item without any
metadata: a model falls back to its ID vector or masks the node) with one counted warning, or an
error under `strict_vectors`; ids absent from the catalogue are counted and ignored. A bad file
(wrong dtype, not [n, d], a dimension other than the other node type's, an ids/rows count
mismatch, a duplicate or empty id, a NaN or infinite value in a row the run reads) is one
`DataError` naming the file and the first bad row or id. Vectors are used as written (no
normalisation; `encode` writes unit vectors).

Memory: the file is never read whole. `fill` gathers the catalogue's rows, a block at a time, into
the caller's float32 array (the run's node-feature table), so the only full-size copy is the one
the run uses; the sha256 in the fingerprint is read in 8 MiB blocks (and memoised per file
version, so a workdir reload or `with_test_history` does not hash twice).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import struct
import tempfile
import zipfile
from typing import Sequence

import numpy as np

from gnnrec_jax.data import checks
from gnnrec_jax.errors import DataError

FORMATS = (".npz", ".npy", ".safetensors")
SIDECAR = ".ids.txt"
# safetensors dtype names -> numpy; bfloat16 comes with jax (ml_dtypes). Only floats are vectors.
_ST_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}
_FLOATS = ("float16", "bfloat16", "float32", "float64")
# Bytes of float32 per block when gathering and checking (64 rows of 4096 dims): small against
# the table, so the peak stays ~1x the table the run uses.
_BLOCK_BYTES = 1 << 20
_HASH_BLOCK = 8 << 20
_hash_memo: dict[tuple, str] = {}


@dataclasses.dataclass(frozen=True)
class VectorsFile:
  """An opened vectors file (nothing read beyond the ids and headers).

  Attributes:
    path: the file.
    ids: [n] the ids as strings, row i's id at i.
    vectors: [n, d] the table, an `np.memmap` where the format allows (see the module doc).
    encoder: the model name the file carries, or None.
    sidecar: the `.ids.txt` file the ids came from, or None.
    memory_mapped: whether `vectors` is a view of the file (False: a compressed .npz, in memory).
  """

  path: pathlib.Path
  ids: tuple[str, ...]
  vectors: np.ndarray
  encoder: str | None = None
  sidecar: pathlib.Path | None = None
  memory_mapped: bool = True

  @property
  def dim(self) -> int:
    return int(self.vectors.shape[1])

  def sha256(self) -> str:
    """sha256 of the file's bytes, then (with a sidecar) of the sidecar's."""
    digest = file_sha256(self.path)
    if self.sidecar is None:
      return digest
    return hashlib.sha256(f"{digest}\n{file_sha256(self.sidecar)}".encode()).hexdigest()

  def info(self) -> dict:
    """What run.json records: file, sha256, shape, dtype, encoder (when the file names one)."""
    out = {"file": str(self.path), "sha256": self.sha256(),
           "shape": [int(s) for s in self.vectors.shape], "dtype": str(self.vectors.dtype)}
    if self.sidecar is not None:
      out["ids_file"] = str(self.sidecar)
    if self.encoder:
      out["encoder"] = self.encoder
    return out


def file_sha256(path: str | os.PathLike) -> str:
  """sha256 hex digest of a file, read in blocks; memoised per (path, size, mtime, inode)."""
  path = pathlib.Path(path)
  try:
    st = path.stat()
  except OSError as e:
    raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
  key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
  if key not in _hash_memo:
    h = hashlib.sha256()
    with open(path, "rb") as f:
      while block := f.read(_HASH_BLOCK):
        h.update(block)
    _hash_memo[key] = h.hexdigest()
  return _hash_memo[key]


def sidecar_path(path: str | os.PathLike) -> pathlib.Path:
  """`items.npy` -> `items.ids.txt` (the ids of a .npy, or of a .safetensors without them)."""
  path = pathlib.Path(path)
  return path.with_suffix(SIDECAR)


# ------------------------------------------------------------------------------------ reading

def read_vectors(path: str | os.PathLike) -> VectorsFile:
  """Opens a vectors file (memory-mapped) and checks its shape, dtype and ids.

  Raises:
    DataError: one line naming the file: a missing or unreadable file, an unknown suffix, a
      table that is not [n, d] floats, ids that are not n distinct non-empty strings.
  """
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix not in FORMATS:
    raise DataError(f"{path}: unknown vectors format {path.suffix or '(no suffix)'!r}; expected "
                    f"one of {', '.join(FORMATS)}")
  if not path.is_file():
    raise DataError(f"{path}: no such vectors file")
  try:
    if suffix == ".npz":
      vf = _read_npz(path)
    elif suffix == ".npy":
      vf = _read_npy(path)
    else:
      vf = _read_safetensors(path)
  except DataError:
    raise
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, struct.error) as e:
    msg = (str(e).splitlines() or [""])[0][:200]
    raise DataError(f"{path}: unreadable vectors file ({type(e).__name__}: {msg})") from None
  _check(vf)
  return vf


def _read_npy(path: pathlib.Path) -> VectorsFile:
  vectors = np.load(path, mmap_mode="r", allow_pickle=False)
  ids, sidecar = _read_sidecar(path)
  return VectorsFile(path, ids, vectors, None, sidecar)


def _read_npz(path: pathlib.Path) -> VectorsFile:
  with zipfile.ZipFile(path) as z:
    names = set(z.namelist())
    for need in ("ids", "vectors"):
      if need + ".npy" not in names:
        have = ", ".join(sorted(n.removesuffix(".npy") for n in names)) or "nothing"
        raise DataError(f"{path}: no array {need!r} (the file holds {have}; expected 'ids' and "
                        f"'vectors', optionally 'encoder')")
    info = z.getinfo("vectors.npy")
  with np.load(path, allow_pickle=False) as npz:
    try:
      ids = npz["ids"]
    except ValueError:  # an object array needs pickle, which we never load
      raise DataError(f"{path}: 'ids' is an object array; save the ids as strings or integers "
                      f"(np.array(ids, dtype=str))") from None
    encoder = _encoder_name(npz["encoder"]) if "encoder" in npz.files else None
    stored = info.compress_type == zipfile.ZIP_STORED
    vectors = _npz_memmap(path, info) if stored else None
    mapped = vectors is not None
    if vectors is None:
      why = "is compressed" if not stored else "has a .npy header version other than 1.0/2.0"
      checks.warn(f"{path}: 'vectors' {why}, so it is read into memory (one copy of the table); "
                  f"np.savez (uncompressed), .npy and .safetensors are memory-mapped")
      vectors = npz["vectors"]
  return VectorsFile(path, _as_ids(ids, path), vectors, encoder, None, mapped)


def _npz_memmap(path: pathlib.Path, info: zipfile.ZipInfo) -> np.ndarray:
  """The stored (uncompressed) member `vectors.npy` as a memmap at its offset in the zip."""
  with open(path, "rb") as f:
    f.seek(info.header_offset)
    local = f.read(30)  # the local file header: its name and extra field lengths at 26..30
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
      raise DataError(f"{path}: damaged zip (no local header for 'vectors')")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    f.seek(info.header_offset + 30 + name_len + extra_len)
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
      shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
      shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
      return None  # other header versions: let np.load read the member
    offset = f.tell()
  if dtype.hasobject:
    raise DataError(f"{path}: 'vectors' is an object array; expected floats")
  if int(np.prod(shape)) == 0:
    return np.zeros(shape, dtype)
  return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                   order="F" if fortran else "C")


def _read_safetensors(path: pathlib.Path) -> VectorsFile:
  size = path.stat().st_size
  with open(path, "rb") as f:
    head = f.read(8)
    if len(head) < 8:
      raise DataError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
    n = struct.unpack("<Q", head)[0]
    if n > size - 8:
      raise DataError(f"{path}: not a safetensors file (header length {n} > file size {size})")
    try:
      header = json.loads(f.read(n))
    except (ValueError, UnicodeDecodeError):
      raise DataError(f"{path}: not a safetensors file (its header is not JSON)") from None
  if not isinstance(header, dict):
    raise DataError(f"{path}: not a safetensors file (its header is not a JSON object)")
  meta = header.pop("__metadata__", None) or {}
  if "vectors" not in header:
    have = ", ".join(sorted(header)) or "none"
    raise DataError(f"{path}: no tensor 'vectors' (tensors: {have})")
  t = header["vectors"]
  dtype_name = _ST_DTYPES.get(t.get("dtype"))
  if dtype_name is None:
    raise DataError(f"{path}: 'vectors' has dtype {t.get('dtype')}; expected one of "
                    f"{', '.join(_ST_DTYPES)} (floats)")
  dtype = np.dtype(_np_dtype(dtype_name))
  shape = tuple(int(s) for s in t["shape"])
  begin, end = (int(x) for x in t["data_offsets"])
  if end - begin != int(np.prod(shape)) * dtype.itemsize or 8 + n + end > size:
    raise DataError(f"{path}: 'vectors' of shape {list(shape)} {dtype_name} does not fit its "
                    f"byte range [{begin}, {end}) of a {size}-byte file (truncated?)")
  if int(np.prod(shape)) == 0:
    vectors = np.zeros(shape, dtype)
  else:
    vectors = np.memmap(path, dtype=dtype, mode="r", offset=8 + n + begin, shape=shape)
  sidecar = None
  if "ids" in meta:
    try:
      ids = json.loads(meta["ids"])
    except (TypeError, ValueError):
      raise DataError(f"{path}: metadata 'ids' is not a JSON list of strings") from None
    if not isinstance(ids, list):
      raise DataError(f"{path}: metadata 'ids' is not a JSON list of strings")
    ids = _as_ids(np.asarray([str(i) for i in ids], dtype=object), path)
  else:
    ids, sidecar = _read_sidecar(path, how="no 'ids' in its metadata and")
  return VectorsFile(path, ids, vectors, meta.get("encoder") or None, sidecar)


def _np_dtype(name: str):
  if name == "bfloat16":
    import ml_dtypes  # installed with jax
    return ml_dtypes.bfloat16
  return np.dtype(name)


def _read_sidecar(path: pathlib.Path, how: str = "") -> tuple[tuple[str, ...], pathlib.Path]:
  side = sidecar_path(path)
  if not side.is_file():
    raise DataError(f"{path}: {how or 'a .npy has'} no ids file {side.name} beside it (one id "
                    f"per line, line i + 1 naming row i)")
  try:
    text = side.read_bytes().decode("utf-8")
  except UnicodeDecodeError as e:
    line = side.read_bytes()[:e.start].count(b"\n") + 1
    raise DataError(f"{side}:{line}: not UTF-8 text") from None
  lines = text.split("\n")
  if lines and lines[-1] == "":
    lines.pop()  # the final newline ends the last line; it starts no new one
  ids = tuple(s[:-1] if s.endswith("\r") else s for s in lines)
  for i, s in enumerate(ids):
    if not s:
      raise DataError(f"{side}:{i + 1}: empty id")
  return ids, side


def _as_ids(ids: np.ndarray, path) -> tuple[str, ...]:
  ids = np.asarray(ids)
  if ids.ndim != 1:
    raise DataError(f"{path}: 'ids' has shape {list(ids.shape)}; expected one id per row [n]")
  if ids.dtype.kind == "S":
    try:
      return tuple(b.decode("utf-8") for b in ids.tolist())
    except UnicodeDecodeError:
      raise DataError(f"{path}: 'ids' holds bytes that are not UTF-8") from None
  if ids.dtype.kind in "iu":
    return tuple(str(int(i)) for i in ids.tolist())
  if ids.dtype.kind in "UO":
    return tuple(str(i) for i in ids.tolist())
  raise DataError(f"{path}: 'ids' has dtype {ids.dtype}; expected strings or integers")


def _encoder_name(value) -> str | None:
  value = np.asarray(value)
  return str(value.reshape(-1)[0]) if value.size and value.dtype.kind in "US" else None


def _check(vf: VectorsFile) -> None:
  """Shape, dtype, and the ids: as many as rows, distinct, non-empty."""
  path, v = vf.path, vf.vectors
  if str(v.dtype) not in _FLOATS:
    raise DataError(f"{path}: vectors have dtype {v.dtype}; expected float16, bfloat16, float32 "
                    f"or float64")
  if v.ndim != 2 or v.shape[1] == 0:
    raise DataError(f"{path}: vectors have shape {list(v.shape)}; expected [rows, dim] with "
                    f"dim >= 1")
  where = vf.sidecar or path
  if len(vf.ids) != v.shape[0]:
    raise DataError(f"{where}: {len(vf.ids)} ids for {v.shape[0]} rows of vectors in {path.name} "
                    f"(one id per row)")
  seen: dict[str, int] = {}
  for row, token in enumerate(vf.ids):
    if not token:
      raise DataError(f"{where}: row {row}: empty id")
    first = seen.setdefault(token, row)
    if first != row:
      raise DataError(f"{where}: duplicate id {checks.show(token)} at rows {first} and {row}")


# ----------------------------------------------------------------------------- the catalogue

@dataclasses.dataclass(frozen=True)
class Aligned:
  """A file's rows for each catalogue entry.

  Attributes:
    source: the file.
    rows: [n_catalogue] int64, the file row of each catalogue entry, -1 where the file has none.
    missing: catalogue entries without a vector.
    extra: file rows whose id is not in the catalogue (ignored).
  """

  source: VectorsFile
  rows: np.ndarray
  missing: int
  extra: int

  @property
  def has(self) -> np.ndarray:
    return self.rows >= 0


def align(vf: VectorsFile, tokens: Sequence[str], *, kind: str = "item",
          strict: bool = False) -> Aligned:
  """Matches the file's ids to the catalogue's (`Vocab.tokens`).

  Args:
    vf: the opened file.
    tokens: the catalogue's ids, index order.
    kind: "item" or "user", for messages.
    strict: refuse catalogue ids without a vector (else: a counted warning, zero vectors).

  Raises:
    DataError: under `strict`, naming the first catalogue id that has no vector.
  """
  index = {t: i for i, t in enumerate(vf.ids)}
  rows = np.fromiter((index.get(t, -1) for t in tokens), np.int64, count=len(tokens))
  missing = int((rows < 0).sum())
  extra = len(vf.ids) - (len(tokens) - missing)
  if missing:
    first = tokens[int(np.flatnonzero(rows < 0)[0])]
    if strict:
      raise DataError(f"{vf.path}: {missing:,} of the {len(tokens):,} {kind}s of the catalogue "
                      f"have no vector, e.g. {kind} {checks.show(first)} (strict_vectors; "
                      f"without it they get zero vectors and no text)")
    checks.warn(f"{vf.path}: {missing:,} of the {len(tokens):,} {kind}s of the catalogue have no "
                f"vector (e.g. {checks.show(first)}); they are treated as {kind}s without text "
                f"(zero vector, has_text false); strict_vectors=true refuses them")
  if extra:
    catalogue = set(tokens)
    first = next(t for t in vf.ids if t not in catalogue)
    checks.warn(f"{vf.path}: {extra:,} of its {len(vf.ids):,} ids are not {kind}s of the "
                f"catalogue (e.g. {checks.show(first)}); ignored")
  return Aligned(vf, rows, missing, extra)


def fill(aligned: Aligned, out: np.ndarray) -> np.ndarray:
  """Copies the catalogue's rows from the file into `out`, a block at a time.

  Args:
    aligned: from `align`.
    out: [n_catalogue, d] float32, written in place (rows without a vector are set to zero).

  Returns:
    has: [n_catalogue] bool, which rows have a vector.

  Raises:
    DataError: a NaN or infinite value, naming the file, its first bad row and that row's id.
  """
  vf, rows = aligned.source, aligned.rows
  if out.shape != (len(rows), vf.dim):
    raise ValueError(f"out has shape {out.shape}, expected {(len(rows), vf.dim)}")
  has = rows >= 0
  out[~has] = 0.0
  take = np.flatnonzero(has)  # catalogue positions with a vector
  step = max(1, _BLOCK_BYTES // (4 * vf.dim))
  for start in range(0, len(take), step):
    pos = take[start:start + step]
    src = rows[pos]
    order = np.argsort(src, kind="stable")  # ascending file offsets: sequential reads of a memmap
    block = np.asarray(vf.vectors[src[order]], dtype=np.float32)  # [b, d]
    bad = ~np.isfinite(block).all(axis=1)
    if bad.any():
      first = int(src[order][bad].min())
      raise DataError(f"{vf.path}: row {first} (id {checks.show(vf.ids[first])}) holds a NaN or "
                      f"infinite value")
    out[pos[order]] = block
  return has


def load_aligned(path: str | os.PathLike, tokens: Sequence[str], *, kind: str = "item",
                 strict: bool = False, dim: int | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                        VectorsFile]:
  """`(vectors [n, d] float32, has [n] bool, file)` for the catalogue `tokens` (Python API).

  `dim`: the dimension the caller needs (e.g. the item vectors' when reading users); another
  one is a `DataError`.
  """
  vf = read_vectors(path)
  check_dim(vf, dim, kind)
  aligned = align(vf, tokens, kind=kind, strict=strict)
  out = np.empty((len(tokens), vf.dim), np.float32)
  return out, fill(aligned, out), vf


def check_dim(vf: VectorsFile, dim: int | None, kind: str, other: str = "the item vectors"):
  if dim is not None and vf.dim != dim:
    raise DataError(f"{vf.path}: {kind} vectors are {vf.dim}-d but {other} are {dim}-d (one "
                    f"node-feature table holds both)")


# ------------------------------------------------------------------------------------ writing

def write_vectors(path: str | os.PathLike, ids: Sequence[str], vectors: np.ndarray, *,
                  encoder: str | None = None) -> list[pathlib.Path]:
  """Writes a vectors file that `read_vectors` reads back (format by suffix), atomically.

  Args:
    path: a `.npz` (uncompressed), `.npy` (plus its `.ids.txt` sidecar) or `.safetensors` file.
    ids: n distinct ids.
    vectors: [n, d] floats (written in their dtype).
    encoder: the model's name, stored in `.npz` and `.safetensors` files.

  Returns:
    the files written.
  """
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix not in FORMATS:
    raise DataError(f"{path}: unknown vectors format {path.suffix or '(no suffix)'!r}; expected "
                    f"one of {', '.join(FORMATS)}")
  ids = [str(i) for i in ids]
  vectors = np.ascontiguousarray(vectors)
  if vectors.ndim != 2 or len(ids) != vectors.shape[0]:
    raise ValueError(f"{len(ids)} ids for vectors of shape {vectors.shape}")
  if suffix == ".npz":
    def write(f):
      extra = {"encoder": np.array(encoder)} if encoder else {}
      np.savez(f, ids=np.array(ids, dtype=str), vectors=vectors, **extra)
    _atomic(path, write)
    return [path]
  if suffix == ".safetensors":
    meta = {"ids": json.dumps(ids), "format": "gnnrec-jax vectors"}
    if encoder:
      meta["encoder"] = encoder
    _atomic(path, lambda f: _write_safetensors(f, vectors, meta))
    return [path]
  bad = next((i for i in ids if "\n" in i or "\r" in i), None)
  if bad is not None:
    raise DataError(f"{path}: id {checks.show(bad)} holds a line break; a .npy's ids file has "
                    f"one id per line (use .npz or .safetensors)")
  _atomic(path, lambda f: np.save(f, vectors, allow_pickle=False))
  side = sidecar_path(path)
  _atomic(side, lambda f: f.write("".join(i + "\n" for i in ids).encode("utf-8")))
  return [path, side]


def _write_safetensors(f, vectors: np.ndarray, meta: dict) -> None:
  name = _ST_NAMES.get(str(vectors.dtype))
  if name is None:
    raise ValueError(f"cannot write {vectors.dtype} vectors to safetensors")
  header = {"__metadata__": meta,
            "vectors": {"dtype": name, "shape": list(vectors.shape),
                        "data_offsets": [0, int(vectors.nbytes)]}}
  raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
  raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as safetensors writes it
  f.write(struct.pack("<Q", len(raw)))
  f.write(raw)
  f.write(memoryview(vectors.reshape(-1).view(np.uint8)))


def _atomic(path: pathlib.Path, write) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the file from the user's group
    os.replace(tmp, path)
  except BaseException:
    try:
      os.unlink(tmp)
    except OSError:
      pass
    raise
