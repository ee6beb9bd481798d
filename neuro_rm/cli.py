"""The ``neuro-rm`` command: one subcommand per job, ``--json`` for machine-readable output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from neuro_rm.characterize import characterize_device
from neuro_rm.device import DeviceConfig


def _emit(result: dict, as_json: bool, render: Callable[[dict], str]) -> None:
    print(json.dumps(result, indent=2, sort_keys=True) if as_json else render(result))


def _render_flat(result: dict) -> str:
    width = max(len(k) for k in result)
    lines = []
    for key, value in result.items():
        if isinstance(value, float):
            value = f"{value:.6g}"
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
        lines.append(f"{key:<{width}}  {value}")
    return "\n".join(lines)


def cmd_device(args: argparse.Namespace) -> None:
    config = DeviceConfig.taox_1t1r(tolerance_us=args.tolerance, levels=args.levels)
    result = characterize_device(config, args.rows, args.cols, args.seed)
    _emit(result, args.json, _render_flat)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuro-rm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("device", help="characterise the simulated RM cell: program an array, measure it")
    p.add_argument("--tolerance", type=float, default=DeviceConfig.tolerance_us, help="write-verify tolerance, µS")
    p.add_argument("--levels", type=int, default=DeviceConfig.levels, help="programmable conductance levels")
    p.add_argument("--rows", type=int, default=128)
    p.add_argument("--cols", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_device)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, KeyError, FileNotFoundError) as error:
        print(f"neuro-rm {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
