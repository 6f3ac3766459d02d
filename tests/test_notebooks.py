"""The notebooks in notebooks/ run top to bottom and are committed without outputs.

Each notebook is executed with nbclient under GNNREC_NOTEBOOK_SMOKE=1 (tiny settings), with
notebooks/ as the working folder and run workdirs in a temporary folder. The kernel is this
interpreter (`sys.executable`), through a kernelspec written to a temporary folder, so the test
never picks up another environment's `python3` kernel. A cell that raises (the notebooks assert
the numbers they print) fails the test with the cell's traceback.
"""
from __future__ import annotations

import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "gnnrec-jax-test"


def _script(name: str):
  spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_all_five_notebooks_exist():
  assert NOTEBOOKS == ["01_quickstart.ipynb", "02_seed_walkthrough.ipynb",
                       "03_text_features_and_cold_start.ipynb", "04_explanations.ipynb",
                       "05_social_lastfm.ipynb"]


def test_notebooks_match_their_generator():
  """notebooks/*.ipynb are exactly what scripts/make_notebooks.py writes (no hand edits)."""
  make = _script("make_notebooks")
  assert sorted(make.NOTEBOOKS) == NOTEBOOKS
  for name, cells in make.NOTEBOOKS.items():
    assert (NOTEBOOK_DIR / name).read_text() == make.render(cells), (
        f"{name} differs from scripts/make_notebooks.py; run python scripts/make_notebooks.py")


def _committed_versions():
  """(label, json text) of each notebook on disk and, when tracked, in the git index and HEAD."""
  out = [(f"{n} (working tree)", (NOTEBOOK_DIR / n).read_text()) for n in NOTEBOOKS]
  git = shutil.which("git")
  if git is None or not (ROOT / ".git").exists():
    return out
  for n in NOTEBOOKS:
    for rev, label in ((":", "index"), ("HEAD:", "HEAD")):
      res = subprocess.run([git, "show", f"{rev}notebooks/{n}"], cwd=ROOT, capture_output=True,
                           text=True)
      if res.returncode == 0:  # not tracked yet: nothing committed to check
        out.append((f"{n} ({label})", res.stdout))
  return out


def test_notebooks_are_stored_without_outputs():
  strip = _script("strip_notebooks")
  for label, text in _committed_versions():
    nb = nbformat.reads(text, as_version=4)
    dirty = [k for k, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{label}: cells {dirty} carry outputs; run python scripts/strip_notebooks.py"
    assert strip.is_stripped(nb)


def test_strip_removes_outputs(tmp_path):
  """The strip script itself: an executed-looking notebook comes back clean, tags kept."""
  strip = _script("strip_notebooks")
  cell = nbformat.v4.new_code_cell("print(1)", execution_count=3,
                                   outputs=[nbformat.v4.new_output("stream", text="1\n")])
  cell.metadata.update({"tags": ["parameters"], "execution": {"iopub.status.idle": "x"}})
  path = tmp_path / "x.ipynb"
  nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
  assert strip.main(["--check", str(path)]) == 1
  assert strip.main([str(path)]) == 0
  clean = nbformat.read(path, as_version=4).cells[0]
  assert clean.outputs == [] and clean.execution_count is None
  assert clean.metadata == {"tags": ["parameters"]}
  assert strip.main(["--check", str(path)]) == 0


@pytest.fixture(scope="module")
def kernel_spec_dir(tmp_path_factory):
  """A kernelspec that launches this very interpreter."""
  folder = tmp_path_factory.mktemp("kernels")
  (folder / KERNEL).mkdir()
  (folder / KERNEL / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "gnnrec-jax test", "language": "python"}))
  return folder


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, kernel_spec_dir, tmp_path, monkeypatch):
  from jupyter_client.kernelspec import KernelSpecManager
  from jupyter_client.manager import KernelManager

  monkeypatch.setenv("GNNREC_NOTEBOOK_SMOKE", "1")
  monkeypatch.setenv("GNNREC_NOTEBOOK_RUNS", str(tmp_path / "runs"))
  nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
  km = KernelManager(kernel_name=KERNEL,
                     kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_spec_dir)]))
  client = nbclient.NotebookClient(nb, km=km, timeout=600,
                                   resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
  client.execute()  # raises CellExecutionError (with the traceback) if any cell fails
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error"]
  assert not errors
