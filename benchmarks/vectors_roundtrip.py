"""Round trip of issue 24: `encode --out F` then `train --item-vectors F` against the text path.

    python benchmarks/vectors_roundtrip.py [--dataset ml-100k] [--format npz] [--epochs N] \
        [--out /tmp/vec-roundtrip]

Runs, in one process, through the CLI:
  1. `gnnrec-jax encode --dataset D --out OUT/items.FORMAT` (MiniLM; the text cache is reused),
  2. `gnnrec-jax train --model lightgcn --dataset D --set text_features=history` (today's path:
     item texts encoded by the text model, users the mean of their train items' vectors),
  3. `gnnrec-jax train --model lightgcn --dataset D --item-vectors OUT/items.FORMAT`,
and compares every test metric of 2 and 3 (the goal: equal to 1e-6). Prints a table, then one
JSON line.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from gnnrec_jax import cli  # noqa: E402


def _run(*argv) -> tuple[dict, float, str]:
  out, err = io.StringIO(), io.StringIO()
  t0 = time.perf_counter()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = cli.main([str(a) for a in argv])
  seconds = time.perf_counter() - t0
  if code != 0:
    raise SystemExit(f"{' '.join(map(str, argv))} failed ({code}):\n{err.getvalue()}")
  return json.loads(out.getvalue().strip().splitlines()[-1]), seconds, err.getvalue()


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--dataset", default="ml-100k")
  p.add_argument("--format", choices=("npz", "npy", "safetensors"), default="npz")
  p.add_argument("--epochs", type=int, default=None, help="default: lightgcn's config")
  p.add_argument("--out", default="/tmp/vec-roundtrip")
  a = p.parse_args()
  os.makedirs(a.out, exist_ok=True)
  f = os.path.join(a.out, f"items.{a.format}")
  extra = ["--set", f"epochs={a.epochs}"] if a.epochs else []
  common = ["--model", "lightgcn", "--dataset", a.dataset, "--no-progress", "--overwrite", *extra]
  enc, enc_s, _ = _run("encode", "--dataset", a.dataset, "--no-progress", "--out", f)
  text, text_s, _ = _run("train", *common, "--set", "text_features=history",
                         "--workdir", os.path.join(a.out, "text"))
  vec, vec_s, vec_err = _run("train", *common, "--item-vectors", f,
                             "--workdir", os.path.join(a.out, "vec"))
  keys = sorted(k for k in text if isinstance(text[k], (int, float)))
  diff = {k: abs(float(vec[k]) - float(text[k])) for k in keys}
  print(f"{'metric':<16} {'text path':>10} {'--item-vectors':>15} {'|diff|':>9}")
  for k in keys:
    print(f"{k:<16} {text[k]:>10.6f} {vec[k]:>15.6f} {diff[k]:>9.2e}")
  warnings = [l for l in vec_err.splitlines() if "warning" in l]
  for w in warnings:
    print(w)
  print(json.dumps({"bench": "vectors_roundtrip", "dataset": a.dataset, "format": a.format,
                    "epochs": a.epochs, "file": f, "encoded": enc["items"]["with_text"],
                    "max_abs_diff": max(diff.values()), "equal_1e-6": max(diff.values()) <= 1e-6,
                    "text": {k: text[k] for k in keys}, "vectors": {k: vec[k] for k in keys},
                    "seconds": {"encode": round(enc_s, 1), "train_text": round(text_s, 1),
                                "train_vectors": round(vec_s, 1)},
                    "load": os.getloadavg()[0]}))


if __name__ == "__main__":
  main()
