"""Every notebook runs top to bottom in fast mode (NEURO_RM_FAST=1) and no cell fails.

The notebooks are executed in memory: the committed files, with their full-run outputs, are not touched.
"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_notebooks_are_there_and_stored_with_outputs():
    assert {"01_device.ipynb", "02_speaker_plasticity.ipynb", "03_energy.ipynb"} <= {p.name for p in NOTEBOOKS}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.execution_count for c in code), f"{path.name}: store it executed (python notebooks/execute.py)"
        assert any("image/png" in out.get("data", {}) for c in code for out in c.outputs), f"{path.name} shows no figure"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_fast_mode(path, monkeypatch):
    monkeypatch.setenv("NEURO_RM_FAST", "1")  # the kernel inherits this environment
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
