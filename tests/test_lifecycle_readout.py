"""What the demos report per stage: the array ages on a schedule; each stage is read through several peripheries."""

import copy
from dataclasses import replace

import pytest
import torch
from torch import nn

from neuro_rm import layers as L
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.device import DeviceConfig, preset_name
from neuro_rm.learning.data import LabelledSet
from neuro_rm.lora import AdapterConfig
from neuro_rm.readout import (
    DAY_S,
    ArrayClock,
    Schedule,
    drift_sweep,
    peripheries,
    readout_accuracies,
    readout_of,
    readout_settings,
    stage_readouts,
)


def _model(device=None, crossbar=None, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 3))
    return L.analogize(model, device or DeviceConfig(), crossbar=crossbar, seed=seed).eval()


def _elapsed(model):
    return [layer.crossbar.cells.elapsed_s for _, layer in L.hybrid_layers(model)]


def test_the_clock_ages_the_array_through_the_schedule_and_a_write_restarts_one_array():
    model = _model()
    clock = ArrayClock(Schedule())
    assert clock.advance(model, "revoke") == DAY_S and _elapsed(model) == [DAY_S, DAY_S]
    first = L.hybrid_layers(model)[0][1]
    first.program(first.effective_weight())  # a step that writes one array restarts its clock
    clock.advance(model, "enroll")
    assert _elapsed(model) == [6 * DAY_S, 7 * DAY_S]
    clock.advance(model, "restore")
    assert _elapsed(model) == [29 * DAY_S, 30 * DAY_S]
    with pytest.raises(ValueError, match="comes before"):
        clock.advance(model, "revoke")


def test_a_schedule_out_of_order_is_refused():
    with pytest.raises(ValueError, match="revoke_s <= enroll_s"):
        Schedule(revoke_s=10.0, enroll_s=5.0)


def test_each_periphery_reads_the_same_cells_and_the_own_one_is_put_back():
    model = _model(device=DeviceConfig.hfox_cmo())
    own = readout_of(model)
    assert not own.is_ideal and readout_settings(model)["read_noise"]
    names = peripheries(own)
    assert names["ideal"].is_ideal and names["compensated_column"].drift_compensation == "column"
    assert peripheries(CrossbarConfig.ideal())["realistic"] == CrossbarConfig()  # an ideal run still compares realistic
    x = torch.rand(64, 24)
    test = LabelledSet(x, model(x).argmax(1))  # labels: the model's own answers right after programming
    L.set_time(model, 1e6)  # HfOx drifts
    cells = {k: v.clone() for k, v in model.state_dict().items()}
    got = readout_accuracies(model, test, calibration=torch.rand(32, 24))
    assert set(got) == {"ideal", "realistic", "compensated_global", "compensated_column", "compensated_offset"}
    assert all(0 <= v <= 1 for v in got.values())
    assert readout_of(model) == own  # the model's own periphery is back
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in cells.items())  # nothing written or recalibrated
    L.set_readout(model, CrossbarConfig.ideal())  # the ideal figure is the noise-free readout of these cells
    with torch.no_grad():
        assert got["ideal"] == (model(x).argmax(1) == test.y).float().mean().item()


def test_an_ideal_run_calibrates_the_realistic_adc_on_the_calibration_inputs_not_on_the_test():
    model = _model(crossbar=CrossbarConfig.ideal())
    calibration = torch.randint(0, 9, (32, 24)) / 8.0  # on the DAC grid (steps of 1/8)
    test_x = 5 * torch.rand(64, 24)  # test inputs drive far larger column sums
    readout_accuracies(model, LabelledSet(test_x, torch.zeros(64, dtype=torch.long)), calibration)
    first = L.hybrid_layers(model)[0][1].crossbar
    expected = first.weight().clone()
    seen = (calibration @ expected.T).abs().amax(dim=0)  # one row tile: the full scale is the largest column sum
    assert torch.allclose(first.adc_full_scale[0], seen, rtol=1e-5)


def test_presets_are_named_and_a_changed_one_is_custom():
    assert preset_name(DeviceConfig()) == "taox_1t1r" and preset_name(DeviceConfig.hfox_cmo()) == "hfox_cmo"
    assert preset_name(DeviceConfig.hfox_cmo(tolerance_us=0.5)) == "custom"



