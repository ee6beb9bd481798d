"""Forward-pass time of an analogized RSNN divided by the same network in plain torch (issue 2's figure).

Run: python benchmarks/bench_forward.py
"""

from __future__ import annotations

import argparse
import copy

import torch
from common import median_seconds, print_table

from neuro_rm import analogize
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.models.rsnn import SYNAPSES, RSNNConfig, SpeakerRSNN


def run(batch: int = 256, repeats: int = 15) -> list[tuple]:
    torch.manual_seed(0)
    plain = SpeakerRSNN(RSNNConfig()).eval()
    x = (torch.rand(batch, 10, 140) < 0.1).float()
    variants = {"plain torch (snntorch)": plain}
    for label, cfg in (("analogized", CrossbarConfig()), ("analogized + read noise", CrossbarConfig(read_noise=True)),
                       ("analogized + 8-bit ADC", CrossbarConfig(adc_bits=8))):
        variants[label] = analogize(copy.deepcopy(plain), targets=SYNAPSES, crossbar=cfg).eval()
    with torch.no_grad():
        results = {label: median_seconds(lambda m=model: m(x), repeats) for label, model in variants.items()}
    base = results["plain torch (snntorch)"]
    return [(label, seconds * 1e3, seconds / base) for label, seconds in results.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print_table(f"Forward pass, RSNN 140-512(rec)-5, T=10, batch {args.batch}, {torch.get_num_threads()} threads",
                ("variant", "ms/batch", "ratio to plain"), run(args.batch, args.repeats))


if __name__ == "__main__":
    main()
