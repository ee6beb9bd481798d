"""Where a deployed speaker chip's inference joules go, and how far the SRAM layout moves the write ratio.

    neuro-rm energy --fast --json --out RUN > /dev/null      # or neuro-rm demo --out RUN
    python scripts/sram_layout.py --state RUN/state --report RUN/report.json

The energy keys size the SRAM as one array holding everything the chip stores (``energy.sram_bytes``).
A banked chip keeps each adapter factor in a bank of its own size beside its MAC unit; this prices the
same LoRA write (the branch of ``revoke.suspend.write_bits`` bits) that way, with the same Horowitz
interpolation (``sram_size_factor``), so the reader sees how much of the write ratio is the layout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from neuro_rm import layers as hybrid
from neuro_rm import work
from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.energy import NODES, EnergyModel, sram_size_factor
from neuro_rm.energy_report import inference_ledger
from neuro_rm.learning import predict_logits


def branch_banks(auth: SpeakerAuthenticator, bits: int) -> list[int]:
    """Bytes of each bank a LoRA write of ``bits`` bits fills: one per adapter factor, of the state's branch
    layout, and one for what the write holds beyond the factors (the revoked voice's readout row).  The
    priced branch need not be in the state: the demo's suspend branch lives in a copy, but every branch of
    the state's layers has the same factors."""
    layouts = set()
    for name in {n for _, layer in hybrid.hybrid_layers(auth.model) for n in layer.active}:
        banks = []
        for _, layer in hybrid.hybrid_layers(auth.model):
            if name in layer.active:
                adapter = layer.adapters[name]
                total = sum(q.numel() for q in adapter.parameters())
                banks.extend(p.numel() * adapter.bits // (8 * total) for p in adapter.parameters())
        layouts.add(tuple(banks))
    if len(layouts) != 1:
        raise ValueError(f"the state holds {len(layouts)} branch layouts, not one: {sorted(layouts)}")
    banks = list(layouts.pop())
    rest = bits // 8 - sum(banks)
    if rest < 0:
        raise ValueError(f"a write of {bits} bits is smaller than the state's branch ({sum(banks) * 8} bits)")
    return banks + ([rest] if rest else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True, help="a deployed speaker state (RUN/state)")
    parser.add_argument("--report", type=Path, required=True, help="the same run's report.json")
    args = parser.parse_args()
    auth = SpeakerAuthenticator.load(args.state)
    report = json.loads(args.report.read_text())
    holdout = auth.buffers.holdout.of_classes(auth.active_labels)
    measured = work.measure(lambda: predict_logits(auth.model, holdout.x))
    for node in NODES:
        ledger = inference_ledger(measured, EnergyModel.for_node(node), "hybrid")
        total = ledger.joules("infer")
        shares = {c: row["joules"] / total for c, row in ledger.by_category().items() if c.startswith("infer.")}
        print(f"{node} hybrid inference {total / measured.samples:.3g} J/sample, SRAM {measured.stored_bits / 8:.0f} B: "
              + ", ".join(f"{c.removeprefix('infer.')} {s:.0%}" for c, s in sorted(shares.items(), key=lambda kv: -kv[1])))
    banks = branch_banks(auth, report["revoke.suspend.write_bits"])
    monolithic = sram_size_factor(report["energy.sram_bytes"])
    banked = sum(b * sram_size_factor(b) for b in banks) / sum(banks)
    print(f"LoRA write: banks {banks} B; size factor monolithic {monolithic:.2f} ({report['energy.sram_bytes']:.0f} B), "
          f"banked {banked:.2f}")
    for node in NODES:
        full, lora = report[f"energy.{node}.write_j.full_reprogram"], report[f"energy.{node}.write_j.lora"]
        print(f"{node} write ratio: monolithic {full / lora:.3g}x, banked {full / (lora * banked / monolithic):.3g}x")


if __name__ == "__main__":
    main()
