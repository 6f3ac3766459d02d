"""Native CPU kernels (XLA FFI custom calls) for sparse propagation: SpMM and SDDMM over CSR.

XLA's CPU gather/scatter streams every [E, d] message through memory; these kernels walk the
edges once, with each output row kept hot in cache, on XLA's own intra-op thread pool. They are
C++ (`csr_kernels.cc`, next to this file) compiled on first use with the machine's C++
compiler (`$CXX`, else g++, else c++) for the CPU it runs on (`-march=native`), and cached under
the package cache (`$GNNREC_JAX_CACHE`, else `$XDG_CACHE_HOME/gnnrec_jax`, else
`~/.cache/gnnrec_jax`) in `kernels/`, keyed by the source, jaxlib version, compiler and CPU, so
a shared home directory on mixed machines gets one build per CPU kind. `bash scripts/install.sh`
builds it at install time (`python -m gnnrec_jax.graph.kernels`).

Where no compiler is found or the build fails, `available()` is False, one warning says why, and
the `csr` propagation backend falls back to scipy behind `jax.pure_callback`
(`gnnrec_jax.graph.propagate`), which gives the same numbers more slowly. `GNNREC_NATIVE=0` turns the
kernels off; `GNNREC_CSR_THREADS=n` caps their threads (default: XLA's pool, one per core).

Functions (float32; edges sorted by receiver, which each call checks):
  spmm(receivers, senders, weights [E, H], x [N, width], transpose) -> [N, width]
  sddmm(receivers, senders, a [N, width], b [N, width], heads) -> [E, heads]
"""
from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings

import jax
import jax.numpy as jnp
import numpy as np

SOURCE = pathlib.Path(__file__).with_name("csr_kernels.cc")
FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-std=c++17", "-shared", "-fPIC")
_TARGETS = {"gnnrec_spmm": "GnnrecSpmm", "gnnrec_sddmm": "GnnrecSddmm"}
_error: str | None = None


def _compiler() -> str | None:
  for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
    path = shutil.which(name) if name else None
    if path:
      return path
  return None


def _cpu_id() -> str:
  """What -march=native depends on: the machine and, on Linux, the CPU's model and flags."""
  ident = platform.machine()
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith(("model name", "flags", "Features")):
          ident += line
        if line.strip() == "":
          break  # the first CPU is enough
  except OSError:
    pass
  return ident


def library_path(compiler: str) -> pathlib.Path:
  """Where the compiled library for this source, jaxlib, compiler and CPU lives."""
  import jaxlib

  from gnnrec_jax.data.movielens import cache_root
  key = hashlib.sha256()
  for part in (SOURCE.read_bytes(), jaxlib.__version__.encode(), compiler.encode(),
               " ".join(FLAGS).encode(), _cpu_id().encode()):
    key.update(part)
    key.update(b"\0")
  return cache_root() / "kernels" / f"gnnrec_csr_{key.hexdigest()[:16]}.so"


def build(*, verbose: bool = False) -> pathlib.Path:
  """Compiles the kernels if no cached build exists; returns the library's path.

  Raises:
    RuntimeError: no C++ compiler, or the compiler failed (its output is in the message).
  """
  if not SOURCE.is_file():
    raise RuntimeError(f"the kernel source {SOURCE} is missing from this installation (a "
                       "gnnrec-jax wheel built without its package data); reinstall gnnrec-jax "
                       "from a current checkout or wheel")
  compiler = _compiler()
  if compiler is None:
    raise RuntimeError("no C++ compiler found ($CXX, g++, c++ or clang++)")
  path = library_path(compiler)
  if path.exists():
    return path
  path.parent.mkdir(parents=True, exist_ok=True)
  # Compile to a temporary name, then rename: concurrent processes never see half a library.
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
  os.close(fd)
  cmd = [compiler, *FLAGS, f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", tmp]
  if verbose:
    print(" ".join(cmd), file=sys.stderr)
  proc = subprocess.run(cmd, capture_output=True, text=True)
  if proc.returncode:
    os.unlink(tmp)
    raise RuntimeError(f"compiling {SOURCE.name} failed ({' '.join(cmd)}):\n"
                       f"{proc.stderr[-4000:]}")
  os.replace(tmp, path)
  return path


@functools.cache
def _register() -> bool:
  global _error
  if os.environ.get("GNNREC_NATIVE", "1") == "0":
    _error = "turned off by GNNREC_NATIVE=0"
    return False
  try:
    import ctypes
    lib = ctypes.cdll.LoadLibrary(str(build()))
    for target, symbol in _TARGETS.items():
      jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)),
                                  platform="cpu")
  except Exception as e:  # noqa: BLE001 - any failure means: use the scipy fallback
    _error = f"{type(e).__name__}: {e}"
    warnings.warn(f"gnnrec_jax native CPU kernels unavailable ({_error}); the csr backend "
                  "falls back to scipy (same results, 3-5x slower; GNNREC_NATIVE=0 silences "
                  "this)", RuntimeWarning, stacklevel=3)
    return False
  return True


def available() -> bool:
  """Whether the native kernels are built and registered (builds them on the first call)."""
  return _register()


def unavailable_reason() -> str | None:
  """Why `available()` is False (None when it is True or was not asked yet)."""
  return _error


def max_threads() -> int:
  """$GNNREC_CSR_THREADS, or 0: as many threads as XLA's CPU pool has."""
  return max(0, int(os.environ.get("GNNREC_CSR_THREADS") or 0))


def _require() -> None:
  if not available():
    raise RuntimeError(f"gnnrec_jax native kernels unavailable: {_error}")


def spmm(receivers: jax.Array, senders: jax.Array, weights: jax.Array, x: jax.Array, *,
         transpose: bool = False, weight_index: jax.Array | None = None) -> jax.Array:
  """A x for A[receivers[e], senders[e]] = weights[e, h]; x [N, H * dh] float32.

  transpose: A^T x instead (any graph; the kernel re-sorts the edges by sender).
  weight_index: [E] int; edge e then carries weights[weight_index[e]]. With the reverse-edge
    permutation of a structurally symmetric graph (`graph.edges["reverse"]`) this gives A^T x
    without re-sorting.
  """
  _require()
  call = jax.ffi.ffi_call("gnnrec_spmm", jax.ShapeDtypeStruct(x.shape, jnp.float32),
                          vmap_method="sequential")
  index = (jnp.zeros((0,), jnp.int32) if weight_index is None
           else weight_index.astype(jnp.int32))
  return call(receivers.astype(jnp.int32), senders.astype(jnp.int32),
              weights.astype(jnp.float32), index, x.astype(jnp.float32),
              transpose=bool(transpose), max_threads=np.int64(max_threads()))


def sddmm(receivers: jax.Array, senders: jax.Array, a: jax.Array, b: jax.Array, *,
          heads: int = 1) -> jax.Array:
  """out[e, h] = <a[receivers[e], h], b[senders[e], h]>; a, b [N, H * dh] float32."""
  _require()
  call = jax.ffi.ffi_call("gnnrec_sddmm",
                          jax.ShapeDtypeStruct((senders.shape[0], heads), jnp.float32),
                          vmap_method="sequential")
  return call(receivers.astype(jnp.int32), senders.astype(jnp.int32),
              a.astype(jnp.float32), b.astype(jnp.float32), max_threads=np.int64(max_threads()))
