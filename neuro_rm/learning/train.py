"""Supervised fitting with model selection on a validation set (never the test set)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.loop import TrainConfig, optimize
from neuro_rm.learning.metrics import accuracy, predict_logits


@dataclass
class FitResult:
    steps: int
    best_epoch: int
    best_score: float
    trainable_params: int


def fit(
    model: nn.Module,
    params: list[nn.Parameter],
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    n_samples: int,
    config: TrainConfig,
    score: Callable[[], float],
    description: str = "train",
) -> FitResult:
    """Optimise ``params``; after each epoch compute ``score()`` (on validation data, higher is better)
    and finally restore the parameters of the best-scoring epoch.

    The untrained starting point is a candidate too (epoch -1): a step that cannot improve the
    validation score leaves the model as it was.  ``config.patience`` stops training early.
    """
    model.eval()
    best = {"score": score(), "epoch": -1, "state": [p.detach().clone() for p in params]}

    def after_epoch(epoch: int) -> bool:
        value = score()
        if value > best["score"]:
            best.update(score=value, epoch=epoch, state=[p.detach().clone() for p in params])
        return config.patience is not None and epoch - best["epoch"] >= config.patience

    model.train()
    steps = optimize(params, batch_loss, n_samples, config, after_epoch, description)
    with torch.no_grad():
        for p, kept in zip(params, best["state"], strict=True):
            p.copy_(kept)
    model.eval()
    return FitResult(steps, best["epoch"], best["score"], sum(p.numel() for p in params))


def cross_entropy_loss(model: nn.Module, data: LabelledSet) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda idx: F.cross_entropy(model(data.x[idx]), data.y[idx])


def fit_classifier(
    model: nn.Module,
    train: LabelledSet,
    val: LabelledSet,
    config: TrainConfig,
    params: list[nn.Parameter] | None = None,
    description: str = "pretrain",
) -> FitResult:
    """Plain supervised training; selects the epoch with the best validation accuracy, ties broken
    by the lower validation loss (small validation sets saturate at 100 %, the loss still tells)."""
    params = list(model.parameters()) if params is None else params

    def score() -> float:
        logits = predict_logits(model, val.x)
        return accuracy(logits, val.y) - 1e-3 * float(F.cross_entropy(logits, val.y))

    return fit(model, params, cross_entropy_loss(model, train), len(train), config, score, description)
