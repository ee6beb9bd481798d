"""One training step past the first fold: frozen branches read as one fused ΔW against one by one.

After the consolidation policy's first fold, a state holds ``store`` (a dense ΔW) and up to 8 frozen low-rank
branches beside the one an enrolment trains.  A fused layer (``HybridLayer.fuse``) trains with the frozen ones
folded into one constant ΔW; an unfused one reads each on its own.  Three copies of one model, timed round-robin
in one run (forward and backward of one batch): fused, unfused, and the trained branch alone (a state before
its first fold), so the step's growth past the fold is a ratio side by side.

Run: OMP_NUM_THREADS=1 python benchmarks/bench_training_fold.py [--frozen 8] [--batch 64]
"""

from __future__ import annotations

import argparse
import copy

import torch
from common import interleaved_best, print_table

from neuro_rm import layers as hybrid
from neuro_rm.learning.consolidation import STORE
from neuro_rm.lora import AdapterConfig
from neuro_rm.models import RSNNConfig
from neuro_rm.models.rsnn import SYNAPSES, SpeakerRSNN


def _model(frozen: int) -> SpeakerRSNN:
    """RSNN 140-128-26 on the realistic readout, with ``store``, ``frozen`` rank-8 branches and ``t`` (trained)."""
    torch.manual_seed(0)
    model = hybrid.analogize(SpeakerRSNN(RSNNConfig(n_inputs=140, n_hidden=128, n_outputs=26)), targets=SYNAPSES)
    names = [STORE, *(f"b{i}" for i in range(frozen)), "t"]
    for name in names:
        hybrid.add_adapter(model, name, AdapterConfig(full_rank=True) if name == STORE else AdapterConfig(rank=8))
        for p in hybrid.adapter_parameters(model, name):
            with torch.no_grad():
                p.normal_(0, 0.02)
            p.requires_grad_(name == "t")
    hybrid.set_adapter(model, names)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frozen", type=int, default=8, help="frozen low-rank branches beside store")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    fused = _model(args.frozen)
    hybrid.fuse_adapters(fused)
    unfused, alone = copy.deepcopy(fused), copy.deepcopy(fused)
    hybrid.fuse_adapters(unfused, False)
    hybrid.fuse_adapters(alone, False)
    hybrid.set_adapter(alone, ["t"])
    generator = torch.Generator().manual_seed(1)
    x = (torch.rand(args.batch, 10, 140, generator=generator) < 0.25) * torch.randint(1, 5, (args.batch, 10, 140), generator=generator).float()

    def step(model: SpeakerRSNN):  # noqa: ANN202 - a closure timed as is
        def run() -> None:
            model(x).sum().backward()
            for p in hybrid.adapter_parameters(model, "t"):
                p.grad = None
        return run

    best = interleaved_best({"fused": step(fused), "unfused": step(unfused), "alone": step(alone)}, args.repeats)
    rows = [(label, f"{best[key] * 1e3:.2f}", f"{best[key] / best['alone']:.3f}")
            for label, key in ((f"store + {args.frozen} frozen, folded (fused)", "fused"),
                               (f"store + {args.frozen} frozen, one by one (unfused)", "unfused"),
                               ("trained branch alone (before the first fold)", "alone"))]
    print_table(f"One training step, batch {args.batch} (fastest of {args.repeats}, round-robin)",
                ("branches read", "ms/step", "ratio to the trained branch alone"), rows)


if __name__ == "__main__":
    main()
