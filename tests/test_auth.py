import copy
import hashlib
import json

import pytest
import torch
from conftest import synthetic_speakers

from neuro_rm import layers as hybrid
from neuro_rm.audit import AuditTamperedError
from neuro_rm.auth import SpeakerAuthenticator, lifecycle
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.learning import LabelledSet, TrainConfig, UnlearnConfig, accuracy, erase, predict_logits
from neuro_rm.learning.attacks import branch_off_accuracy
from neuro_rm.learning.consolidation import BranchBudget
from neuro_rm.learning.continual import fit_rows
from neuro_rm.models import RSNNConfig
from neuro_rm.plasticity import Recorder
from neuro_rm.store import CorruptStateError
from neuro_rm.work import WorkMeter

QUICK = TrainConfig(epochs=6, lr=5e-3, batch_size=32)


def _deploy(sets, names, seed=0):
    labels = list(range(len(names)))
    auth, _ = SpeakerAuthenticator.pretrain(
        names, sets["train"].of_classes(labels), sets["val"].of_classes(labels),
        RSNNConfig(n_inputs=20, n_hidden=32, n_outputs=len(names)), QUICK, seed=seed,
    )
    auth.deploy(seed=seed)
    return auth


@pytest.fixture()
def deployed(tiny_speech):
    return _deploy(tiny_speech, ["ann", "bob", "cy"])


def _acc(auth, data):
    return accuracy(predict_logits(auth.model, data.x), data.y)


def _folder_digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_pretrain_and_deploy_keep_speakers_apart(deployed, tiny_speech):
    assert _acc(deployed, tiny_speech["test"].of_classes([0, 1, 2])) > 0.9
    assert hybrid.trainable_parameter_count(deployed.model) == deployed.model.head.weight.numel() + 3
    with pytest.raises(ValueError, match="deployed already"):
        deployed.deploy()


@pytest.mark.parametrize("mode", ["erase", "suspend"])
def test_revoke_forgets_in_either_mode_and_drops_the_voiceprint(deployed, tiny_speech, mode):
    test = tiny_speech["test"]
    before_keep = _acc(deployed, test.of_classes([0, 2]))
    report = deployed.revoke("bob", tiny_speech["train"].of_classes([1]).x, config=UnlearnConfig(train=QUICK), mode=mode)
    assert report.extra["mode"] == mode and deployed.audit.entries[-1]["details"]["mode"] == mode
    assert _acc(deployed, test.of_classes([1])) <= 0.5  # at or below chance among the 2 kept speakers
    assert _acc(deployed, test.of_classes([0, 2])) >= before_keep - 0.1
    assert deployed.registry["bob"].status == "revoked"
    assert 1 not in deployed.buffers.replay.y.tolist() and 1 not in deployed.buffers.holdout.y.tolist()
    assert torch.count_nonzero(deployed.model.head.weight[1]) == 0  # the voiceprint (readout row) is erased
    with pytest.raises(ValueError, match="already revoked"):  # (erasing a suspended speaker turns the suspension into an erasure)
        deployed.revoke("bob", test.of_classes([1]).x, mode=mode)
    with pytest.raises(KeyError, match="unknown speaker"):
        deployed.revoke("zed", test.of_classes([1]).x)
    with pytest.raises(ValueError, match="revoke mode"):
        deployed.revoke("ann", test.of_classes([0]).x, mode="forget")
    rows, entries = deployed.model.head.snapshot(), len(deployed.audit.entries)
    with pytest.raises(ValueError, match="would leave 1 enrolled speaker"):  # no impostor trials to set a threshold on
        deployed.revoke("ann", tiny_speech["train"].of_classes([0]).x, config=UnlearnConfig(train=QUICK), mode=mode)
    assert torch.equal(deployed.model.head.weight, rows[0]) and len(deployed.audit.entries) == entries
    deployed.registry["ann"].status = "revoked"  # as an older state might hold: calibrate says why it cannot
    with pytest.raises(ValueError, match="calibrate needs at least two enrolled speakers"):
        deployed.calibrate()


def test_erased_voice_stays_gone_with_every_branch_off_and_its_old_voiceprint(deployed, tiny_speech, monkeypatch):
    targets = []  # the target each forget branch is trained with, read where it runs

    def spy(real):
        return lambda *args, **kwargs: targets.append((args[6].method, args[6].impostor_sd)) or real(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "unlearn", spy(lifecycle.unlearn))
    monkeypatch.setattr(erase, "unlearn", spy(erase.unlearn))
    bob = tiny_speech["test"].of_classes([1]).x
    voiceprint = (deployed.model.head.weight[1].detach().clone(), deployed.model.head.bias[1].detach().clone())
    assert branch_off_accuracy(deployed.model, 1, voiceprint, bob) >= 0.9  # the attack finds the voice before revocation
    suspended = copy.deepcopy(deployed)
    masked = suspended.revoke("bob", tiny_speech["train"].of_classes([1]).x, config=UnlearnConfig(train=QUICK), mode="suspend")
    assert branch_off_accuracy(suspended.model, 1, voiceprint, bob) >= 0.9  # suspend only masks: reversible by design
    assert masked.extra["method"] == UnlearnConfig.method and targets == [(UnlearnConfig.method, lifecycle.MASK_IMPOSTOR_SD)]
    assert masked.extra["impostor_sd"] == lifecycle.MASK_IMPOSTOR_SD
    recorder = Recorder()  # someone keeping snapshots of the cells from before the erasure
    hybrid.add_hook(deployed.model, recorder)
    hybrid.set_time(deployed.model, 3600.0)
    hybrid.set_time(deployed.model, 0.0)
    assert any("conductance_us" in e.data for e in recorder.select(layer="fc_in"))
    kept_rows = deployed.model.head.weight[[0, 2]].detach().clone()
    pulses_before = deployed.ledger.count("write.rm_pulse")
    trained_on, held_out = tiny_speech["train"].of_classes([1]).x, deployed.buffers.holdout.of_classes([1]).x
    # the config a suspension was given, passed to an erasure, leaves erasure at its own depth (session 36: it
    # silently ran at the suspension's)
    report = deployed.revoke("bob", trained_on, config=UnlearnConfig(train=QUICK), mode="erase")
    assert targets[1:] and {sd for _, sd in targets[1:]} == {erase.ERASE_IMPOSTOR_SD} == {report.extra["impostor_sd"]}
    served = max(branch_off_accuracy(deployed.model, 1, voiceprint, x) for x in (trained_on, held_out))
    assert report.extra["residual"] == pytest.approx(served, abs=0.05)  # the self-check saw the model as served
    assert not any("conductance_us" in e.data for e in recorder.select(layer="fc_in"))  # no old snapshot is left
    assert not torch.equal(deployed.model.head.weight[[0, 2]].detach(), kept_rows)  # the others' rows are re-learnt
    assert _acc(deployed, tiny_speech["test"].of_classes([0, 2])) >= 0.9
    assert hybrid.adapter_names(deployed.model) == []  # no digital branch is left to switch off
    assert branch_off_accuracy(deployed.model, 1, voiceprint, bob) <= 1 / 3 + 0.05  # chance among 3 rows + 5 points
    assert report.extra["write_pulses"] == deployed.ledger.count("write.rm_pulse") - pulses_before > 0
    assert 0 < report.extra["cells_written"] < deployed.model.fc_in.crossbar.n_cells  # only cells that had to move
    assert report.extra["method"] == UnlearnConfig.method  # the default target, read from what ran ...
    assert {m for m, _ in targets[1:]} == {UnlearnConfig.method} and len(targets) == 1 + report.extra["rounds"]  # ... in every round


def _revoked_vs_impostors(auth, test, revoked_label):
    """(revoked voice's claims accepted, impostor trials accepted + two binomial standard errors,
    mean revoked claim score, mean impostor score, genuine trials accepted) at the calibrated threshold."""
    auth.calibrate()
    genuine, impostor = auth.trial_scores(test.of_classes(auth.active_labels))
    revoked = auth.scores(test.of_classes([revoked_label]).x)[:, auth.active_labels].flatten()
    impostor_rate = float((impostor >= auth.threshold).float().mean())
    allowance = impostor_rate + 2 * (max(impostor_rate, 1 / len(revoked)) / len(revoked)) ** 0.5
    return (float((revoked >= auth.threshold).float().mean()), allowance, float(revoked.mean()), float(impostor.mean()),
            float((genuine >= auth.threshold).float().mean()))


@pytest.fixture()
def revoked_bob(deployed, tiny_speech):
    deployed.revoke("bob", tiny_speech["train"].of_classes([1]).x, config=UnlearnConfig(train=QUICK), mode="suspend")
    return deployed


