"""Run the stylized-generation lifecycle (learn, deploy, forget, learn new styles) and print its report.

Usage: ``python scripts/diffusion_demo.py [--out runs/diffusion] [--json] [--fast] [--ideal] [--seed 0]``.
Sample grids per stage and ``diffusion_demo.json`` go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from neuro_rm.tasks.diffusion import render_report, run_diffusion_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/diffusion"), help="folder for sample grids and the JSON report")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--fast", action="store_true", help="tiny sizes: a smoke test, not a result")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ideal", action="store_true", help="read the crossbars without read noise, DAC or ADC "
                        "(the report still gives each stage's accuracy under both readouts)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    report = run_diffusion_demo(args.out, fast=args.fast, seed=args.seed, progress=not args.quiet, ideal=args.ideal)
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else render_report(report))


if __name__ == "__main__":
    main()
