"""Measurements a lifecycle report is made of, shared by every task demo.

Accuracy and membership inference: each is computed the same way for speakers and for faces, so
the tasks' figures can be compared (energy: ``energy_report``).
"""

from __future__ import annotations

import torch
from torch import nn

from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.metrics import accuracy, mia_auc, predict_logits


def accuracy_on(model: nn.Module, data: LabelledSet) -> float:
    return accuracy(predict_logits(model, data.x), data.y)


def accuracy_among(model: nn.Module, data: LabelledSet, labels: list[int]) -> float:
    """Accuracy when only ``labels`` can be answered (every other class's score masked): a model judged on the
    choice a revoked one faces, whose erased rows can no longer take a clip, so that a confusion with a revoked
    voice is not held against the model it is compared with."""
    logits = predict_logits(model, data.x)
    masked = torch.full_like(logits, float("-inf"))
    masked[:, labels] = logits[:, labels]
    return accuracy(masked, data.y)


def membership_auc(model: nn.Module, members: LabelledSet, others: LabelledSet) -> float:
    """Loss-threshold MIA AUC: can ``members`` (trained on) be told from ``others`` (held out)?"""
    return mia_auc(predict_logits(model, members.x), members.y, predict_logits(model, others.x), others.y)


