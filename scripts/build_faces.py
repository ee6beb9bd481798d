"""Convert the Olivetti faces .mat (MATLAB, one 4096×400 uint8 array 'faces') into datasets/olivetti_faces.npz.

    python scripts/build_faces.py [--mat FILE] [--out FILE]

The .mat stores each image as a column in MATLAB (column-major) order, so images are the columns reshaped to
64×64 and transposed to stand upright (as scikit-learn reads the same file); image 10k..10k+9 is person k.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
from scipy.io import loadmat

ROOT = Path(__file__).resolve().parents[1]


def convert(mat: Path, out: Path) -> None:
    faces = loadmat(mat)["faces"]
    if faces.shape != (4096, 400) or faces.dtype != np.uint8:
        raise ValueError(f"{mat}: expected 'faces' uint8 (4096, 400), got {faces.dtype} {faces.shape}")
    images = np.ascontiguousarray(faces.T.reshape(400, 64, 64).transpose(0, 2, 1))
    labels = np.repeat(np.arange(40, dtype=np.uint8), 10)
    np.savez_compressed(out, images=images, labels=labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mat", type=Path, default=ROOT.parent / "shared/data/faces/olivettifaces.mat")
    parser.add_argument("--out", type=Path, default=ROOT / "datasets/olivetti_faces.npz")
    args = parser.parse_args()
    convert(args.mat, args.out)
    print(
        f"{args.out}: {args.out.stat().st_size / 1e6:.2f} MB, sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}"
    )


if __name__ == "__main__":
    main()