@pytest.mark.parametrize("rounds", [2, 3])
def test_an_erasure_after_loading_is_costed_in_the_ledger(deployed, tiny_speech, tmp_path, monkeypatch, rounds):
    deployed.save(tmp_path)
    loaded = SpeakerAuthenticator.load(tmp_path)
    ran = []
    monkeypatch.setattr(lifecycle, "erase_classes", lambda *a, **k: ran.append(erase.erase_classes(*a, **k)) or ran[-1])
    monkeypatch.setattr(erase, "branch_off_accuracy", lambda *a, **k: 1.0)  # the self-check never passes: every round runs
    updates, bits = loaded.ledger.count("train.updates"), loaded.ledger.count("write.sram")
    config = erase.EraseConfig(UnlearnConfig(train=QUICK), max_rounds=rounds, layers=("fc_in",),
                               readout=TrainConfig(epochs=3, lr=3e-3, batch_size=32))
    with pytest.warns(UserWarning, match=f"after {rounds} rounds"):
        report = loaded.revoke("bob", tiny_speech["train"].of_classes([1]).x, mode="erase", erase=config)
    assert report.extra["write_pulses"] == loaded.ledger.count("write.rm_pulse") > 0
    # the updates made: each round's branch over its own steps, the retained rows over theirs (not every step at both sizes)
    erased, row = ran[0], loaded.model.head.in_features + 1
    assert len(erased.fits) == len(erased.readouts) == rounds and erased.row_params == 2 * row
    assert erased.branch_params == config.rank * (20 + 32)  # a rank-8 branch on fc_in (20 inputs, 32 neurons)
    assert all(f.steps > 0 for f in erased.fits + erased.readouts)
    made = erased.branch_params * sum(f.steps for f in erased.fits) + erased.row_params * sum(r.steps for r in erased.readouts)
    assert loaded.ledger.count("train.updates") - updates == made
    # row writes: in each round the voice's row erased and the 2 retained rows re-learnt; the voiceprint put back before every later one
    assert loaded.ledger.count("write.sram") - bits == report.extra["write_bits"] == (rounds * (1 + 2) + rounds - 1) * row * 32


def test_a_suspension_charges_its_branch_and_the_erased_readout_row(deployed, tiny_speech):
    before = deployed.ledger.count("write.sram")
    report = deployed.revoke("bob", tiny_speech["train"].of_classes([1]).x, config=UnlearnConfig(train=QUICK), mode="suspend")
    branch_bits = sum(p.numel() for p in hybrid.adapter_parameters(deployed.model, "revoke_1")) * 32  # fp32
    row_bits = (deployed.model.head.in_features + 1) * 32  # the voice's row zeroed, its bias set
    assert report.extra["write_bits"] == branch_bits + row_bits == deployed.ledger.count("write.sram") - before


def test_a_suspended_voice_is_rejected_like_an_impostor(revoked_bob, tiny_speech):
    accepted, allowance, revoked_mean, impostor_mean, genuine_rate = _revoked_vs_impostors(revoked_bob, tiny_speech["test"], 1)
    assert accepted <= allowance  # no more often than impostor trials (plus two binomial standard errors)
    assert genuine_rate > 0.9  # genuine claims do pass


@pytest.mark.xfail(strict=True, reason="known limit: a speaker enrolled later never had the revoked voice among its "
                   "negatives, so its new readout row accepts that voice like any stranger's (README, Security)")
def test_a_suspended_voice_stays_rejected_after_a_later_enrolment(revoked_bob, tiny_speech):
    train, val = tiny_speech["train"], tiny_speech["val"]
    revoked_bob.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, QUICK)
    accepted, allowance, revoked_mean, impostor_mean, _ = _revoked_vs_impostors(revoked_bob, tiny_speech["test"], 1)
    assert revoked_mean <= impostor_mean and accepted <= allowance


def test_enroll_learns_a_new_speaker_with_a_trained_row(deployed, tiny_speech):
    train, val, test = tiny_speech["train"], tiny_speech["val"], tiny_speech["test"]
    head_before = deployed.model.head.weight.detach()[:3].clone()
    deployed.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, QUICK)
    assert deployed.registry["dee"].adapter == "enroll_3"  # a trained branch is kept (control of the zero-branch test)
    assert deployed.model.head.n_classes == 4
    assert torch.equal(deployed.model.head.weight.detach()[:3], head_before)  # old rows untouched
    assert _acc(deployed, test.of_classes([3])) > 0.8
    assert _acc(deployed, test.of_classes([0, 1, 2])) > 0.8
    with pytest.raises(ValueError, match="exists already"):
        deployed.enroll("ann", train.of_classes([3]).x, val.of_classes([3]).x, QUICK)


def test_a_fitted_row_finds_the_new_speaker_on_the_frozen_features_and_is_counted(deployed, tiny_speech):
    train, test = tiny_speech["train"], tiny_speech["test"]
    model = deployed.model
    replay = train.of_classes([0, 1, 2])
    data = LabelledSet.concat(train.of_classes([3]), replay)
    model.head.grow(1, seed=3)
    before = model.head.snapshot()
    random_row = _acc(deployed, test.of_classes([3]))  # control: the grown row as drawn finds little of the voice
    alone = train.of_classes([3])  # no other voice to fit against (an empty replay buffer): a bias alone would win
    assert fit_rows(model, [3], alone, alone.class_weights(4)) == 0
    assert torch.equal(model.head.weight, before[0]) and torch.equal(model.head.bias, before[1])
    with WorkMeter() as meter:
        evaluations = fit_rows(model, [3], data, data.class_weights(4))
    weight, bias = model.head.snapshot()
    assert torch.equal(weight[:3], before[0][:3]) and torch.equal(bias[:3], before[1][:3])  # old rows untouched
    assert not torch.equal(weight[3], before[0][3])
    fitted = _acc(deployed, test.of_classes([3]))
    assert random_row < 0.5 <= 0.8 < fitted, (random_row, fitted)  # no branch trained: the row alone
    assert _acc(deployed, test.of_classes([0, 1, 2])) > 0.8
    record = meter.records[-1]  # the work is on the record: one features pass, the solver's evaluations
    assert record.description.endswith("readout rows on frozen features") and record.steps == evaluations > 0
    assert record.evaluation.samples == len(data) and record.forward.digital_macs > 0
    row = model.head.in_features + 1  # the solver's SRAM: the row and L-BFGS's history of 100 steps, not Adam's state
    assert record.sram_bytes >= row * (2 * 100 + 3) * 4 > 10 * row * 4 * 4


def test_a_quick_enrolment_starts_from_the_fitted_row(deployed, tiny_speech):
    """``warm_row=True`` reaches the enrolment: with a rate too small for training to move anything, the new
    speaker is found only when the row was fitted first (control: the same enrolment from the drawn row)."""
    train, val, test = tiny_speech["train"], tiny_speech["val"], tiny_speech["test"]
    still = TrainConfig(epochs=1, lr=1e-12, batch_size=32)
    found = {}
    for warm in (False, True):
        auth = copy.deepcopy(deployed)
        auth.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, still, warm_row=warm)
        found[warm] = _acc(auth, test.of_classes([3]))
        assert auth.audit.entries[-1]["details"]["warm_row"] is warm
    assert found[False] < 0.5 and found[True] > 0.8, found


def test_an_enrolment_whose_branch_validation_did_not_keep_commits_no_branch(deployed, tiny_speech):
    """When validation keeps the start (the fitted row, the branch still zero), no zero branch is written to
    SRAM and read at every inference: the voice is its readout row alone, and revocation works on it."""
    train, val, test = tiny_speech["train"], tiny_speech["val"], tiny_speech["test"]
    wild = TrainConfig(epochs=1, lr=10.0, batch_size=32)  # a step that can only make validation worse
    report = deployed.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, wild, warm_row=True)
    assert report.fit.best_epoch == -1  # the premise: validation kept the start
    entry = deployed.audit.entries[-1]["details"]
    assert entry["adapter"] is None and deployed.registry["dee"].adapter is None
    assert "enroll_3" not in hybrid.adapter_names(deployed.model)
    assert entry["write_bits"] == (deployed.model.head.in_features + 1) * 32  # the row alone is written
    assert _acc(deployed, test.of_classes([3])) > 0.8
    deployed.revoke("dee", train.of_classes([3]).x, config=UnlearnConfig(train=QUICK), mode="suspend")
    assert _acc(deployed, test.of_classes([3])) == 0.0


class _Reached(Exception):
    """Raised by a spy where the forget branch would start training: the depth is read, nothing is trained."""


@pytest.mark.parametrize(("named", "mode", "depth"), [(None, "suspend", lifecycle.MASK_IMPOSTOR_SD),
                                                      (None, "erase", erase.ERASE_IMPOSTOR_SD),
                                                      (0.25, "erase", 0.25), (0.25, "suspend", 0.25),
                                                      (None, "erase a suspension", erase.ERASE_IMPOSTOR_SD),
                                                      (0.25, "erase a suspension", 0.25)])
def test_each_revocation_trains_at_its_modes_depth_or_the_one_named(deployed, tiny_speech, monkeypatch, named, mode, depth):
    """Review (session 37): an erasure once ran at a suspension's depth, and then ignored a depth the caller named;
    the depth it runs at is the one its report and audit entry give."""
    seen = []

    def spy(*args, **kwargs):
        seen.append(args[6].impostor_sd)
        raise _Reached

    x = tiny_speech["train"].of_classes([1]).x
    if mode == "erase a suspension":
        deployed.revoke("bob", x, config=UnlearnConfig(train=QUICK), mode="suspend")
    monkeypatch.setattr(lifecycle, "unlearn", spy)
    monkeypatch.setattr(erase, "unlearn", spy)
    config = UnlearnConfig(train=QUICK, impostor_sd=named)
    with pytest.raises(_Reached):
        if mode == "erase a suspension":
            deployed.erase_suspended({"bob": x}, config=config)
        else:
            deployed.revoke("bob", x, config=config, mode=mode)
    assert seen == [depth]


@pytest.fixture()
def erased_bob(deployed, tiny_speech):
    deployed.revoke("bob", tiny_speech["train"].of_classes([1]).x, config=UnlearnConfig(train=QUICK))
    return deployed


