"""Write a generated SSC-layout corpus (default: SSC's training-split size, 75,000 utterances, 250 speakers).

    python scripts/make_corpus.py --out BIG.h5 [--samples N] [--speakers K] [--events MEDIAN] [--seed S]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from neuro_rm.data.synthetic import GeneratorConfig, generate_corpus


def main() -> None:
    defaults = GeneratorConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=defaults.n_samples)
    parser.add_argument("--speakers", type=int, default=defaults.n_speakers)
    parser.add_argument("--events", type=float, default=defaults.events_median, help="median events per utterance")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args()
    config = GeneratorConfig(n_samples=args.samples, n_speakers=args.speakers, events_median=args.events, seed=args.seed)
    start = time.perf_counter()
    stats = generate_corpus(args.out, config)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.out}: {stats['samples']} utterances, {stats['speakers']} speakers, {stats['events']} events "
          f"({stats['events'] / stats['samples']:.0f} per utterance), {args.out.stat().st_size / 1e6:.0f} MB, "
          f"{time.perf_counter() - start:.1f} s, peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
