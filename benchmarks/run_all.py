"""Every benchmark table in one run: python benchmarks/run_all.py (one to two minutes on one thread)."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import bench_forward  # noqa: E402
import bench_lifecycle  # noqa: E402
import bench_programming  # noqa: E402
import bench_throughput  # noqa: E402
from common import print_table  # noqa: E402

from neuro_rm import fused  # noqa: E402


def main() -> None:
    start = time.perf_counter()
    print(f"# neuro_rm benchmarks\n\nmachine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, python {platform.python_version()}, "
          f"periphery: {'compiled kernel' if fused.kernel() is not None else 'eager torch (no compiled kernel)'}")
    print_table("Forward pass, analogized RSNN vs plain torch (batch 256)", bench_forward.HEADER, bench_forward.run())
    rows, peak_rows = bench_throughput.run()
    print_table("RSNN throughput, batch 128 (samples/s; time ratio vs the hand-written plain-torch loop)",
                ("variant", "train samples/s", "infer samples/s", "train time ratio", "infer time ratio"), rows)
    print_table("Batched inference: achieved share of the machine's matmul peak", ("variant", "GFLOP/s", "share of peak"),
                peak_rows)
    print_table("Write-and-verify programming speed", ("array", "cells", "seconds", "M cells/s", "mean pulses",
                                                        "within ±2 µS"), bench_programming.run())
    print_table("Lifecycle operations on the bundled spiking FSDD (seconds)", ("operation", "seconds"),
                bench_lifecycle.lifecycle_seconds(10))
    print_table("Inference vs number of active adapters (time relative to no adapter; energy per sample)",
                ("adapters", "time, separate", "time, fused ΔW", "J/sample, separate", "J/sample, fused"),
                bench_lifecycle.adapter_scaling())
    print(f"\ntotal: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