def test_a_readout_refit_brings_a_row_that_fires_for_every_voice_back_in_line(erased_bob, tiny_speech):
    """The refit fits the enrolled speakers' rows together on the replay buffer: a row that outscores the others
    on every voice (what an old row becomes for voices enrolled after it) is brought back in line, while the
    erased speaker's row, the cells and the branches stay as they were (that the erased voice stays out is
    tested below, with enough speakers left to tell)."""
    auth, test = erased_bob, tiny_speech["test"]
    head, row_bits = auth.model.head, (auth.model.head.in_features + 1) * 32
    with torch.no_grad():
        head.bias[2] += 50.0  # cy's row now wins on every voice
    assert _acc(auth, test.of_classes([0])) < 0.2  # the control: ann is taken for cy
    erased, written, branches = (head.weight[1].clone(), head.bias[1].clone()), hybrid.write_history(auth.model), hybrid.adapter_names(auth.model)
    bits, entries = auth.ledger.count("write.sram"), len(auth.audit.entries)
    report = auth.refit_readout()
    assert report.extra["kept"] and report.extra["holdout_score_after"] > report.extra["holdout_score_before"]
    assert _acc(auth, test.of_classes([0])) > 0.8 and _acc(auth, test.of_classes([2])) > 0.8
    assert torch.equal(head.weight[1], erased[0]) and torch.equal(head.bias[1], erased[1])  # bob's row stays erased
    assert torch.equal(hybrid.write_history(auth.model), written) and hybrid.adapter_names(auth.model) == branches
    assert auth.ledger.count("write.sram") - bits == report.extra["write_bits"] == 2 * row_bits  # ann's and cy's rows
    assert len(auth.audit.entries) == entries + 1 and auth.audit.entries[-1]["action"] == "refit_readout"


def _claims_accepted(auth, test, label):
    """Share of ``label``'s claims to each enrolled speaker accepted at the calibrated threshold, and how many
    claims to each."""
    auth.calibrate()
    accepted = auth.scores(test.of_classes([label]).x)[:, auth.active_labels] >= auth.threshold
    return accepted.float().mean(0), len(accepted)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_readout_refit_lets_an_erased_voice_in_no_more_than_a_voice_it_never_heard(seed):
    """review61: with three speakers left after an erasure, the erased voice's claims to each of them are
    accepted after the refit no more than before, beyond what the refit moves the claims of a voice the
    authenticator never heard (it shifts every unfamiliar voice's, up or down, by seed).  The control: a
    refit whose buffer still held bob's samples, labelled as ann's, fails this on seed 1 (bob's claims to ann
    0.05 -> 1.00, the stranger's 0.00 -> 0.15).  Seed 0 is left out: there the holdout buffer scores the
    erasure's rows at its ceiling, the refit is not kept, and there would be nothing to test."""
    sets = {name: synthetic_speakers(n_speakers=5, seed=i + 10 * seed) for i, name in enumerate(("train", "val", "test"))}
    auth, test, stranger = _deploy(sets, ["ann", "bob", "cy", "dee"], seed), sets["test"], 4
    auth.revoke("bob", sets["train"].of_classes([1]).x, config=UnlearnConfig(train=QUICK))
    (bob, n), (met, _) = _claims_accepted(auth, test, 1), _claims_accepted(auth, test, stranger)
    assert auth.refit_readout().extra["kept"]  # the premise: the refit ran and was written
    (bob_after, _), (met_after, _) = _claims_accepted(auth, test, 1), _claims_accepted(auth, test, stranger)
    genuine, _ = auth.trial_scores(test.of_classes(auth.active_labels))
    assert float((genuine >= auth.threshold).float().mean()) > 0.9  # the enrolled voices do pass
    spread = sum(p * (1 - p) for p in (bob, bob_after, met, met_after)) / n  # of the difference of the two changes
    allowance = 2 * spread.clamp(min=1 / n**2).sqrt()  # two standard errors
    assert bool(((bob_after - bob) <= (met_after - met) + allowance).all()), (bob, bob_after, met, met_after)


def _erase_cy(auth, sets):
    return auth.revoke("cy", sets["train"].of_classes([2]).x, config=UnlearnConfig(train=QUICK))


def _mode_logged_as_erase(auth):  # an audit record gone astray: the suspension's entry reads "erase"
    next(e for e in auth.audit.entries if e["action"] == "revoke" and e["speaker"] == "bob")["details"]["mode"] = "erase"


def _bob_entry_gone(auth):  # as if the revocation's entry named someone else
    next(e for e in auth.audit.entries if e["action"] == "revoke" and e["speaker"] == "bob")["speaker"] = "nobody"


def _fold_record_gone(auth):  # a consolidation's record of the masks it folded, gone astray
    for entry in auth.audit.entries:
        if entry["action"] == "consolidate":
            entry["details"]["folded"] = []


def _fold_interrupted(auth):  # the fold done, the consolidation interrupted after it: an ``interrupted`` entry
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hybrid, "calibrate_cleared", interrupted)
        with pytest.raises(KeyboardInterrupt):
            auth.consolidate(BranchBudget(max_branches=0))
    assert auth.audit.entries[-1]["action"] == "interrupted" and "revoke_1" not in hybrid.adapter_names(auth.model)
    return auth


SUSPENSIONS = {  # where bob's mask lives, and what the records say of it: each case leaves one record that tells
    "live": lambda auth, path: auth,
    "folded": lambda auth, path: auth.consolidate(BranchBudget(max_branches=0)) and auth,
    "merged": lambda auth, path: auth.consolidate(BranchBudget(max_branches=0, horizon_inferences=1e30, wear_budget=1.0)) and auth,
    "saved and loaded": lambda auth, path: (auth.save(path), SpeakerAuthenticator.load(path))[1],
    "live, logged as erased": lambda auth, path: _mode_logged_as_erase(auth) or auth,
    "folded, logged as erased": lambda auth, path: SUSPENSIONS["folded"](auth, path) and (_mode_logged_as_erase(auth) or auth),
    "folded, the fold's record gone": lambda auth, path: SUSPENSIONS["folded"](auth, path) and (_fold_record_gone(auth) or auth),
    "fold interrupted, logged as erased": lambda auth, path: _fold_interrupted(auth) and (_mode_logged_as_erase(auth) or auth),
    "folded, no revocation entry, the fold's record gone":
        lambda auth, path: SUSPENSIONS["folded, the fold's record gone"](auth, path) and (_bob_entry_gone(auth) or auth),
}


@pytest.fixture()
def bob_suspended_among_four(tiny_speech):
    auth = _deploy(tiny_speech, ["ann", "bob", "cy", "dee"])
    auth.revoke("bob", tiny_speech["train"].of_classes([1]).x, config=UnlearnConfig(train=QUICK), mode="suspend")
    return auth


@pytest.mark.parametrize("where", SUSPENSIONS)
@pytest.mark.parametrize("operation", ["refit_readout", "erase another speaker"])
def test_what_would_relearn_rows_is_refused_while_a_suspension_keeps_a_voice_out(bob_suspended_among_four, tiny_speech, tmp_path,
                                                                                 where, operation):
    """review60/61: a suspension's mask was trained against rows that had the voice among their negatives; a
    readout refit, or an erasure (which re-learns the other rows from fresh), would make rows without it and
    let the voice back in (the test below shows the erasure's).  Both are refused wherever the mask lives,
    and even where all records of it but one have gone astray; nothing changes."""
    auth = SUSPENSIONS[where](bob_suspended_among_four, tmp_path / "state")
    rows, entries, branches = auth.model.head.snapshot(), len(auth.audit.entries), hybrid.adapter_names(auth.model)
    written = hybrid.write_history(auth.model)
    with pytest.raises(ValueError, match="suspension is in force .*bob"):
        auth.refit_readout() if operation == "refit_readout" else _erase_cy(auth, tiny_speech)
    assert torch.equal(auth.model.head.weight, rows[0]) and torch.equal(auth.model.head.bias, rows[1])
    assert len(auth.audit.entries) == entries and hybrid.adapter_names(auth.model) == branches
    assert torch.equal(hybrid.write_history(auth.model), written)  # no cell pulsed
    assert auth.registry["cy"].status == "enrolled"


def test_an_erasure_after_a_suspension_would_let_the_suspended_voice_back_in(bob_suspended_among_four, tiny_speech, monkeypatch):
    """The positive control of the refusal above (review61): with it bypassed, erasing cy re-learns ann's and
    dee's rows without bob's voice among their negatives, and bob's claims pass far more often than an
    impostor's, where the suspension had kept them out; the same erasure is refused as shipped."""
    auth, test = bob_suspended_among_four, tiny_speech["test"]
    accepted, allowance, *_ = _revoked_vs_impostors(auth, test, 1)
    assert accepted <= allowance
    with pytest.raises(ValueError, match="suspension is in force .*bob.*mode='suspend', or first erase the suspended"):
        _erase_cy(auth, tiny_speech)
    monkeypatch.setattr(SpeakerAuthenticator, "suspended", lambda self: [])
    _erase_cy(auth, tiny_speech)
    accepted, allowance, *_ = _revoked_vs_impostors(auth, test, 1)
    assert accepted > allowance + 0.2, (accepted, allowance)


