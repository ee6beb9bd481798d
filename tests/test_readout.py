"""The realistic periphery: per-vector read noise, input DAC, calibrated ADC, drift compensation."""

import copy
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neuro_rm import layers as L
from neuro_rm.crossbar import Crossbar, CrossbarConfig
from neuro_rm.device import DeviceConfig
from neuro_rm.models.rsnn import SYNAPSES, RSNNConfig, SpeakerRSNN


def _programmed(out=32, inp=48, device=None, config=None, seed=0):
    xbar = Crossbar(out, inp, device or DeviceConfig(), config or CrossbarConfig(), seed=seed)
    xbar.program(torch.randn(out, inp, generator=torch.Generator().manual_seed(seed + 1)))
    return xbar


def test_realistic_by_default_and_ideal_is_an_explicit_switch():
    cfg = CrossbarConfig()
    assert cfg.read_noise and cfg.dac_bits == 8 and cfg.adc_bits == 8 and not cfg.is_ideal
    ideal = _programmed(config=CrossbarConfig.ideal())
    x = torch.randn(5, 48)
    assert torch.equal(ideal.matmul(x), F.linear(x, ideal.weight()))


def _expected_noise_std(xbar, x):
    """Brute force: independent N(0, σ(G)²) on every cell read, summed over the rows of each column."""
    sigma = xbar.device_config.read_sigma_us(xbar.cells.conductance())  # (planes, out, in)
    var = (x.pow(2) @ sigma.pow(2).sum(0).T) / xbar._gain() ** 2
    return var.sqrt()


@pytest.mark.parametrize("mapping", ["offset", "differential"])
@pytest.mark.parametrize("share", [0.0, 1.0])
def test_read_noise_is_drawn_per_input_vector_with_the_cells_std(mapping, share):
    device = DeviceConfig(read_noise_us=0.5, read_noise_g_share=share)
    xbar = _programmed(device=device, config=CrossbarConfig.ideal(read_noise=True, mapping=mapping))
    x = torch.rand(1, 48) * 3  # non-binary: the general x² @ σ(G)² path
    batch = x.expand(4000, 48)
    noise = xbar.matmul(batch) - F.linear(batch, xbar.weight())
    # every row of the batch has its own draw ...
    assert not torch.allclose(noise[0], noise[1])
    assert abs(float(torch.corrcoef(noise[:, :2].T)[0, 1])) < 0.1
    assert abs(float(torch.corrcoef(torch.stack([noise[:-1, 0], noise[1:, 0]]))[0, 1])) < 0.1
    # ... with the std of the summed cell noises of that column (σ·‖x‖ when σ does not depend on G)
    expected = _expected_noise_std(xbar, x)[0]
    ratio = noise.std(dim=0) / expected
    assert float((ratio - 1).abs().max()) < 0.1
    if share == 0.0:
        k = xbar._gain() / (math.sqrt(2) if mapping == "differential" else 1)
        assert torch.allclose(expected, torch.full_like(expected, 0.5 / k * float(x.norm())), rtol=1e-4)


def test_spike_shortcut_gives_the_same_noise_std_as_the_general_path():
    device = DeviceConfig(read_noise_us=0.5, read_noise_g_share=1.0)
    xbar = _programmed(device=device, config=CrossbarConfig.ideal(read_noise=True))
    spikes = (torch.rand(6, 48) < 0.3).float()
    y = F.linear(spikes, xbar.weight())
    rows = spikes.sum(-1, keepdim=True)
    assert torch.allclose(xbar._noise_std(spikes, y, rows), _expected_noise_std(xbar, spikes), rtol=1e-4)
    assert torch.allclose(xbar._noise_std(spikes, y, None), _expected_noise_std(xbar, spikes), rtol=1e-4)


