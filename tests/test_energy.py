import math

import pytest

from neuro_rm.energy import SCALE_45NM_TO_180NM, SRAM_ACCESS_J, EnergyModel, Ledger, sram_size_factor


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
    expected = 100 * model.rm_write_pulse_j + 300 * (model.rm_cell_read_j + 2 * model.sense_amp_j)
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


def test_a_verify_read_is_a_window_check_unless_the_adc_variant_is_asked_for():
    sense, adc = EnergyModel(), EnergyModel(verify_sensing="adc")
    # NeuroSim's 9.845 fJ sense-amplifier decision (65 nm, 1.1 V) at 0.9 V, two decisions per window check
    assert math.isclose(sense.sense_amp_j, 9.845e-15 * (0.9 / 1.1) ** 2)
    assert math.isclose(sense.verify_read_j, sense.rm_cell_read_j + 2 * sense.sense_amp_j)
    assert math.isclose(adc.verify_read_j, adc.rm_cell_read_j + adc.adc_conversion_j)
    assert adc.verify_read_j > 100 * sense.verify_read_j  # a full 8-bit conversion is the costly variant
    ledger = Ledger(sense)
    ledger.post_programming(pulses=0, verify_reads=1000)
    assert math.isclose(ledger.joules("write.rm_verify"), 1000 * sense.verify_read_j)
    assert math.isclose(ledger.write_joules(adc), 1000 * adc.verify_read_j)  # the same reads, re-priced
    with pytest.raises(ValueError, match="verify_sensing"):
        EnergyModel(verify_sensing="guess")


def test_sram_energy_grows_with_the_array_through_horowitzs_points():
    for capacity, joules in SRAM_ACCESS_J:  # 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ per 64-bit access
        assert math.isclose(EnergyModel(sram_bytes=capacity).sram_read_bit_j * 64, joules)
        assert math.isclose(EnergyModel(sram_bytes=capacity).sram_write_bit_j * 64, joules)
    assert sram_size_factor(1024) == 1.0  # no point below 8 KB: the 8 KB price
    assert 2.0 < sram_size_factor(160 * 1024) < 10.0 < sram_size_factor(4 * 1024 * 1024)
    small, big = Ledger(EnergyModel()), Ledger(EnergyModel(sram_bytes=1024 * 1024))
    for ledger in (small, big):
        ledger.post_sram_write(6400)
        ledger.post_inference(sram_bits_read=6400)
        ledger.post_optimizer(10)
    sram = lambda ledger: ledger.joules() - ledger.joules("train.digital_mac")  # noqa: E731
    assert math.isclose(sram(big), 10 * sram(small))
    assert big.joules("train.digital_mac") == small.joules("train.digital_mac")  # arithmetic does not grow
    with pytest.raises(ValueError, match="sram_bytes"):
        EnergyModel(sram_bytes=-1.0)
