"""Continual learning of new classes: a new branch plus new readout rows, with a small replay buffer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.loop import TrainConfig
from neuro_rm.learning.metrics import accuracy, predict_logits
from neuro_rm.learning.train import FitResult, fit
from neuro_rm.lora import AdapterConfig

# enrolment: 30 epochs, and on small sets the steps 30 epochs give on the bundled one (new voice + replay)
ENROLL = TrainConfig(epochs=30, lr=3e-3, batch_size=64, min_steps=400)
# enrolment sized for a device: 5 epochs at a higher rate, the best on validation kept; a fixed length,
# so its time does not hang on when early stopping fires (8 epochs with patience 3 took 0.17-0.30 of a
# 30-epoch schedule's time across runs, 5 fixed took 0.17-0.19 in every seed).  An option: on the bundled speakers' test split it reads 9.7 points
# lower on the new speaker and 1.9 on the old ones than ENROLL (benchmarks/bench_scale.py, part 1, side by side)
FAST_ENROLL = TrainConfig(epochs=5, lr=1e-2, batch_size=64)


def balanced_score(model: nn.Module, val: LabelledSet, new: list[int]) -> float:
    """Validation criterion: mean of new-class and old-class accuracy, so neither is sacrificed
    (ties, common on small validation sets, go to the lower validation loss)."""
    logits = predict_logits(model, val.x)
    is_new = torch.isin(val.y, torch.tensor(new))
    new_acc = accuracy(logits[is_new], val.y[is_new])
    old_acc = accuracy(logits[~is_new], val.y[~is_new]) if (~is_new).any() else new_acc
    return 0.5 * (new_acc + old_acc) - 1e-3 * float(F.cross_entropy(logits, val.y))


def learn_new_classes(
    model: nn.Module,
    params: list[nn.Parameter],
    new: LabelledSet,
    replay: LabelledSet,
    val: LabelledSet,
    config: TrainConfig = TrainConfig(epochs=10, lr=2e-3, batch_size=64),
    description: str = "enroll",
) -> FitResult:
    """Train ``params`` on the new classes' samples mixed with the replay buffer of old ones.

    New classes are weighted up to balance the replay, so the new readout rows really learn.
    """
    if len(new) == 0:
        raise ValueError("learn_new_classes needs samples of the new classes")
    data = LabelledSet.concat(new, replay)
    new_classes = sorted(int(c) for c in torch.unique(new.y))
    n_classes = int(data.y.max()) + 1
    weights = data.class_weights(n_classes)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(data.x[idx]), data.y[idx], weight=weights)

    return fit(model, params, batch_loss, len(data), config, lambda: balanced_score(model, val, new_classes), description)


@dataclass
class Enrolment:
    """What enrolling one class on a deployed model did: the fit, and what it trained and must write."""

    fit: FitResult
    trainable: int  # the branch's parameters plus the new readout row (weights and bias)
    row_width: int  # values in the new readout row, written to SRAM beside the branch


def enroll_class(
    model: nn.Module,
    branch: str,
    adapter: AdapterConfig,
    new: LabelledSet,
    replay: LabelledSet,
    val: LabelledSet,
    config: TrainConfig = ENROLL,
    row_seed: int = 0,
    description: str = "enroll",
) -> Enrolment:
    """One new class on a model whose base sits in crossbars (speakers and faces alike): a readout row grown
    and trained alone among the rows, a new LoRA branch ``branch`` added and activated, replay of old classes.

    ``new`` must carry the label the grown row gets (the head's current number of classes).
    """
    label = model.head.n_classes
    if not bool((new.y == label).all()):
        raise ValueError(f"the new class's samples must carry label {label} (the row enrolment grows), got {sorted(set(new.y.tolist()))}")
    model.head.grow(1, seed=row_seed)
    model.head.train_rows([label])
    params = hybrid.add_adapter(model, branch, adapter)
    hybrid.activate_adapter(model, branch)
    try:
        result = learn_new_classes(model, [*params, model.head.weight, model.head.bias], new, replay, val, config, description)
    finally:
        model.head.train_rows(None)
    row_width = model.head.in_features + 1
    return Enrolment(result, sum(p.numel() for p in params) + row_width, row_width)
