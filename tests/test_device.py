import math
from dataclasses import replace

import pytest
import torch

from neuro_rm.device import CellArray, DeviceConfig


def _targets(shape=(64, 64), seed=3, config=None):
    config = config or DeviceConfig()
    g = torch.Generator().manual_seed(seed)
    return config.g_min_us + torch.rand(shape, generator=g) * (config.g_max_us - config.g_min_us)


def test_default_preset_programs_within_tolerance():
    cells = CellArray((128, 128), DeviceConfig(), seed=0)
    result = cells.program(_targets((128, 128)))
    assert result.within_tolerance_fraction >= 0.99
    assert int(result.pulses.min()) >= 0 and int(result.pulses.max()) <= DeviceConfig().max_pulses
    assert result.pulses.float().mean() > 1
    # the stored state is what was measured
    assert torch.equal(cells.conductance(), result.conductance_us)


def _mean_programming_error(config: DeviceConfig) -> float:
    """Mean error the write-verify loop leaves, with any published post-verify spread switched off (its
    zero-mean draw would only add sampling noise to the loop's own offset)."""
    config = replace(config, program_sigma_us=0.0, program_sigma_per_us=0.0)
    cells = CellArray((128, 128), config, seed=0)
    result = cells.program(_targets((128, 128), config=config))
    return float((result.conductance_us - result.targets_us).mean())


@pytest.mark.parametrize("preset", ["taox_1t1r", "hfox_cmo"])
def test_write_verify_leaves_no_common_offset(preset):
    """A common offset of the written cells is a bias on every weight (deployment lost 3.5 points to one):
    the mean error must stay a small share of the verify band, and a controller that approaches from one
    side (gain 0.7, the old default) is caught by the same measurement (positive control)."""
    config = getattr(DeviceConfig, preset)()
    assert abs(_mean_programming_error(config)) < 0.03 * config.tolerance_us
    assert _mean_programming_error(replace(config, pulse_gain=0.7)) < -0.05 * config.tolerance_us


def test_preset_matches_paper_cell():
    cfg = DeviceConfig.taox_1t1r()
    assert (cfg.g_min_us, cfg.g_max_us, cfg.tolerance_us, cfg.endurance_cycles) == (20.0, 80.0, 2.0, 30_000)
    assert cfg.levels >= 128


def test_targets_are_snapped_to_levels():
    cfg = DeviceConfig(levels=4)
    snapped = cfg.quantize(torch.tensor([20.0, 29.0, 31.0, 79.0, 100.0]))
    assert torch.allclose(snapped, torch.tensor([20.0, 20.0, 40.0, 80.0, 80.0]))


def test_tighter_tolerance_needs_more_pulses():
    loose = CellArray((64, 64), DeviceConfig(tolerance_us=2.0), seed=1).program(_targets())
    tight = CellArray((64, 64), DeviceConfig(tolerance_us=0.8), seed=1).program(_targets())
    assert tight.pulses.float().mean() > loose.pulses.float().mean() + 0.3


def test_programming_is_reproducible_under_a_seed():
    a = CellArray((32, 32), DeviceConfig(), seed=5).program(_targets((32, 32)))
    b = CellArray((32, 32), DeviceConfig(), seed=5).program(_targets((32, 32)))
    c = CellArray((32, 32), DeviceConfig(), seed=6).program(_targets((32, 32)))
    assert torch.equal(a.conductance_us, b.conductance_us) and torch.equal(a.pulses, b.pulses)
    assert not torch.equal(a.conductance_us, c.conductance_us)


def test_drift_follows_the_model_and_is_reproducible():
    cfg = DeviceConfig(drift_spread_us=0.0, drift_pull=0.02)
    cells = CellArray((16, 16), cfg, seed=2)
    cells.program(_targets((16, 16)))
    g0 = cells.conductance()
    g = cells.drifted(1e6)
    decades = math.log10(1 + 1e6 / cfg.drift_t0_s)
    expected = g0 + cfg.drift_pull * decades * (cfg.g_mid_us - g0)
    assert torch.allclose(g, expected, atol=1e-5)
    # with spread, the same time gives the same conductances, and more time moves cells further
    noisy = CellArray((16, 16), DeviceConfig(), seed=2)
    noisy.program(_targets((16, 16)))
    base = noisy.conductance()
    assert torch.equal(noisy.drifted(3600), noisy.drifted(3600))
    moved_hour = (noisy.drifted(3600) - base).abs().mean()
    moved_long = (noisy.drifted(1e6) - base).abs().mean()
    assert 0 < moved_hour < moved_long


def test_wear_accumulates_and_worn_cells_stick():
    cfg = DeviceConfig(endurance_cycles=5)
    cells = CellArray((8, 8), cfg, seed=0)
    first = cells.program(torch.full((8, 8), 75.0))
    assert torch.equal(cells.cycles, first.pulses)
    for target in (25.0, 75.0, 25.0, 75.0, 25.0):
        cells.program(torch.full((8, 8), target))
    assert bool(cells.worn_out.all())
    frozen = cells.conductance().clone()
    result = cells.program(torch.full((8, 8), 50.0))
    assert torch.equal(cells.conductance(), frozen)
    assert result.within_tolerance_fraction < 0.5


