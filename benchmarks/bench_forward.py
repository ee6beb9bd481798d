"""Forward-pass time of the analogized RSNN, ideal and realistic readout, against the same network in plain torch.

Every variant is timed round-robin in one run.  Inputs are spikes (0/1), as the recurrent synapses see;
the count-input rows feed spike counts (0-4 per bin, as the input synapses see on real data), where the
conductance-dependent read noise needs one more product on the input layer.  The realistic periphery runs
through the compiled kernel of ``neuro_rm/fused.py`` where it builds; the "eager periphery" rows switch it
off (``fused.enabled = False``) for the same model.
Run: python benchmarks/bench_forward.py
"""

from __future__ import annotations

import argparse
import copy

import torch
from common import interleaved_best, print_table

from neuro_rm import analogize, fused
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.models.rsnn import SYNAPSES, RSNNConfig, SpeakerRSNN

HEADER = ("variant", "ms/batch", "ratio to plain", "ratio to ideal analogized")


def _eager(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model read through the eager torch periphery (the compiled kernel switched off for this call)."""
    previous, fused.enabled = fused.enabled, False
    try:
        return model(x)
    finally:
        fused.enabled = previous


def run(batch: int = 256, repeats: int = 25) -> list[tuple]:
    torch.manual_seed(0)
    plain = SpeakerRSNN(RSNNConfig()).eval()
    spikes = (torch.rand(batch, 10, 140) < 0.1).float()
    counts = spikes * torch.randint(1, 5, spikes.shape).float()
    ideal = CrossbarConfig.ideal()
    configs = {
        "analogized, ideal readout": ideal,
        "+ read noise (per vector)": CrossbarConfig.ideal(read_noise=True),
        "+ 8-bit input DAC": CrossbarConfig.ideal(dac_bits=8),
        "+ 8-bit ADC (calibrated, per tile)": CrossbarConfig.ideal(adc_bits=8),
        "analogized, realistic (default)": CrossbarConfig(),
    }
    models = {label: analogize(copy.deepcopy(plain), targets=SYNAPSES, crossbar=cfg).eval() for label, cfg in configs.items()}
    calls = {"plain torch (snntorch)": lambda: plain(spikes)}
    calls.update({label: (lambda m=model: m(spikes)) for label, model in models.items()})
    calls["realistic, eager periphery"] = lambda: _eager(models["analogized, realistic (default)"], spikes)
    calls["ideal readout, count inputs"] = lambda: models["analogized, ideal readout"](counts)
    calls["realistic, count inputs"] = lambda: models["analogized, realistic (default)"](counts)
    calls["realistic, count inputs, eager periphery"] = lambda: _eager(models["analogized, realistic (default)"], counts)
    with torch.no_grad():
        for model in models.values():
            model(spikes)  # the first batch calibrates the ADCs
        seconds = interleaved_best(calls, repeats)
    base, ideal_s = seconds["plain torch (snntorch)"], seconds["analogized, ideal readout"]
    ideal_counts = seconds["ideal readout, count inputs"]
    rows = []
    for label, s in seconds.items():
        reference = ideal_counts if "count inputs" in label else ideal_s
        rows.append((label, s * 1e3, s / base, s / reference))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args()
    kernel = "compiled periphery kernel" if fused.kernel() is not None else "no compiled kernel: eager periphery throughout"
    print_table(f"Forward pass, RSNN 140-512(rec)-5, T=10, batch {args.batch}, {torch.get_num_threads()} threads, {kernel}",
                HEADER, run(args.batch, args.repeats))


if __name__ == "__main__":
    main()