@pytest.mark.parametrize("where", ["live", "folded", "merged", "saved and loaded"])
def test_a_suspension_turned_into_an_erasure_takes_the_voice_out_of_the_cells(bob_suspended_among_four, tiny_speech, tmp_path,
                                                                               where):
    """review62 F1: one suspension used to lock erasure out for the state's life.  Erasing the suspended speaker
    (their samples re-supplied) writes the forgetting into the cells wherever the mask lives: with every digital
    branch off, bob's old readout row no longer takes his voice, where the suspension left it taking all of it
    (the positive control; a merged mask is in the cells already); the mask is gone, and row re-learning is
    allowed again."""
    auth, bob = bob_suspended_among_four, tiny_speech["test"].of_classes([1]).x
    old_row = _deploy(tiny_speech, ["ann", "bob", "cy", "dee"]).model.head.copy_row(1)  # the same seed: bob's row before
    auth = SUSPENSIONS[where](auth, tmp_path / "state")
    if where != "merged":
        assert branch_off_accuracy(auth.model, 1, old_row, bob) >= 0.9  # the cells still hold the voice
    pulses = auth.ledger.count("write.rm_pulse")
    report = auth.revoke("bob", tiny_speech["train"].of_classes([1]).x, config=UnlearnConfig(train=QUICK))
    assert report.extra["mode"] == "erase" and report.extra["suspensions_erased"] == ["bob"]
    assert report.extra["residual"] <= 0.25 and branch_off_accuracy(auth.model, 1, old_row, bob) <= 0.25 + 0.05
    assert report.extra["write_pulses"] == auth.ledger.count("write.rm_pulse") - pulses > 0
    assert auth.suspended() == [] and "revoke_1" not in hybrid.adapter_names(auth.model)
    assert auth.registry["bob"].status == "revoked" and torch.count_nonzero(auth.model.head.weight[1]) == 0
    assert _acc(auth, tiny_speech["test"].of_classes([0, 2, 3])) >= 0.9
    auth.refit_readout()  # allowed again
    _erase_cy(auth, tiny_speech)
    auth.save(tmp_path / "after")
    assert SpeakerAuthenticator.load(tmp_path / "after").suspended() == []


def test_the_stand_in_row_lets_the_erasure_of_a_folded_suspension_see_its_own_failure(bob_suspended_among_four, tiny_speech,
                                                                                    monkeypatch):
    """The erasure's self-check reads a stand-in for the row the suspension erased, fitted on the cells alone.
    With the cells' guard taken away (so the erasure fails: the folded mask hides the voice from the served
    view) the check must say so, as the old row does, and the suspension stays; a stand-in fitted with ``store``
    on saw nothing and the failed erasure was committed."""
    auth = SUSPENSIONS["folded"](bob_suspended_among_four, None)
    old_row = _deploy(tiny_speech, ["ann", "bob", "cy", "dee"]).model.head.copy_row(1)
    unguarded = lifecycle.erase_classes
    monkeypatch.setattr(lifecycle, "erase_classes", lambda *args, **kwargs: unguarded(*args, **{**kwargs, "guard_cells": False}))
    once = erase.EraseConfig(UnlearnConfig(train=QUICK), max_rounds=1, layers=lifecycle.ERASE_SYNAPSES)
    with pytest.raises(ValueError, match="still reach their stand-in rows.*not committed"):  # it saw
        auth.revoke("bob", tiny_speech["train"].of_classes([1]).x, erase=once)
    with hybrid.disable_adapters(auth.model):  # it failed: the cells still give the voice
        assert branch_off_accuracy(auth.model, 1, old_row, tiny_speech["test"].of_classes([1]).x) >= 0.5
    assert auth.suspended() == ["bob"]


@pytest.mark.parametrize("where", ["live", "folded"])
def test_a_refused_erasure_of_a_suspension_writes_no_cell(bob_suspended_among_four, tiny_speech, monkeypatch, where):
    """review67 F1: a refused erasure of a suspension used to leave the cells its rounds had written, and the masks,
    put back, had been trained against the cells before.  Its rounds now stay digital until their check passes
    (each branch write-aware, standing for the cells its merge will leave): a check that fails writes nothing,
    so the suspension is what it was, cells included, and nothing of the voice is kept."""
    auth = SUSPENSIONS[where](bob_suspended_among_four, None)
    old_row = _deploy(tiny_speech, ["ann", "bob", "cy", "dee"]).model.head.copy_row(1)
    cells = [layer.crossbar.cells.conductance().clone() for _, layer in hybrid.hybrid_layers(auth.model)]
    written, entries, pulses = hybrid.write_history(auth.model), len(auth.audit.entries), auth.ledger.count("write.rm_pulse")
    branches, charged = hybrid.adapter_names(auth.model), sum(e.note.endswith("forget branches") for e in auth.ledger.events)
    unguarded = lifecycle.erase_classes  # without the guard this erasure fails (the test above)
    monkeypatch.setattr(lifecycle, "erase_classes", lambda *args, **kwargs: unguarded(*args, **{**kwargs, "guard_cells": False}))
    once = erase.EraseConfig(UnlearnConfig(train=QUICK), max_rounds=1, layers=lifecycle.ERASE_SYNAPSES)
    with pytest.raises(ValueError, match="not committed.*no cell was written"):
        auth.revoke("bob", tiny_speech["train"].of_classes([1]).x, erase=once)
    assert torch.equal(hybrid.write_history(auth.model), written) and auth.ledger.count("write.rm_pulse") == pulses
    assert all(torch.equal(layer.crossbar.cells.conductance(), before)
               for (_, layer), before in zip(hybrid.hybrid_layers(auth.model), cells, strict=True))
    assert {e["action"] for e in auth.audit.entries[entries:]} <= {"policy"}  # no 'interrupted' entry: nothing to record
    assert sum(e.note.endswith("forget branches") for e in auth.ledger.events) == charged + 2  # the work done, refused or not
    with hybrid.disable_adapters(auth.model):  # the positive control: the erasure did fail, the cells hold the voice
        assert branch_off_accuracy(auth.model, 1, old_row, tiny_speech["test"].of_classes([1]).x) >= 0.5
    assert auth.suspended() == ["bob"] and auth._stand_ins == {} and hybrid.adapter_names(auth.model) == branches


@pytest.mark.parametrize("suspended_first", [False, True])
def test_an_erasure_interrupted_inside_its_forget_branch_leaves_no_branch_and_can_be_retried(bob_suspended_among_four,
                                                                                           tiny_speech, monkeypatch,
                                                                                           suspended_first):
    """review66 F5: the rollback deleted a branch named ``erase_<label>`` where the rounds make ``erase_<label>_<round>``,
    so an interrupt in a round's training left a branch trained on the voice, on no record, that made every retry
    fail ("exists already"); straight erasures had it too.  Every branch made inside an operation goes."""
    auth, train = bob_suspended_among_four, tiny_speech["train"]
    name, label = ("bob", 1) if suspended_first else ("cy", 2)
    if not suspended_first:
        auth = _deploy(tiny_speech, ["ann", "bob", "cy", "dee"])
    branches, entries = hybrid.adapter_names(auth.model), len(auth.audit.entries)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(erase, "unlearn", interrupted)
    with pytest.raises(KeyboardInterrupt):
        auth.revoke(name, train.of_classes([label]).x, config=UnlearnConfig(train=QUICK))
    monkeypatch.undo()
    assert hybrid.adapter_names(auth.model) == branches and len(auth.audit.entries) == entries
    assert auth.suspended() == (["bob"] if suspended_first else [])
    auth.revoke(name, train.of_classes([label]).x, config=UnlearnConfig(train=QUICK))  # a retry works
    assert auth.suspended() == []


def test_a_turned_suspension_whose_check_fails_stays_a_suspension(bob_suspended_among_four, tiny_speech, monkeypatch):
    """review66 F2: an erasure of a suspension that leaves the voice to its stand-in row is not committed: the mask
    and the refusals stay (a straight erasure only warns: there is no suspension to fall back on); the cells it
    wrote stay, on the record.  Too few samples to hold two out is one clear error."""
    auth, train = bob_suspended_among_four, tiny_speech["train"]
    with pytest.raises(ValueError, match=r"at least 8 samples of each voice .*bob \(7\)"):
        auth.revoke("bob", train.of_classes([1]).x[:7])
    real = lifecycle.erase_classes

    def failing(*args, **kwargs):
        result = real(*args, **kwargs)
        result.residual = 1.0
        return result

    monkeypatch.setattr(lifecycle, "erase_classes", failing)
    with pytest.raises(ValueError, match="not committed: the masks and rows are as they were"):
        auth.revoke("bob", train.of_classes([1]).x, config=UnlearnConfig(train=QUICK))
    assert auth.suspended() == ["bob"] and "revoke_1" in hybrid.active_adapters(auth.model)
    assert auth.audit.entries[-1]["action"] == "interrupted"  # the cells it wrote are on the record
    with pytest.raises(ValueError, match="suspension is in force"):
        auth.refit_readout()


def _failing_on_the_cells(monkeypatch):
    """The erasure's check made to fail on the cells written (as read noise and the recalibrated ADCs can make it,
    review69), and left as it is on the rounds not written yet."""
    real = erase._relearnt_and_checked
    monkeypatch.setattr(erase, "_relearnt_and_checked", lambda *args: 1.0 if not args[-1] else real(*args))


