import math

import pytest

from neuro_rm.energy import SCALE_45NM_TO_180NM, EnergyModel, Ledger


def test_totals_equal_the_sum_of_events():
    ledger = Ledger()
    posted = [ledger.post("write.rm_pulse", 1e-9, 10), ledger.post("write.sram", 2e-12, 64), ledger.post("infer.adc", 3e-9, 5)]
    assert math.isclose(ledger.joules(), sum(e.joules for e in posted))
    assert math.isclose(ledger.joules("write"), 1e-9 + 2e-12)
    assert ledger.count("write.rm_pulse") == 10
    assert ledger.by_category()["infer.adc"]["count"] == 5


def test_programming_costs_follow_the_model():
    model = EnergyModel()
    ledger = Ledger(model)
    ledger.post_programming(pulses=100, verify_reads=300, tiles=2)
    expected = 100 * model.rm_write_pulse_j + 300 * (model.rm_cell_read_j + model.adc_conversion_j)
    assert math.isclose(ledger.joules("write"), expected)
    assert math.isclose(ledger.seconds("write"), (100 * model.rm_write_pulse_s + 300 * model.rm_read_s) / 2)
    assert ledger.report()["write_pulses"] == 100


def test_ratio_is_other_over_self():
    small, big = Ledger(), Ledger()
    small.post("write.sram", 1e-9)
    big.post("write.rm_pulse", 5e-9)
    assert math.isclose(small.ratio(big, "write"), 5.0)
    assert math.isinf(Ledger().ratio(big, "write"))


def test_180nm_preset_scales_digital_only():
    base, old = EnergyModel(), EnergyModel.cmos_180nm()
    assert math.isclose(old.mac_fp32_j, base.mac_fp32_j * SCALE_45NM_TO_180NM)
    assert old.rm_write_pulse_j == base.rm_write_pulse_j


def test_bad_values_are_rejected():
    with pytest.raises(ValueError, match="rm_write_pulse_j"):
        EnergyModel(rm_write_pulse_j=-1.0)
    with pytest.raises(ValueError, match="non-negative"):
        Ledger().post("write.x", joules=float("nan"))
    with pytest.raises(ValueError, match="precision"):
        EnergyModel().mac_j("fp64")
