"""Removes outputs, execution counts and run metadata from notebooks before they are committed.

    python scripts/strip_notebooks.py                  # every notebooks/*.ipynb, in place
    python scripts/strip_notebooks.py a.ipynb b.ipynb  # the given files
    python scripts/strip_notebooks.py --check          # exit 1 if a file still has outputs

Executed notebooks differ on every run (timings, random numbers, image bytes), so outputs in git
only make noise; `tests/test_notebooks.py` checks that none are committed.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Cell metadata written by Jupyter/Colab while running; tags and other authored keys are kept.
RUN_METADATA = ("execution", "collapsed", "scrolled", "outputId", "executionInfo")


def strip(nb: nbformat.NotebookNode) -> bool:
  """Strips `nb` in place; returns True when anything changed."""
  changed = False
  for cell in nb.cells:
    if cell.cell_type != "code":
      continue
    if cell.get("outputs"):
      cell.outputs = []
      changed = True
    if cell.get("execution_count") is not None:
      cell.execution_count = None
      changed = True
    for key in RUN_METADATA:
      if key in cell.metadata:
        del cell.metadata[key]
        changed = True
  for key in ("widgets", "papermill"):
    if key in nb.metadata:
      del nb.metadata[key]
      changed = True
  return changed


def is_stripped(nb: nbformat.NotebookNode) -> bool:
  return not any(c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
                 for c in nb.cells)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("paths", nargs="*", type=pathlib.Path)
  parser.add_argument("--check", action="store_true", help="only report; exit 1 if not stripped")
  args = parser.parse_args(argv)
  paths = args.paths or sorted((ROOT / "notebooks").glob("*.ipynb"))
  dirty = []
  for path in paths:
    nb = nbformat.read(path, as_version=4)
    if args.check:
      if not is_stripped(nb):
        dirty.append(str(path))
    elif strip(nb):
      nbformat.write(nb, path)
      print(f"stripped {path}")
  if dirty:
    print("notebooks with outputs (run python scripts/strip_notebooks.py): " + ", ".join(dirty),
          file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
