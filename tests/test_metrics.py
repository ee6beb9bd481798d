"""Verification metrics against cases worked out by hand, and the bootstrap interval's behaviour."""

import math

import pytest
import torch

from neuro_rm.learning.metrics import (
    det_curve,
    eer_interval,
    equal_error_rate,
    min_dcf,
    s_norm,
    verification_trials,
)

# Accepting claims with score >= t, these trials give (false-accept rate, miss rate):
#   t = 0.1: (1, 0)    0.2: (3/4, 0)   0.3: (1/2, 0)   0.4: (1/2, 1/3)
#   t = 0.8: (1/4, 1/3)   0.85: (1/4, 2/3)   0.9: (0, 2/3)   reject all: (0, 1)
GENUINE = torch.tensor([0.9, 0.8, 0.3])
IMPOSTOR = torch.tensor([0.1, 0.2, 0.4, 0.85])


def test_eer_by_hand():
    eer, threshold = equal_error_rate(GENUINE, IMPOSTOR)  # closest rates: t = 0.8 → (1/4 + 1/3) / 2
    assert eer == pytest.approx((1 / 4 + 1 / 3) / 2) and threshold == pytest.approx(0.6)  # midway 0.4 … 0.8


def test_min_dcf_by_hand():
    # p = 0.01: cost = (P_miss·0.01 + P_fa·0.99) / 0.01 = P_miss + 99·P_fa; only t = 0.9 has P_fa = 0 → 2/3
    assert min_dcf(GENUINE, IMPOSTOR, p_target=0.01) == pytest.approx((2 / 3, 0.875))
    # p = 0.5: cost = P_miss + P_fa → 1/2 at t = 0.3 (threshold midway 0.2 … 0.3)
    assert min_dcf(GENUINE, IMPOSTOR, p_target=0.5) == pytest.approx((0.5, 0.25))
    # C_miss = 10, p = 0.1: (10·0.1·P_miss + 0.9·P_fa) / min(1, 0.9) = (P_miss + 0.9·P_fa) / 0.9
    #   t = 0.3: 0.45 / 0.9 = 0.5;  t = 0.8: (1/3 + 0.225) / 0.9 = 0.6204 → 0.5
    assert min_dcf(GENUINE, IMPOSTOR, p_target=0.1, c_miss=10) == pytest.approx((0.5, 0.25))


def test_min_dcf_of_useless_scores_is_one():
    assert min_dcf(torch.tensor([0.1]), torch.tensor([0.9])) == (1.0, math.inf)  # rejecting all is best
    # p = 0.9: missing costs more than a false accept; accepting all costs 0.1 / 0.1 = 1, the minimum
    assert min_dcf(torch.tensor([0.1]), torch.tensor([0.9]), p_target=0.9) == pytest.approx((1.0, 0.1))
    with pytest.raises(ValueError, match="p_target"):
        min_dcf(GENUINE, IMPOSTOR, p_target=1.0)


def test_det_curve_by_hand():
    far, miss = det_curve(GENUINE, IMPOSTOR)
    assert far.tolist() == pytest.approx([1, 3 / 4, 1 / 2, 1 / 2, 1 / 4, 1 / 4, 0, 0])
    assert miss.tolist() == pytest.approx([0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])


def _gaussian_trials(n, seed):
    """n utterances, each with one genuine trial ~ N(2, 1) and one impostor trial ~ N(0, 1): true EER Φ(-1)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g) + 2, torch.randn(n, generator=g), torch.arange(n), torch.arange(n)


def test_eer_interval_covers_the_true_eer_and_narrows_with_data():
    true_eer = 0.5 * math.erfc(1 / math.sqrt(2))  # Φ(-1) = 0.1587
    small = eer_interval(*_gaussian_trials(100, 0), n_boot=300)
    large = eer_interval(*_gaussian_trials(2000, 0), n_boot=300)
    assert small[0] < true_eer < small[1] and large[0] < true_eer < large[1]
    assert (large[1] - large[0]) < 0.5 * (small[1] - small[0])  # ~ 1/sqrt(20) as wide
    assert eer_interval(*_gaussian_trials(100, 0), n_boot=300) == small  # fixed seed


def test_eer_interval_resamples_utterances_not_trials():
    genuine, impostor, g_of, i_of = _gaussian_trials(100, 1)
    once = eer_interval(genuine, impostor, g_of, i_of, n_boot=200)
    # each utterance's trials repeated 10 times: the same evidence, so the same interval (a trial-level
    # bootstrap would see 10x the trials and shrink it about 3-fold)
    tenfold = eer_interval(genuine.repeat(10), impostor.repeat(10), g_of.repeat(10), i_of.repeat(10), n_boot=200)
    assert tenfold == pytest.approx(once)


def test_verification_trials_make_revoked_voices_impostors_only():
    scores = torch.tensor([[5.0, 1.0, 0.0], [2.0, 6.0, 0.0], [3.0, 4.0, 9.0]])
    trials = verification_trials(scores, torch.tensor([0, 1, 2]), claimable=[0, 1])  # speaker 2 revoked
    assert trials["genuine"].tolist() == [5.0, 6.0] and trials["genuine_of"].tolist() == [0, 1]
    assert trials["impostor"].tolist() == [2.0, 3.0, 1.0, 4.0] and trials["impostor_of"].tolist() == [1, 2, 0, 2]


def _scaled_speakers(n=400, seed=0):
    """Four speakers whose scores sit on different scales and offsets: each speaker's genuine scores beat
    its own impostors, but one pooled threshold cannot serve all four."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(4).repeat_interleave(n // 4)
    offset, scale = torch.tensor([0.0, 3.0, -2.0, 6.0]), torch.tensor([1.0, 3.0, 0.5, 2.0])
    genuine = (labels[:, None] == torch.arange(4)).float() * 2.0
    scores = offset + scale * (genuine + torch.randn(n, 4, generator=g))
    return scores, labels


