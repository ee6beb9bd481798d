"""Lifecycle cost: seconds for enroll and revoke on the bundled data, and how inference cost grows with
the number of active adapters (run one by one, or fused into one digital ΔW per layer).

Run: python benchmarks/bench_lifecycle.py
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from common import deployed_bundled, median_seconds, print_table

from neuro_rm import layers as hybrid
from neuro_rm.energy import Ledger
from neuro_rm.tasks.speaker import DemoConfig


def lifecycle_seconds(epochs: int) -> list[tuple]:
    auth, splits, train, _ = deployed_bundled(epochs)
    rows = []
    start = time.perf_counter()
    auth.revoke(splits.speaker_names[1], train.of_classes([1]).x, config=DemoConfig().unlearn)
    rows.append(("revoke (LoRA, replay buffer)", time.perf_counter() - start))
    start = time.perf_counter()
    auth.enroll(splits.speaker_names[5], splits.train.select([5]).x, splits.val.select([5]).x, DemoConfig().enroll)
    rows.append(("enroll (LoRA + row, replay)", time.perf_counter() - start))
    return rows


def adapter_scaling(counts: tuple[int, ...] = (1, 5, 20, 50), batch: int = 64, repeats: int = 5) -> list[tuple]:
    from neuro_rm.models.rsnn import SYNAPSES, RSNNConfig, SpeakerRSNN

    torch.manual_seed(0)
    base = hybrid.analogize(SpeakerRSNN(RSNNConfig(n_outputs=50)), targets=SYNAPSES)
    x = (torch.rand(batch, 10, 140) < 0.1).float()
    with torch.no_grad():
        plain = median_seconds(lambda: base(x), repeats)
    rows = []
    for n in counts:
        model = copy.deepcopy(base)
        for i in range(n):  # synthetic speakers: random non-zero branches
            for p in hybrid.add_adapter(model, f"s{i}")[1::2]:
                p.data.normal_(0, 1e-3)
        hybrid.set_adapter(model, hybrid.adapter_names(model))
        results = []
        for fused in (False, True):
            hybrid.fuse_adapters(model, fused)
            hybrid.reset_counts(model)
            with torch.no_grad():
                seconds = median_seconds(lambda m=model: m(x), repeats)
                hybrid.reset_counts(model)
                model(x)
            ledger = Ledger()
            hybrid.post_inference(ledger, hybrid.collect_counts(model))
            results.append((seconds, ledger.joules("infer") / batch))
        rows.append((n, results[0][0] / plain, results[1][0] / plain, results[0][1], results[1][1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    args = parser.parse_args()
    print_table("Lifecycle operations on the bundled spiking FSDD (seconds)", ("operation", "seconds"),
                lifecycle_seconds(args.pretrain_epochs))
    print_table("Inference vs number of active adapters (time relative to no adapter; energy per sample)",
                ("adapters", "time, separate", "time, fused ΔW", "J/sample, separate", "J/sample, fused"),
                adapter_scaling())


if __name__ == "__main__":
    main()
