"""Rebuild datasets/spiking_fsdd.h5 from the FSDD WAV folder with the default cochlea encoder.

    python scripts/build_spiking_fsdd.py [--wav-dir DIR] [--out FILE]

Runs on one thread so the floating-point work, and so the file's bytes, are the same on every rebuild.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import torch

from neuro_rm.data.fsdd import encode_fsdd, list_recordings

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wav-dir", type=Path, default=ROOT.parent / "shared/data/fsdd/recordings")
    parser.add_argument("--out", type=Path, default=ROOT / "datasets/spiking_fsdd.h5")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    stats = encode_fsdd(list_recordings(args.wav_dir), args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(
        f"{args.out}: {stats['samples']} recordings, {stats['events']} events "
        f"({stats['events'] / stats['samples']:.0f} per recording), {args.out.stat().st_size / 1e6:.2f} MB, "
        f"{stats['seconds']:.1f} s, sha256 {digest}"
    )


if __name__ == "__main__":
    main()
