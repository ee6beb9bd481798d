import pytest
import torch

from neuro_rm.crossbar import Crossbar, CrossbarConfig
from neuro_rm.device import DeviceConfig


@pytest.mark.parametrize("mapping", ["offset", "differential"])
def test_decoded_weights_track_targets(mapping):
    torch.manual_seed(0)
    w = torch.randn(20, 30) * 0.1
    xbar = Crossbar(20, 30, DeviceConfig(), CrossbarConfig(mapping=mapping), seed=1)
    xbar.program(w)
    decoded = xbar.weight()
    # ±2 µS on a half-window of 30 µS (offset) or 60 µS (differential pair) bounds the weight error
    span = 30.0 if mapping == "offset" else 60.0
    per_cell = 2.0 / span * float(w.abs().max())
    bound = per_cell * (1 if mapping == "offset" else 2)
    assert (decoded - w).abs().float().quantile(0.99) <= bound
    assert torch.corrcoef(torch.stack([decoded.flatten(), w.flatten()]))[0, 1] > 0.97


def test_decode_is_exactly_what_the_cells_hold():
    xbar = Crossbar(4, 5, DeviceConfig(), CrossbarConfig(mapping="offset"))
    xbar.program(torch.randn(4, 5))
    g = xbar.cells.conductance()
    k = (80.0 - 50.0) / float(xbar.weight_max)
    assert torch.allclose(xbar.weight(), (g[0] - 50.0) / k)


def test_tiling_counts():
    xbar = Crossbar(300, 140, DeviceConfig(), CrossbarConfig(mapping="differential"))
    assert xbar.row_tiles == 2
    assert xbar.n_tiles == 2 * 5  # 600 physical columns over 128-wide tiles
    xbar.count(3)
    assert xbar.counts.macs == 3 * 140 * 600
    assert xbar.counts.adc_conversions == 3 * 2 * 600
    assert xbar.counts.array_activations == 30


def test_adc_quantises_and_more_bits_are_closer():
    torch.manual_seed(0)
    w = torch.randn(16, 200) * 0.1
    x = (torch.rand(8, 200) > 0.7).float()
    errors = []
    for bits in (3, 6, 10):
        xbar = Crossbar(16, 200, DeviceConfig(), CrossbarConfig.ideal(adc_bits=bits), seed=2)
        xbar.program(w)
        exact = x @ xbar.weight().T
        errors.append(float((xbar.matmul(x) - exact).abs().mean()))
    assert errors[0] > errors[1] > errors[2] > 0


def test_read_noise_is_sampled_only_when_enabled():
    w = torch.randn(8, 8)
    quiet = Crossbar(8, 8, DeviceConfig(), CrossbarConfig(read_noise=False))
    quiet.program(w)
    x = torch.randn(2, 8)
    assert torch.equal(quiet.matmul(x), quiet.matmul(x))
    noisy = Crossbar(8, 8, DeviceConfig(), CrossbarConfig(read_noise=True))
    noisy.program(w)
    assert not torch.equal(noisy.matmul(x), noisy.matmul(x))


def test_drift_changes_effective_weights():
    xbar = Crossbar(8, 8, DeviceConfig())
    xbar.program(torch.randn(8, 8))
    before = xbar.weight().clone()
    xbar.set_time(1e6)
    assert not torch.equal(before, xbar.weight())
    xbar.set_time(0)
    assert torch.equal(before, xbar.weight())


def test_bad_inputs():
    with pytest.raises(ValueError, match="mapping"):
        CrossbarConfig(mapping="diagonal")
    xbar = Crossbar(2, 2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        xbar.program(torch.tensor([[1.0, float("inf")], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        xbar.program(torch.zeros(3, 2))


def test_consolidation_writes_no_change_finer_than_the_cells_can_hold():
    """On a cell with 32 coarse levels (HfOx), a change above the verify tolerance but below half a level
    step would land on a neighbouring level at random: it is not written, a change beyond it is."""
    config = DeviceConfig.hfox_cmo()
    assert config.level_step_us / 2 > config.tolerance_us  # the case this test is about
    xbar = Crossbar(4, 6, config, CrossbarConfig.ideal(), seed=0)
    xbar.program(torch.zeros(4, 6))
    delta = torch.zeros(4, 6)
    delta[0, 0] = 0.6 * xbar.write_threshold  # several tolerances, under half a level
    delta[1, 1] = 1.5 * xbar.write_threshold
    pulses = xbar.consolidate(delta).pulses.reshape(-1, 4, 6).sum(0)
    assert pulses[0, 0] == 0 and pulses[1, 1] > 0 and int((pulses > 0).sum()) == 1
    assert xbar.write_threshold * xbar._gain() == pytest.approx(config.level_step_us / 2)


def test_a_merged_repair_undoes_the_cells_error():
    """A merge writes each moved cell to its present conductance plus ΔW: a ΔW learnt against the cells as they
    are (here the exact repair of their write noise) is what they end up holding, within the write tolerance.
    Re-targeting from the weights the cells were asked to hold would add the repair to those and double the error."""
    xbar = Crossbar(32, 48, DeviceConfig(), CrossbarConfig.ideal(), seed=0)
    intended = torch.randn(32, 48, generator=torch.Generator().manual_seed(1)) * 0.1

    def error() -> float:
        return float((xbar.weight() - intended).norm() / intended.norm())

    xbar.program(intended)
    xbar.add_write_noise(5.0)
    noisy = error()
    xbar.consolidate(intended - xbar.weight())
    assert error() < 0.3 * noisy
