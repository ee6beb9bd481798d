"""scripts/sets_table.py: issue 16's bars judged from the seeds runs' own reports, per seed and on the mean."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from neuro_rm.learning.seeds import aggregate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sets_table():
    spec = importlib.util.spec_from_file_location("sets_table", ROOT / "scripts/sets_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(folder: Path, margins: list[float], erase: list[float]) -> Path:
    """A folder laid out as `neuro-rm demo --seeds N --out` writes it, with the figures given per seed."""
    reports = [{"pretrain": {"margin_over_linear": m},
                "revoke": {"erase": {"retain_change_from_pretrain": e}, "suspend": {"retain_change_from_pretrain": 0.0}}}
               for m, e in zip(margins, erase, strict=True)]
    seeds = list(range(len(reports)))
    for seed, report in zip(seeds, reports, strict=True):
        (folder / f"seed_{seed}").mkdir(parents=True)
        (folder / f"seed_{seed}" / "report.json").write_text(json.dumps(report))
    (folder / "report.json").write_text(json.dumps(aggregate(reports, seeds)))
    return folder


def test_a_set_under_the_floor_is_reported_missed_beside_one_above(sets_table, tmp_path: Path) -> None:
    above = _run(tmp_path / "above", [0.02, 0.03, 0.025], [-0.01, 0.0, -0.005])
    below = _run(tmp_path / "below", [0.01, -0.05, 0.0], [-0.03, -0.04, -0.01])
    text = sets_table.render([("above", above), ("below", below)])
    floor = next(line for line in text.splitlines() if line.startswith("| RSNN at or above the linear floor"))
    above_cell, below_cell = floor.split(" | ")[1:3]
    assert above_cell.startswith("met on the mean and the interval") and "0 of 3 below" in above_cell
    assert below_cell.startswith("**missed** by 1.33 points") and "+1.0, -5.0, +0.0 (1 of 3 below)" in below_cell
    erase = next(line for line in text.splitlines() if line.startswith("| erase keeps"))
    assert erase.split(" | ")[2].startswith("**missed** by 0.67 points") and "(2 of 3 below)" in erase


def test_a_mean_that_clears_the_bar_with_an_interval_that_does_not_says_so(sets_table, tmp_path: Path) -> None:
    run = _run(tmp_path / "wide", [0.04, -0.01, 0.0], [0.0, 0.0, 0.0])
    text = sets_table.render([("wide", run)])
    assert "met on the mean, not on the interval" in text


def test_a_folder_without_a_seeds_report_names_the_command_to_run(sets_table, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="neuro-rm demo --seeds"):
        sets_table.render([("empty", tmp_path)])
