"""The user-item graph: building it (build.py), passing messages over it (propagate.py) and
the native CPU kernels behind propagation (kernels/)."""
