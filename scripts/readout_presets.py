"""Speaker accuracy on each device preset, through the ideal and the realistic readout, as the array ages,
with and without drift compensation.

    python scripts/readout_presets.py [--json] [--seed 0]

Pretrains the speaker RSNN digitally on the bundled data (speakers 0-4, the demo's settings; the epoch is
chosen on validation), then deploys copies of it with each preset in ``neuro_rm.device.PRESETS`` (offset and differential mapping) and reads
the same programmed cells through ``CrossbarConfig.ideal()`` and the realistic default, at 0 s, 1 h,
1 day and 10^6 s, with drift compensation off, global and per column.  Reports test accuracy.
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import replace

import torch

from neuro_rm import layers as hybrid
from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.data import load_bundled_speakers
from neuro_rm.device import PRESETS
from neuro_rm.learning import LabelledSet, accuracy, predict_logits
from neuro_rm.models import RSNNConfig
from neuro_rm.tasks.speaker import DemoConfig

TIMES = (0.0, 3600.0, 86400.0, 1e6)
COMPENSATIONS = ("none", "global", "column", "offset")
MAPPINGS = ("offset", "differential")


def run(seed: int = 0) -> dict[str, object]:
    splits = load_bundled_speakers()
    old = list(range(len(splits.speaker_names) - 1))
    train = LabelledSet(splits.train.x, splits.train.y).of_classes(old)
    val = LabelledSet(splits.val.x, splits.val.y).of_classes(old)
    test = LabelledSet(splits.test.x, splits.test.y).of_classes(old)
    auth, _ = SpeakerAuthenticator.pretrain(splits.speaker_names[:-1], train, val,
                                            RSNNConfig(n_inputs=train.x.shape[-1], n_outputs=len(old)),
                                            DemoConfig().pretrain, seed=seed)
    report: dict[str, object] = {"digital": accuracy(predict_logits(auth.model, test.x), test.y)}
    for preset, make in PRESETS.items():
        for mapping in MAPPINGS:
            deployed = copy.deepcopy(auth)
            deployed.deploy(make(), CrossbarConfig(mapping=mapping), seed=seed)
            for readout, base in (("ideal", CrossbarConfig.ideal(mapping=mapping)), ("realistic", CrossbarConfig(mapping=mapping))):
                for t in TIMES:
                    hybrid.set_time(deployed.model, t)
                    for comp in COMPENSATIONS:
                        hybrid.set_readout(deployed.model, replace(base, drift_compensation=comp))
                        torch.manual_seed(seed)
                        acc = accuracy(predict_logits(deployed.model, test.x), test.y)
                        report[f"{preset}.{mapping}.{readout}.{comp}.{t:g}s"] = acc
    return report


def table(report: dict[str, object]) -> str:
    lines = [f"digital: {report['digital']:.2%}", "",
             "| preset | mapping | readout | compensation | " + " | ".join(f"{t:g} s" for t in TIMES) + " |",
             "|---|---|---|---|" + "---|" * len(TIMES)]
    for preset in PRESETS:
        for mapping in MAPPINGS:
            for readout in ("ideal", "realistic"):
                for comp in COMPENSATIONS:
                    cells = " | ".join(f"{report[f'{preset}.{mapping}.{readout}.{comp}.{t:g}s']:.2%}" for t in TIMES)
                    lines.append(f"| {preset} | {mapping} | {readout} | {comp} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report = run(args.seed)
    print(json.dumps(report, indent=1) if args.json else table(report))


if __name__ == "__main__":
    main()
