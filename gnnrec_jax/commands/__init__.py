"""The `gnnrec-jax` subcommands, one module each (see `gnnrec_jax.cli`)."""
