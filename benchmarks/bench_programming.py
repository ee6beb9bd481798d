"""Cells per second of the vectorised write-and-verify loop (the bar: 1 M cells/s on 2 cores).

Run: python benchmarks/bench_programming.py
"""

from __future__ import annotations

import argparse
import time

import torch
from common import print_table

from neuro_rm.device import CellArray, DeviceConfig


def run(sizes: tuple[int, ...] = (128, 512, 1024)) -> list[tuple]:
    rows = []
    for side in sizes:
        cfg = DeviceConfig()
        cells = CellArray((side, side), cfg, seed=0)
        targets = cfg.g_min_us + torch.rand(side, side, generator=torch.Generator().manual_seed(1)) * 60
        start = time.perf_counter()
        result = cells.program(targets)
        seconds = time.perf_counter() - start
        rows.append((f"{side}x{side}", side * side, seconds, side * side / seconds / 1e6,
                     float(result.pulses.float().mean()), result.within_tolerance_fraction))
    return rows


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    print_table(f"Write-and-verify programming speed, {torch.get_num_threads()} threads",
                ("array", "cells", "seconds", "M cells/s", "mean pulses", "within ±2 µS"), run())


if __name__ == "__main__":
    main()