def test_every_periphery_reads_the_same_draws_so_a_unit_gain_changes_nothing():
    """Common random numbers: at age 0 the compensation gain is exactly 1, so realistic and gain-compensated
    readouts are the same computation and score exactly alike; only sampling could tell them apart.
    Positive control (run by hand): without the per-periphery reset they differ on this set."""
    model = _model()
    x = torch.randn(512, 24, generator=torch.Generator().manual_seed(2))
    L.set_readout(model, CrossbarConfig.ideal())
    with torch.no_grad():
        test = LabelledSet(x, model(x).argmax(1))  # the noise-free answers: read noise flips some
    L.set_readout(model, CrossbarConfig())  # the realistic ADC is not calibrated yet: the comparison calibrates it
    for _, layer in L.hybrid_layers(model):
        layer.crossbar.set_config(CrossbarConfig(drift_compensation="column"))
        assert torch.equal(layer.crossbar.compensation_gain(), torch.ones(layer.crossbar.out_features))
        layer.crossbar.set_config(CrossbarConfig())
    got = readout_accuracies(model, test, calibration=x[:64])
    assert got["realistic"] < got["ideal"]  # the noise flips answers: the test can see sampling differences
    assert got["realistic"] == got["compensated_global"] == got["compensated_column"]


def _drifting(branch=False):
    """An HfOx array whose log-time drift shifts every conductance alike (an offset ∝ Σx that hurts), the
    labels its noise-free answers right after programming; with ``branch`` an active LoRA branch too."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(160, 32), nn.ReLU(), nn.Linear(32, 4))
    model = L.analogize(model, DeviceConfig.hfox_cmo(), seed=1).eval()
    x = (torch.rand(256, 160, generator=torch.Generator().manual_seed(4)) < 0.3).float()
    L.set_readout(model, CrossbarConfig.ideal())
    with torch.no_grad():
        test = LabelledSet(x, model(x).argmax(1))
    L.set_readout(model, CrossbarConfig())
    L.calibrate(model, x[:64])  # the ADC full scale as deployed (twins then share it)
    if branch:
        for param in L.add_adapter(model, "branch", AdapterConfig(rank=2)):
            param.data.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(5))
        L.set_adapter(model, "branch")
    return model, test


def test_the_drift_sweep_reports_every_compensation_and_changes_nothing_after():
    model, test = _drifting()
    twin = copy.deepcopy(model)
    got = drift_sweep(model, test, test.x[:64], (3600.0, 1e6))
    assert set(got) == {f"{mode}{t}" for mode in ("", "global.", "column.", "offset.") for t in ("3600s", "1e+06s")}
    assert all(0 <= v <= 1 for v in got.values())
    assert got["offset.1e+06s"] > got["1e+06s"] + 0.1  # offset compensation undoes the HfOx shift
    assert _elapsed(model) == [0.0, 0.0] and readout_of(model) == readout_of(twin)
    with torch.no_grad():
        assert torch.equal(model(test.x), twin(test.x))  # same age, periphery and draws as if nothing was measured


def test_the_array_figures_read_the_cells_without_branches_and_put_the_branches_back():
    """``<stage>.array.*``: every branch off (the same as a twin without it), the same draws as the readouts;
    afterwards the branch computes again exactly as before."""
    model, test = _drifting(branch=True)
    L.set_time(model, 1e6)
    twin, bare = copy.deepcopy(model), copy.deepcopy(model)
    L.delete_adapter(bare, "branch")
    report = {}
    stage_readouts(report, "restore", model, test, test.x[:64], array_test=test)
    names = ("ideal", "realistic", "compensated_global", "compensated_column", "compensated_offset")
    assert all(0 <= report[f"restore.{kind}.{name}"] <= 1 for kind in ("readout", "array") for name in names)
    assert {name: report[f"restore.array.{name}"] for name in names} == readout_accuracies(bare, test, test.x[:64])
    assert L.active_adapters(model) == ["branch"]
    with torch.no_grad():
        assert torch.equal(model(test.x), twin(test.x))


def test_offset_compensation_of_the_aged_array_beats_none_and_forced_off_it_is_identical(monkeypatch):
    model, test = _drifting(branch=True)
    L.set_time(model, 30 * DAY_S)
    report = {}
    stage_readouts(report, "restore", model, test, test.x[:64], array_test=test)
    assert report["restore.array.compensated_offset"] > report["restore.array.realistic"] + 0.1
    # positive control: the same comparison with compensation forced off reads the same numbers twice
    real = peripheries
    monkeypatch.setattr("neuro_rm.readout.peripheries",
                        lambda config: {k: replace(c, drift_compensation="none") for k, c in real(config).items()})
    off = {}
    stage_readouts(off, "restore", model, test, test.x[:64], array_test=test)
    assert off["restore.array.compensated_offset"] == off["restore.array.realistic"] == report["restore.array.realistic"]
