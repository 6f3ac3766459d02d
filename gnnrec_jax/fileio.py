"""Crash-safe writes of the small text files a run leaves in its workdir."""
from __future__ import annotations

import json
import os


def write_atomic(path: str, text: str | bytes) -> None:
  """Replaces `path` by `text` (or bytes) atomically: a crash leaves the old file or the new one."""
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    with open(tmp, "wb" if isinstance(text, bytes) else "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_json(path: str, obj) -> None:
  """`obj` as indented, key-sorted JSON, written atomically."""
  write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")
