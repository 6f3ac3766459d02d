"""Datasets: loaders for each source format, all returning a `gnnrec_jax.data.types.Dataset`."""
from gnnrec_jax.data.types import Dataset, Interactions, Split, Vocab

__all__ = ["Dataset", "Interactions", "Split", "Vocab"]