def test_an_erasure_of_a_suspension_that_fails_on_the_cells_written_goes_on_and_says_what_it_wrote(bob_suspended_among_four,
                                                                                                  tiny_speech, monkeypatch):
    """review69 F1/F2: the check on the unwritten rounds can pass and the same check on the cells written fail.  The
    erasure then goes on with the rounds it has left (deferred again), and, refused after them, says that it wrote
    cells, what the check found on them (review70: not the deleted rounds' figure) and logs them; the stand-in row
    it was judged by is kept for a retry."""
    auth, real, unwritten = bob_suspended_among_four, erase._relearnt_and_checked, []

    def check(*args):  # on the cells written: fails; the first unwritten rounds: as they are; the next: half the voice
        unwritten.append(bool(args[-1]))
        return (1.0 if not args[-1] else real(*args)) if sum(unwritten) < 2 else 0.5

    monkeypatch.setattr(erase, "_relearnt_and_checked", check)
    twice = erase.EraseConfig(UnlearnConfig(train=QUICK), max_rounds=2, layers=lifecycle.ERASE_SYNAPSES)
    with pytest.raises(ValueError, match=r"after 2 rounds 100% .*\(on the cells as written\); not committed.*the \d+ cells it wrote"):
        auth.revoke("bob", tiny_speech["train"].of_classes([1]).x, erase=twice)
    assert auth.audit.entries[-1]["action"] == "interrupted" and auth.audit.entries[-1]["details"]["write_pulses"] > 0
    assert unwritten == [True, False, True]  # written after round 1, failed there; round 2 failed unwritten, reported as it left the cells
    assert auth.suspended() == ["bob"] and list(auth._stand_ins) == [1]
    assert not [n for n in hybrid.adapter_names(auth.model) if n.startswith("erase_")]


def test_a_deferred_erasure_stacks_its_rounds_and_deletes_them_unwritten_when_they_fail(bob_suspended_among_four, tiny_speech,
                                                                                     monkeypatch):
    """``erase_classes(defer_writes=True)`` on its own: each round trains on the cells as every unwritten round's merge
    will leave them (the rounds before it stay on in its view), and rounds whose check never passes are deleted,
    nothing written, with a warning that says so."""
    auth, train = bob_suspended_among_four, tiny_speech["train"]
    views = []
    real_features = erase.cells_features
    monkeypatch.setattr(erase, "cells_features", lambda model, branches, *a, **k: (views.append(list(branches)),
                                                                                 real_features(model, branches, *a, **k))[1])
    monkeypatch.setattr(erase, "_relearnt_and_checked", lambda *args: 1.0)
    branches, written = hybrid.adapter_names(auth.model), hybrid.write_history(auth.model)
    data = LabelledSet.concat(train.of_classes([1]), auth.buffers.replay.without_classes([1]))
    config = erase.EraseConfig(UnlearnConfig(train=QUICK), max_rounds=2, layers=lifecycle.ERASE_SYNAPSES)
    with pytest.warns(UserWarning, match="no cell was written"):
        result = erase.erase_classes(auth.model, [1], data, auth.buffers.holdout, [0, 2, 3], auth.buffers.holdout, config,
                                     "erase_1", guard_cells=True, defer_writes=True)
    assert views == [["erase_1_0"], ["erase_1_0", "erase_1_1"]] and result.programs == []
    assert hybrid.adapter_names(auth.model) == branches and torch.equal(hybrid.write_history(auth.model), written)


def test_a_refusal_that_pulsed_no_cell_leaves_the_arrays_as_they_were(bob_suspended_among_four, tiny_speech, monkeypatch):
    """review69 F3: a merge that pulsed no cell still recalibrated the ADCs and updated the arrays' records, which a
    refusal left behind (the masks then read through a periphery they were not trained with); with no cell pulsed
    the arrays are put back as they were."""
    auth = bob_suspended_among_four
    arrays = [copy.deepcopy(layer.crossbar.state_dict()) for _, layer in hybrid.hybrid_layers(auth.model)]
    _failing_on_the_cells(monkeypatch)
    real_merge = hybrid.merge_adapter

    def merged_unchanged(model, name):  # a real merge of a branch that moves no cell: it pulses nothing
        for _, layer in hybrid.hybrid_layers(model):
            for p in layer.adapters[name].parameters() if name in layer.adapters else []:
                p.data.zero_()
        return real_merge(model, name)

    monkeypatch.setattr(erase.hybrid, "merge_adapter", merged_unchanged)
    with pytest.warns(UserWarning, match="no cell was written"), pytest.raises(ValueError, match="no cell was written"):
        auth.revoke("bob", tiny_speech["train"].of_classes([1]).x, config=UnlearnConfig(train=QUICK))
    after = [layer.crossbar.state_dict() for _, layer in hybrid.hybrid_layers(auth.model)]
    assert all(torch.equal(a[k], b[k]) for a, b in zip(arrays, after, strict=True) for k in a)
    assert not torch.equal(arrays[0]["adc_full_scale"], 0 * arrays[0]["adc_full_scale"])  # there was a calibration to keep


def test_a_retry_after_a_refused_erasure_of_a_suspension_is_judged_by_the_same_stand_in(bob_suspended_among_four, tiny_speech,
                                                                                      monkeypatch):
    """review67 F2: an attempt refused after its rounds had moved the voice in the cells (its check made to fail
    here) left the retry to refit its stand-in row on those cells, and a row fitted on the voice's samples finds
    the voice wherever it now is, as a row fitted on any voice's samples finds that voice: the retry was refused
    (on this set and seed).  The retry reads the attempt's own stand-in row and commits."""
    auth, bob = bob_suspended_among_four, tiny_speech["train"].of_classes([1]).x
    old_row = _deploy(tiny_speech, ["ann", "bob", "cy", "dee"]).model.head.copy_row(1)
    real, judged_by = lifecycle.erase_classes, []

    def refused(model, *args, **kwargs):
        judged_by.append(model.head.copy_row(1))  # the stand-in row the attempt is checked against
        result = real(model, *args, **kwargs)
        result.residual = 1.0
        return result

    monkeypatch.setattr(lifecycle, "erase_classes", refused)
    with pytest.raises(ValueError, match="not committed.*cells it wrote"):
        auth.revoke("bob", bob, config=UnlearnConfig(train=QUICK))
    assert auth.suspended() == ["bob"]
    monkeypatch.setattr(lifecycle, "erase_classes", lambda model, *a, **k: (judged_by.append(model.head.copy_row(1)), real(model, *a, **k))[1])
    report = auth.revoke("bob", bob, config=UnlearnConfig(train=QUICK))
    assert all(torch.equal(a, b) for a, b in zip(*judged_by, strict=True))  # the same row, not an erased one
    assert report.extra["suspensions_erased"] == ["bob"] and auth.suspended() == []
    assert branch_off_accuracy(auth.model, 1, old_row, tiny_speech["test"].of_classes([1]).x) <= 0.25 + 0.05
    assert auth._stand_ins == {}  # the voice is erased: nothing of it is kept


def test_only_the_erasure_of_a_suspension_lifts_its_fold_record(bob_suspended_among_four, tiny_speech):
    """review66 F4: a fold record stays in force until an entry that erased that suspension (naming it, with cells
    written) follows it; an appended entry that only says "erase" does not lift it."""
    auth = SUSPENSIONS["folded"](bob_suspended_among_four, None)
    auth.audit.append("revoke", "bob", mode="erase", erased_with="bob")
    assert auth.suspended() == ["bob"]
    auth.audit.append("revoke", "bob", mode="erase", suspensions_erased=["bob"], write_pulses=0)
    assert auth.suspended() == ["bob"]
    auth.audit.append("revoke", "bob", mode="erase", write_pulses=5)  # a straight erasure's entry names no suspension
    assert auth.suspended() == ["bob"]
    auth.revoke("bob", tiny_speech["train"].of_classes([1]).x, config=UnlearnConfig(train=QUICK))
    assert auth.suspended() == []


@pytest.fixture(scope="module")
def generated_voices(tmp_path_factory):
    """Ten generated speakers (the corpus generator's realistic event counts), as the suspension probe uses them."""
    from neuro_rm.data import load_speakers
    from neuro_rm.data.synthetic import GeneratorConfig, generate_corpus

    corpus = tmp_path_factory.mktemp("voices") / "voices.h5"
    generate_corpus(corpus, GeneratorConfig(n_samples=10 * 50, n_speakers=10, events_median=1000, seed=7))
    splits = load_speakers(corpus, n_speakers=10, cache=False)
    return {name: LabelledSet(getattr(splits, name).x, getattr(splits, name).y) for name in ("train", "val", "test")}


