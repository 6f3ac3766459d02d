"""Per-user metrics of a run, saved in its workdir for paired comparisons (`gnnrec-jax compare`).

`per_user_<part>.npz` (part: test or valid), written by `train` (test) and `evaluate`:
  user         [n] int32   the evaluated users' indices (users with a rankable held-out item)
  <metric>@K   [n] float32 recall, ndcg, precision, hit, mrr at each K
  meta         a JSON string: format, part, model, the split fingerprint
               (`gnnrec_jax.experiment.split_fingerprint`: dataset, catalogue, each part's size
               and content hash) and the run's fingerprint.
float32 keeps every metric to 7 digits (the means of `metrics.json` are float64 sums of the same
float32 values) at 4 bytes per user and metric: ml-100k's 943 users x 15 metrics take 24 KB
compressed (measured); Gowalla's 29,858 users would take at most 1.8 MB (the raw arrays).
"""
from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np

from gnnrec_jax import fileio
from gnnrec_jax.errors import CheckpointError

FORMAT = "gnnrec-jax-per-user"
PARTS = ("test", "valid")


def file_name(part: str) -> str:
  return f"per_user_{part}.npz"


def save(path: str, per_user: dict[str, np.ndarray], *, part: str, split: dict,
         model: str = "", fingerprint: str = "") -> str:
  """Writes the per-user arrays of `evaluate_full_ranking(..., return_per_user=True)` atomically.

  Args:
    path: the .npz file.
    per_user: {"user": [n], "<metric>@K": [n]}.
    part: "test" or "valid".
    split: the split fingerprint (`gnnrec_jax.experiment.split_fingerprint`).
    model: the model name (shown by `compare`).
    fingerprint: the run's fingerprint.
  """
  arrays = {"user": np.asarray(per_user["user"], np.int32)}
  for key, values in per_user.items():
    if key != "user":
      arrays[key] = np.asarray(values, np.float32)
  meta = {"format": FORMAT, "version": 1, "part": part, "model": model,
          "fingerprint": fingerprint, "split": split}
  arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
  buf = io.BytesIO()
  np.savez_compressed(buf, **arrays)
  fileio.write_atomic(path, buf.getvalue())
  return path


def load(path: str) -> tuple[dict, dict[str, np.ndarray]]:
  """(meta, arrays) of a per-user file, its schema checked.

  Raises:
    CheckpointError: a missing, damaged or foreign file (one line naming the file and what is
      wrong).
  """
  if not os.path.exists(path):
    raise CheckpointError(f"{path}: file not found")
  try:
    with np.load(path, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
  except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
    raise CheckpointError(f"{path}: not a per-user metrics file ({type(e).__name__}); "
                          "rewrite it with `gnnrec-jax evaluate`") from None
  raw = arrays.pop("meta", None)
  try:
    meta = json.loads(str(raw)) if raw is not None and raw.shape == () else None
  except json.JSONDecodeError:
    meta = None
  if not isinstance(meta, dict) or meta.get("format") != FORMAT:
    raise CheckpointError(f"{path}: field meta is missing or not a {FORMAT} header")
  for key, typ in (("part", str), ("split", dict)):
    if not isinstance(meta.get(key), typ):
      raise CheckpointError(f"{path}: meta field {key} is missing or of the wrong type")
  user = arrays.get("user")
  if user is None or user.ndim != 1 or user.dtype.kind not in "iu":
    raise CheckpointError(f"{path}: field user must be a 1-d integer array")
  n = len(user)
  for key, values in arrays.items():
    if key != "user" and (values.ndim != 1 or len(values) != n or values.dtype.kind != "f"):
      raise CheckpointError(f"{path}: field {key} must be a 1-d float array of {n} values "
                            "(one per user)")
  if len(np.unique(user)) != n:
    raise CheckpointError(f"{path}: field user lists a user twice")
  return meta, arrays
