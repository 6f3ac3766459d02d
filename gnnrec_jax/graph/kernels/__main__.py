"""`python -m gnnrec_jax.graph.kernels`: build the native CPU kernels now and print where they are."""
import sys

from gnnrec_jax.graph import kernels

try:
  print(kernels.build(verbose=True))
except RuntimeError as e:
  print(f"native kernels not built: {e}\nthe csr backend will use scipy instead", file=sys.stderr)
  sys.exit(0)  # not fatal: the fallback works
