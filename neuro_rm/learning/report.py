"""Measurements a lifecycle report is made of, shared by every task demo.

Accuracy, membership inference and inference energy per sample on three kinds of hardware: each is
computed the same way for speakers and for faces, so the tasks' figures can be compared.
"""

from __future__ import annotations

import torch
from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm.energy import EnergyModel, Ledger
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.metrics import accuracy, mia_auc, predict_logits

INFERENCE_MODES = ("hybrid", "analog", "gpu")


def accuracy_on(model: nn.Module, data: LabelledSet) -> float:
    return accuracy(predict_logits(model, data.x), data.y)


def membership_auc(model: nn.Module, members: LabelledSet, others: LabelledSet) -> float:
    """Loss-threshold MIA AUC: can ``members`` (trained on) be told from ``others`` (held out)?"""
    return mia_auc(predict_logits(model, members.x), members.y, predict_logits(model, others.x), others.y)


def inference_energy(
    model: nn.Module, x: torch.Tensor, digital_macs_per_sample: int, energy: EnergyModel | None = None
) -> dict[str, float]:
    """Joules per sample of one measured pass over ``x``, as hybrid, all-analogue and GPU hardware.

    The pass is counted once and priced three ways, so the ratios compare the same work.
    ``digital_macs_per_sample`` covers the digital layers outside the crossbars (readouts).
    """
    if len(x) == 0:
        raise ValueError("inference_energy needs at least one sample")
    hybrid.reset_counts(model)
    predict_logits(model, x)
    counts = hybrid.collect_counts(model)
    out = {}
    for mode in INFERENCE_MODES:
        ledger = Ledger(energy)
        hybrid.post_inference(ledger, counts, mode, extra_digital_macs=len(x) * digital_macs_per_sample)
        out[mode] = ledger.joules("infer") / len(x)
    return out
