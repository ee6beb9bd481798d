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

from neuro_rm.energy import Ledger  # noqa: E402


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

def plot_levels(conductance_us: Mapping[str, torch.Tensor], levels_us: Sequence[float] | torch.Tensor, tolerance_us: float) -> Figure:
    """Histograms of cell conductances (one outline per labelled snapshot, e.g. times after programming)
    over the programmed levels, each level drawn with its ±tolerance band."""
    levels = _np(levels_us).ravel()
    values = {label: _np(g).ravel() for label, g in conductance_us.items()}
    everything = np.concatenate([*values.values(), levels - tolerance_us, levels + tolerance_us])
    bins = np.linspace(everything.min(), everything.max(), 160)
    fig, ax = plt.subplots(figsize=(10, 3.8))
    for level in levels:
        ax.axvspan(level - tolerance_us, level + tolerance_us, color="0.92", zorder=0)
        ax.axvline(level, color="0.5", lw=0.8, ls=":", zorder=1)
    for label, g in values.items():
        ax.hist(g, bins=bins, histtype="step", lw=1.3, label=label)
    ax.set_ylim(top=ax.get_ylim()[1] * 1.2)  # room for the legend above the peaks
    ax.set(xlabel="conductance G (µS)", ylabel="cells", title=f"{len(levels)} levels with their ±{tolerance_us:g} µS bands")
    ax.legend(loc="upper center", ncol=len(values))
    fig.tight_layout()
    return fig


def plot_wear(cycles: Sequence[torch.Tensor], within_tolerance: Sequence[float], endurance_cycles: int) -> Figure:
    """Wear over repeated programming rounds: the write cycles each cell has taken (``cycles[i]``, the
    cumulative count after round i + 1) rising to the endurance, and the share of cells worn out (they
    stick) against the share that round programmed within tolerance."""
    rounds = np.arange(1, len(cycles) + 1)
    counts = [_np(c).ravel() for c in cycles]
    fig, (ax_cycles, ax_share) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax_cycles.plot(rounds, [c.mean() for c in counts], marker="o", ms=3, label="mean")
    ax_cycles.plot(rounds, [c.max() for c in counts], marker="o", ms=3, label="most worn cell")
    ax_cycles.axhline(endurance_cycles, color="r", ls="--", label=f"endurance {endurance_cycles:,}")
    ax_cycles.set(xlabel="programming round", ylabel="write cycles per cell", title="cycles accumulate")
    ax_cycles.legend()
    ax_share.plot(rounds, [float((c >= endurance_cycles).mean()) for c in counts], marker="o", ms=3, label="worn out (stuck)")
    ax_share.plot(rounds, within_tolerance, marker="o", ms=3, label="programmed within tolerance")
    ax_share.set(xlabel="programming round", ylabel="share of cells", ylim=(-0.03, 1.03), title="cells stick at their endurance")
    ax_share.legend()
    fig.tight_layout()
    return fig


def plot_neuron_change(deltas: Mapping[str, Mapping[str, torch.Tensor]], top: int = 20) -> Figure:
    """Which output neurons each branch changes most: one panel per branch, bars of the ``top`` largest
    norms of a neuron's incoming ΔW (its rows in every layer's ΔW, taken together; the layers must share
    their output neurons), labelled by neuron index."""
    fig, axes = plt.subplots(1, len(deltas), figsize=(5.5 * len(deltas), 3.6), squeeze=False)
    for ax, (branch, layers) in zip(axes[0], deltas.items(), strict=True):
        rows = np.concatenate([_np(d).reshape(d.shape[0], -1) for d in layers.values()], axis=1)
        norms = np.linalg.norm(rows, axis=1)
        order = np.argsort(-norms, kind="stable")[:top]
        share = float((norms[order] ** 2).sum() / max((norms**2).sum(), 1e-30))
        ax.bar(np.arange(len(order)), norms[order])
        ax.set_xticks(np.arange(len(order)), [str(i) for i in order], rotation=90, fontsize=7)
        ax.set(xlabel="hidden neuron", ylabel="‖incoming ΔW‖",
               title=f"{branch}: top {len(order)} of {len(norms)} neurons, {share:.0%} of ‖ΔW‖²")
    fig.tight_layout()
    return fig