def test_stuck_cells_do_not_move():
    cells = CellArray((64, 64), DeviceConfig(stuck_on_rate=0.05, stuck_off_rate=0.05), seed=0)
    stuck = cells.stuck.clone()
    assert 0.05 < stuck.float().mean() < 0.15
    before = cells.conductance()[stuck].clone()
    assert torch.all((before == 20.0) | (before == 80.0))
    result = cells.program(torch.full((64, 64), 50.0))
    assert torch.equal(result.conductance_us[stuck], before)
    assert result.within_tolerance[~stuck].float().mean() > 0.99
    added = cells.inject_stuck(0.1, 0.0)
    assert added > 0 and int(cells.stuck.sum()) == int(stuck.sum()) + added


def test_dead_cells_are_given_up_on_not_worn_to_the_pulse_limit():
    cfg = DeviceConfig(stuck_on_rate=0.05, stuck_off_rate=0.05)
    cells = CellArray((64, 64), cfg, seed=0)
    stuck = cells.stuck.clone()
    result = cells.program(torch.full((64, 64), 50.0))  # mid-window: every stuck cell is far from it
    assert torch.equal(result.failed, stuck)
    assert int(result.pulses[stuck].max()) < cfg.max_pulses // 2
    assert torch.equal(cells.cycles[stuck], result.pulses[stuck])
    assert not result.failed[~stuck].any() and result.within_tolerance[~stuck].float().mean() > 0.99


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"g_min_us": 80.0, "g_max_us": 20.0}, "g_min_us < g_max_us"),
        ({"levels": 0}, "levels"),
        ({"tolerance_us": -1.0}, "tolerance_us"),
        ({"g_max_us": float("nan")}, "finite"),
        ({"stuck_on_rate": 1.5}, "stuck_on_rate"),
        ({"give_up_after": 0}, "give_up_after"),
    ],
)
def test_impossible_configs_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeviceConfig(**kwargs)


def test_non_finite_targets_are_rejected():
    cells = CellArray((2, 2), DeviceConfig())
    with pytest.raises(ValueError, match="NaN"):
        cells.program(torch.tensor([[30.0, float("nan")], [40.0, 50.0]]))
    with pytest.raises(ValueError, match="shape"):
        cells.program(torch.zeros(3, 3))


@pytest.mark.parametrize("preset", ["taox_1t1r", "hfox_cmo"])
def test_a_partial_write_leaves_the_other_cells_and_their_drift_alone(preset):
    """Cells a write does not select keep their conductance, their post-verify spread and their age:
    later drift is what it would have been without the write."""
    config = getattr(DeviceConfig, preset)()
    cells = CellArray((16, 16), config, seed=1)
    cells.program(_targets((16, 16), config=config))
    cells.elapsed_s = 3600.0
    expected_later = cells.drifted(1e6)  # the array untouched until 10^6 s after programming
    now = cells.conductance()
    chosen = torch.zeros(16, 16, dtype=torch.bool)
    chosen[0, 0] = True
    cells.program(now.clone().fill_(config.g_mid_us), cells=chosen)
    others = ~chosen
    assert torch.equal(cells.conductance()[others], now[others])  # not rewritten, no spread redrawn
    cells.elapsed_s = 1e6 - 3600.0
    assert torch.allclose(cells.conductance()[others], expected_later[others], atol=1e-4)
    assert cells.age_offset_s[0, 0] == 0 and (cells.age_offset_s[others] == 3600.0).all()


def test_a_target_beyond_the_window_is_reported_as_clipped():
    config = DeviceConfig()
    cells = CellArray((4, 4), config, seed=0)
    targets = torch.full((4, 4), config.g_mid_us)
    targets[1, 2] = config.g_max_us + 50.0
    result = cells.program(targets)
    assert result.clipped[1, 2] and int(result.clipped.sum()) == 1
    assert not result.within_tolerance[1, 2] and result.within_tolerance.sum() == 15


def test_an_interrupted_programming_run_keeps_its_pulses_in_the_write_history(monkeypatch):
    """Review (session 21) F4: the history was added after the pulse loop, so a run interrupted inside it had
    worn cells (their cycle counters grew) that no history, and so no ``interrupted`` audit entry, showed."""
    config = DeviceConfig.taox_1t1r()
    cells = CellArray((32, 32), config, seed=0)
    calls, read_sigma = [0], DeviceConfig.read_sigma_us

    def interrupted_on_the_fourth_read(self, g):
        calls[0] += 1
        if calls[0] == 4:
            raise KeyboardInterrupt
        return read_sigma(self, g)

    monkeypatch.setattr(DeviceConfig, "read_sigma_us", interrupted_on_the_fourth_read)
    before = cells.programmed_us.clone()
    with pytest.raises(KeyboardInterrupt):
        cells.program(torch.full((32, 32), 0.5 * (config.g_min_us + config.g_max_us)))
    assert int(cells.cycles.sum()) > 0
    assert int(cells.write_history[0]) == int(cells.cycles.sum())  # every pulse applied is on the record
    assert 0 < int(cells.write_history[1]) <= cells.cycles.numel()
    # and the pulsed cells moved, as they would on a chip (review, session 21: they wore but stayed put)
    moved = (cells.programmed_us - before).abs() > 0
    assert moved.any() and torch.equal(moved, moved & (cells.cycles > 0))


@pytest.mark.parametrize("history", [[-100, 1], [3, 5]])
def test_an_impossible_write_history_is_refused_on_load(history):
    """Review (session 21) F6: a negative history priced a merge at nothing."""
    cells = CellArray((4, 4), DeviceConfig.taox_1t1r(), seed=0)
    state = {**cells.state_dict(), "write_history": torch.tensor(history)}
    with pytest.raises(RuntimeError, match="write_history must hold"):
        CellArray((4, 4), DeviceConfig.taox_1t1r(), seed=0).load_state_dict(state)