def test_conductance_dependent_noise_is_larger_on_high_conductance_columns():
    device = DeviceConfig(read_noise_us=0.5, read_noise_g_share=1.0)
    xbar = Crossbar(2, 64, device, CrossbarConfig.ideal(read_noise=True))
    xbar.program(torch.stack([torch.full((64,), 1.0), torch.full((64,), -1.0)]))  # near g_max / near g_min
    x = torch.ones(3000, 64)
    noise = xbar.matmul(x) - F.linear(x, xbar.weight())
    std = noise.std(dim=0)
    assert float(std[0] / std[1]) == pytest.approx(math.sqrt(80 / 20), rel=0.1)


def test_dac_levels_saturation_and_straight_through_gradient():
    xbar = _programmed(config=CrossbarConfig(dac_bits=8, input_bound=16.0))
    counts = torch.arange(0, 16, dtype=torch.float32)
    assert torch.equal(xbar.dac(counts), counts)  # spikes and counts up to 15 pass exactly
    assert torch.equal(xbar.dac(torch.tensor([0.05, 0.07, 0.2])), torch.tensor([0.0, 0.125, 0.25]))  # steps of 1/8
    assert torch.equal(xbar.dac(torch.tensor([20.0, -20.0])), torch.tensor([15.875, -16.0]))  # saturates
    x = torch.tensor([0.3, 40.0], requires_grad=True)
    xbar.dac(x).sum().backward()
    assert torch.equal(x.grad, torch.ones(2))
    assert xbar._dac_passes_spikes() and not _programmed(config=CrossbarConfig(input_bound=1.0))._dac_passes_spikes()
    spikes = (torch.rand(4, 48) < 0.5).float()
    narrow = _programmed(config=CrossbarConfig.ideal(dac_bits=8, input_bound=1.0))
    assert torch.allclose(narrow.matmul(spikes), F.linear(spikes * 127 / 128, narrow.weight()), atol=1e-6)  # 1 saturates


def test_dac_conversions_are_counted():
    xbar = Crossbar(300, 140, DeviceConfig(), CrossbarConfig(mapping="differential"))
    xbar.count(3)
    assert xbar.counts.dac_conversions == 3 * 140 * 5  # 600 physical columns: 5 column tiles
    assert Crossbar(4, 4, DeviceConfig(), CrossbarConfig.ideal()).counts.dac_conversions == 0


def _adc_only(bits=6, inp=48):
    return _programmed(inp=inp, config=CrossbarConfig.ideal(adc_bits=bits))


def test_adc_full_scale_is_fixed_by_calibration_and_saturates():
    xbar = _adc_only()
    calib = torch.rand(64, 48)
    xbar.calibrate(calib)
    full_scale = xbar.adc_full_scale.clone()
    assert torch.allclose(full_scale[0], F.linear(calib, xbar.weight()).abs().amax(0))
    big = calib * 4
    y = xbar.matmul(big)
    assert torch.equal(xbar.adc_full_scale, full_scale)  # never recomputed from a sample
    assert bool((y.abs() <= full_scale[0] * (1 + 1e-6)).all())
    assert bool((y.abs() >= full_scale[0] * (1 - 1e-6)).any())  # the large batch hits the rails
    exact = F.linear(big, xbar.weight())
    clipped = (exact.abs() > full_scale[0]).float().mean()
    assert float(clipped) > 0.2


def test_adc_resolution_is_the_full_scale_over_its_codes():
    for bits in (4, 8):
        xbar = _adc_only(bits)
        x = torch.rand(64, 48)
        xbar.calibrate(x)
        lsb = xbar.adc_full_scale[0] / (2 ** (bits - 1) - 1)
        y, exact = xbar.matmul(x), F.linear(x, xbar.weight())
        assert bool(((y - exact).abs() <= lsb / 2 + 1e-5).all())
        codes = y / lsb
        assert torch.allclose(codes, codes.round(), atol=1e-3)  # outputs sit on the ADC's codes