def test_a_suspension_turned_into_an_erasure_leaves_the_old_row_no_voice_on_generated_speakers(generated_voices):
    """Harder than ``tiny_speech`` (six of the generated speakers, as scripts/probe_relearning_after_suspension.py
    runs them).  With the old row gone, a forget branch turned away from a stand-in row met its own check and
    left s1's old row taking the voice on most seeds; the branch now moves the voice to the retained speakers'
    mean in the cells' view, and chooses its epoch there (a folded mask already rejects the voice in the
    served view, so an epoch chosen there kept the untrained start on seed 2 and the rounds never caught up).
    Positive control: after the suspension, live or folded, the old row still takes most of the voice."""
    train, val, test = generated_voices["train"], generated_voices["val"], generated_voices["test"]
    first, voice = list(range(6)), test.of_classes([1]).x
    revoke = UnlearnConfig(train=TrainConfig(epochs=4, lr=1e-2, batch_size=64))
    for seed in (0, 1, 2):
        auth, _ = SpeakerAuthenticator.pretrain([f"s{i}" for i in first], train.of_classes(first), val.of_classes(first),
                                                RSNNConfig(n_inputs=train.x.shape[-1], n_hidden=128, n_outputs=6),
                                                TrainConfig(epochs=10, lr=2e-3, batch_size=64), seed=seed)
        auth.deploy(seed=seed)
        old_row = auth.model.head.copy_row(1)
        auth.revoke("s1", train.of_classes([1]).x, config=revoke, mode="suspend")
        for where in ("live", "folded"):
            twin = SUSPENSIONS[where](copy.deepcopy(auth), None)
            assert branch_off_accuracy(twin.model, 1, old_row, voice) >= 0.5  # the cells still hold the voice
            twin.revoke("s1", train.of_classes([1]).x, config=revoke)
            assert branch_off_accuracy(twin.model, 1, old_row, voice) <= 1 / 6, (seed, where)
        # two suspended voices turned into erasures together: each old row loses its voice (session 26 saw the pair
        # refused on the CLI test's 4-speaker file, where it still is; here, with six speakers, it passes)
        old_rows = {1: old_row, 2: auth.model.head.copy_row(2)}
        kept_rows = {i: auth.model.head.copy_row(i) for i in (0, 3, 4, 5)}
        auth.revoke("s2", train.of_classes([2]).x, config=revoke, mode="suspend")
        assert all(branch_off_accuracy(auth.model, i, old_rows[i], test.of_classes([i]).x) >= 0.5 for i in old_rows)
        auth.erase_suspended({f"s{i}": train.of_classes([i]).x for i in old_rows}, config=revoke)
        assert all(branch_off_accuracy(auth.model, i, old_rows[i], test.of_classes([i]).x) <= 1 / 6 for i in old_rows), seed
        kept = [branch_off_accuracy(auth.model, i, row, test.of_classes([i]).x) for i, row in kept_rows.items()]
        assert sum(kept) / len(kept) >= 0.5, (seed, kept)  # the kept voices' old rows still find them: the loss is specific


def test_suspensions_are_turned_into_erasures_all_together(bob_suspended_among_four, tiny_speech):
    """Rows re-learnt without a voice still suspended among their negatives would let it back in, so an erasure
    of suspended voices takes every one of them, each with its samples; what is refused changes nothing."""
    auth, train = bob_suspended_among_four, tiny_speech["train"]
    auth.revoke("cy", train.of_classes([2]).x, config=UnlearnConfig(train=QUICK), mode="suspend")
    rows, entries, branches = auth.model.head.snapshot(), len(auth.audit.entries), hybrid.adapter_names(auth.model)
    for call, said in ((lambda: auth.revoke("bob", train.of_classes([1]).x), r"samples missing for \['cy'\]"),
                       (lambda: auth.erase_suspended({"bob": train.of_classes([1]).x, "cy": train.of_classes([2]).x,
                                                      "ann": train.of_classes([0]).x}), r"not suspended \['ann'\]")):
        with pytest.raises(ValueError, match=said):
            call()
    assert torch.equal(auth.model.head.weight, rows[0]) and len(auth.audit.entries) == entries
    assert hybrid.adapter_names(auth.model) == branches
    report = auth.erase_suspended({"bob": train.of_classes([1]).x, "cy": train.of_classes([2]).x}, config=UnlearnConfig(train=QUICK))
    assert report.extra["erased_together"] == ["bob", "cy"] == report.extra["suspensions_erased"]
    assert [(e["speaker"], e["details"]["mode"]) for e in auth.audit.entries[-2:]] == [("bob", "erase"), ("cy", "erase")]
    assert auth.suspended() == [] and not any(n.startswith("revoke_") for n in hybrid.adapter_names(auth.model))
    with pytest.raises(ValueError, match="suspended none"):
        auth.erase_suspended({"bob": train.of_classes([1]).x})


def _halve_the_logits(model, *args, **kwargs):  # the same decisions, a higher cross-entropy
    with torch.no_grad():
        model.head.weight.mul_(0.5)
        model.head.bias.mul_(0.5)
    return 1


@pytest.mark.parametrize("fit", [_halve_the_logits, lambda *args, **kwargs: 1], ids=["a hair worse", "unchanged"])
def test_a_readout_refit_the_holdout_buffer_does_not_score_higher_is_not_kept(deployed, monkeypatch, fit):
    """The old rows and the new are scored on one read of the holdout's features, so a refit a hair worse is
    told from the old rows (two reads with fresh read noise differ by far more), and one that changes
    nothing is not written and charged as if it had (review61)."""
    head, holdout = deployed.model.head, deployed.buffers.holdout
    rows, bits = head.snapshot(), deployed.ledger.count("write.sram")
    monkeypatch.setattr(lifecycle, "fit_rows", fit)
    read = []
    handle = deployed.model.register_forward_hook(lambda _m, inputs, _out: read.append(len(inputs[0])))
    report = deployed.refit_readout()
    handle.remove()
    assert sum(read) == 2 * len(holdout)  # the features once for both scores, the report's holdout accuracy once
    drop = report.extra["holdout_score_before"] - report.extra["holdout_score_after"]
    assert (0 < drop < 0.01) if fit is _halve_the_logits else drop == 0  # the premise: worse by far less than a read's noise
    assert not report.extra["kept"] and report.extra["write_bits"] == 0 and deployed.ledger.count("write.sram") == bits
    assert torch.equal(head.weight, rows[0]) and torch.equal(head.bias, rows[1])  # put back


def test_an_interrupted_readout_refit_leaves_rows_log_and_ledger_as_they_were(deployed, monkeypatch):
    head = deployed.model.head
    rows, entries = head.snapshot(), len(deployed.audit.entries)
    counts = {kind: deployed.ledger.count(kind) for kind in ("write.sram", "train.updates")}

    def interrupted(model, *args, **kwargs):
        with torch.no_grad():
            model.head.weight.zero_()
        raise KeyboardInterrupt

    monkeypatch.setattr(lifecycle, "fit_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        deployed.refit_readout()
    assert torch.equal(head.weight, rows[0]) and torch.equal(head.bias, rows[1])
    assert len(deployed.audit.entries) == entries
    assert {kind: deployed.ledger.count(kind) for kind in counts} == counts


def test_a_readout_refit_needs_two_voices_in_the_replay_buffer(deployed):
    deployed.buffers.replay = deployed.buffers.replay.of_classes([0])
    with pytest.raises(ValueError, match="at least two enrolled speakers"):
        deployed.refit_readout()


def test_restore_wins_back_accuracy_after_write_noise(deployed, tiny_speech):
    """The restore operation wins accuracy back on a damaged array.  On these 3 easy speakers a rank-8 branch
    could relearn them from cells set at random, so this does not tell repair from relearning: the demo's
    ``restore.net_repair`` against a fault-free control measures that."""
    test = tiny_speech["test"].of_classes([0, 1, 2])
    clean = _acc(deployed, test)
    # σ as large as the conductance window: this tiny model of 3 easy speakers loses 12-66 points in each of 8
    # draws tried (at half the window, 2 of 8 draws lost less than 10 points: a precondition left to chance)
    hybrid.add_write_noise(deployed.model, 60.0)
    noisy = _acc(deployed, test)
    assert noisy <= clean - 0.1  # the damage is real, so a restore that does nothing cannot pass below
    deployed.restore(TrainConfig(epochs=8, lr=5e-3, batch_size=32))
    assert _acc(deployed, test) >= noisy + 0.5 * (clean - noisy)  # wins back at least half of what was lost
    assert "restore" in hybrid.adapter_names(deployed.model)


def test_an_erased_enrolment_leaves_no_recorded_copy_of_its_branch(deployed, tiny_speech):
    train, val = tiny_speech["train"], tiny_speech["val"]
    recorder = Recorder()
    hybrid.add_hook(deployed.model, recorder)
    deployed.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, QUICK)
    assert any("delta_weight" in e.data for e in recorder.select(adapter="enroll_3"))
    deployed.revoke("dee", train.of_classes([3]).x, config=UnlearnConfig(train=QUICK), mode="suspend")
    assert not any("delta_weight" in e.data for e in recorder.select(adapter="enroll_3"))


def test_an_interrupted_suspension_leaves_the_speaker_as_they_were(deployed, tiny_speech, monkeypatch):
    """Review47: the mask used to be added, and the speaker's own branch deleted, before the training; an
    interrupt then left an unaudited mask live and the speaker enrolled without a branch, and a retry failed."""
    train, val = tiny_speech["train"], tiny_speech["val"]
    deployed.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, QUICK)
    branches, active = hybrid.adapter_names(deployed.model), hybrid.active_adapters(deployed.model)
    entries = len(deployed.audit.entries)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lifecycle, "unlearn", interrupted)
    with pytest.raises(KeyboardInterrupt):
        deployed.revoke("dee", train.of_classes([3]).x, config=UnlearnConfig(train=QUICK), mode="suspend")
    assert deployed.registry["dee"].status == "enrolled" and deployed.registry["dee"].adapter == "enroll_3"
    assert hybrid.adapter_names(deployed.model) == branches and hybrid.active_adapters(deployed.model) == active
    assert len(deployed.audit.entries) == entries
    monkeypatch.undo()
    deployed.revoke("dee", train.of_classes([3]).x, config=UnlearnConfig(train=QUICK), mode="suspend")  # a retry works
    assert deployed.registry["dee"].status == "revoked" and hybrid.adapter_names(deployed.model) == ["revoke_3"]


