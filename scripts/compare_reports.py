"""Which figures two demo reports disagree on, key by key: is a rerun the same run to the last digit?

Timings (``seconds*``) and provenance (``code.*``, the GPU's status) are left out, since they differ between any
two runs; a key only one report holds is listed as such (a key added by later code).

    python scripts/compare_reports.py OLD/seed_0/report.json NEW/seed_0/report.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from neuro_rm.learning.seeds import flatten

NOT_FIGURES = ("seconds", "code.", "energy.gpu_nvml")


def differing(old: dict, new: dict) -> dict[str, tuple[object, object]]:
    """Every key, outside timings and provenance, whose value differs between the flattened reports (absent: None)."""
    old, new = flatten(old), flatten(new)
    keys = sorted(k for k in old.keys() | new.keys() if not k.startswith(NOT_FIGURES))
    return {k: (old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args()
    reports = [json.loads(path.read_text()) for path in (args.old, args.new)]
    changed = differing(*reports)
    for key, (before, after) in changed.items():
        print(f"{key}: {before} -> {after}")
    print(f"{len(changed)} key(s) differ")


if __name__ == "__main__":
    main()