def test_adc_gradient_is_straight_through():
    xbar = _adc_only(4)
    x = torch.rand(8, 48, requires_grad=True)
    xbar.calibrate(x.detach())
    xbar.matmul(x).sum().backward()
    assert torch.allclose(x.grad, xbar.weight().sum(0).expand(8, 48))


def test_batched_tiles_equal_a_tile_by_tile_reference():
    """Two full 128-row tiles and a partial one, each digitised against its own full scale."""
    xbar = _programmed(out=20, inp=300, config=CrossbarConfig.ideal(adc_bits=5))
    x = torch.rand(16, 300)
    xbar.calibrate(x)
    w, reference = xbar.weight(), 0
    for r, r0 in enumerate(range(0, 300, 128)):
        lsb = xbar.adc_full_scale[r] / 15
        partial = F.linear(x[:, r0 : r0 + 128], w[:, r0 : r0 + 128])
        reference = reference + (partial / lsb).round().clamp(-15, 15) * lsb
    assert torch.allclose(xbar.matmul(x), reference, atol=1e-5)
    assert xbar.adc_full_scale.shape == (3, 20)


def test_whole_model_calibration_sees_every_time_step():
    torch.manual_seed(0)
    model = L.analogize(SpeakerRSNN(RSNNConfig(n_inputs=20, n_hidden=256, n_outputs=3)), targets=SYNAPSES).eval()
    x = (torch.rand(32, 10, 20) < 0.3).float() * 3
    model(x)  # the first batch calibrates every crossbar through the whole model
    rec = model.lif.recurrent.crossbar
    worst = rec.config.input_bound * rec.weight().abs().reshape(256, 2, 128).sum(-1).T
    assert rec.calibrated and float((rec.adc_full_scale / worst).max()) < 0.2
    before = rec.adc_full_scale.clone()
    model(x * 2)
    assert torch.equal(rec.adc_full_scale, before)  # fixed after calibration
    L.calibrate(model, x * 2)  # recalibrating on purpose follows the new batch
    assert not torch.equal(rec.adc_full_scale, before)


def test_calibrating_accumulates_over_passes_and_adc_clipping_counts_saturation():
    """A workload of several passes (e.g. a sampling trajectory) calibrates as one batch holding all of
    them; calibration leaves the operation counters alone; the probe counts conversions past full scale."""
    torch.manual_seed(0)
    small, large = torch.rand(16, 300), 3 * torch.rand(16, 300)
    whole = L.analogize(nn.Sequential(nn.Linear(300, 8)), seed=1)
    passes = copy.deepcopy(whole)
    L.calibrate(whole, torch.cat([small, large]))
    counts = passes[0].crossbar.counts.as_tuple()
    with L.calibrating(passes):
        passes(large)
        passes(small)  # the later, smaller pass does not shrink the full scale
    assert torch.allclose(passes[0].crossbar.adc_full_scale, whole[0].crossbar.adc_full_scale)
    assert passes[0].crossbar.counts.as_tuple() == counts
    with L.adc_clipping(passes) as probe:
        passes(large)
    assert probe.clipped == 0 and probe.converted == 16 * 3 * 8  # vectors × row tiles × columns
    L.calibrate(passes, small)  # a full scale from the small inputs alone: the large ones saturate
    with L.adc_clipping(passes) as probe:
        passes(large)
    assert probe.share > 0.5


def test_programming_clears_the_calibration():
    model = L.analogize(nn.Sequential(nn.Linear(10, 4)))
    model(torch.rand(8, 10))
    xbar = model[0].crossbar
    assert xbar.calibrated
    L.reprogram(model)
    assert not xbar.calibrated
    model(torch.rand(8, 10))
    assert xbar.calibrated


