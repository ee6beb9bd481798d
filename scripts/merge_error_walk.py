"""Write error over many merges that cancel out: the crossbar's merge against re-targeting from the present state.

A 128x128 array is programmed, then given +delta and -delta in turn, so the intended weights never change.
``Crossbar.consolidate`` writes each moved cell to the weight it was last asked to hold plus delta, so its error
is that of its last write; the control re-targets the moved cells from their present conductance (what the
crossbar did before it kept write targets), so each write's error adds to the last one's.  Prints the stored
weights' relative rms error against the intended ones after 0..N merges, for both.
Run: python scripts/merge_error_walk.py [--merges 200] [--step 1.5] [--ideal]
"""

from __future__ import annotations

import argparse

import torch

from neuro_rm.crossbar import Crossbar, CrossbarConfig
from neuro_rm.device import DeviceConfig


def relative_error(bar: Crossbar, intended: torch.Tensor) -> float:
    return float((bar.weight() - intended).pow(2).mean().sqrt() / intended.pow(2).mean().sqrt())


def merge_from_present(bar: Crossbar, delta: torch.Tensor) -> None:
    """The control: the moved cells' targets are their present conductance plus the change (offset mapping:
    one cell per weight)."""
    shift = bar.encode(delta) - bar.encode(torch.zeros_like(delta))
    moved = (delta.abs() > bar.write_threshold).unsqueeze(0)
    bar.cells.program(bar.cells.conductance() + shift, cells=moved)
    bar.set_time(0.0)  # the cells were written behind the crossbar's back: drop its cached reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merges", type=int, default=200, help="merges in all (pairs of +delta, -delta)")
    parser.add_argument("--step", type=float, default=1.5, help="delta's sd in units of the write threshold")
    parser.add_argument("--ideal", action="store_true", help="read without the realistic periphery")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    periphery = CrossbarConfig.ideal() if args.ideal else CrossbarConfig()
    bars = {way: Crossbar(128, 128, DeviceConfig(), periphery, args.seed) for way in ("consolidate", "from present")}
    intended = torch.randn(128, 128) * 0.1
    for bar in bars.values():
        bar.program(intended)
    delta = torch.randn(128, 128) * args.step * bars["consolidate"].write_threshold
    print("relative rms error of the stored weights: consolidate | re-targeted from the present state (control)")
    print(f"merges 0: {relative_error(bars['consolidate'], intended):.4f} | {relative_error(bars['from present'], intended):.4f}")
    for pair in range(1, args.merges // 2 + 1):
        for step in (delta, -delta):
            bars["consolidate"].consolidate(step)
            merge_from_present(bars["from present"], step)
        if 2 * pair in (2, 20, 100, 200) or 2 * pair == args.merges:
            errors = [relative_error(bar, intended) for bar in bars.values()]
            print(f"merges {2 * pair}: {errors[0]:.4f} | {errors[1]:.4f}", flush=True)


if __name__ == "__main__":
    main()
