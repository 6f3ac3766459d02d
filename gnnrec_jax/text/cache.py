"""On-disk cache of text vectors, so a language model runs once per (model, texts, settings).

Layout: `<cache_dir>/text/<model>/<sha256>.npy`, one [n, d] float32 array per set of texts. The
key hashes the model name, pooling, max_length, dtype and every text (length-prefixed, so that no
two lists of texts share a byte stream). Files are written to a temporary name and renamed, so a
reader never sees half a file; an unreadable or mis-shaped file is recomputed with a warning.

The key names a model, not its weights: after changing the weights in a local model folder, clear
`<cache_dir>/text/<model>/`.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import re
import tempfile
import warnings
from typing import Sequence

import numpy as np

from gnnrec_jax.data.movielens import cache_root
from gnnrec_jax.text.encoder import EncoderSpec, TextEncoder

_KEY_VERSION = b"gnnrec-jax text cache v1\n"


def cache_dir() -> pathlib.Path:
  """The package cache root, shared with the datasets (`gnnrec_jax.data.movielens.cache_root`):
  `$GNNREC_JAX_CACHE`, else `$XDG_CACHE_HOME/gnnrec_jax`, else `~/.cache/gnnrec_jax`."""
  return cache_root()


def _spec(encoder: TextEncoder | EncoderSpec) -> EncoderSpec:
  # Duck-typed (a loaded encoder has `.spec` and `.encode`) so tests and wrappers can stand in.
  return encoder if isinstance(encoder, EncoderSpec) else encoder.spec


def texts_key(spec: EncoderSpec, texts: Sequence[str]) -> str:
  """sha256 hex digest of the model name, pooling, max_length, dtype, instruction and texts."""
  h = hashlib.sha256(_KEY_VERSION)
  header = f"{spec.name}\n{spec.pooling}\n{int(spec.max_length)}\n{spec.dtype}\n{len(texts)}\n"
  if getattr(spec, "instruction", ""):  # queries; keys of documents are as before
    header += f"instruction\n{spec.instruction}\n"
  h.update(header.encode("utf-8"))
  for t in texts:
    b = str(t).encode("utf-8")
    h.update(len(b).to_bytes(8, "little"))
    h.update(b)
  return h.hexdigest()


def _model_dirname(name: str) -> str:
  # Hub ids have a slash and local folders are absolute paths: flatten to one safe folder name.
  return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def cache_path(encoder: TextEncoder | EncoderSpec, texts: Sequence[str],
               root: str | os.PathLike | None = None) -> pathlib.Path:
  """Where the vectors of `texts` under this encoder are (or will be) stored."""
  spec = _spec(encoder)
  base = pathlib.Path(root) if root is not None else cache_dir()
  return base / "text" / _model_dirname(spec.name) / f"{texts_key(spec, texts)}.npy"


def _read(path: pathlib.Path, n: int) -> np.ndarray | None:
  """The cached [n, d] array, or None (with a warning) when the file is unusable."""
  try:
    vecs = np.load(path, allow_pickle=False)
  except FileNotFoundError:
    return None
  except Exception as e:  # truncated or garbled: np.load raises ValueError, EOFError, OSError...
    warnings.warn(f"text cache {path} is unreadable ({type(e).__name__}: {e}); recomputing",
                  RuntimeWarning, stacklevel=3)
    return None
  if (vecs.ndim != 2 or vecs.shape[0] != n or vecs.dtype != np.float32
      or not np.isfinite(vecs).all()):
    warnings.warn(f"text cache {path} holds a {vecs.dtype} array of shape {vecs.shape}, expected "
                  f"[{n}, d] finite float32; recomputing", RuntimeWarning, stacklevel=3)
    return None
  return vecs


def _write_atomic(path: pathlib.Path, vecs: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
  try:
    with os.fdopen(fd, "wb") as f:
      np.save(f, vecs, allow_pickle=False)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    raise


def encode_cached(encoder_factory: TextEncoder | EncoderSpec, texts: Sequence[str], *,
                  root: str | os.PathLike | None = None, progress: bool = True) -> np.ndarray:
  """Vectors of `texts` from the cache, else encoded and stored.

  Args:
    encoder_factory: a loaded `TextEncoder`, or an `EncoderSpec` that is loaded only on a miss
      (so a warm cache never loads the language model).
    texts: n strings.
    root: cache root (default `cache_dir()`).
    progress: show the encoder's progress bar on a miss.

  Returns:
    [n, d] float32 L2-normalised vectors, in the order of `texts`.
  """
  texts = [str(t) for t in texts]
  path = cache_path(encoder_factory, texts, root)
  vecs = _read(path, len(texts))
  if vecs is not None:
    return vecs
  encoder = encoder_factory.load() if isinstance(encoder_factory, EncoderSpec) else encoder_factory
  vecs = np.ascontiguousarray(encoder.encode(texts, progress=progress), dtype=np.float32)
  _write_atomic(path, vecs)
  return vecs
