"""Metrics of learning and forgetting: accuracy, membership inference, verification (EER, minDCF, DET,
bootstrap intervals, s-norm), transfer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from neuro_rm.learning.placement import model_device


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The model's logits for ``x``, in eval mode, on the model's device, batch by batch (returned on the CPU).
    Every module's mode is put back as it was, also on an error; modules already in eval mode are not touched."""
    training = [m for m in model.modules() if m.training]
    for m in training:
        m.training = False
    try:
        device = model_device(model) if len(x) else x.device
        return torch.cat([model(chunk.to(device)).cpu() for chunk in x.split(batch_size)]) if len(x) else torch.empty(0)
    finally:
        for m in training:
            m.training = True


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


def _operating_points(
    genuine: torch.Tensor, impostor: torch.Tensor, genuine_weight: torch.Tensor | None = None,
    impostor_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(levels, far, frr): for each distinct score ``levels[j]`` (ascending), the share of impostor trials
    accepted and of genuine trials rejected when a claim is accepted iff its score >= levels[j].

    One sort and two cumulative sums (not a trials x thresholds table), so a bootstrap can call it a
    thousand times; optional per-trial weights (bootstrap multiplicities) count a trial that many times.
    """
    if len(genuine) == 0 or len(impostor) == 0:
        raise ValueError("verification metrics need genuine and impostor scores")
    scores = torch.cat([genuine, impostor]).double()
    if torch.isnan(scores).any():
        raise ValueError("verification scores contain NaN")
    levels, where = torch.unique(scores, return_inverse=True)
    gw = torch.ones(len(genuine), dtype=torch.float64) if genuine_weight is None else genuine_weight.double()
    iw = torch.ones(len(impostor), dtype=torch.float64) if impostor_weight is None else impostor_weight.double()
    at_level = lambda w, idx: torch.zeros(len(levels), dtype=torch.float64).index_add_(0, idx, w)  # noqa: E731
    gen, imp = at_level(gw, where[: len(genuine)]), at_level(iw, where[len(genuine):])
    far = imp.flip(0).cumsum(0).flip(0) / iw.sum()  # impostors scoring >= level
    frr = (gen.cumsum(0) - gen) / gw.sum()  # genuine scoring < level
    return levels, far, frr


def equal_error_rate(genuine: torch.Tensor, impostor: torch.Tensor) -> tuple[float, float]:
    """(EER, threshold): where false accepts of impostors equal false rejects of genuine trials.

    Thresholds are tried halfway between neighbouring scores, so when the two sets do not overlap the
    threshold sits in the middle of the gap, not on the weakest genuine score (which would wave through
    any voice that scores just below every genuine trial).
    """
    levels, far, frr = _operating_points(genuine, impostor)
    best = int((far - frr).abs().argmin())
    threshold = levels[0] if best == 0 else (levels[best - 1] + levels[best]) / 2
    return float((far[best] + frr[best]) / 2), float(threshold)


def min_dcf(genuine: torch.Tensor, impostor: torch.Tensor, p_target: float = 0.01, c_miss: float = 1.0,
            c_fa: float = 1.0) -> tuple[float, float]:
    """(minDCF, threshold): the normalised detection cost at its best threshold, as NIST SRE and speaker
    toolkits report it: min over thresholds of (C_miss·P_miss·p + C_fa·P_fa·(1-p)) / min(C_miss·p, C_fa·(1-p)).

    Accepting and rejecting every claim are among the thresholds (the cheaper costs 1 after normalisation),
    so a value of 1 means the scores are worth nothing at this prior; threshold +inf stands for reject-all.
    """
    if not 0 < p_target < 1 or c_miss <= 0 or c_fa <= 0:
        raise ValueError(f"min_dcf needs 0 < p_target < 1 and positive costs, got {p_target}, {c_miss}, {c_fa}")
    levels, far, frr = _operating_points(genuine, impostor)
    far, frr = torch.cat([far, far.new_zeros(1)]), torch.cat([frr, frr.new_ones(1)])  # + reject all
    cost = (c_miss * frr * p_target + c_fa * far * (1 - p_target)) / min(c_miss * p_target, c_fa * (1 - p_target))
    best = int(cost.argmin())
    if best == len(levels):
        return float(cost[best]), math.inf
    threshold = levels[0] if best == 0 else (levels[best - 1] + levels[best]) / 2
    return float(cost[best]), float(threshold)


def det_curve(genuine: torch.Tensor, impostor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(false-accept rate, miss rate) at every threshold, from accept-all to reject-all: a DET curve."""
    _, far, frr = _operating_points(genuine, impostor)
    return torch.cat([far, far.new_zeros(1)]), torch.cat([frr, frr.new_ones(1)])


def eer_interval(
    genuine: torch.Tensor, impostor: torch.Tensor, genuine_of: torch.Tensor, impostor_of: torch.Tensor,
    n_boot: int = 1000, level: float = 0.95, seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the EER over utterances: each round redraws the test utterances
    with replacement and keeps all trials of each drawn one (``*_of`` name each trial's utterance), since
    the trials of one utterance are not independent.  Fixed seed: the same scores give the same interval."""
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError(f"eer_interval needs 0 < level < 1 and n_boot >= 1, got {level}, {n_boot}")
    if len(genuine_of) != len(genuine) or len(impostor_of) != len(impostor):
        raise ValueError("eer_interval needs one utterance id per trial")
    ids, where = torch.unique(torch.cat([genuine_of, impostor_of]), return_inverse=True)
    g_idx, i_idx = where[: len(genuine)], where[len(genuine):]
    generator = torch.Generator().manual_seed(seed)
    eers = []
    for _ in range(n_boot):
        draws = torch.randint(len(ids), (len(ids),), generator=generator)
        count = torch.bincount(draws, minlength=len(ids)).double()
        gw, iw = count[g_idx], count[i_idx]
        if gw.sum() == 0 or iw.sum() == 0:  # a round without genuine (or impostor) trials has no EER
            continue
        _, far, frr = _operating_points(genuine, impostor, gw, iw)
        best = int((far - frr).abs().argmin())
        eers.append(float((far[best] + frr[best]) / 2))
    lo, hi = torch.tensor(eers, dtype=torch.float64).quantile(torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return float(lo), float(hi)


def verification_trials(scores: torch.Tensor, labels: torch.Tensor, claimable: list[int]) -> dict[str, torch.Tensor]:
    """Every sample claims every claimable speaker once: genuine and impostor scores, and the sample each
    trial came from.  Samples of other speakers (revoked, never enrolled) only ever make impostor claims."""
    parts: dict[str, list[torch.Tensor]] = {"genuine": [], "impostor": [], "genuine_of": [], "impostor_of": []}
    index = torch.arange(len(labels))
    for label in claimable:
        own = labels == label
        parts["genuine"].append(scores[own, label])
        parts["impostor"].append(scores[~own, label])
        parts["genuine_of"].append(index[own])
        parts["impostor_of"].append(index[~own])
    return {k: torch.cat(v) for k, v in parts.items()}


@torch.no_grad()
def s_norm(scores: torch.Tensor, claimable: list[int], cohort_scores: torch.Tensor,
           cohort_labels: torch.Tensor) -> torch.Tensor:
    """Symmetric score normalisation (s-norm) of verification ``scores`` (utterances × speakers).

    Speakers' logits sit on different scales, so one threshold for all of them trades one speaker's false
    accepts against another's misses.  Score s of utterance t for speaker e becomes
    ½·[(s − μ_e)/σ_e + (s − μ_t)/σ_t]: μ_e, σ_e are speaker e's scores on a cohort of other voices'
    utterances (``cohort_scores``, e.g. the holdout buffer: never the test trials), μ_t, σ_t utterance t's
    scores for the other claimable speakers.  Columns outside ``claimable`` become -inf.
    """
    if len(claimable) < 3:
        raise ValueError(f"s-norm needs at least 3 claimable speakers (2 others per claim), got {len(claimable)}")
    rows = torch.as_tensor(claimable)
    claims = scores[:, rows].double()
    z = torch.empty(len(claimable), dtype=torch.float64)
    zs = torch.empty_like(z)
    for j, label in enumerate(claimable):
        others = cohort_scores[cohort_labels != label, label].double()
        if len(others) < 2:
            raise ValueError(f"s-norm needs at least 2 cohort utterances of other voices for speaker {label}")
        z[j], zs[j] = others.mean(), others.std()
    k = len(claimable)  # utterance statistics over the other claimable speakers: leave the claim out
    total, squares = claims.sum(dim=1, keepdim=True), (claims * claims).sum(dim=1, keepdim=True)
    t_mean = (total - claims) / (k - 1)
    t_var = ((squares - claims * claims) - (k - 1) * t_mean * t_mean) / (k - 2)
    normed = 0.5 * ((claims - z) / zs + (claims - t_mean) / t_var.clamp_min(1e-12).sqrt())
    out = torch.full(scores.shape, float("-inf"), dtype=scores.dtype)
    out[:, rows] = normed.to(scores.dtype)
    return out


def backward_transfer(before: dict[int, float], after: dict[int, float]) -> float:
    """Mean change in accuracy of old classes after learning new ones (negative = forgetting)."""
    common = [c for c in before if c in after]
    if not common:
        raise ValueError("backward_transfer needs classes measured both before and after")
    return sum(after[c] - before[c] for c in common) / len(common)
