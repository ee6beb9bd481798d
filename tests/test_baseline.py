"""The logistic-regression floor: learns what is linearly there, nothing more, and chooses C on validation."""

import torch
from conftest import synthetic_speakers

from neuro_rm.learning.baseline import linear_baseline
from neuro_rm.learning.data import LabelledSet


def test_learns_separable_speakers(tiny_speech):
    result = linear_baseline(tiny_speech["train"], tiny_speech["val"], tiny_speech["test"])
    assert result.accuracy >= 0.95 and result.val_accuracy >= 0.95


def test_finds_nothing_where_labels_carry_nothing(tiny_speech):
    train = tiny_speech["train"]
    shuffled = LabelledSet(train.x, train.y[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))])
    result = linear_baseline(shuffled, tiny_speech["val"], tiny_speech["test"])
    assert result.accuracy < 0.45  # 4 speakers: chance is 0.25


def test_choice_of_c_does_not_look_at_test(tiny_speech):
    noisy = synthetic_speakers(seed=7)  # harder validation data, so that C matters
    noisy = LabelledSet(noisy.x * (torch.rand(noisy.x.shape, generator=torch.Generator().manual_seed(1)) < 0.3), noisy.y)
    test = tiny_speech["test"]
    wrong = LabelledSet(test.x, (test.y + 1) % 4)  # every test label wrong
    right = linear_baseline(tiny_speech["train"], noisy, test)
    flipped = linear_baseline(tiny_speech["train"], noisy, wrong)
    assert (right.c, right.val_accuracy) == (flipped.c, flipped.val_accuracy)
    assert right.accuracy > 0.9 and flipped.accuracy < 0.1
