"""scripts/compare_unlearning.py: the figures that chose suspension's target must read a revoked voice fairly."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from conftest import load_script
from torch import nn

from neuro_rm.learning import LabelledSet


def _module():
    return load_script("compare_unlearning")


def _identity_auth(holdout: LabelledSet, speakers: int) -> SimpleNamespace:
    """An authenticator whose claim scores are its inputs: input column c is the score for claiming speaker c."""
    reader = nn.Linear(speakers, speakers)
    with torch.no_grad():
        reader.weight.copy_(torch.eye(speakers))
        reader.bias.zero_()
    return SimpleNamespace(model=reader, active_labels=list(range(speakers)),
                           buffers=SimpleNamespace(holdout=holdout))


def test_a_voice_that_passes_as_one_of_four_speakers_is_accepted_as_anyone_not_a_quarter_of_the_time() -> None:
    """Per claim, a revoked voice that still passes as one speaker reads 1/K; the product lets it in every time."""
    compare = _module()
    speakers = 4
    eye = torch.eye(speakers).repeat(5, 1)
    odd = (torch.arange(5 * speakers) % 2).view(-1, 1).float()
    own = eye * 4 + (1 - eye) * odd  # 4 on its own claim; 0 or 1 on the others' (every other recording)
    holdout = LabelledSet(own, torch.arange(speakers).repeat(5))
    auth = _identity_auth(holdout, speakers)
    trials = own[eye == 0]
    outsider = torch.zeros(6, speakers)
    outsider[:, 2] = 4.0  # the revoked voice still passes as speaker 2
    figures = compare.acceptance(auth, holdout, outsider, "logit")
    assert figures["impostor"] == 0.0 and figures["impostor_any"] == 0.0  # genuine claims are not impostor trials
    assert figures["outsider"] == 1.0
    assert figures["gap"] == pytest.approx(float((outsider.mean() - trials.mean()) / trials.std()))
    typical = compare.acceptance(auth, holdout, torch.full((6, speakers), float(trials.mean())), "logit")
    assert typical["outsider"] == 0.0 and typical["gap"] == pytest.approx(0.0, abs=1e-6)


def test_validation_is_halved_per_speaker_into_disjoint_parts_that_cover_it() -> None:
    compare = _module()
    data = LabelledSet(torch.arange(30.0).view(-1, 1), torch.tensor([0] * 10 + [1] * 13 + [2] * 7))
    device_half, scoring_half = compare.halves(data, seed=3)
    assert sorted(device_half.x.flatten().tolist() + scoring_half.x.flatten().tolist()) == list(range(30))
    assert torch.bincount(device_half.y).tolist() == [5, 6, 3]
    assert torch.bincount(scoring_half.y).tolist() == [5, 7, 4]
    assert compare.halves(data, seed=4)[0].x.flatten().tolist() != device_half.x.flatten().tolist()
