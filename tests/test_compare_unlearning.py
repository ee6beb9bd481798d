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


def test_the_threshold_comes_from_the_holdout_never_from_the_trials_it_scores() -> None:
    """Review (session 38): a threshold set on the scoring half would be fitted to the trials it then counts."""
    compare = _module()
    speakers = 4
    eye = torch.eye(speakers).repeat(5, 1)
    labels = torch.arange(speakers).repeat(5)
    auth = _identity_auth(LabelledSet(eye * 4, labels), speakers)  # holdout: own claims 4, the others' 0 (threshold 2)
    next_one = torch.roll(eye, 1, dims=1)  # each trial's claim to the next speaker scores 3, its others 0, its own 10:
    trials = LabelledSet(eye * 10 + next_one * 3, labels)  # a threshold pooled with (or set on) these rises above 3
    figures = compare.acceptance(auth, trials, torch.zeros(3, speakers), "logit")
    assert figures["impostor"] == pytest.approx(1 / 3) and figures["impostor_any"] == 1.0  # one claim in three, per trial


def test_validation_is_halved_per_speaker_into_disjoint_parts_that_cover_it() -> None:
    compare = _module()
    data = LabelledSet(torch.arange(30.0).view(-1, 1), torch.tensor([0] * 10 + [1] * 13 + [2] * 7))
    device_half, scoring_half = compare.halves(data, seed=3)
    assert sorted(device_half.x.flatten().tolist() + scoring_half.x.flatten().tolist()) == list(range(30))
    assert torch.bincount(device_half.y).tolist() == [5, 6, 3]
    assert torch.bincount(scoring_half.y).tolist() == [5, 7, 4]
    assert compare.halves(data, seed=4)[0].x.flatten().tolist() != device_half.x.flatten().tolist()


def _rows(x: torch.Tensor) -> set[bytes]:
    return {bytes(row.numpy().tobytes()) for row in x.flatten(1)}


@pytest.mark.slow
def test_no_sample_that_scores_a_candidate_was_seen_by_the_device_that_chose_it(tiny_speech, monkeypatch) -> None:
    """The device's half selects (pretraining's epoch, the holdout buffer, enrolment's validation); the scoring
    half scores.  A scoring sample the device saw would flatter the candidate it helped choose.  (The threshold's
    own source is tested above.)"""
    from neuro_rm import layers as hybrid
    from neuro_rm.auth import SpeakerAuthenticator
    from neuro_rm.tasks.speaker import DemoConfig, fast

    compare = _module()
    monkeypatch.setattr(compare, "DemoConfig", lambda: fast(DemoConfig()))
    seen: list[torch.Tensor] = []

    def note(*values) -> None:
        """Every tensor handed to the device, and its buffers (what deploy calibrates on, a revocation
        selects with and retains, enrolment replays and validates on, the threshold is set on)."""
        for value in values:
            if isinstance(value, SpeakerAuthenticator):
                seen.extend([value.buffers.replay.x, value.buffers.holdout.x])
            elif isinstance(value, LabelledSet):
                seen.append(value.x)
            elif isinstance(value, torch.Tensor):
                seen.append(value)

    def spying(method):
        def spy(self, *args, **kwargs):
            note(self, *args, *kwargs.values())
            try:
                return method(self, *args, **kwargs)
            finally:
                note(self)
        return spy

    pretrain = SpeakerAuthenticator.pretrain

    def pretrain_spy(cls, *args, **kwargs):
        note(*args, *kwargs.values())
        auth, fit = pretrain(*args, **kwargs)
        note(auth)
        return auth, fit

    monkeypatch.setattr(SpeakerAuthenticator, "pretrain", classmethod(pretrain_spy))
    for name in ("deploy", "revoke", "enroll", "calibrate"):
        monkeypatch.setattr(SpeakerAuthenticator, name, spying(getattr(SpeakerAuthenticator, name)))
    # which model a row's retained accuracy was read from: the branches it held when read
    read_from, branches_of = [None], []
    predict, acceptance, scored, in_acceptance, outsiders = compare.predict_logits, compare.acceptance, [], [False], []

    def predict_spy(model, x, *args, **kwargs):
        read_from[0] = model
        if not in_acceptance[0]:
            scored.append(x)  # the facts: forget and retained accuracy, membership
        return predict(model, x, *args, **kwargs)

    def acceptance_spy(auth, impostors, outsider, kind):
        note(auth)  # the buffers as the threshold is set on them
        scored.extend([impostors.x, outsider])
        outsiders.append(_rows(outsider))
        in_acceptance[0] = True
        try:
            return acceptance(auth, impostors, outsider, kind)
        finally:
            in_acceptance[0] = False

    def per_class_spy(logits, labels):
        branches_of.append(frozenset(hybrid.adapter_names(read_from[0])))
        return {0: float(len(branches_of) - 1)}  # the row's retain_acc names its read

    monkeypatch.setattr(compare, "predict_logits", predict_spy)
    monkeypatch.setattr(compare, "acceptance", acceptance_spy)
    monkeypatch.setattr(compare, "per_class_accuracy", per_class_spy)
    splits = SimpleNamespace(speaker_names=["s0", "s1", "s2", "s3"], train=tiny_speech["train"], val=tiny_speech["val"])
    rows = compare.run(splits, revoke=1, seed=0, methods=["impostor"], impostor_sds=[0.0])
    _, scoring = compare.halves(LabelledSet(splits.val.x, splits.val.y), 0)
    device_saw = set().union(*map(_rows, seen))
    assert len(_rows(scoring.x)) == len(scoring)  # every scoring sample tells itself apart
    leaked = device_saw & _rows(scoring.x)
    assert device_saw and not leaked, f"{len(leaked)} scoring samples reached the device"
    assert _rows(splits.val.x) - _rows(scoring.x) <= device_saw  # the device's half was used
    read = set().union(*map(_rows, scored))  # what the rows are scored on: the scoring half (training samples for membership)
    assert read & _rows(scoring.x) and read <= _rows(scoring.x) | _rows(splits.train.x)
    stages = {(r["method"], r["stage"]) for r in rows}
    assert stages == {("deployed; outsider: a stranger", "deploy"), ("impostor (sd 0)", "revoke"), ("impostor (sd 0)", "enroll"),
                      ("retrained without the speaker", "revoke"), ("retrained without the speaker", "enroll")}
    assert all(0.0 <= r[k] <= 1.0 for r in rows for k in ("impostor", "outsider", "forget_acc", "mia"))
    forget = {(r["method"], r["stage"]): r["forget_acc"] for r in rows}  # each row's facts are its own model's
    assert forget.pop(("deployed; outsider: a stranger", "deploy")) > 0.9 > 0.1 > max(forget.values())  # the control
    held = {(r["method"], r["stage"]): branches_of[int(r["retain_acc"])] for r in rows}
    assert held.pop(("deployed; outsider: a stranger", "deploy")) == frozenset()  # before any revocation
    for method in ("impostor (sd 0)", "retrained without the speaker"):  # enrolment adds a branch to the one it read
        assert held[(method, "revoke")] < held[(method, "enroll")]
    assert held[("impostor (sd 0)", "revoke")]  # the mask's branch
    assert len(outsiders) == len(rows)  # one acceptance count per row, in order: whom each row's outsider is
    for row, outsider in zip(rows, outsiders, strict=True):
        voice = 3 if row["stage"] == "deploy" else 1  # the stranger before enrolment, else the revoked voice
        assert outsider == _rows(scoring.of_classes([voice]).x)
