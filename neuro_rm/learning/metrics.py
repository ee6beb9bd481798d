"""Metrics of learning and forgetting: accuracy, membership inference, equal-error rate, transfer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    was_training = model.training
    model.eval()
    out = torch.cat([model(chunk) for chunk in x.split(batch_size)]) if len(x) else torch.empty(0)
    model.train(was_training)
    return out


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of correct predictions; NaN for an empty set (so it cannot pass for a result)."""
    if len(labels) == 0:
        return math.nan
    return float((logits.argmax(dim=1) == labels).float().mean())


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> dict[int, float]:
    return {int(c): accuracy(logits[labels == c], labels[labels == c]) for c in torch.unique(labels)}


def roc_auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if len(positive) == 0 or len(negative) == 0:
        raise ValueError("roc_auc needs at least one positive and one negative score")
    diff = positive.view(-1, 1).double() - negative.view(1, -1).double()
    return float((diff > 0).double().mean() + 0.5 * (diff == 0).double().mean())


def membership_scores(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Attack score: negative cross-entropy of the true label (members tend to have low loss)."""
    return -F.cross_entropy(logits, labels, reduction="none")


def mia_auc(member_logits: torch.Tensor, member_labels: torch.Tensor, other_logits: torch.Tensor, other_labels: torch.Tensor) -> float:
    """Loss-threshold membership inference: AUC of telling training samples from held-out ones.

    0.5 means the model treats the two alike (nothing to infer); a model that still remembers its
    training samples scores above 0.5.
    """
    return roc_auc(membership_scores(member_logits, member_labels), membership_scores(other_logits, other_labels))


def equal_error_rate(genuine: torch.Tensor, impostor: torch.Tensor) -> tuple[float, float]:
    """(EER, threshold): where false accepts of impostors equal false rejects of genuine trials.

    Thresholds are tried halfway between neighbouring scores, so when the two sets do not overlap the
    threshold sits in the middle of the gap, not on the weakest genuine score (which would wave through
    any voice that scores just below every genuine trial).
    """
    if len(genuine) == 0 or len(impostor) == 0:
        raise ValueError("equal_error_rate needs genuine and impostor scores")
    scores = torch.cat([genuine, impostor]).double().unique()
    thresholds = torch.cat([scores[:1], (scores[:-1] + scores[1:]) / 2, scores[-1:]])
    far = (impostor.double().view(1, -1) >= thresholds.view(-1, 1)).double().mean(dim=1)
    frr = (genuine.double().view(1, -1) < thresholds.view(-1, 1)).double().mean(dim=1)
    best = int((far - frr).abs().argmin())
    return float((far[best] + frr[best]) / 2), float(thresholds[best])


def backward_transfer(before: dict[int, float], after: dict[int, float]) -> float:
    """Mean change in accuracy of old classes after learning new ones (negative = forgetting)."""
    common = [c for c in before if c in after]
    if not common:
        raise ValueError("backward_transfer needs classes measured both before and after")
    return sum(after[c] - before[c] for c in common) / len(common)
