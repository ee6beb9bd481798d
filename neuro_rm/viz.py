"""Plots of what the crossbar and the adapters do; every function returns a matplotlib Figure.

Scripts, the CLI and the notebooks all draw through these, so a picture means the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _np(t: torch.Tensor | np.ndarray) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def plot_programming(targets_us: torch.Tensor, programmed_us: torch.Tensor, pulses: torch.Tensor, tolerance_us: float) -> Figure:
    """Target vs programmed conductance, the error against the tolerance, and pulses per cell."""
    t, g, p = _np(targets_us).ravel(), _np(programmed_us).ravel(), _np(pulses).ravel()
    fig, (ax_scatter, ax_err, ax_pulses) = plt.subplots(1, 3, figsize=(13, 3.8))
    ax_scatter.scatter(t, g, s=2, alpha=0.3)
    lims = [min(t.min(), g.min()), max(t.max(), g.max())]
    ax_scatter.plot(lims, lims, "k--", lw=1)
    ax_scatter.set(xlabel="target G (µS)", ylabel="programmed G (µS)", title="write-and-verify")
    ax_err.hist(g - t, bins=60)
    for edge in (-tolerance_us, tolerance_us):
        ax_err.axvline(edge, color="r", ls="--")
    ax_err.set(xlabel="G − target (µS)", ylabel="cells", title=f"error vs ±{tolerance_us:g} µS")
    ax_pulses.hist(p, bins=np.arange(p.max() + 2) - 0.5)
    ax_pulses.set(xlabel="pulses per cell", ylabel="cells", title=f"mean {p.mean():.2f} pulses")
    fig.tight_layout()
    return fig


def plot_drift(seconds: Sequence[float], values: Mapping[str, Sequence[float]], ylabel: str) -> Figure:
    """One line per series over time since programming, log time axis."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, series in values.items():
        ax.plot(seconds, series, marker="o", label=label)
    ax.set_xscale("log")
    ax.set(xlabel="time since programming (s)", ylabel=ylabel, title="drift")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_delta_weight(delta: Mapping[str, torch.Tensor], title: str = "ΔW = (α/r)·B·A") -> Figure:
    """Heatmaps of adapter weight changes, one panel per layer, on a shared symmetric colour scale."""
    fig, axes = plt.subplots(1, len(delta), figsize=(5 * len(delta), 4), squeeze=False)
    vmax = max(float(_np(d).__abs__().max()) for d in delta.values()) or 1.0
    for ax, (name, d) in zip(axes[0], delta.items(), strict=True):
        image = ax.imshow(_np(d).reshape(d.shape[0], -1), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set(title=name, xlabel="input", ylabel="output")
    fig.colorbar(image, ax=axes[0].tolist())
    fig.suptitle(title)
    return fig


def plot_raster(spikes: Mapping[str, torch.Tensor]) -> Figure:
    """Spike rasters (time x neurons), one panel per labelled sample."""
    fig, axes = plt.subplots(1, len(spikes), figsize=(4.5 * len(spikes), 3.5), squeeze=False, sharey=True)
    for ax, (label, s) in zip(axes[0], spikes.items(), strict=True):
        steps, neurons = np.nonzero(_np(s))
        ax.scatter(steps, neurons, s=1, marker="|")
        ax.set(title=label, xlabel="time bin")
    axes[0][0].set_ylabel("hidden neuron")
    fig.tight_layout()
    return fig


def plot_bars(values: Mapping[str, float], ylabel: str, title: str, reference: Mapping[str, float] | None = None) -> Figure:
    """Bars for measured values, with reference values (if any) as hollow bars beside them."""
    labels = list(values)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(labels)), 3.8))
    ax.bar(x - 0.2 if reference else x, [values[k] for k in labels], width=0.4, label="measured")
    if reference:
        ax.bar(x + 0.2, [reference.get(k, np.nan) for k in labels], width=0.4, fill=False, label="reference")
        ax.set_ylim(top=ax.get_ylim()[1] * 1.2)  # room for the legend above the bars
        ax.legend(loc="upper right", ncol=2)
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set(ylabel=ylabel, title=title)
    fig.tight_layout()
    return fig


def plot_energy(breakdown: Mapping[str, Mapping[str, float]], title: str = "energy") -> Figure:
    """Stacked bars: one bar per scenario, one segment per ledger category (joules, log-free)."""
    scenarios = list(breakdown)
    categories = sorted({c for parts in breakdown.values() for c in parts})
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(scenarios)), 4))
    bottom = np.zeros(len(scenarios))
    for category in categories:
        heights = np.array([breakdown[s].get(category, 0.0) for s in scenarios])
        ax.bar(scenarios, heights, bottom=bottom, label=category)
        bottom += heights
    ax.set(ylabel="joules", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
