"""scripts/sets_table.py: issue 16's bars judged from the seeds runs' own reports, by the interval, with the mean and seeds."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import load_script

from neuro_rm.learning.continual import ENROLL
from neuro_rm.learning.seeds import aggregate
from neuro_rm.tasks.runner import code_digest
from neuro_rm.tasks.speaker import DemoConfig, fast, recipe


@pytest.fixture(scope="module")
def sets_table():
    return load_script("sets_table")


def _run(folder: Path, margins: list[float], erase: list[float], first_seed: int = 0, speakers: str = "a b c",
         **extra: object) -> Path:
    """A folder laid out as `neuro-rm demo --seeds N --seed K --out` writes it, with the figures given per seed
    (``extra``: top-level values every seed's report holds alike)."""
    reports = [{"speakers": speakers, **extra, "pretrain": {"margin_over_linear": m},
                "revoke": {"erase": {"retain_change_from_pretrain": e}, "suspend": {"retain_change_from_pretrain": 0.0}}}
               for m, e in zip(margins, erase, strict=True)]
    seeds = list(range(first_seed, first_seed + len(reports)))
    for seed, report in zip(seeds, reports, strict=True):
        (folder / f"seed_{seed}").mkdir(parents=True)
        (folder / f"seed_{seed}" / "report.json").write_text(json.dumps(report))
    (folder / "report.json").write_text(json.dumps(aggregate(reports, seeds)))
    return folder


def _bar(text: str, starts: str) -> list[str]:
    return next(line for line in text.splitlines() if line.startswith(starts)).split(" | ")[1:]


def test_the_interval_decides_met_missed_or_not_determined(sets_table, tmp_path: Path) -> None:
    above = _run(tmp_path / "above", [0.02, 0.03, 0.025], [-0.01, 0.0, -0.005])
    below = _run(tmp_path / "below", [-0.03, -0.04, -0.035], [-0.03, -0.04, -0.01])
    text = sets_table.render([("above", above), ("below", below)])
    above_cell, below_cell = _bar(text, "| RSNN at or above the linear floor")
    assert above_cell.startswith("met: mean +2.50 [+1.3, +3.7]") and "0 of 3 below" in above_cell
    assert below_cell.startswith("**missed**: mean -3.50") and "-3.0, -4.0, -3.5 (3 of 3 below)" in below_cell
    erase = _bar(text, "| erase leaves")
    assert erase[0].startswith("met") and erase[1].startswith("**not determined**: mean -2.67") and "(2 of 3 below)" in erase[1]


def test_a_mean_that_clears_the_bar_with_an_interval_that_does_not_is_not_called_met(sets_table, tmp_path: Path) -> None:
    run = _run(tmp_path / "wide", [0.04, -0.01, 0.0], [0.0, 0.0, 0.0])
    floor = _bar(sets_table.render([("wide", run)]), "| RSNN at or above the linear floor")[0]
    assert floor.startswith("**not determined**: mean +1.00") and "(1 of 3 below)" in floor


def test_a_folder_without_a_seeds_report_names_the_command_to_run(sets_table, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="neuro-rm demo --seeds"):
        sets_table.render([("empty", tmp_path)])


def test_a_single_run_folder_is_refused_by_name_alone_or_as_a_part(sets_table, tmp_path: Path) -> None:
    """Review (session 28): a folder of one `neuro-rm demo --out` run (no ``seeds`` in its report) raised KeyError."""
    single = tmp_path / "single"
    single.mkdir()
    (single / "report.json").write_text(json.dumps({"pretrain": {"margin_over_linear": 0.01}}))
    seeded = _run(tmp_path / "seeded", [0.02, 0.03], [0.0, 0.0])
    for folders in (single, [seeded, single]):
        with pytest.raises(ValueError, match="one run's report.*--seeds N"):
            sets_table.render([("set", folders)])


def test_a_set_run_in_parts_is_pooled_into_one_column_of_all_its_seeds(sets_table, tmp_path: Path) -> None:
    """Seeds run in two processes (``--seed 0 --seeds 2`` and ``--seed 2 --seeds 2``) judged as one run of four:
    the interval narrows with the seeds pooled; a seed given twice, or parts of different sets, are refused."""
    first = _run(tmp_path / "first", [0.02, 0.03], [-0.01, 0.0])
    second = _run(tmp_path / "second", [0.025, 0.02], [-0.005, -0.01], first_seed=2)
    alone = _bar(sets_table.render([("part", first)]), "| RSNN at or above the linear floor")[0]
    pooled_text = sets_table.render([("set", [first, second])])
    pooled = _bar(pooled_text, "| RSNN at or above the linear floor")[0]
    assert "set, 4 seeds" in pooled_text and alone.startswith("**not determined**")  # 2 seeds: t(1) is wide
    assert pooled.startswith("met: mean +2.38") and "+2.0, +3.0, +2.5, +2.0 (0 of 4 below)" in pooled
    with pytest.raises(ValueError, match="each seed may come once"):
        sets_table.render([("set", [first, first])])
    other = _run(tmp_path / "other", [0.02, 0.03], [-0.01, 0.0], first_seed=4, speakers="x y z")
    with pytest.raises(ValueError, match="not runs of one set and recipe: 1 setting.s. differ, 'speakers'"):
        sets_table.render([("set", [first, other])])
    reversed_text = sets_table.render([("set", [second, first])])  # the seeds in order, whichever part comes first
    assert reversed_text == pooled_text


@pytest.mark.parametrize("first, second, pooled", [
    ({"readout": {"drift_compensation": "none"}}, {"readout": {"drift_compensation": "global"}}, False),  # a setting
    ({"schedule": {"revoke_s": 86400}}, {"schedule": {"revoke_s": 3600}}, False),  # a number with no spread
    ({"schedule": {"revoke_s": 86400}}, {}, False),  # reported by one part only
    ({"pretrain": {"lr": 3e-4}}, {"pretrain": {"lr": 1e-3}}, True),  # chosen by each seed on its validation split
    ({"recipe": {"unlearn_epochs": 30}}, {"recipe": {"unlearn_epochs": 2}}, False),  # a --fast part beside a full one
    # review (session 30): a batch size leaves only its step count; a machine's GPU status is no setting
    ({"energy": {"training_steps": {"enroll": 209}}}, {"energy": {"training_steps": {"enroll": 418}}}, False),
    ({"energy": {"gpu_nvml": "skipped: no CUDA device"}}, {"energy": {"gpu_nvml": "skipped: pynvml is not installed"}}, True),
    ({"verify": {"eer_new": 0.05}}, {}, False),  # a measured figure only one part reports: reports of other code
    # review (session 30): a measured rate that ties over a part's two seeds is no setting (93 of 210 real splits refused)
    ({"revoke": {"suspend": {"revoked_accept_rate": 10 / 155}}}, {"revoke": {"suspend": {"revoked_accept_rate": 3 / 155}}}, True),
    # review (session 30): a batch size, a learning rate, the unlearning method or the audit cohort shows in no
    # number; the digest of every setting does, and the code's digest tells reports of other code apart
    ({"recipe": {"config": "521fd4506b151ff7"}}, {"recipe": {"config": "0b7c5e21a9d3f6e4"}}, False),
    ({"code": {"digest": "3f963ada4efc13cc"}}, {"code": {"digest": "9a1e0c55d2b7f381"}}, False),
])
def test_parts_that_differ_in_what_each_holds_constant_are_refused(sets_table, tmp_path: Path, first, second, pooled) -> None:
    def part(folder: Path, seeds_from: int, extra: dict) -> Path:
        reports = [{**extra, "pretrain": {"margin_over_linear": m, **extra.get("pretrain", {})}} for m in (0.02, 0.03)]
        seeds = [seeds_from, seeds_from + 1]
        for seed, report in zip(seeds, reports, strict=True):
            (folder / f"seed_{seed}").mkdir(parents=True)
            (folder / f"seed_{seed}" / "report.json").write_text(json.dumps(report))
        (folder / "report.json").write_text(json.dumps(aggregate(reports, seeds)))
        return folder

    parts = [part(tmp_path / "a", 0, first), part(tmp_path / "b", 2, second)]
    if pooled:
        assert "set, 4 seeds" in sets_table.render([("set", parts)])
    else:
        with pytest.raises(ValueError, match="not runs of one set"):
            sets_table.render([("set", parts)])


def test_a_refusal_names_the_recipe_first_among_the_settings_that_differ(sets_table, tmp_path: Path) -> None:
    """Review (session 30): a smoke part beside a full one was refused naming whichever key sorted first."""
    full = _run(tmp_path / "full", [0.02, 0.03], [0.0, 0.0], deploy={"cells": 20}, recipe={"pretrain_epochs": 30})
    smoke = _run(tmp_path / "smoke", [0.02, 0.03], [0.0, 0.0], first_seed=2, deploy={"cells": 10}, recipe={"pretrain_epochs": 2})
    with pytest.raises(ValueError, match=r"2 setting.s. differ, 'recipe.pretrain_epochs': \[30\.?0?, 2\.?0?\].*'deploy.cells'"):
        sets_table.render([("set", [full, smoke])])


def test_a_column_run_with_another_recipe_says_so_beside_its_verdicts(sets_table, tmp_path: Path) -> None:
    """Review (session 30): a --fast column was judged beside a full one with nothing to tell them apart."""
    def nested(flat: dict) -> dict:  # a report of this code
        return {"recipe": {key[len("recipe."):]: value for key, value in flat.items()}, "code": {"digest": code_digest()}}

    full = _run(tmp_path / "full", [0.02, 0.03, 0.025], [0.0, 0.0, 0.0], **nested(recipe(DemoConfig())))
    smoke = _run(tmp_path / "smoke", [0.02, 0.03, 0.025], [0.0, 0.0, 0.0], **nested(recipe(fast(DemoConfig()))))
    batch = _run(tmp_path / "batch", [0.02, 0.03, 0.025], [0.0, 0.0, 0.0], **nested(recipe(replace(DemoConfig(), enroll=replace(ENROLL, batch_size=32)))))
    text = sets_table.render([("full", full), ("smoke", smoke), ("batch", batch)])
    assert "| full, 3 seeds | smoke, 3 seeds (not the default recipe: pretrain_epochs=2," in text
    assert f"settings digest {recipe(fast(DemoConfig()))['recipe.config']} (default " in _bar(text, "| figure (key)")[1]
    # a setting no recipe number shows (the enrolment's batch size) is told by the digest of all of them
    assert f"| batch, 3 seeds (not the default recipe: settings digest {recipe(replace(DemoConfig(), enroll=replace(ENROLL, batch_size=32)))['recipe.config']}" in text
    full_cell, smoke_cell, batch_cell = _bar(text, "| RSNN at or above the linear floor")
    assert full_cell.startswith("met") and smoke_cell.startswith("(not the default recipe) met")
    assert batch_cell.startswith("(not the default recipe) met")


def test_the_command_pools_a_label_given_twice(sets_table, tmp_path: Path, monkeypatch, capsys) -> None:
    first = _run(tmp_path / "first", [0.02, 0.03], [-0.01, 0.0])
    second = _run(tmp_path / "second", [0.025, 0.02], [-0.005, -0.01], first_seed=2)
    monkeypatch.setattr("sys.argv", ["sets_table.py", f"set={first}", f"set={second}", f"part={first}"])
    sets_table.main()
    assert "| figure (key) | set, 4 seeds | part, 2 seeds |" in capsys.readouterr().out


def test_reports_that_averaged_their_recipe_are_still_read(sets_table) -> None:
    """Runs made before the recipe was kept once (``recipe.<key>.mean``) are judged by the same recipe."""
    default = recipe(DemoConfig())
    averaged = {f"{key}.mean": value for key, value in default.items() if key != "recipe.config"}
    assert sets_table.off_recipe(averaged) == []
    assert sets_table.off_recipe({**averaged, "recipe.pretrain_epochs.mean": 2}) == ["pretrain_epochs=2"]


def test_a_settings_digest_from_other_code_is_not_judged_against_this_code_s_default(sets_table) -> None:
    """Review (session 31): a field added to a configuration changes every digest, so a default run of older code
    would read as another recipe."""
    default = recipe(DemoConfig())
    held = {**{k: v for k, v in default.items() if k != "recipe.config"}, "recipe.config": "521fd4506b151ff7"}
    assert sets_table.off_recipe({**held, "code.digest": "0000000000000000"}) == []
    assert sets_table.off_recipe({**held, "code.digest": code_digest()}) == [
        f"settings digest 521fd4506b151ff7 (default {default['recipe.config']})"]


def test_the_revocation_is_compared_with_the_gold_standard_within_each_seed(sets_table, tmp_path: Path) -> None:
    """Review (session 34): the membership and retained figures of the erased and retrained models were set side by side
    only as two means, whose seed-to-seed scatter (the pretrained model, the test split) hides a difference that holds
    in every seed."""
    erased, retrained = (0.9, 0.6, 0.75), (0.8, 0.5, 0.65)
    reports = [{"pretrain": {"margin_over_linear": 0.01, "retain_accuracy": 0.9},
                "baseline_retrain": {"retain_accuracy": 0.9 + d},
                "revoke": {"erase": {"retain_change_from_pretrain": 0.0, "retain_accuracy": 0.9, "membership_auc": e},
                           "retrain": {"membership_auc": r}, "suspend": {"retain_change_from_pretrain": 0.0}}}
               for e, r, d in zip(erased, retrained, (0.01, 0.02, 0.03), strict=True)]
    folder = tmp_path / "run"
    for seed, report in enumerate(reports):
        (folder / f"seed_{seed}").mkdir(parents=True)
        (folder / f"seed_{seed}" / "report.json").write_text(json.dumps(report))
    (folder / "report.json").write_text(json.dumps(aggregate(reports, [0, 1, 2])))
    text = sets_table.render([("set", folder)])
    membership = _bar(text, "| membership AUC, erased − retrained")[0]
    assert membership.startswith("+0.100 ± 0.000 [+0.100 – +0.100]") and "seeds: +0.10, +0.10, +0.10" in membership
    assert _bar(text, "| erase − retrained, retained")[0].startswith("-2.00% ± 1.00 [-4.48% – +0.48%]")
    assert _bar(text, "| retrained without the voice")[0].startswith("+2.00% ± 1.00")
    unpaired = _run(tmp_path / "older", [0.02, 0.03], [0.0, 0.0])  # reports without the keys
    assert _bar(sets_table.render([("older", unpaired)]), "| membership AUC, erased − retrained")[0].strip(" |") == "–"
