"""`gnnrec-jax encode`: embed a dataset's item (and user profile) texts into the disk cache.

  gnnrec-jax encode --dataset ml-100k [--model all-MiniLM-L6-v2] [--users history] [--batch-size 64]
  gnnrec-jax encode --dataset ml-100k --out items.npz [--users profile --user-out users.npz]
  gnnrec-jax encode --texts lines.txt --out lines.npz [--ids ids.txt]

Training with text features then reads the vectors from the cache instead of running the model.
User history vectors are not stored: they are the mean of the cached item vectors over the train
split, computed in milliseconds when training (`gnnrec_jax.text.node_texts.node_features`).
`--out FILE` also writes the item vectors as a vectors file (`.npz`, `.npy` + `.ids.txt` or
`.safetensors`: `gnnrec_jax.text.vectors`), keyed by the dataset's item ids and naming the model,
which `train --item-vectors FILE` reads back (the same features, so the same metrics); items
without text are left out, as the text path gives them no vector. `--texts FILE` encodes one text
per line (every line, empty ones included) with the same model and settings, ids the line
numbers (1, 2, ...) or `--ids FILE`'s lines, to check our vectors against another pipeline.
Prints counts, seconds, texts/s and the cache file per part, then one JSON line.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

from gnnrec_jax.errors import DataError


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
  o = parser.add_argument_group("vectors files (gnnrec_jax/text/vectors.py)")
  o.add_argument("--out", default=None, metavar="FILE",
                 help="write the item vectors (or --texts') to FILE: .npz, .npy (+ NAME.ids.txt) "
                      "or .safetensors, for train --item-vectors FILE")
  o.add_argument("--user-out", default=None, metavar="FILE",
                 help="with --users profile|both: write the user profile vectors to FILE")
  o.add_argument("--texts", default=None, metavar="FILE",
                 help="encode this UTF-8 file's lines (one text per line) instead of a dataset; "
                      "needs --out")
  o.add_argument("--ids", default=None, metavar="FILE",
                 help="with --texts: one id per line for the texts (default: line numbers)")


def run(args: argparse.Namespace) -> int:
  from gnnrec_jax.data.cli_args import dataset_from_args
  from gnnrec_jax.text import cache as text_cache
  from gnnrec_jax.text.encoder import EncoderSpec, TextEncoder
  from gnnrec_jax.text import vectors as vectors_lib
  from gnnrec_jax.text.node_texts import item_texts, user_profile_texts

  spec = EncoderSpec(args.model, pooling=args.pooling, max_length=args.max_length,
                     batch_size=args.batch_size, dtype=args.dtype,
                     instruction=args.instruction)
  if args.texts:
    return _encode_texts(args, spec)
  if args.ids:
    raise DataError("--ids names the ids of --texts' lines; a dataset's items keep their own ids")
  if args.user_out and args.users not in ("profile", "both"):
    raise DataError("--user-out writes the users' profile vectors: add --users profile (history "
                    "vectors depend on the split: train computes them from the item vectors)")
  dataset = dataset_from_args(args)
  parts = {"items": item_texts(dataset)}
  if args.users in ("profile", "both"):
    parts["users"] = user_profile_texts(dataset)
  outs = {"items": args.out, "users": args.user_out}

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
    if outs[part]:
      vocab = dataset.items if part == "items" else dataset.users
      ids = [vocab.tokens[i] for i in np.flatnonzero(has_text)]
      written = vectors_lib.write_vectors(outs[part], ids, vecs, encoder=spec.name)
      print(f"{part}: {len(ids)} vectors -> {', '.join(map(str, written))}")
      report[part]["out"] = [str(w) for w in written]
  if args.users == "history":
    print("users: history vectors = mean of train-item vectors, computed when training")
  if encoder is not None:
    print(f"model load: {load_seconds:.2f} s")
  report["load_seconds"] = round(load_seconds, 4)
  print(json.dumps(report))
  return 0


def _read_lines(path: str, what: str) -> list[str]:
  """A UTF-8 file's lines (a final newline ends the last line; "\r\n" is read as "\n")."""
  try:
    raw = pathlib.Path(path).read_bytes()
  except FileNotFoundError:
    raise DataError(f"{path}: no such {what} file") from None
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    raise DataError(f"{path}:{line}: not UTF-8 text") from None
  lines = text.split("\n")
  if lines and lines[-1] == "":
    lines.pop()
  return [s[:-1] if s.endswith("\r") else s for s in lines]


def _encode_texts(args: argparse.Namespace, spec) -> int:
  """`--texts FILE --out F`: every line of FILE encoded, written with line numbers or --ids."""
  from gnnrec_jax.text import cache as text_cache
  from gnnrec_jax.text import vectors as vectors_lib
  if not args.out:
    raise DataError("--texts needs --out FILE (a .npz, .npy or .safetensors vectors file)")
  for flag, given in (("--dataset", args.dataset), ("--data-dir", args.data_dir),
                      ("--train", args.train), ("--user-out", args.user_out)):
    if given:
      raise DataError(f"--texts encodes a file of texts; drop {flag}")
  texts = _read_lines(args.texts, "texts")
  if not texts:
    raise DataError(f"{args.texts}: no lines to encode")
  if args.ids:
    ids = _read_lines(args.ids, "ids")
    if len(ids) != len(texts):
      raise DataError(f"{args.ids}: {len(ids)} ids for the {len(texts)} lines of {args.texts}")
    seen = {}
    for n, token in enumerate(ids, 1):
      if not token:
        raise DataError(f"{args.ids}:{n}: empty id")
      if seen.setdefault(token, n) != n:
        raise DataError(f"{args.ids}:{n}: duplicate id {token!r} (first at line {seen[token]})")
  else:
    ids = [str(n) for n in range(1, len(texts) + 1)]
  t0 = time.perf_counter()
  vecs = text_cache.encode_cached(spec, texts, root=args.cache_dir, progress=not args.no_progress)
  seconds = time.perf_counter() - t0
  written = vectors_lib.write_vectors(args.out, ids, vecs, encoder=spec.name)
  print(f"{args.texts}: {len(texts)} texts, {vecs.shape[1]}-d, model {spec.name} "
        f"({spec.pooling} pooling), {seconds:.2f} s -> {', '.join(map(str, written))}")
  print(json.dumps({"texts": str(args.texts), "count": len(texts), "dim": int(vecs.shape[1]),
                    "model": spec.name, "pooling": spec.pooling, "max_length": spec.max_length,
                    "seconds": round(seconds, 4), "out": [str(w) for w in written]}))
  return 0
