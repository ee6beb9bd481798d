"""Which pretraining learning rate suits which speaker set: the recipe's final validation accuracy per rate.

    OMP_NUM_THREADS=1 python scripts/probe_pretrain_lr.py --files wav7.h5 wav6.h5 hard6.h5 small5.h5 \
        --lrs 1e-3 3e-4 --min-steps 800 2000 --seeds 0 1 2 --out runs/probe_lr.jsonl

For every data set (the bundled spiking FSDD first, then ``--files``) the demo's RSNN is pretrained on the first
k-1 speakers with the pretraining recipe (``PRETRAIN``: stopping rule, weight average) at one learning rate and
one step budget at a time, with no choice among rates (``lr_candidates`` off).  Each run prints one JSON line:
validation accuracy and selection score of the kept weights, accuracy on the training frames (clean, no
augmentation: under- or over-fitting), steps and seconds.  The test split is never read.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from neuro_rm.data.bundled import load_bundled_speakers
from neuro_rm.data.speakers import load_speakers
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.metrics import accuracy, predict_logits
from neuro_rm.learning.train import PRETRAIN, fit_classifier, selection_score
from neuro_rm.models.rsnn import RSNNConfig, SpeakerRSNN


def _splits(path: str | None) -> tuple[str, LabelledSet, LabelledSet]:
    s = load_bundled_speakers() if path is None else load_speakers(path, cache=False)
    old = list(range(len(s.speaker_names) - 1))
    train, val = (LabelledSet(f.x, f.y).of_classes(old) for f in (s.train, s.val))
    return ("bundled FSDD" if path is None else Path(path).name), train, val


def run(train: LabelledSet, val: LabelledSet, lr: float, min_steps: int, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    model = SpeakerRSNN(RSNNConfig(n_inputs=train.x.shape[-1], n_outputs=int(train.y.max()) + 1))
    config = replace(PRETRAIN, lr=lr, min_steps=min_steps, lr_candidates=(), seed=seed)
    start = time.perf_counter()
    result = fit_classifier(model, train, val, config)
    logits = predict_logits(model, val.x)
    return {"val_accuracy": accuracy(logits, val.y), "val_score": selection_score(logits, val.y),
            "train_accuracy": accuracy(predict_logits(model, train.x), train.y), "steps": result.steps,
            "seconds": round(time.perf_counter() - start, 1)}


def summarise(rows: list[dict]) -> str:
    """Mean validation accuracy over seeds per set and variant, each seed's in brackets."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["set"], row["lr"], row["min_steps"]), []).append(row)
    lines = ["| set | lr | step budget | validation accuracy, mean (per seed) | training frames | steps |", "|---|---|---|---|---|---|"]
    for (name, lr, min_steps), runs in groups.items():
        seeds = ", ".join(f"{r['val_accuracy']:.3f}" for r in runs)
        lines.append(f"| {name} | {lr:g} | {min_steps} | {statistics.mean(r['val_accuracy'] for r in runs):.3f} ({seeds}) | "
                     f"{statistics.mean(r['train_accuracy'] for r in runs):.3f} | {', '.join(str(r['steps']) for r in runs)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="*", default=[])
    parser.add_argument("--no-bundled", action="store_true")
    parser.add_argument("--lrs", type=float, nargs="+", default=[PRETRAIN.lr, *PRETRAIN.lr_candidates])
    parser.add_argument("--min-steps", type=int, nargs="+", default=[PRETRAIN.min_steps])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/probe_pretrain_lr.jsonl"))
    parser.add_argument("--summarise", type=Path, nargs="*", default=None, help="print the table of saved runs and exit")
    args = parser.parse_args()
    if args.summarise is not None:
        print(summarise([json.loads(line) for path in args.summarise for line in path.read_text().splitlines() if line]))
        return
    torch.set_num_threads(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for path in ([] if args.no_bundled else [None]) + args.files:
        name, train, val = _splits(path)
        for lr in args.lrs:
            for min_steps in args.min_steps:
                for seed in args.seeds:
                    row = {"set": name, "lr": lr, "min_steps": min_steps, "seed": seed, **run(train, val, lr, min_steps, seed)}
                    print(json.dumps(row), flush=True)
                    with args.out.open("a") as out:
                        out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
