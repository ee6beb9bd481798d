"""Forward-pass time of the analogized RSNN, ideal and realistic readout, against the same network in plain torch.

Every variant is timed round-robin in one run.  The headline rows feed a batch of the bundled spiking FSDD
frames, what the deployed network reads: spike counts (26 % non-zero, up to 10 per bin) on the input
synapses, where the conductance-dependent read noise needs the inputs' squares against the conductances,
and spikes (0/1) on the recurrent ones.  The "spike inputs" rows feed random 0/1 spikes (10 %) to both, the
cheaper case.  Read noise is a fresh draw per output and input vector on every call.  The realistic periphery
runs through the compiled kernel of ``neuro_rm/fused.py`` where it builds; the "eager periphery" rows switch
it off (``fused.enabled = False``) for the same model.
Run: python benchmarks/bench_forward.py
"""

from __future__ import annotations

import argparse
import copy

import torch
from common import interleaved_best, print_table

from neuro_rm import analogize, fused
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.data import load_bundled_speakers
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
    frames = load_bundled_speakers().train.x[:batch].contiguous()
    spikes = (torch.rand(batch, 10, 140) < 0.1).float()
    ideal = CrossbarConfig.ideal()
    configs = {
        "analogized, ideal readout": ideal,
        "+ read noise (per vector)": CrossbarConfig.ideal(read_noise=True),
        "+ 8-bit input DAC": CrossbarConfig.ideal(dac_bits=8),
        "+ 8-bit ADC (calibrated, per tile)": CrossbarConfig.ideal(adc_bits=8),
        "analogized, realistic (default)": CrossbarConfig(),
    }
    models = {label: analogize(copy.deepcopy(plain), targets=SYNAPSES, crossbar=cfg).eval() for label, cfg in configs.items()}
    calls = {"plain torch (snntorch)": lambda: plain(frames)}
    calls.update({label: (lambda m=model: m(frames)) for label, model in models.items()})
    calls["realistic, eager periphery"] = lambda: _eager(models["analogized, realistic (default)"], frames)
    calls["ideal readout, spike inputs"] = lambda: models["analogized, ideal readout"](spikes)
    calls["realistic, spike inputs"] = lambda: models["analogized, realistic (default)"](spikes)
    with torch.no_grad():
        for model in models.values():
            model(frames)  # the first batch calibrates the ADCs
        seconds = interleaved_best(calls, repeats)
    base, ideal_s = seconds["plain torch (snntorch)"], seconds["analogized, ideal readout"]
    ideal_spikes = seconds["ideal readout, spike inputs"]
    rows = []
    for label, s in seconds.items():
        reference = ideal_spikes if "spike inputs" in label else ideal_s
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