def plot_grouped_bars(
    groups: Mapping[str, Mapping[object, float]], ylabel: str, title: str, names: Sequence[str] | Mapping[object, str] | None = None
) -> Figure:
    """One cluster per key (e.g. a speaker label, shown as ``names[key]``), one bar per group in it
    (e.g. a lifecycle stage); a key a group lacks leaves a gap."""
    keys = list(dict.fromkeys(k for values in groups.values() for k in values))
    x = np.arange(len(keys))
    width = 0.8 / max(len(groups), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(keys) * len(groups) + 2), 3.8))
    for i, (label, values) in enumerate(groups.items()):
        ax.bar(x + (i - (len(groups) - 1) / 2) * width, [values.get(k, np.nan) for k in keys], width=width, label=label)
    ax.set_xticks(x, [str(k) if names is None else names[k] for k in keys])
    ax.set_ylim(top=ax.get_ylim()[1] * 1.15)  # room for the legend above the bars
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize=8, loc="upper center", ncol=len(groups))
    fig.tight_layout()
    return fig


def plot_delta_weight(delta: Mapping[str, torch.Tensor], title: str = "ΔW = (α/r)·B·A", percentile: float = 100.0) -> Figure:
    """Heatmaps of adapter weight changes, one panel per layer, on a shared symmetric colour scale: ±the
    ``percentile`` of |ΔW| over all panels (100: the largest change; lower, the few largest saturate so
    the structure of the rest shows).  Constrained layout keeps titles and colour bar apart."""
    magnitudes = np.concatenate([np.abs(_np(d)).ravel() for d in delta.values()])
    vmax = float(np.percentile(magnitudes, percentile)) or 1.0
    fig, axes = plt.subplots(1, len(delta), figsize=(5 * len(delta), 4), squeeze=False, layout="constrained")
    for ax, (name, d) in zip(axes[0], delta.items(), strict=True):
        image = ax.imshow(_np(d).reshape(d.shape[0], -1), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set(title=name, xlabel="input", ylabel="output")
    fig.colorbar(image, ax=axes[0].tolist(), extend="both" if percentile < 100 else "neither")
    fig.suptitle(title)
    return fig


DET_TICKS = (0.001, 0.01, 0.05, 0.2, 0.4)  # error rates marked on the DET axes


def plot_det(curves: Mapping[str, tuple[torch.Tensor, torch.Tensor]], eers: Mapping[str, float] | None = None,
             floor: float = 1e-3, ceiling: float = 0.5) -> Figure:
    """DET curves (miss rate vs false-accept rate) on normal-deviate axes, as speaker verification plots
    them, so that Gaussian-like score distributions come out straight; the axes span ``floor`` to
    ``ceiling`` and rates below the floor are drawn on it.  ``eers`` marks each curve's equal-error point."""
    from scipy.stats import norm

    deviate = lambda p: norm.ppf(np.clip(_np(p).astype(float), floor, 1 - floor))  # noqa: E731
    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    for label, (far, miss) in curves.items():
        ax.plot(deviate(far), deviate(miss), label=label)
        if eers and label in eers:
            ax.plot(deviate(eers[label]), deviate(eers[label]), "o", color=ax.lines[-1].get_color())
    ticks, names = deviate(np.array(DET_TICKS)), [f"{t:.1%}".replace(".0%", "%") for t in DET_TICKS]
    ax.set_xticks(ticks, names)
    ax.set_yticks(ticks, names)
    limits = deviate(np.array([floor, ceiling]))
    ax.plot(limits, limits, "k:", lw=0.8)  # the diagonal: false accepts = misses
    ax.set(xlim=limits, ylim=limits, xlabel="false-accept rate", ylabel="miss rate", title="DET")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def energy_breakdown(ledger: Ledger, prefix: str | None = None, per: float = 1.0) -> dict[str, float]:
    """Joules per ledger category (those under ``prefix``, with any cost), divided by ``per`` (e.g. a
    sample count): one bar's stack for ``plot_energy``."""
    return {
        category: row["joules"] / per
        for category, row in ledger.by_category().items()
        if row["joules"] > 0 and (prefix is None or category == prefix or category.startswith(prefix + "."))
    }


def plot_energy(breakdown: Mapping[str, Mapping[str, float]], title: str = "energy") -> Figure:
    """Stacked bars: one bar per scenario, one segment per ledger category (joules, log-free); each
    bar's total is written above it, so one too small to see can still be read."""
    scenarios = list(breakdown)
    categories = sorted({c for parts in breakdown.values() for c in parts})
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(scenarios)), 4))
    bottom = np.zeros(len(scenarios))
    for category in categories:
        heights = np.array([breakdown[s].get(category, 0.0) for s in scenarios])
        ax.bar(scenarios, heights, bottom=bottom, label=category)
        bottom += heights
    for x, total in enumerate(bottom):
        ax.annotate(f"{total:.3g} J", (x, total), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 1.15 * bottom.max() if bottom.max() > 0 else 1.0)  # room for the totals
    ax.set(ylabel="joules", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