@pytest.mark.parametrize("mode", ["global", "column"])
def test_drift_compensation_restores_the_mean_output_scale(mode):
    device = DeviceConfig(drift_pull=0.05, drift_spread_us=0.0)  # weights shrink towards mid-window
    x = (torch.rand(256, 64, generator=torch.Generator().manual_seed(3)) < 0.5).float()
    scale = {}
    for comp in ("none", mode):
        xbar = _programmed(out=32, inp=64, device=device, config=CrossbarConfig.ideal(drift_compensation=comp))
        fresh = xbar.matmul(x).abs().mean(0)
        xbar.set_time(1e6)
        scale[comp] = xbar.matmul(x).abs().mean(0) / fresh
    assert float(scale["none"].mean()) < 0.8  # drift shrank the outputs (the effect is there)
    assert float(scale[mode].mean()) == pytest.approx(1.0, abs=0.03)
    if mode == "column":
        assert float((scale[mode] - 1).abs().max()) < 0.05


def test_drift_compensation_gain_is_one_right_after_programming():
    xbar = _programmed(config=CrossbarConfig.ideal(drift_compensation="column"))
    assert torch.allclose(xbar.compensation_gain(), torch.ones(32))
    assert _programmed(config=CrossbarConfig.ideal()).compensation_gain() is None


def test_bad_periphery_settings():
    with pytest.raises(ValueError, match="dac_bits"):
        CrossbarConfig(dac_bits=0)
    with pytest.raises(ValueError, match="adc_bits"):
        CrossbarConfig(adc_bits=1)
    with pytest.raises(ValueError, match="drift_compensation"):
        CrossbarConfig(drift_compensation="sometimes")


def test_a_tile_that_saw_nothing_gets_the_worst_case_full_scale():
    xbar = _programmed(out=8, inp=200, config=CrossbarConfig.ideal(adc_bits=8))
    x = torch.zeros(16, 200)
    x[:, :128] = torch.rand(16, 128)  # the second row tile sees no input during calibration
    xbar.calibrate(x)
    w = xbar.weight()
    assert torch.allclose(xbar.adc_full_scale[1], 16.0 * w[:, 128:].abs().sum(1))
    assert torch.allclose(xbar.adc_full_scale[0], F.linear(x[:, :128], w[:, :128]).abs().amax(0))


def _relative_error(device: DeviceConfig, config: CrossbarConfig, seconds: float, x: torch.Tensor) -> float:
    w = torch.randn(48, 160, generator=torch.Generator().manual_seed(5)) * 0.1
    xbar = Crossbar(48, 160, device=device, config=config, seed=1)
    xbar.program(w)
    xbar.calibrate(x)
    xbar.set_time(seconds)
    target = x @ w.t()
    with torch.no_grad():
        return float((xbar.matmul(x) - target).pow(2).mean().sqrt() / target.std())


@pytest.mark.parametrize("readout", ["ideal", "realistic"])
def test_offset_compensation_removes_a_common_conductance_shift(readout):
    """The HfOx cell's log-time drift shifts every conductance alike: under the offset mapping an error ∝ Σx
    that rescaling cannot undo. Positive control: without compensation (and with gain rescaling) it is there."""
    x = (torch.rand(256, 160, generator=torch.Generator().manual_seed(4)) < 0.3).float()
    config = CrossbarConfig.ideal() if readout == "ideal" else CrossbarConfig()
    error = {mode: _relative_error(DeviceConfig.hfox_cmo(), replace(config, drift_compensation=mode), 1e6, x)
             for mode in ("none", "global", "offset")}
    assert error["none"] > 0.5 and error["global"] > 0.5  # drift hurts, and a gain does not repair it
    assert error["offset"] < 0.25 * error["none"]


def test_offset_compensation_removes_a_programming_offset():
    """A write-verify that stops short on one side (gain 0.7) leaves a common offset at t = 0; the column
    sums read against the targets' sums take it out."""
    x = (torch.rand(256, 160, generator=torch.Generator().manual_seed(4)) < 0.3).float()
    one_sided = DeviceConfig(pulse_gain=0.7)
    none = _relative_error(one_sided, CrossbarConfig.ideal(), 0.0, x)
    offset = _relative_error(one_sided, CrossbarConfig.ideal(drift_compensation="offset"), 0.0, x)
    assert none > 0.3 and offset < 0.5 * none


