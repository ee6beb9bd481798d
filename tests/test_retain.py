"""Revocation and enrolment keep the retained speakers on small data: balanced retain terms, a selection
criterion that sees a sacrificed speaker, and step budgets that do not shrink with the data set."""

import pytest
import torch
from torch import nn

from neuro_rm.learning import TrainConfig
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.loop import optimize
from neuro_rm.learning.unlearn import forgetting_score


def _one_hot_val(wrong: list[int]) -> tuple[nn.Module, LabelledSet]:
    """20 samples of speaker 0, 2 of speaker 1, 5 of the forgotten speaker 2; an identity 'model' whose logits
    are the inputs, right except at the indices ``wrong`` (answered as the forgotten speaker)."""
    y = torch.tensor([0] * 20 + [1] * 2 + [2] * 5)
    answer = torch.where(y == 2, torch.zeros_like(y), y)  # the forgotten speaker is answered as speaker 0
    answer[wrong] = 2
    return nn.Identity(), LabelledSet(torch.nn.functional.one_hot(answer, 3).float() * 10, y)


def test_forgetting_score_sees_a_sacrificed_small_speaker():
    model, both_small_wrong = _one_hot_val([20, 21])  # speaker 1 (2 samples) entirely lost
    _, two_big_wrong = _one_hot_val([0, 1])  # 2 of speaker 0's 20 samples lost: same count of errors
    lost_speaker, spread = forgetting_score(model, both_small_wrong, [2]), forgetting_score(model, two_big_wrong, [2])
    assert spread - lost_speaker == pytest.approx(0.5 - 0.05, abs=0.01)  # (1 + 0)/2 against (0.9 + 1)/2


def test_class_weights_give_every_present_class_the_same_total():
    data = LabelledSet(torch.zeros(33, 1), torch.tensor([0] * 30 + [1] * 3))
    w = data.class_weights(3)
    assert w[2] == 0 and 30 * w[0] == pytest.approx(3 * w[1]) and (30 * w[0] + 3 * w[1]) == pytest.approx(33)


def test_min_steps_runs_more_epochs_on_a_small_set():
    p = nn.Parameter(torch.zeros(1))
    loss = lambda idx: (p - 1).pow(2).sum()  # noqa: E731
    assert optimize([p], loss, 10, TrainConfig(epochs=2, batch_size=64, min_steps=20)) == 20  # 1 step an epoch
    assert optimize([p], loss, 1280, TrainConfig(epochs=2, batch_size=64, min_steps=20)) == 40  # epochs decide
    with pytest.raises(ValueError, match="min_steps"):
        TrainConfig(min_steps=-1)


def test_the_per_sample_criterion_is_still_available_for_comparison():
    model, both_small_wrong = _one_hot_val([20, 21])
    _, two_big_wrong = _one_hot_val([0, 1])
    plain = [forgetting_score(model, v, [2], balanced=False) for v in (both_small_wrong, two_big_wrong)]
    assert plain[0] == pytest.approx(plain[1], abs=1e-3)  # 20/22 either way: blind to the lost speaker
