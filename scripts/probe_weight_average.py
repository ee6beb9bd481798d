"""Issue 16 probe: keep the best validation epoch, or average the weights of the last epochs? Judged on validation.

For each speaker set (the bundled FSDD first unless ``--no-bundled``, then ``--files``) and seed, the demo's RSNN is
pretrained on the first k-1 speakers with the pretraining recipe (``PRETRAIN``: its budget and its stopping
rule on the whole validation split; ``--no-stop``: the augmented recipe for ``--min-steps`` steps with no
stopping), keeping every epoch's weights.  Two ways to end up with one model are compared *on validation only*,
cross-fitted so that neither is scored on the data that chose it: the validation split is cut in two halves (every
other sample of each speaker); "best epoch" picks its epoch on one half and is scored on the other, "average"
(the mean of the weights of the last quarter of the epochs run, ``averaging_window``; it chooses nothing) is scored on the same other half;
then the halves swap and the two scores are averaged.  Test accuracy of both (the best epoch picked on the whole
validation split) and the logistic-regression floor are printed beside, for reporting only.
Run: OMP_NUM_THREADS=1 python scripts/probe_weight_average.py [--no-bundled] [--files A.h5 B.h5] [--seeds 0 1 2] [--no-stop]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import torch
from sweep_pretrain import VARIANTS, _splits

from neuro_rm.learning.baseline import linear_baseline
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.metrics import accuracy, predict_logits
from neuro_rm.learning.train import PRETRAIN, averaging_window, cross_entropy_loss, fit, selection_score
from neuro_rm.models.rsnn import RSNNConfig, SpeakerRSNN


def halves(val: LabelledSet) -> tuple[LabelledSet, LabelledSet]:
    """Every other sample of each speaker: two validation halves with the same speakers."""
    rank = torch.zeros(len(val.y), dtype=torch.long)
    for label in val.y.unique():
        where = (val.y == label).nonzero().flatten()
        rank[where] = torch.arange(len(where))
    first = rank % 2 == 0
    return LabelledSet(val.x[first], val.y[first]), LabelledSet(val.x[~first], val.y[~first])


def run(train: LabelledSet, val: LabelledSet, test: LabelledSet, seed: int, min_steps: int | None) -> dict[str, float]:
    """``min_steps`` None: the recipe with its stopping rule; a number: that many steps without stopping."""
    recipe = PRETRAIN if min_steps is None else replace(VARIANTS["augment"], epochs=1, min_steps=min_steps)
    config = replace(recipe, seed=seed, average_last=0.0)
    torch.manual_seed(seed)
    model = SpeakerRSNN(RSNNConfig(n_inputs=train.x.shape[-1], n_outputs=int(train.y.max()) + 1))
    params = list(model.parameters())
    states: list[list[torch.Tensor]] = []

    def score() -> float:  # records every epoch's weights; fit's own pick is not used here
        states.append([p.detach().clone() for p in params])
        return selection_score(predict_logits(model, val.x), val.y) if min_steps is None else float(len(states))

    fit(model, params, cross_entropy_loss(model, train, config.augment, seed), len(train), config, score)

    def load(state: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for p, s in zip(params, state, strict=True):
                p.copy_(s)

    def acc(state: list[torch.Tensor], data: LabelledSet) -> float:
        load(state)
        return accuracy(predict_logits(model, data.x), data.y)

    def best(data: LabelledSet) -> list[torch.Tensor]:
        scores = []
        for state in states:
            load(state)
            scores.append(selection_score(predict_logits(model, data.x), data.y))
        return states[max(range(len(scores)), key=lambda i: (scores[i], -i))]

    last = averaging_window(len(states) - 1, 0.25)  # states[0] is the untrained start
    average = [torch.stack([s[j] for s in states[-last:]]).mean(0) for j in range(len(params))]
    a, b = halves(val)
    return {"epochs": len(states) - 1, "averaged_epochs": last,
            "val_best_epoch": (acc(best(a), b) + acc(best(b), a)) / 2, "val_average": (acc(average, a) + acc(average, b)) / 2,
            "test_best_epoch": acc(best(val), test), "test_average": acc(average, test)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="*", default=[])
    parser.add_argument("--no-bundled", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--no-stop", action="store_true", help="train --min-steps steps without the stopping rule")
    parser.add_argument("--min-steps", type=int, default=800)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for path in ([] if args.no_bundled else [None]) + args.files:
        name, train, val, test = _splits(path)
        floor = linear_baseline(train, val, test).accuracy
        for seed in args.seeds:
            row = {"set": name, "seed": seed, "linear_test": floor, **run(train, val, test, seed, args.min_steps if args.no_stop else None)}
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
