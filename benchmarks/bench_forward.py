"""Forward-pass time of an analogized network divided by the same network in plain torch.

Run: python benchmarks/bench_forward.py  — prints one table; the ratio is the figure in the README.
Both models are timed in the same process, interleaved, and the median of several repeats is used.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from neuro_rm import analogize
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.models.rsnn import SYNAPSES, RSNNConfig, SpeakerRSNN


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(0)
    plain = SpeakerRSNN(RSNNConfig()).eval()
    x = (torch.rand(args.batch, 10, 140) < 0.1).float()
    variants = {"plain torch": plain}
    for label, cfg in (("analogized", CrossbarConfig()), ("analogized + read noise", CrossbarConfig(read_noise=True)),
                       ("analogized + 8-bit ADC", CrossbarConfig(adc_bits=8))):
        variants[label] = analogize(copy.deepcopy(plain), targets=SYNAPSES, crossbar=cfg).eval()
    with torch.no_grad():
        for model in variants.values():
            model(x)  # warm-up
        results = {label: median_seconds(lambda m=model: m(x), args.repeats) for label, model in variants.items()}
    base = results["plain torch"]
    print(f"RSNN 140-512(rec)-5, T=10, batch {args.batch}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'variant':<26}{'ms/batch':>10}{'ratio':>8}")
    for label, seconds in results.items():
        print(f"{label:<26}{seconds * 1e3:>10.2f}{seconds / base:>8.2f}")


if __name__ == "__main__":
    main()
