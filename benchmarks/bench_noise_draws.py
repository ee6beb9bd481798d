"""Cost of one read-noise draw: the compiled counter-based stream (``crossbar.stream_normals``) against
``torch.randn``, side by side, one thread, on the shape of one RSNN forward pass's draws (5120 x 512).
Run: OMP_NUM_THREADS=1 python benchmarks/bench_noise_draws.py
"""

from __future__ import annotations

import torch
from common import interleaved_best, print_table

from neuro_rm import fused
from neuro_rm.crossbar import stream_normals


def main() -> None:
    torch.set_num_threads(1)
    shape = torch.Size((5120, 512))
    calls = {"torch.randn": lambda: torch.randn(shape)}
    if fused.module() is not None:
        calls["compiled stream (stream_normals)"] = lambda: stream_normals(12345, shape)
    seconds = interleaved_best(calls, repeats=20)
    print_table("Read-noise draws, ns per draw", ("source", "ns per draw"),
                [(label, s / shape.numel() * 1e9) for label, s in seconds.items()])


if __name__ == "__main__":
    main()