def test_offset_compensation_is_the_same_with_and_without_autograd_and_survives_a_save():
    x = torch.rand(16, 64, generator=torch.Generator().manual_seed(6))
    xbar = _programmed(inp=64, config=CrossbarConfig.ideal(drift_compensation="offset"), device=DeviceConfig.hfox_cmo())
    xbar.set_time(1e5)
    with torch.no_grad():
        plain = xbar.matmul(x)
    graded = xbar.matmul(x.clone().requires_grad_())
    assert torch.allclose(plain, graded, atol=1e-5)
    copy_ = _programmed(inp=64, config=CrossbarConfig.ideal(drift_compensation="offset"), device=DeviceConfig.hfox_cmo(), seed=9)
    copy_.load_state_dict(xbar.state_dict())
    copy_.set_time(1e5)
    with torch.no_grad():
        assert torch.allclose(copy_.matmul(x), plain, atol=1e-5)
    assert xbar.offset_correction().abs().max() > 0 and torch.equal(copy_.column_target, xbar.column_target)


def test_a_write_that_moves_nothing_leaves_the_offset_correction_alone():
    """A partial write records as targets only what it asked of the cells it moved: drift from before the write
    stays visible to offset compensation (a reference rebuilt from the drifted cells would hide it for good)."""
    x = (torch.rand(128, 64, generator=torch.Generator().manual_seed(8)) < 0.3).float()
    xbar = _programmed(inp=64, config=CrossbarConfig.ideal(drift_compensation="offset"), device=DeviceConfig.hfox_cmo())
    xbar.set_time(1e6)
    with torch.no_grad():
        before = xbar.matmul(x)
        xbar.consolidate(torch.zeros(32, 64))  # nothing beyond the write resolution: no cell moves
        after = xbar.matmul(x)
    assert torch.allclose(before, after, atol=1e-4)


def test_measuring_more_readouts_does_not_change_later_results():
    """The stage readouts read the live cells; their random draws are put back afterwards."""
    from neuro_rm.learning.data import LabelledSet
    from neuro_rm.readout import readout_accuracies

    torch.manual_seed(0)
    model = L.analogize(nn.Sequential(nn.Linear(48, 16), nn.ReLU(), nn.Linear(16, 3)), DeviceConfig(), targets=["0"])
    x = torch.rand(64, 48, generator=torch.Generator().manual_seed(2))
    L.calibrate(model, x)
    twin = copy.deepcopy(model)
    readout_accuracies(model, LabelledSet(x, torch.zeros(64, dtype=torch.long)), x)
    with torch.no_grad():
        assert torch.equal(model(x), twin(x))  # the same noise draws as if nothing had been measured


def test_calibrate_cleared_calibrates_only_what_a_write_cleared():
    model = L.analogize(nn.Sequential(nn.Linear(48, 16), nn.ReLU(), nn.Linear(16, 8)), DeviceConfig(), targets=["0", "2"])
    train = torch.rand(64, 48, generator=torch.Generator().manual_seed(3))
    L.calibrate(model, train)
    kept = model[2].crossbar.adc_full_scale.clone()
    model[0].crossbar.program(model[0].crossbar.weight())  # a write: it clears that array's ADC calibration
    assert not model[0].crossbar.calibrated
    L.calibrate_cleared(model, train * 0.5)
    reference = copy.deepcopy(model)
    L.calibrate(reference, train * 0.5, layers=[reference[0]])
    assert torch.equal(model[0].crossbar.adc_full_scale, reference[0].crossbar.adc_full_scale)
    assert torch.equal(model[2].crossbar.adc_full_scale, kept)  # already calibrated: left as it was
