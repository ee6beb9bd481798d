import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from neuro_rm import viz
from neuro_rm.device import CellArray, DeviceConfig
from neuro_rm.energy import Ledger


def test_programming_figure_shows_targets_errors_and_pulses():
    cells = CellArray((16, 16), DeviceConfig(), seed=0)
    targets = torch.linspace(20, 80, 256).view(16, 16)
    result = cells.program(targets)
    fig = viz.plot_programming(result.targets_us, result.conductance_us, result.pulses, 2.0)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    scatter = fig.axes[0].collections[0].get_offsets()
    assert np.allclose(scatter[:, 0], result.targets_us.flatten().numpy())
    assert np.allclose(scatter[:, 1], result.conductance_us.flatten().numpy())
    assert sorted(line.get_xdata()[0] for line in fig.axes[1].lines) == [-2.0, 2.0]
    counts = sum(p.get_height() for p in fig.axes[2].patches)
    assert counts == 256


def test_drift_figure_has_log_time_axis_and_one_line_per_series():
    fig = viz.plot_drift([1, 10, 100], {"a": [1, 2, 3], "b": [3, 2, 1]}, "error")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and [tuple(line.get_ydata()) for line in ax.lines] == [(1, 2, 3), (3, 2, 1)]


def test_delta_weight_heatmaps_share_a_symmetric_scale():
    fig = viz.plot_delta_weight({"in": torch.tensor([[1.0, -2.0]]), "rec": torch.tensor([[0.5]])})
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2 and all(im.get_clim() == (-2.0, 2.0) for im in images)
    assert np.array_equal(images[0].get_array(), [[1.0, -2.0]])


def test_raster_places_each_spike():
    spikes = torch.zeros(5, 4)
    spikes[1, 2] = spikes[3, 0] = 1
    fig = viz.plot_raster({"genuine": spikes})
    assert sorted(map(tuple, fig.axes[0].collections[0].get_offsets().tolist())) == [(1.0, 2.0), (3.0, 0.0)]


def test_bars_carry_measured_and_reference_values():
    fig = viz.plot_bars({"a": 0.9, "b": 0.5}, "accuracy", "t", reference={"a": 0.8})
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights[:2] == [0.9, 0.5] and heights[2] == 0.8


def test_levels_mark_each_level_and_label_each_snapshot():
    levels = torch.tensor([30.0, 50.0, 70.0])
    g = levels.repeat(10) + 0.1
    fig = viz.plot_levels({"now": g, "later": g + 1.0}, levels, 2.0)
    ax = fig.axes[0]
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert [line.get_xdata()[0] for line in ax.lines] == [30.0, 50.0, 70.0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["now", "later"]


def test_wear_counts_cycles_and_worn_share_per_round():
    cycles = [torch.tensor([1, 2, 3, 4]), torch.tensor([3, 4, 5, 6])]
    fig = viz.plot_wear(cycles, [1.0, 0.5], endurance_cycles=5)
    ax_cycles, ax_share = fig.axes
    mean, most, endurance = ax_cycles.lines
    assert list(mean.get_ydata()) == [2.5, 4.5] and list(most.get_ydata()) == [4, 6]
    assert list(endurance.get_ydata()) == [5, 5]
    worn, within = ax_share.lines
    assert list(worn.get_ydata()) == [0.0, 0.5] and list(within.get_ydata()) == [1.0, 0.5]


def test_neuron_change_ranks_neurons_by_incoming_norm_over_layers():
    first = torch.zeros(4, 3)
    first[2] = 3.0  # neuron 2: norm sqrt(27) over the first layer
    second = torch.zeros(4, 4)
    second[1, 0] = 4.0  # neuron 1: norm 4
    fig = viz.plot_neuron_change({"enroll": {"in": first, "rec": second}}, top=2)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "1"]
    assert np.allclose([p.get_height() for p in ax.patches], [np.sqrt(27.0), 4.0])


def test_grouped_bars_place_one_bar_per_group_and_key():
    fig = viz.plot_grouped_bars({"before": {0: 0.9, 1: 0.8}, "after": {0: 0.95, 2: 0.7}}, "accuracy", "t",
                                          names=["a", "b", "c"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    heights = [p.get_height() for p in ax.patches]
    assert heights[:3] == [0.9, 0.8, pytest.approx(np.nan, nan_ok=True)] and heights[3:] == [0.95, pytest.approx(np.nan, nan_ok=True), 0.7]


def test_delta_weight_scale_at_a_percentile_saturates_the_largest():
    delta = {"in": torch.tensor([[1.0, -2.0]]), "rec": torch.tensor([[0.5, 100.0]])}
    assert all(ax.images[0].get_clim() == (-100.0, 100.0) for ax in viz.plot_delta_weight(delta).axes if ax.images)
    fig = viz.plot_delta_weight(delta, percentile=50)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2 and all(im.get_clim() == (-1.5, 1.5) for im in images)
    assert np.array_equal(images[1].get_array(), [[0.5, 100.0]])


def test_energy_breakdown_and_stacks_with_totals():
    ledger = Ledger()
    ledger.post_programming(pulses=10, verify_reads=20)
    ledger.post_sram_write(64)
    ledger.post_training(100, 3)
    writes = viz.energy_breakdown(ledger, "write", per=2)
    assert set(writes) == {"write.rm_pulse", "write.rm_verify", "write.sram"}
    assert writes["write.sram"] == pytest.approx(ledger.joules("write.sram") / 2)
    assert viz.energy_breakdown(ledger, "train") == {}
    fig = viz.plot_energy({"lora": {"write.sram": 1.0}, "full": {"write.rm_pulse": 3.0, "write.rm_verify": 2.0}})
    tops = {}
    for patch in fig.axes[0].patches:
        x = round(patch.get_x() + patch.get_width() / 2)
        tops[x] = max(tops.get(x, 0), patch.get_y() + patch.get_height())
    assert tops == {0: 1.0, 1: 5.0}
    assert [t.get_text() for t in fig.axes[0].texts] == ["1 J", "5 J"]


def test_det_curve_is_drawn_on_normal_deviate_axes():
    from scipy.stats import norm

    far, miss = torch.tensor([1.0, 0.5, 0.1, 0.0]), torch.tensor([0.0, 0.02, 0.3, 1.0])
    fig = viz.plot_det({"final": (far, miss)}, eers={"final": 0.2})
    curve, eer_point = fig.axes[0].lines[:2]
    floor = 1e-3
    assert np.allclose(curve.get_xdata(), norm.ppf(np.clip(far.numpy(), floor, 1 - floor)))
    assert np.allclose(curve.get_ydata(), norm.ppf(np.clip(miss.numpy(), floor, 1 - floor)))
    assert np.allclose([eer_point.get_xdata()[0], eer_point.get_ydata()[0]], norm.ppf(0.2))
    assert fig.axes[0].get_xticklabels()[1].get_text() == "1%"
