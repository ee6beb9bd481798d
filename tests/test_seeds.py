import math

import pytest

from neuro_rm.learning.seeds import aggregate, markdown_table, mean_sd_ci, over_seeds


def _report(seed: int) -> dict:
    return {"pretrain.accuracy": 0.90 + 0.02 * seed, "deploy.write_pulses": 100 + seed, "revoke.mode": "erase",
            "verify.eer_ci": [0.01 * seed, 0.02 * seed], "energy.j": {"gpu": 2.0 * (seed + 1)},
            "flag": True, "reference": {"pretrain.accuracy": 0.98}}


def test_mean_sd_and_t_interval_match_the_textbook():
    mean, sd, (lo, hi) = mean_sd_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and sd == 1.0
    half = 4.302652729911275 / math.sqrt(3)  # t_{0.975, 2}
    assert lo == pytest.approx(2.0 - half) and hi == pytest.approx(2.0 + half)
    assert mean_sd_ci([5.0, 5.0]) == (5.0, 0.0, (5.0, 5.0))


def test_every_number_becomes_mean_sd_and_interval_over_seeds():
    seeds = [0, 1, 2]
    agg = over_seeds(_report, seeds)
    assert agg["seeds"] == seeds and "Student-t" in agg["interval"]
    assert agg["pretrain.accuracy.mean"] == pytest.approx(0.92)
    assert agg["pretrain.accuracy.sd"] == pytest.approx(0.02)
    lo, hi = agg["pretrain.accuracy.ci95"]
    assert lo < 0.92 < hi and hi - lo == pytest.approx(2 * 4.302652729911275 * 0.02 / math.sqrt(3))
    assert agg["deploy.write_pulses.mean"] == pytest.approx(101)
    assert agg["energy.j.gpu.mean"] == pytest.approx(4.0)  # nested dicts are flattened
    assert agg["revoke.mode"] == "erase"  # the same in every run: kept once
    assert agg["verify.eer_ci.per_seed"] == [[0.0, 0.0], [0.01, 0.02], [0.02, 0.04]]
    assert agg["flag"] is True and "flag.mean" not in agg  # a bool is not a figure
    assert agg["reference"] == {"pretrain.accuracy": 0.98}
    assert "pretrain.accuracy" not in agg  # a per-seed figure is never reported as if it were one number


def test_one_seed_or_mismatched_reports_are_refused():
    with pytest.raises(ValueError, match="at least 2"):
        aggregate([_report(0)], [0])
    with pytest.raises(ValueError, match="one report per seed"):
        aggregate([_report(0), _report(1)], [0, 1, 2])


def test_markdown_table_shows_mean_plus_minus_sd():
    agg = over_seeds(_report, [0, 1, 2])
    rows = (("pretrain.accuracy", "pretrain", "{:.2%}"), ("missing.key", "absent", "{:.2%}"),
            ("deploy.write_pulses", "pulses", "{:,.0f}"))
    table = markdown_table(agg, rows, agg["reference"])
    assert "over 3 seeds" in table
    assert "| pretrain | 92.00% ± 2.00 |" in table and "| 98.00% |" in table
    assert "| pulses | 101 ± 1 |" in table and "absent" not in table


def test_counts_read_as_counts_and_a_share_interval_stays_in_its_range():
    agg = aggregate([{"acc": 0.99, "pulses": 1000, "change": -0.99}, {"acc": 1.0, "pulses": 1001, "change": -0.97},
                     {"acc": 0.97, "pulses": 1001, "change": -1.0}], [0, 1, 2])
    assert agg["acc.ci95"][1] > 1 and agg["change.ci95"][0] < -1  # the raw t-intervals leave the range
    table = markdown_table(agg, (("acc", "acc", "{:.2%}"), ("pulses", "pulses", "{:,}"), ("change", "change", "{:+.2%}")))
    assert "– 100.00% |" in table and "| -100.00% –" in table
    assert "| pulses | 1,001 ± 1 | 999 – 1,002 |" in table
    ratio = aggregate([{"r": 1.0}, {"r": 30.0}, {"r": 2.0}], [0, 1, 2])
    assert ratio["r.ci95"][0] < 0 and "| 11.0× ± 16.5× | 0.0× – 51.9× |" in markdown_table(ratio, (("r", "r", "{:.1f}×"),))
    cost = aggregate([{"verify.min_dcf": 0.77}, {"verify.min_dcf": 0.25}, {"verify.min_dcf": 0.42}], [0, 1, 2])
    assert cost["verify.min_dcf.ci95"][0] < 0 and cost["verify.min_dcf.ci95"][1] > 1  # the raw interval leaves [0, 1]
    assert "| 0.000 – 1.000 |" in markdown_table(cost, (("verify.min_dcf", "minDCF", "{:.3f}"),))
    auc = aggregate([{"erase": {"membership_auc": a, "branch_off_auc_zero_row": a}} for a in (0.99, 0.6, 0.95)], [0, 1, 2])
    assert auc["erase.membership_auc.ci95"][1] > 1  # an attack's AUC is a share too
    rows = (("erase.membership_auc", "AUC", "{:.3f}"), ("erase.branch_off_auc_zero_row", "control", "{:.3f}"))
    assert markdown_table(auc, rows).count("– 1.000 |") == 2


def test_cli_refuses_fewer_than_two_seeds():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "neuro_rm.cli", "demo", "--seeds", "1", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "neuro-rm demo: error: --seeds: must be from 2 to 100, got 1"


def test_a_learning_rate_chosen_per_seed_is_listed_not_averaged():
    """The mean of 1e-3 and 3e-4 is a rate no seed used; the report lists what each seed chose."""
    agg = aggregate([{"pretrain": {"lr": lr, "acc": a}} for lr, a in ((1e-3, 0.9), (3e-4, 0.8), (3e-4, 0.85))], [0, 1, 2])
    assert agg["pretrain.lr.per_seed"] == [1e-3, 3e-4, 3e-4]
    assert not any(key.startswith("pretrain.lr.") and key != "pretrain.lr.per_seed" for key in agg)
    assert agg["pretrain.acc.mean"] == pytest.approx(0.85)
    assert aggregate([{"pretrain": {"lr": 1e-3}}] * 2, [0, 1])["pretrain.lr"] == 1e-3  # the same choice: kept once


def test_settings_chosen_or_calibrated_per_seed_are_never_averaged():
    """Review (session 21): the acceptance threshold is calibrated per seed and the best epoch chosen per seed,
    and the readout's settings are settings: none is a figure with an interval."""
    reports = [{"verify": {"threshold": t, "eer": e}, "pretrain": {"best_epoch": b}, "readout": {"adc_bits": 8},
                "recipe": {"pretrain_epochs": 30}} for t, e, b in ((3.99, 0.03, 29), (4.22, 0.04, 12), (5.67, 0.02, 29))]
    agg = aggregate(reports, [0, 1, 2])
    assert agg["verify.threshold.per_seed"] == [3.99, 4.22, 5.67] and agg["pretrain.best_epoch.per_seed"] == [29, 12, 29]
    assert agg["readout.adc_bits"] == 8 and "readout.adc_bits.mean" not in agg
    assert agg["recipe.pretrain_epochs"] == 30 and "recipe.pretrain_epochs.mean" not in agg  # a recipe has no interval
    assert agg["verify.eer.mean"] == pytest.approx(0.03)  # a measurement still gets its interval