def test_an_interrupted_enrolment_leaves_the_speakers_as_they_were(deployed, tiny_speech, tmp_path, monkeypatch):
    """An enrolment interrupted in its training had grown the readout and added a live branch with no record
    (review47): the rows, branches and active sets come back as they were, the state saves, a retry works."""
    train, val = tiny_speech["train"], tiny_speech["val"]
    branches, active = hybrid.adapter_names(deployed.model), hybrid.active_adapters(deployed.model)
    rows = deployed.model.head.snapshot()
    entries = len(deployed.audit.entries)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("neuro_rm.learning.continual.learn_new_classes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        deployed.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, QUICK)
    assert "dee" not in deployed.registry and len(deployed.audit.entries) == entries
    assert hybrid.adapter_names(deployed.model) == branches and hybrid.active_adapters(deployed.model) == active
    assert deployed.model.head.n_classes == 3
    assert torch.equal(deployed.model.head.weight, rows[0]) and torch.equal(deployed.model.head.bias, rows[1])
    deployed.save(tmp_path / "state")  # a whole state again
    monkeypatch.undo()
    deployed.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, QUICK)  # a retry works
    assert deployed.registry["dee"].adapter == "enroll_3" and deployed.model.head.n_classes == 4


@pytest.mark.parametrize("operation", ["enroll", "suspend", "erase", "erase a suspension"])
def test_an_operation_interrupted_before_its_audit_entry_leaves_everything_as_it_was(deployed, tiny_speech, tmp_path,
                                                                                     monkeypatch, operation):
    """Review (rollback) F1/F4/F5: an interrupt after the training (here in the holdout read before the audit
    entry) used to leave a registry the audit log contradicts, which `save` wrote and no load accepted, or an
    erasure without the speaker's enrolment branch; now nothing is committed: registry, buffers, rows,
    branches and audit log are as they were, the state saves and loads, and a retry works."""
    train, val = tiny_speech["train"], tiny_speech["val"]
    if operation != "enroll":
        deployed.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, QUICK)
    if operation == "erase a suspension":  # interrupted, dee stays suspended: the mask live and on
        deployed.revoke("dee", train.of_classes([3]).x, config=UnlearnConfig(train=QUICK), mode="suspend")
    held_buffers, held_record = deployed.buffers, deployed.registry.get("dee")  # what a caller may hold
    before = ({n: (r.status, r.adapter) for n, r in deployed.registry.items()}, hybrid.adapter_names(deployed.model),
              hybrid.active_adapters(deployed.model), len(deployed.audit.entries), deployed.model.head.snapshot(),
              deployed.buffers.replay.y.clone(), deployed.buffers.holdout.y.clone())

    def act():
        if operation == "enroll":
            return deployed.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, QUICK)
        erasing = operation.startswith("erase")  # (a suspension's erasure is committed only if it checks out: the default)
        config = erase.EraseConfig(UnlearnConfig(train=QUICK), max_rounds=1, layers=("fc_in",)) if erasing else None
        config = erase.EraseConfig(UnlearnConfig(train=QUICK)) if operation == "erase a suspension" else config
        return deployed.revoke("dee", train.of_classes([3]).x, config=UnlearnConfig(train=QUICK),
                               mode="erase" if erasing else "suspend", erase=config)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(SpeakerAuthenticator, "holdout_accuracy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        act()
    monkeypatch.undo()
    after = ({n: (r.status, r.adapter) for n, r in deployed.registry.items()}, hybrid.adapter_names(deployed.model),
             hybrid.active_adapters(deployed.model), len(deployed.audit.entries), deployed.model.head.snapshot(),
             deployed.buffers.replay.y.clone(), deployed.buffers.holdout.y.clone())
    assert after[:3] == before[:3]
    logged = deployed.audit.entries[before[3]:]  # the small erasure pulses no cell: nothing to log; the guarded one does
    assert [e["action"] for e in logged] == (["interrupted"] if operation == "erase a suspension" else [])
    assert all(e["details"]["write_pulses"] > 0 for e in logged)
    assert deployed.buffers is held_buffers and deployed.registry.get("dee") is held_record  # restored in place (review53 F5)
    for now, then in zip(after[4:], before[4:], strict=True):
        assert all(torch.equal(a, b) for a, b in zip(now, then, strict=True)) if isinstance(now, tuple) else torch.equal(now, then)
    deployed.save(tmp_path / "state")
    SpeakerAuthenticator.load(tmp_path / "state")
    act()  # a retry works


def test_cells_an_interrupted_erasure_pulsed_are_on_the_record(deployed, tiny_speech, tmp_path, monkeypatch):
    """Review (session 20): the rollback took the erasure's audit entry back but not its writes, so a state
    saved after the interrupt held changed cells no entry told of.  The pulses stay (they cannot be taken
    back) and an ``interrupted`` entry records them; the speaker stays enrolled, and the state saves."""
    train, val = tiny_speech["train"], tiny_speech["val"]
    deployed.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, QUICK)
    entries = len(deployed.audit.entries)
    crossbar = hybrid.hybrid_layers(deployed.model)[0][1].crossbar
    written = crossbar.cells.programmed_us.clone()

    def pulses_then_interrupt(model, *args, **kwargs):  # the first round's write done, then the interrupt
        crossbar.consolidate(0.5 * crossbar.weight_max * torch.ones(crossbar.out_features, crossbar.in_features))
        raise KeyboardInterrupt

    monkeypatch.setattr(lifecycle, "erase_classes", pulses_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        deployed.revoke("dee", train.of_classes([3]).x, config=UnlearnConfig(train=QUICK))
    assert not torch.equal(crossbar.cells.programmed_us, written)  # the cells stay as pulsed ...
    assert len(deployed.audit.entries) == entries + 1  # ... and the log says so
    entry = deployed.audit.entries[-1]
    assert entry["action"] == "interrupted" and entry["details"]["branch"] == "erase_3"
    assert entry["details"]["write_pulses"] > 0 and entry["details"]["cells_written"] > 0
    assert deployed.registry["dee"].status == "enrolled"
    deployed.save(tmp_path / "state")
    assert SpeakerAuthenticator.load(tmp_path / "state").audit.entries[-1]["action"] == "interrupted"


def _enrol_dee_interrupted_in_the_recalibration(auth, tiny_speech, monkeypatch):
    """Enrol speaker 3 as "dee" with the consolidation after it interrupted in its ADC recalibration."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(hybrid, "calibrate_cleared", interrupted)
    with pytest.raises(KeyboardInterrupt):
        auth.enroll("dee", tiny_speech["train"].of_classes([3]).x, tiny_speech["val"].of_classes([3]).x, QUICK)
    monkeypatch.undo()


def test_a_consolidation_interrupted_after_its_fold_leaves_no_record_pointing_at_a_folded_branch(deployed, tiny_speech,
                                                                                                tmp_path, monkeypatch):
    """Review (rollback) F3: the records of folded branches were cleared only after the ADC recalibration, so
    an interrupt there left a speaker pointing at a deleted branch (no save, no revocation)."""
    from neuro_rm.learning.consolidation import BranchBudget

    train = tiny_speech["train"]
    deployed.consolidation = BranchBudget(max_branches=0)
    _enrol_dee_interrupted_in_the_recalibration(deployed, tiny_speech, monkeypatch)
    assert deployed.registry["dee"].adapter is None and "enroll_3" not in hybrid.adapter_names(deployed.model)
    deployed.save(tmp_path / "state")
    deployed.revoke("dee", train.of_classes([3]).x, config=UnlearnConfig(train=QUICK), mode="suspend")


def test_cells_a_merge_pulsed_before_an_interrupt_are_on_the_record(deployed, tiny_speech, tmp_path, monkeypatch):
    """Review (session 21) F3: a consolidation runs after the enrolment's guard, so a merge interrupted in the
    ADC recalibration left its pulses on no record; now an ``interrupted`` entry names them."""
    from neuro_rm.learning.consolidation import BranchBudget

    deployed.consolidation = BranchBudget(max_branches=0, horizon_inferences=1e30, wear_budget=1.0)
    history = hybrid.write_history(deployed.model)
    _enrol_dee_interrupted_in_the_recalibration(deployed, tiny_speech, monkeypatch)
    pulses = int((hybrid.write_history(deployed.model) - history)[0])
    entry = deployed.audit.entries[-1]
    assert pulses > 0 and entry["action"] == "interrupted" and entry["details"]["write_pulses"] == pulses
    # the enrolment itself committed; the policy set above is logged before the enrolment it followed
    assert [e["action"] for e in deployed.audit.entries[-3:]] == ["policy", "enroll", "interrupted"]
    deployed.save(tmp_path / "state")
    SpeakerAuthenticator.load(tmp_path / "state").audit.verify()


def test_a_fold_interrupted_in_its_charging_is_on_the_record_by_name(deployed, tiny_speech, monkeypatch):
    """Review (session 21) F2/F3: a fold whose energy charge was interrupted had deleted the speaker's branch
    with no entry at all; the ``interrupted`` entry names the folded branch and whose voice it held."""
    from neuro_rm.energy import Ledger
    from neuro_rm.learning.consolidation import BranchBudget

    train, val = tiny_speech["train"], tiny_speech["val"]
    deployed.consolidation = BranchBudget(max_branches=0)

    post = Ledger.post_sram_write

    def interrupted_in_the_fold(self, bits, note=""):
        if note == "fold into store":
            raise KeyboardInterrupt
        return post(self, bits, note=note)

    monkeypatch.setattr(Ledger, "post_sram_write", interrupted_in_the_fold)
    with pytest.raises(KeyboardInterrupt):
        deployed.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, QUICK)
    monkeypatch.undo()
    entry = deployed.audit.entries[-1]
    assert entry["action"] == "interrupted" and entry["details"]["folded"] == ["enroll_3"]
    assert entry["details"]["speakers"] == ["dee"] and entry["details"]["write_pulses"] == 0


def test_an_interrupted_deploy_leaves_the_backbone_digital_and_on_the_record(tiny_speech, tmp_path, monkeypatch):
    """Review (session 21) F1: an interrupt after the first layer was programmed left the authenticator
    'deployed' with one hybrid layer, refusing a second deploy, and saving a state no load accepted."""
    from neuro_rm.device import CellArray

    train, val = tiny_speech["train"], tiny_speech["val"]
    auth, _ = SpeakerAuthenticator.pretrain(["ann", "bob", "cy"], train.of_classes([0, 1, 2]), val.of_classes([0, 1, 2]),
                                            RSNNConfig(n_inputs=20, n_hidden=32, n_outputs=3), QUICK)
    x = tiny_speech["test"].x[:8]
    before = predict_logits(auth.model, x)
    program, calls = CellArray.program, [0]

    def second_layer_interrupted(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        return program(self, *args, **kwargs)

    monkeypatch.setattr(CellArray, "program", second_layer_interrupted)
    with pytest.raises(KeyboardInterrupt):
        auth.deploy()
    monkeypatch.undo()
    assert not auth.deployed and not hybrid.hybrid_layers(auth.model)
    assert torch.equal(predict_logits(auth.model, x), before)  # the digital backbone, untouched
    entry = auth.audit.entries[-1]
    assert entry["action"] == "interrupted" and entry["details"]["write_pulses"] > 0
    auth.deploy()  # a retry deploys
    auth.save(tmp_path / "state")
    assert SpeakerAuthenticator.load(tmp_path / "state").deployed


def test_a_revocation_whose_branch_deletion_was_interrupted_cannot_be_saved(deployed, tiny_speech, tmp_path, monkeypatch):
    """Review53 F1: the enrolment branch is deleted after the revocation commits; interrupted there, the revoked
    speaker would keep a branch trained on the voice, which save and load accepted."""
    train, val = tiny_speech["train"], tiny_speech["val"]
    deployed.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, QUICK)
    deployed.save(tmp_path / "state")
    delete = hybrid.delete_adapter

    def interrupted(model, name):
        if name.startswith("enroll_"):
            raise KeyboardInterrupt
        return delete(model, name)

    monkeypatch.setattr(hybrid, "delete_adapter", interrupted)
    with pytest.raises(KeyboardInterrupt):
        deployed.revoke("dee", train.of_classes([3]).x, config=UnlearnConfig(train=QUICK), mode="suspend")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="revoked but still holds branch 'enroll_3'"):
        deployed.save(tmp_path / "state")
    assert SpeakerAuthenticator.load(tmp_path / "state").registry["dee"].status == "enrolled"  # the last whole state


def test_an_interrupted_merge_leaves_no_record_pointing_at_a_folded_branch(deployed, tiny_speech, monkeypatch):
    """Review53 F2: the fold deletes the branches before the merge writes the cells; a merge interrupted then
    left the speaker's record naming a deleted branch."""
    from neuro_rm.learning.consolidation import BranchBudget

    train, val = tiny_speech["train"], tiny_speech["val"]
    deployed.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, QUICK)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(hybrid, "merge_adapter", interrupted)
    with pytest.raises(KeyboardInterrupt):
        deployed.consolidate(BranchBudget(max_branches=0, horizon_inferences=1e30, wear_budget=1.0))
    assert "enroll_3" not in hybrid.adapter_names(deployed.model) and deployed.registry["dee"].adapter is None


