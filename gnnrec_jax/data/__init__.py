"""Datasets: loaders for each source format, all returning a `gnnrec_jax.data.types.Dataset`."""
from gnnrec_jax.data.checks import DataWarning
from gnnrec_jax.data.registry import DATASETS, load_dataset
from gnnrec_jax.data.types import Dataset, Interactions, Split, Vocab

__all__ = ["Dataset", "Interactions", "Split", "Vocab", "DataWarning", "DATASETS", "load_dataset"]
