"""How write error builds up when a crossbar takes many merges (``Crossbar.consolidate``) that cancel out.

A 128x128 array is programmed, then given +delta and -delta in turn, so the intended weights never change;
each merge re-targets the moved cells from their present conductance, so its write-and-verify error adds to
the last one.  Prints the stored weights' relative rms error against the intended ones after 0..N merges.
Run: python scripts/merge_error_walk.py [--merges 200] [--step 1.5] [--ideal]
"""

from __future__ import annotations

import argparse

import torch

from neuro_rm.crossbar import Crossbar, CrossbarConfig
from neuro_rm.device import DeviceConfig


def relative_error(bar: Crossbar, intended: torch.Tensor) -> float:
    return float((bar.weight() - intended).pow(2).mean().sqrt() / intended.pow(2).mean().sqrt())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merges", type=int, default=200, help="merges in all (pairs of +delta, -delta)")
    parser.add_argument("--step", type=float, default=1.5, help="delta's sd in units of the write threshold")
    parser.add_argument("--ideal", action="store_true", help="read without the realistic periphery")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    bar = Crossbar(128, 128, DeviceConfig(), CrossbarConfig.ideal() if args.ideal else CrossbarConfig(), args.seed)
    intended = torch.randn(128, 128) * 0.1
    bar.program(intended)
    delta = torch.randn(128, 128) * args.step * bar.write_threshold
    print(f"merges 0: relative rms error {relative_error(bar, intended):.4f}")
    for pair in range(1, args.merges // 2 + 1):
        bar.consolidate(delta)
        bar.consolidate(-delta)
        if 2 * pair in (2, 20, 100, 200) or 2 * pair == args.merges:
            print(f"merges {2 * pair}: relative rms error {relative_error(bar, intended):.4f}", flush=True)


if __name__ == "__main__":
    main()
