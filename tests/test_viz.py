import numpy as np
import torch
from matplotlib.figure import Figure

from neuro_rm import viz
from neuro_rm.device import CellArray, DeviceConfig


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


def test_bars_and_energy_stacks_carry_the_values():
    fig = viz.plot_bars({"a": 0.9, "b": 0.5}, "accuracy", "t", reference={"a": 0.8})
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights[:2] == [0.9, 0.5] and heights[2] == 0.8
    fig = viz.plot_energy({"lora": {"write.sram": 1.0}, "full": {"write.rm_pulse": 3.0, "write.rm_verify": 2.0}})
    tops = {}
    for patch in fig.axes[0].patches:
        x = round(patch.get_x() + patch.get_width() / 2)
        tops[x] = max(tops.get(x, 0), patch.get_y() + patch.get_height())
    assert tops == {0: 1.0, 1: 5.0}
