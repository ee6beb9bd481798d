"""Device characterisation the way the paper's device figures read: program an array, measure it."""

from __future__ import annotations

from dataclasses import asdict

import torch

from neuro_rm.device import CellArray, DeviceConfig
from neuro_rm.energy import EnergyModel, Ledger


def characterize_device(
    config: DeviceConfig | None = None,
    rows: int = 128,
    cols: int = 128,
    seed: int = 0,
    energy: EnergyModel | None = None,
    drift_times_s: tuple[float, ...] = (3600.0, 86400.0, 1e6),
) -> dict[str, object]:
    """Write-verify random targets spread over the whole window into one array and summarise it."""
    config = config or DeviceConfig()
    if rows < 1 or cols < 1:
        raise ValueError(f"array size must be positive, got {rows}x{cols}")
    cells = CellArray((rows, cols), config, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    targets = config.g_min_us + torch.rand(rows, cols, generator=generator) * (config.g_max_us - config.g_min_us)
    result = cells.program(targets)
    ledger = Ledger(energy)
    ledger.post_programming(result.total_pulses, result.verify_reads, tiles=1)
    error = (result.conductance_us - result.targets_us).abs()
    drift = {
        f"{t:g}": float((cells.drifted(t) - result.targets_us).abs().mean()) for t in drift_times_s
    }
    return {
        "cells": rows * cols,
        "levels": config.levels,
        "tolerance_us": config.tolerance_us,
        "within_tolerance_fraction": result.within_tolerance_fraction,
        "mean_abs_error_us": float(error.mean()),
        "mean_pulses": float(result.pulses.float().mean()),
        "max_pulses": int(result.pulses.max()),
        "pulse_limit": config.max_pulses,
        "failed_cells": int(result.failed.sum()),
        "verify_reads": result.verify_reads,
        "write_energy_j": ledger.joules("write"),
        "programming_seconds": ledger.seconds("write"),
        "drift_mean_abs_error_us": drift,
        "device": asdict(config),
    }
