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


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module of ``from ... import``, relative forms (``from .x``, ``from ..y``) resolved."""
    if node.level == 0:
        return node.module or ""
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imported_units(path: Path) -> set[str]:
    units = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            parts = _absolute(path, node).split(".")
            if parts[0] == "neuro_rm":
                units.update([parts[1]] if len(parts) > 1 else [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            units.update(a.name.split(".")[1] for a in node.names if a.name.startswith("neuro_rm."))
            if any(a.name == "neuro_rm" for a in node.names):
                units.add("neuro_rm (the whole package: import the module you need)")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("import_module", "__import__"):
            units.add("a dynamic import (import the module by name)")
    return units


def _violations(ranks: dict[str, int]) -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "__init__.py":
            continue
        own = _unit(path)
        for unit in _imported_units(path) - {own}:
            if own not in ranks or unit not in ranks or ranks[unit] >= ranks[own]:
                found.append(f"{path.relative_to(ROOT)} (layer {ranks.get(own)}) imports {unit} (layer {ranks.get(unit)})")
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


def test_relative_and_dynamic_imports_are_seen(tmp_path):
    """Positive control for the parser: each form of import a module could sneak upwards with is found."""
    source = "from .auth import x\nfrom . import cli\nfrom ..layers import y\nimport neuro_rm\nimportlib.import_module('m')\n"
    probe = PACKAGE / "learning" / "_probe_.py"
    try:
        probe.write_text(source)
        units = _imported_units(probe)
    finally:
        probe.unlink()
    assert {"layers"} <= units and any("whole package" in u for u in units) and any("dynamic" in u for u in units)
    assert "learning" in units  # `from .auth` inside learning/ is learning.auth: a sibling, allowed


MAX_FUNCTION_LINES = 80  # a function longer than this holds more than one job: split it


def _long_functions(source: str, where: str) -> list[str]:
    """``where:line name (n lines)`` for every function or method in ``source`` longer than the limit."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_longer_than_the_limit():
    found = [f for path in sorted(PACKAGE.rglob("*.py")) for f in _long_functions(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == [], f"functions over {MAX_FUNCTION_LINES} lines: " + "; ".join(found)


def test_the_length_check_counts_every_line_of_a_function():
    """Positive control: a function of limit + 1 lines (nested inside a method, too) is named; one of the limit is not."""
    body = lambda n: "".join("    x = 1\n" for _ in range(n - 1))  # noqa: E731
    at_limit, over = f"def ok():\n{body(MAX_FUNCTION_LINES)}", f"def long():\n{body(MAX_FUNCTION_LINES + 1)}"
    assert _long_functions(at_limit, "m.py") == []
    assert _long_functions(over, "m.py") == [f"m.py:1 long ({MAX_FUNCTION_LINES + 1} lines)"]
    nested = "class C:\n    def f(self):\n" + "".join("        " + line + "\n" for line in over.splitlines())
    assert [f.split(" ", 1)[1] for f in _long_functions(nested, "m.py")][-1] == f"long ({MAX_FUNCTION_LINES + 1} lines)"
