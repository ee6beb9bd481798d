"""ARCHITECTURE.md's layer table is the import rule: every module is listed, every import points down."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "neuro_rm"


def _layers(text: str) -> dict[str, int]:
    """Unit name → layer number, from the table rows `| n | `a`, `b` | job |`."""
    ranks = {}
    for number, modules in re.findall(r"^\| (\d+) \| ([^|]+) \|", text, flags=re.MULTILINE):
        for unit in re.findall(r"`([a-z_]+)`", modules):
            ranks[unit] = int(number)
    return ranks


def _unit(path: Path) -> str:
    """The top-level unit a file belongs to: `learning` for learning/erase.py, `auth` for auth.py."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_units(path: Path) -> set[str]:
    units = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "neuro_rm":
            parts = node.module.split(".")
            units.update([parts[1]] if len(parts) > 1 else [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            units.update(a.name.split(".")[1] for a in node.names if a.name.startswith("neuro_rm."))
    return units


def _violations(ranks: dict[str, int]) -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "__init__.py":
            continue
        own = _unit(path)
        for unit in _imported_units(path) - {own}:
            if unit not in ranks or ranks[unit] >= ranks[own]:
                found.append(f"{path.relative_to(ROOT)} (layer {ranks[own]}) imports {unit} (layer {ranks.get(unit)})")
    return found


def test_every_module_is_placed_in_a_layer():
    ranks = _layers((ROOT / "ARCHITECTURE.md").read_text())
    units = {_unit(p) for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py"}
    assert units - set(ranks) == set(), "modules missing from ARCHITECTURE.md's layer table"
    assert set(ranks) - units == set(), "ARCHITECTURE.md lists modules that do not exist"


def test_imports_run_one_way():
    assert _violations(_layers((ROOT / "ARCHITECTURE.md").read_text())) == []


@pytest.mark.parametrize("swap", [("auth", "learning"), ("crossbar", "device")])
def test_the_check_catches_an_import_that_points_up(swap):
    """Positive control: with two layers' numbers swapped, the real imports between them are flagged."""
    ranks = _layers((ROOT / "ARCHITECTURE.md").read_text())
    upper, lower = swap
    ranks[upper], ranks[lower] = ranks[lower], ranks[upper]
    assert any(f"imports {lower} " in v for v in _violations(ranks))
