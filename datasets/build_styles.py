"""Draw the style dataset's example grid (datasets/styles_examples.png) and check it is reproducible.

The images themselves are not stored: ``neuro_rm.data.styles.make_styles`` draws them from a seed in
well under a second.  Usage: ``python datasets/build_styles.py [--seed 0] [--out datasets/styles_examples.png]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from neuro_rm.data.styles import CONTENTS, STYLES, make_styles, save_grid

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", type=int, default=4, help="examples per (style, content) in the grid")
    parser.add_argument("--out", type=Path, default=HERE / "styles_examples.png")
    args = parser.parse_args()

    start = time.perf_counter()
    images, styles, contents = make_styles(n_per=args.variants, seed=args.seed)
    seconds = time.perf_counter() - start
    again, _, _ = make_styles(n_per=args.variants, seed=args.seed)
    if not torch.equal(images, again):
        raise SystemExit("make_styles is not deterministic for a fixed seed")
    columns = len(CONTENTS) * args.variants
    save_grid(images, str(args.out), columns, [f"{i} {s.name}" for i, s in enumerate(STYLES)],
              title="one row per style; " + ", ".join(CONTENTS) + f" ({args.variants} variants each)")
    print(f"{len(images)} images ({len(STYLES)} styles x {len(CONTENTS)} contents x {args.variants}) "
          f"drawn in {seconds:.2f} s -> {args.out}")


if __name__ == "__main__":
    main()
