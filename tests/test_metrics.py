"""Verification metrics against cases worked out by hand, and the bootstrap interval's behaviour."""

import math

import pytest
import torch

from neuro_rm.learning.metrics import det_curve, eer_interval, equal_error_rate, min_dcf, verification_trials

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
