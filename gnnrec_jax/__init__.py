"""gnnrec-jax: graph-neural-network recommendation in JAX with language-model node features."""

__version__ = "0.1.0"