def test_s_norm_puts_speakers_on_one_scale():
    test, labels = _scaled_speakers(seed=0)
    cohort, cohort_labels = _scaled_speakers(seed=1)
    raw = verification_trials(test, labels, [0, 1, 2, 3])
    normed = verification_trials(s_norm(test, [0, 1, 2, 3], cohort, cohort_labels), labels, [0, 1, 2, 3])
    raw_eer, _ = equal_error_rate(raw["genuine"], raw["impostor"])
    normed_eer, _ = equal_error_rate(normed["genuine"], normed["impostor"])
    assert normed_eer < raw_eer - 0.1  # positive control: the raw pooled scores, same trials


def test_s_norm_leaves_a_speakers_own_utterances_out_of_its_cohort():
    """Speaker e's statistics come from other voices only: adding e's own (extreme) utterances to the cohort
    changes nothing of e's scores."""
    test, labels = _scaled_speakers(seed=0)
    cohort, cohort_labels = _scaled_speakers(seed=1)
    own = torch.full((50, 4), 1e3)
    with_own = s_norm(test, [0, 1, 2, 3], torch.cat([cohort, own]), torch.cat([cohort_labels, torch.zeros(50, dtype=torch.long)]))
    without = s_norm(test, [0, 1, 2, 3], cohort, cohort_labels)
    assert torch.equal(with_own[:, 0], without[:, 0])
    assert not torch.equal(with_own[:, 1], without[:, 1])  # for the other speakers they are other voices


def test_s_norm_by_hand_and_leaves_unclaimable_speakers_out():
    scores = torch.tensor([[1.0, 2.0, 4.0, 9.0]])
    cohort = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 0.0], [1.0, 4.0, 6.0, 0.0]])
    cohort_labels = torch.tensor([3, 3, 3])  # all other voices for speakers 0..2
    out = s_norm(scores, [0, 1, 2], cohort, cohort_labels)
    # speaker 0: cohort mean 1, std 1 → z = 0; the other claims 2, 4: mean 3, std √2 → t = (1 − 3)/√2
    assert float(out[0, 0]) == pytest.approx(0.5 * (0.0 + (1 - 3) / math.sqrt(2)))
    # speaker 2: cohort 0, 2, 6: mean 8/3, std √(28/3); others 1, 2: mean 1.5, std √0.5
    assert float(out[0, 2]) == pytest.approx(0.5 * ((4 - 8 / 3) / math.sqrt(28 / 3) + (4 - 1.5) / math.sqrt(0.5)))
    assert out[0, 3] == float("-inf")


def test_s_norm_refuses_too_few_speakers_or_cohort():
    scores = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="at least 3 claimable"):
        s_norm(scores, [0, 1], scores, torch.tensor([2, 2]))
    with pytest.raises(ValueError, match="cohort utterances of other voices for speaker 0"):
        s_norm(scores, [0, 1, 2], scores, torch.tensor([0, 0]))


def test_predict_logits_reads_in_eval_mode_and_puts_every_module_back_as_it_was():
    from torch import nn

    from neuro_rm.learning.metrics import predict_logits

    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    model[2].eval()  # a frozen part stays frozen; the rest is training
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(predict_logits(model, x), predict_logits(model, x))  # dropout off while predicting
    assert [m.training for m in model.modules()] == [True, True, True, False]
    model.eval()
    model[1].train()  # eval at the top, one submodule training: still read in eval mode
    assert torch.equal(predict_logits(model, x), predict_logits(model, x))
    assert [m.training for m in model.modules()] == [False, False, True, False]
    model.train()
    with pytest.raises(RuntimeError):
        predict_logits(model, torch.randn(2, 5))  # wrong width: the forward raises ...
    assert all(m.training for m in model.modules())  # ... and the modes are back all the same


def test_accuracy_among_masks_the_classes_left_out_and_only_those() -> None:
    from torch import nn

    from neuro_rm.learning.data import LabelledSet
    from neuro_rm.learning.report import accuracy_among, accuracy_on

    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0], [0.0, 1.0, 5.0]])  # clip 0 is class 2, taken by class 1
    data = LabelledSet(logits, torch.tensor([2, 0, 2]))
    model = nn.Identity()
    assert accuracy_on(model, data) == pytest.approx(2 / 3)
    assert accuracy_among(model, data, [0, 2]) == 1.0  # class 1 masked: clip 0 goes to class 2
    assert accuracy_among(model, data, [1, 2]) == pytest.approx(1 / 3)  # class 0 masked: clip 1 cannot be right
