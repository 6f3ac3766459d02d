"""Text features for graph nodes from a pretrained language model.

`bert` is the language model (a Flax BERT reading Hugging Face safetensors weights), `encoder`
tokenises and embeds sentences with it (all-MiniLM-L6-v2 by default), `node_texts` writes one
sentence per item and user and lays the vectors out in the graph's node order, and `cache` keeps
the vectors on disk so that a model is loaded only when texts change; `vectors` reads and writes
precomputed vectors files (any encoder's output, matched to the catalogue by id).
"""
from gnnrec_jax.text.cache import cache_dir, cache_path, encode_cached
from gnnrec_jax.text.encoder import DEFAULT_MODEL, EncoderSpec, TextEncoder
from gnnrec_jax.text.vectors import load_aligned, read_vectors, write_vectors
from gnnrec_jax.text.node_texts import (
                                        item_texts,
                                        node_features,
                                        user_history_texts,
                                        user_history_vectors,
                                        user_profile_texts,
)

__all__ = [
    "DEFAULT_MODEL", "EncoderSpec", "TextEncoder", "cache_dir", "cache_path", "encode_cached",
    "item_texts", "load_aligned", "node_features", "read_vectors", "write_vectors", "user_history_texts", "user_history_vectors", "user_profile_texts",
]
