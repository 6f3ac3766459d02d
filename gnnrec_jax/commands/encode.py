"""`gnnrec-jax encode`: embed a dataset's item (and user profile) texts into the disk cache.

  gnnrec-jax encode --dataset ml-100k [--model all-MiniLM-L6-v2] [--users history] [--batch-size 64]

Training with text features then reads the vectors from the cache instead of running the model.
User history vectors are not stored: they are the mean of the cached item vectors over the train
split, computed in milliseconds when training (`gnnrec_jax.text.node_texts.node_features`).
Prints counts, seconds, texts/s and the cache file per part, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
  from gnnrec_jax.data.cli_args import add_dataset_arguments
  add_dataset_arguments(parser)
  g = parser.add_argument_group("text encoder")
  g.add_argument("--model", default="all-MiniLM-L6-v2",
                 help="bundled all-MiniLM-L6-v2, a Hugging Face id or a local model folder "
                      "(BERT, RoBERTa, XLM-R, Llama, Mistral, Qwen2, Qwen3; safetensors weights)")
  g.add_argument("--users", choices=("history", "profile", "both", "none"), default="history",
                 help="user features: mean of train-item vectors (nothing to encode now), "
                      "profile sentence, both, or none")
  # `train --set text_features=...` encodes (or finds in the cache) with the defaults below;
  # vectors made with another pooling, length or dtype are cached under another key.
  g.add_argument("--pooling", choices=("auto", "mean", "cls", "last"), default="auto",
                 help="auto (default, what train uses): the model's own pipeline "
                      "(sentence-transformers' Pooling config, the model card's, else mean for "
                      "BERT-family and last token for decoder LLMs); or force mean, cls, last")
  g.add_argument("--instruction", default="",
                 help="encode the texts as queries with this task description in the model's "
                      "query template (default: as documents, without it)")
  g.add_argument("--max-length", type=int, default=256,
                 help="word pieces per text (truncated); train uses 256")
  g.add_argument("--batch-size", type=int, default=64, help="texts per jitted call")
  g.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                 help="computation dtype; auto (what train uses): float32 on CPU, bfloat16 on "
                      "GPU/TPU")
  g.add_argument("--cache-dir", default=None,
                 help="cache root (default $GNNREC_JAX_CACHE, $XDG_CACHE_HOME/gnnrec_jax or "
                      "~/.cache/gnnrec_jax)")
  g.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
  from gnnrec_jax.data.cli_args import dataset_from_args
  from gnnrec_jax.text import cache as text_cache
  from gnnrec_jax.text.encoder import EncoderSpec, TextEncoder
  from gnnrec_jax.text.node_texts import item_texts, user_profile_texts

  dataset = dataset_from_args(args)
  spec = EncoderSpec(args.model, pooling=args.pooling, max_length=args.max_length,
                     batch_size=args.batch_size, dtype=args.dtype,
                     instruction=args.instruction)
  parts = {"items": item_texts(dataset)}
  if args.users in ("profile", "both"):
    parts["users"] = user_profile_texts(dataset)

  encoder: TextEncoder | None = None
  load_seconds = 0.0
  report = {"dataset": dataset.name, "model": spec.name, "pooling": spec.pooling,
            "max_length": spec.max_length, "user_features": args.users}
  print(f"{dataset.name}: {dataset.num_users} users, {dataset.num_items} items; "
        f"model {spec.name} ({spec.pooling} pooling)")
  for part, (texts, has_text) in parts.items():
    present = [t for t, h in zip(texts, has_text) if h]
    path = text_cache.cache_path(spec, present, args.cache_dir)
    hit = path.is_file()
    if not hit and encoder is None:
      t0 = time.perf_counter()
      encoder = spec.load()  # loaded once, only when something is missing from the cache
      load_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    vecs = text_cache.encode_cached(encoder or spec, present, root=args.cache_dir,
                                    progress=not args.no_progress)
    seconds = time.perf_counter() - t0
    rate = len(present) / max(seconds, 1e-9)
    print(f"{part}: {len(texts)} ({len(texts) - len(present)} without text), "
          f"{vecs.shape[1]}-d, {'cached' if hit else 'encoded'} in {seconds:.2f} s "
          f"({rate:,.0f} texts/s) -> {path}")
    report[part] = {"count": len(texts), "with_text": len(present), "dim": int(vecs.shape[1]),
                    "seconds": round(seconds, 4), "texts_per_s": round(rate, 1),
                    "cache_hit": hit, "cache": str(path)}
  if args.users == "history":
    print("users: history vectors = mean of train-item vectors, computed when training")
  if encoder is not None:
    print(f"model load: {load_seconds:.2f} s")
  report["load_seconds"] = round(load_seconds, 4)
  print(json.dumps(report))
  return 0
