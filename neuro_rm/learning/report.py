"""Measurements a lifecycle report is made of, shared by every task demo.

Accuracy, membership inference and the cost of the full-reprogramming baseline: each is computed the
same way for speakers and for faces, so the tasks' figures can be compared (energy: ``energy_report``).
"""

from __future__ import annotations

from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm.device import ProgramResult
from neuro_rm.energy import Ledger
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.metrics import accuracy, mia_auc, predict_logits


def accuracy_on(model: nn.Module, data: LabelledSet) -> float:
    return accuracy(predict_logits(model, data.x), data.y)


def membership_auc(model: nn.Module, members: LabelledSet, others: LabelledSet) -> float:
    """Loss-threshold MIA AUC: can ``members`` (trained on) be told from ``others`` (held out)?"""
    return mia_auc(predict_logits(model, members.x), members.y, predict_logits(model, others.x), others.y)


def reprogram_from(deployed: nn.Module, trained: nn.Module, ledger: Ledger) -> list[ProgramResult]:
    """The full-reprogramming baseline: write every weight of ``trained`` (a digital copy of the same
    network, fine-tuned) into ``deployed``'s crossbars, costed in ``ledger``, and copy its digital state
    (biases, norms, readout) over."""
    names = [name for name, _ in hybrid.hybrid_layers(deployed)]
    hybrid.set_ledger(deployed, ledger)
    results = hybrid.reprogram(deployed, {name: trained.get_submodule(name).weight for name in names})
    crossbar_weights = {f"{name}.weight" for name in names}
    digital = {k: v for k, v in trained.state_dict().items() if k not in crossbar_weights}
    result = deployed.load_state_dict(digital, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"reprogram_from: the deployed model has no place for {result.unexpected_keys}")
    return results