def test_a_registry_the_audit_log_contradicts_cannot_be_saved(deployed, tmp_path):
    """Review (rollback) F1: `save` runs the load's registry-against-audit check too."""
    deployed.registry["bob"].status = "revoked"
    with pytest.raises(ValueError, match="registry was edited"):
        deployed.save(tmp_path / "state")
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


def test_a_half_made_state_cannot_be_saved(deployed, tmp_path):
    """A readout row no speaker owns (what an interrupted enrolment left before it rolled back) makes a state
    every load refuses: a save must refuse it too, and the state saved before stays as it was."""
    deployed.save(tmp_path / "state")
    deployed.model.head.grow(1)
    with pytest.raises(ValueError, match="cannot save this authenticator: state.json: speakers"):
        deployed.save(tmp_path / "state")
    back = SpeakerAuthenticator.load(tmp_path / "state")
    assert list(back.registry) == ["ann", "bob", "cy"] and back.model.head.n_classes == 3


def test_verify_scores_a_claim_as_the_trials_do_and_rejects_a_revoked_voice(deployed, tiny_speech):
    hybrid.set_readout(deployed.model, CrossbarConfig.ideal())  # one read gives the same scores every time
    deployed.calibrate()
    test = tiny_speech["test"]
    sample = test.of_classes([1]).x[0]
    scores = deployed.scores(sample.unsqueeze(0))[0]
    for name, label in (("ann", 0), ("bob", 1), ("cy", 2)):
        result = deployed.verify(sample, name)
        assert result["score"] == float(scores[label])
        assert result["accept"] == (result["score"] >= deployed.threshold)
    deployed.revoke("cy", tiny_speech["train"].of_classes([2]).x, config=UnlearnConfig(train=QUICK), mode="suspend")
    assert deployed.verify(test.of_classes([2]).x[0], "cy") == {
        "claim": "cy", "accept": False, "score": float("-inf"), "threshold": deployed.threshold, "reason": "revoked"}


def test_bad_samples_get_clear_errors(deployed, tiny_speech):
    deployed.calibrate()
    sample = tiny_speech["test"].x[0]
    with pytest.raises(ValueError, match="20 input channels"):
        deployed.verify(torch.ones(5, 7), "ann")
    with pytest.raises(ValueError, match="no spikes"):
        deployed.verify(torch.zeros_like(sample), "ann")
    with pytest.raises(ValueError, match="finite, non-negative"):
        deployed.verify(sample * float("nan"), "ann")
    with pytest.raises(KeyError, match="unknown speaker"):
        deployed.verify(sample, "nobody")


def test_save_load_roundtrip_and_failed_ops_leave_state_unchanged(deployed, tiny_speech, tmp_path):
    train, val, test = tiny_speech["train"], tiny_speech["val"], tiny_speech["test"]
    deployed.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, QUICK)
    deployed.calibrate()
    deployed.save(tmp_path)
    saved = _folder_digest(tmp_path)
    loaded = SpeakerAuthenticator.load(tmp_path)
    saved_state, loaded_state = deployed.model.state_dict(), loaded.model.state_dict()
    assert saved_state.keys() == loaded_state.keys()
    assert all(torch.equal(saved_state[k], loaded_state[k]) for k in saved_state)  # cells, ADC calibration, adapters
    assert loaded.crossbar_config == deployed.crossbar_config
    for auth in (loaded, deployed):  # the noise-free readout: read noise is drawn afresh on every call
        hybrid.set_readout(auth.model, CrossbarConfig.ideal())
    assert torch.equal(predict_logits(loaded.model, test.x), predict_logits(deployed.model, test.x))
    for auth in (loaded, deployed):
        hybrid.set_readout(auth.model, deployed.crossbar_config)
    assert loaded.registry == deployed.registry and loaded.threshold == deployed.threshold
    for bad in (lambda: loaded.revoke("nobody", test.x[:3]), lambda: loaded.enroll("ann", test.x[:3], test.x[:3]),
                lambda: loaded.revoke("ann", torch.zeros(2, 5, 20))):
        with pytest.raises((KeyError, ValueError)):
            bad()
    assert _folder_digest(tmp_path) == saved


def test_corrupted_state_is_refused(deployed, tmp_path):
    deployed.save(tmp_path)
    pointer = json.loads((tmp_path / "CURRENT").read_text())
    model_file = tmp_path / "snapshots" / pointer["snapshot"] / "model.safetensors"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(CorruptStateError, match="checksum"):
        SpeakerAuthenticator.load(tmp_path)
    with pytest.raises(CorruptStateError, match="not a neuro_rm state folder"):
        SpeakerAuthenticator.load(tmp_path / "nowhere")


def test_revoked_adapter_bytes_leave_the_state_folder(deployed, tiny_speech, tmp_path):
    train, val = tiny_speech["train"], tiny_speech["val"]
    deployed.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, QUICK)
    deployed.save(tmp_path)
    blob = hybrid.adapter_parameters(deployed.model, "enroll_3")[1].detach().numpy().tobytes()
    assert any(blob in p.read_bytes() for p in tmp_path.rglob("*.safetensors"))
    row = deployed.model.head.weight[3].detach().numpy().tobytes()
    deployed.revoke("dee", train.of_classes([3]).x, config=UnlearnConfig(train=QUICK))
    deployed.save(tmp_path)
    assert "enroll_3" not in hybrid.adapter_names(deployed.model)
    assert not any(blob in p.read_bytes() or row in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert len(list((tmp_path / "snapshots").iterdir())) == 1


def test_audit_log_is_hash_chained(deployed):
    deployed.calibrate()
    deployed.audit.verify()
    deployed.audit.entries[0]["details"]["val_accuracy"] = 0.0
    with pytest.raises(AuditTamperedError):
        deployed.audit.verify()


def test_loading_twice_gives_the_same_later_random_draws(deployed, tmp_path):
    deployed.save(tmp_path)
    first, second = SpeakerAuthenticator.load(tmp_path), SpeakerAuthenticator.load(tmp_path)
    for auth in (first, second):
        hybrid.inject_stuck(auth.model, 0.05, 0.05)
    assert torch.equal(first.model.fc_in.crossbar.cells.stuck, second.model.fc_in.crossbar.cells.stuck)
