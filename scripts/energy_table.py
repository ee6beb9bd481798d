"""Print the README's energy tables from the demos' JSON: ratios beside the paper's, joules per stage.

    neuro-rm energy --json > speaker.json                     # or a speaker demo's report.json
    neuro-rm face-demo --model cnn --json --out FOLDER        # FOLDER/face_demo_cnn.json
    neuro-rm diffusion-demo --json > diffusion.json
    python scripts/energy_table.py --speaker speaker.json --face FOLDER/face_demo_cnn.json --diffusion diffusion.json

Each row names the assumption that explains the difference to the paper (``energy_report.EXPLAINS``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from neuro_rm.energy_report import readme_table, stage_table
from neuro_rm.tasks.diffusion import PAPER as DIFFUSION_PAPER
from neuro_rm.tasks.face import PAPER as FACE_PAPER
from neuro_rm.tasks.speaker import REFERENCE as SPEAKER_REFERENCE

PAPER = {
    "speaker": {"training_cost_ratio": SPEAKER_REFERENCE["energy.training_cost_ratio"],
                "write_energy_ratio": SPEAKER_REFERENCE["energy.write_energy_ratio"],
                "inference_energy_ratio": SPEAKER_REFERENCE["energy.inference_energy_ratio_vs_gpu"]},
    "face": {"write_energy_ratio": FACE_PAPER["paper.write_energy_ratio"],
             "inference_energy_ratio": FACE_PAPER["paper.inference_energy_ratio"]},
    "diffusion": {"training_cost_ratio": DIFFUSION_PAPER["paper.training_cost_ratio"]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speaker", type=Path, help="JSON of neuro-rm energy --json or a speaker demo report")
    parser.add_argument("--face", type=Path, help="JSON of a face demo (one model)")
    parser.add_argument("--diffusion", type=Path, help="JSON of a diffusion demo")
    args = parser.parse_args()
    tasks = {task: (json.loads(path.read_text()), PAPER[task])
             for task, path in (("speaker", args.speaker), ("face", args.face), ("diffusion", args.diffusion))
             if path is not None}
    if not tasks:
        parser.error("give --speaker, --face and/or --diffusion")
    print(readme_table(tasks))
    for task, (report, _) in tasks.items():
        print(f"\nTraining joules per stage, {task} task:\n")
        print(stage_table(report))


if __name__ == "__main__":
    main()
