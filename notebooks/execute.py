"""Execute the notebooks in full mode, store them with their outputs, and export the README figures.

    python notebooks/execute.py                         # every notebook in notebooks/
    python notebooks/execute.py 02_speaker_plasticity   # just this one

The committed notebooks carry the outputs of this run, so they read well on a code host.  A code cell
tagged ``figure:NAME.png`` has its last image output saved as ``docs/notebooks/NAME.png``.
CI executes the same notebooks in fast mode (``NEURO_RM_FAST=1``) without writing anything:
tests/test_notebooks.py.
"""

from __future__ import annotations

import argparse
import base64
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
FIGURES = HERE.parent / "docs" / "notebooks"


def execute(path: Path, fast: bool = False, timeout: int = 1800) -> nbformat.NotebookNode:
    """Run ``path`` top to bottom in a fresh kernel (working directory: notebooks/) and return it."""
    nb = nbformat.read(path, as_version=4)
    os.environ["NEURO_RM_FAST"] = "1" if fast else "0"
    NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def export_figures(nb: nbformat.NotebookNode, folder: Path = FIGURES) -> list[Path]:
    """Save the last PNG output of every cell tagged ``figure:NAME.png``."""
    saved = []
    for cell in nb.cells:
        for tag in cell.get("metadata", {}).get("tags", []):
            if not tag.startswith("figure:"):
                continue
            images = [out["data"]["image/png"] for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
            if not images:
                raise ValueError(f"cell tagged {tag!r} produced no image")
            target = folder / tag.removeprefix("figure:")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(images[-1]))
            saved.append(target)
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all)")
    args = parser.parse_args()
    paths = [HERE / (n if n.endswith(".ipynb") else f"{n}.ipynb") for n in args.names] or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        start = time.perf_counter()
        nb = execute(path)
        nbformat.write(nb, path)
        figures = export_figures(nb)
        print(f"{path.name}: {time.perf_counter() - start:.0f} s, {path.stat().st_size / 1e6:.2f} MB, "
              f"figures {[str(f.name) for f in figures]}")


if __name__ == "__main__":
    main()
