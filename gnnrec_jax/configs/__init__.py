"""Per-model default configs: `gnnrec_jax/configs/<name>.py` each defines `get_config()`.

Each file's docstring holds the command that runs it; each non-default value carries its reason.
"""
from __future__ import annotations

import importlib

from gnnrec_jax.config import Config, validate
from gnnrec_jax.errors import ConfigError

NAMES = ("lightgcn", "softmax_gnn", "ngcf", "gat", "mf", "ease", "test")


def get_config(name: str) -> Config:
  """The default config called `name` (a model name, or "test" for the tiny CPU config)."""
  if name not in NAMES:
    raise ConfigError(f"unknown config {name!r}; choose one of {', '.join(NAMES)}")
  return validate(importlib.import_module(f"gnnrec_jax.configs.{name}").get_config())
