"""Text-encoder throughput: the ml-100k item sentences, cold (with compile) then warm.

  python benchmarks/bench_encoder.py [--model all-MiniLM-L6-v2] [--batch-size 64] \
      [--data-dir /path/to/ml-100k] [--dtype auto] [--repeats 1] [--texts items]

1,681 of the 1,682 items have a sentence (item 267 has no metadata). `--texts user_history`
encodes instead the 943 users' train-title texts of `text_features=history_text` (default random
split, seed 2020; most are truncated at 256 word pieces). Prints a human table, then
one JSON line (device, jax version, threads, seconds, items/s). The cache is not used: every pass
runs the model. `--dtype auto` is float32 on CPU and bfloat16 on GPU/TPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="all-MiniLM-L6-v2")
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--max-length", type=int, default=256)
  parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
  parser.add_argument("--data-dir", default=None,
                      help="ml-100k folder (GroupLens or RecBole atomic files); default: cache")
  parser.add_argument("--repeats", type=int, default=1, help="warm passes (the best is reported)")
  parser.add_argument("--texts", default="items", choices=("items", "user_history"))
  args = parser.parse_args(argv)

  import jax

  from gnnrec_jax.data.registry import load_dataset
  from gnnrec_jax.text.encoder import TextEncoder, embed_batch
  from gnnrec_jax.data.splits import make_split
  from gnnrec_jax.text.node_texts import item_texts, user_history_texts

  dataset = load_dataset("ml-100k", data_dir=args.data_dir)
  if args.texts == "items":
    texts, has_text = item_texts(dataset)
  else:
    texts, has_text = user_history_texts(dataset, make_split(dataset, "random").train)
  texts = [t for t, h in zip(texts, has_text) if h]

  t0 = time.perf_counter()
  enc = TextEncoder.load(args.model, batch_size=args.batch_size, max_length=args.max_length,
                         dtype=args.dtype)
  load_s = time.perf_counter() - t0
  pieces = np.array([len(x) for x in enc.tokenize(texts)])
  padded = sum(enc.bucket(int(pieces[i].max())) * args.batch_size
               for i in np.array_split(np.argsort(-pieces, kind="stable"),
                                       range(args.batch_size, len(texts), args.batch_size)))

  t0 = time.perf_counter()
  first = enc.encode(texts, progress=False)
  cold_s = time.perf_counter() - t0
  compiles = embed_batch._cache_size()
  warm_s = float("inf")
  for _ in range(max(1, args.repeats)):
    t0 = time.perf_counter()
    second = enc.encode(texts, progress=False)
    warm_s = min(warm_s, time.perf_counter() - t0)
  assert np.allclose(first, second, atol=1e-5), "two passes disagree"

  n = len(texts)
  device = jax.devices()[0]
  result = {
      "bench": "encoder", "model": enc.name, "dataset": "ml-100k", "texts": n,
      "text_kind": args.texts,
      "dim": enc.dim, "batch_size": args.batch_size, "dtype": enc.spec.dtype,
      "implementation": "gnnrec_jax.text.bert (Flax, safetensors + tokenizers)",
      "word_pieces_mean": round(float(pieces.mean()), 2), "word_pieces_max": int(pieces.max()),
      "padding_fraction": round(1 - float(pieces.sum()) / padded, 3),
      "programs_compiled": compiles, "load_s": round(load_s, 3),
      "cold_s": round(cold_s, 3), "cold_items_per_s": round(n / cold_s, 1),
      "warm_s": round(warm_s, 3), "warm_items_per_s": round(n / warm_s, 1),
      "device": f"{device.platform}:{device.device_kind}", "jax": jax.__version__,
      "threads": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
      "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
      "python": platform.python_version(),
  }
  print(f"{'pass':<22}{'seconds':>10}{'items/s':>12}")
  print(f"{'model load':<22}{load_s:>10.2f}{'':>12}")
  print(f"{'first (with compile)':<22}{cold_s:>10.2f}{n / cold_s:>12.1f}")
  print(f"{'second (warm)':<22}{warm_s:>10.2f}{n / warm_s:>12.1f}")
  print(f"{n} texts, {pieces.mean():.1f} word pieces on average (max {pieces.max()}), "
        f"{result['padding_fraction']:.0%} padding, {compiles} programs compiled; "
        f"{result['device']}, jax {jax.__version__}, {result['threads']} threads, "
        f"load average {result['load_avg_1m']}")
  print(json.dumps(result))
  return 0


if __name__ == "__main__":
  sys.exit(main())
