"""Choose the pretraining recipe on validation splits of several speaker sets; report test beside it.

    OMP_NUM_THREADS=1 python scripts/sweep_pretrain.py --files runs/speaker_files/hard6.h5 runs/speaker_files/small5.h5 \
        --max-steps 800 --seeds 0 --out runs/sweep_pretrain.json

For every data set (the bundled spiking FSDD first, then ``--files``, made by scripts/make_speaker_files.py) and
every regularisation variant, the RSNN of the demo is pretrained on the first k-1 speakers for ``--max-steps``
optimiser steps with no stopping, recording after each epoch the validation score ``fit_classifier`` selects on
and the test accuracy.  Stopping rules are then replayed on the validation curve with the package's own
``EarlyStop``: the kept epoch is the best validation score up to the stop, as in ``fit``.  A rule's *regret* is
the validation accuracy it loses against training to the end; the test column is read only at the epoch the
validation split chose and is reported, never used to choose.  The logistic-regression floor is fitted on the
same frames.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import torch

from neuro_rm.data.bundled import load_bundled_speakers
from neuro_rm.data.speakers import load_speakers
from neuro_rm.learning.augment import Augment
from neuro_rm.learning.baseline import linear_baseline
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.loop import TrainConfig
from neuro_rm.learning.metrics import accuracy, predict_logits
from neuro_rm.learning.train import EarlyStop, cross_entropy_loss, fit, selection_score
from neuro_rm.models.rsnn import RSNNConfig, SpeakerRSNN

BASE = TrainConfig(epochs=1, lr=1e-3, batch_size=64)
VARIANTS = {
    "plain": BASE,
    "augment": replace(BASE, augment=Augment(spike_dropout=0.1, time_shift=1, channel_jitter=2)),
    "augment+wd": replace(BASE, augment=Augment(spike_dropout=0.1, time_shift=1, channel_jitter=2), weight_decay=1e-4),
}
RULES = {  # name → (patience epochs, patience steps, median window)
    "patience 6 (old default)": (6, None, 1),
    "patience 6, median of 3": (6, None, 3),
    "patience 6 or 150 steps, median of 3": (6, 150, 3),
    "patience 6 or 300 steps, median of 3": (6, 300, 3),
    "patience 10 or 300 steps, median of 3": (10, 300, 3),
    "patience 10 or 500 steps, median of 5": (10, 500, 5),
}


def _splits(path: str | None) -> tuple[str, LabelledSet, LabelledSet, LabelledSet]:
    s = load_bundled_speakers() if path is None else load_speakers(path, cache=False)
    old = list(range(len(s.speaker_names) - 1))
    sets = [LabelledSet(f.x, f.y).of_classes(old) for f in (s.train, s.val, s.test)]
    return ("bundled FSDD" if path is None else Path(path).name), *sets


def curve(train: LabelledSet, val: LabelledSet, test: LabelledSet, config: TrainConfig, seed: int) -> dict[str, list]:
    """Validation score/accuracy and test accuracy after every epoch of an unstopped run (epoch -1: untrained)."""
    torch.manual_seed(seed)
    model = SpeakerRSNN(RSNNConfig(n_inputs=train.x.shape[-1], n_outputs=int(train.y.max()) + 1))
    out: dict[str, list] = {"val_score": [], "val_accuracy": [], "test_accuracy": []}

    def score() -> float:
        logits = predict_logits(model, val.x)
        value = selection_score(logits, val.y)
        out["val_score"].append(value)
        out["val_accuracy"].append(accuracy(logits, val.y))
        out["test_accuracy"].append(accuracy(predict_logits(model, test.x), test.y))  # reported only
        return value

    fit(model, list(model.parameters()), cross_entropy_loss(model, train, config.augment, seed), len(train),
        replace(config, seed=seed), score)
    return out


def replay(run: dict[str, list], rule: tuple, steps_per_epoch: int) -> dict[str, float]:
    """What ``fit`` would have kept under a stopping rule, from the recorded validation curve."""
    patience, patience_steps, window = rule
    stop = EarlyStop(TrainConfig(patience=patience, patience_steps=patience_steps, smooth_epochs=window), steps_per_epoch)
    scores = run["val_score"]
    last = len(scores) - 1
    for i in range(1, len(scores)):
        if stop.update(i - 1, scores[i]):
            last = i
            break
    kept = max(range(last + 1), key=lambda i: (scores[i], -i))  # first best, as fit's strict '>'
    return {"epochs_run": last, "kept_epoch": kept - 1, "val_accuracy": run["val_accuracy"][kept],
            "test_accuracy": run["test_accuracy"][kept]}


def summarise(paths: list[Path]) -> str:
    """Markdown tables from saved sweeps, stopping rules replayed on the saved validation curves."""
    results = {}
    for path in paths:
        results |= json.loads(path.read_text())
    lines = ["| data | variant/seed | rule | epochs run | kept epoch | val acc | val regret | test acc (reported) | linear test |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in results.items():
        steps_per_epoch = math.ceil(entry["sizes"][0] / BASE.batch_size)
        for key, run in entry["runs"].items():
            full = replay(run["curve"], (None, None, 1), steps_per_epoch)
            for rule, spec in [*RULES.items(), ("no stopping", (None, None, 1))]:
                r = replay(run["curve"], spec, steps_per_epoch)
                lines.append(f"| {name} | {key} | {rule} | {r['epochs_run']} | {r['kept_epoch']} | {r['val_accuracy']:.3f} | "
                             f"{full['val_accuracy'] - r['val_accuracy']:+.3f} | {r['test_accuracy']:.3f} | "
                             f"{entry['linear']['test_accuracy']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="*", default=[])
    parser.add_argument("--no-bundled", action="store_true")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--max-steps", type=int, default=800)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--out", type=Path, default=Path("runs/sweep_pretrain.json"))
    parser.add_argument("--summarise", type=Path, nargs="*", default=None, help="print tables from saved sweeps and exit")
    args = parser.parse_args()
    if args.summarise is not None:
        print(summarise(args.summarise))
        return
    torch.set_num_threads(1)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for path in ([] if args.no_bundled else [None]) + args.files:
        name, train, val, test = _splits(path)
        steps_per_epoch = math.ceil(len(train) / BASE.batch_size)
        epochs = math.ceil(args.max_steps / steps_per_epoch)
        linear = linear_baseline(train, val, test)
        entry = results.setdefault(name, {"linear": {"val_accuracy": linear.val_accuracy, "test_accuracy": linear.accuracy},
                                          "sizes": [len(train), len(val), len(test)], "runs": {}})
        for variant in args.variants:
            for seed in args.seeds:
                start = time.perf_counter()
                run = curve(train, val, test, replace(VARIANTS[variant], epochs=epochs), seed)
                rules = {rule: replay(run, RULES[rule], steps_per_epoch) for rule in RULES}
                rules["no stopping"] = replay(run, (None, None, 1), steps_per_epoch)
                entry["runs"][f"{variant}/{seed}"] = {"rules": rules, "curve": run, "seconds": time.perf_counter() - start}
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(results, indent=1))
                best = rules["no stopping"]
                print(f"{name} {variant} seed {seed}: {epochs} epochs, {time.perf_counter() - start:.0f} s; linear val "
                      f"{linear.val_accuracy:.3f} test {linear.accuracy:.3f}; RSNN best val {best['val_accuracy']:.3f} "
                      f"(epoch {best['kept_epoch']}) test {best['test_accuracy']:.3f}", flush=True)
                for rule, r in rules.items():
                    print(f"    {rule:40s} ran {r['epochs_run']:3d} kept {r['kept_epoch']:3d} val {r['val_accuracy']:.3f} "
                          f"test {r['test_accuracy']:.3f}", flush=True)


if __name__ == "__main__":
    main()
