"""`python -m gnnrec_jax` is the `gnnrec-jax` command."""
import sys

from gnnrec_jax.cli import main

sys.exit(main())
