"""The speaker lifecycle through the ``neuro-rm`` command on a tiny SSC-layout file."""

import json
import shutil
import subprocess
import sys

import pytest
from conftest import tiny_spike_file

from neuro_rm.learning.continual import ENROLL, FAST_ENROLL


def _run(*args, ok=True):
    proc = subprocess.run([sys.executable, "-m", "neuro_rm.cli", *map(str, args)], capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    data, state = tiny_spike_file(folder / "tiny.h5"), folder / "state"
    out = json.loads(_run("train", "--data", data, "--state", state, "--epochs", "4", "--lr", "5e-3", "--hidden", "64", "--json").stdout)
    assert out["held_out"] == ["spk3"] and out["test_accuracy"] > 0.8
    assert out["lr"] == 5e-3  # --lr: exactly that rate, no choice among the recipe's
    assert out["baseline_linear_accuracy"] > 0.8 and out["margin_over_linear"] == out["test_accuracy"] - out["baseline_linear_accuracy"]
    deployed = json.loads(_run("deploy", "--state", state, "--json").stdout)
    assert deployed["write_pulses"] > 0
    shutil.copytree(state, folder / "deployed")  # as deployed, whatever later tests do to the state
    return data, state


def test_lifecycle_commands(trained):
    data, state = trained
    before = state.parent / "before_revoke"
    shutil.copytree(state, before)  # what someone who once read the state folder still holds
    revoked = json.loads(_run("revoke", "spk1", "--state", state, "--data", data, "--epochs", "3", "--lr", "1e-2", "--json").stdout)
    assert revoked["mode"] == "erase" and revoked["write_pulses"] > 0 and revoked["write_energy_j"] > 0
    audit = json.loads(_run("audit-forgetting", "spk1", "--state", state, "--data", data, "--old-state", before,
                            "--epochs", "4", "--shadows", "1", "--references", "2", "--relearn-seeds", "1", "--json").stdout)
    assert audit["lr"] == 5e-3  # the shadow, control and retrained models train at the state's own rate
    assert audit["retrain_lr"] == 5e-3  # the gold standard's own rate, as it trained
    assert audit["original.branch_off_accuracy"] >= 0.9  # the attack finds the voice where it is present ...
    assert audit["state.branch_off_accuracy"] <= 1 / 3 + 0.05  # ... and not after erasure (chance among 3 rows)
    assert audit["original.branch_off_auc"] >= 0.95  # the bias-free attack's positive control
    for key in ("branch_off_auc", "branch_off_auc_zero_row", "membership_auc", "relearn_steps.1", "relearn_steps.5", "relearn_steps.10"):
        assert {f"{target}.{key}" for target in ("state", "original", "retrain")} <= set(audit)
    enrolled = json.loads(_run("enroll", "spk3", "--state", state, "--data", data, "--quick", "--json").stdout)
    assert enrolled["new_speaker_test_accuracy"] > 0.5
    quick = {"epochs": FAST_ENROLL.epochs, "lr": FAST_ENROLL.lr, "min_steps": FAST_ENROLL.min_steps, "warm_row": True}
    assert enrolled["recipe"] == quick and quick["epochs"] != ENROLL.epochs  # the quick recipe, not the default
    assert enrolled["warm_row"] is True  # and on the enrolment's record
    verdict = json.loads(_run("verify", "test:0", "--claim", "spk1", "--state", state, "--json").stdout)
    assert verdict["accept"] is False and verdict["reason"] == "revoked"
    restored = json.loads(_run("restore", "--state", state, "--epochs", "2", "--json").stdout)
    assert restored["trainable_params"] > 0


def test_errors_are_named_and_leave_the_state_alone(trained):
    data, state = trained
    before = (state / "CURRENT").read_bytes()
    for args, words in (
        (("revoke", "nobody", "--state", state, "--data", data), "unknown speaker"),
        (("enroll", "spk0", "--state", state, "--data", data), "exists already"),
        (("verify", "test:99999", "--claim", "spk0", "--state", state), "out of range"),
        (("verify", "banana", "--claim", "spk0", "--state", state), "SPLIT:INDEX"),
        (("deploy", "--state", state.parent / "missing"), "not a neuro_rm state folder"),
    ):
        proc = _run(*args, ok=False)
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert (state / "CURRENT").read_bytes() == before


def test_a_state_saved_with_a_custom_policy_warns_in_the_command_s_own_words(trained, tmp_path):
    """Review48: the warning that a custom consolidation policy was not restored is the user's to act on, so
    the command prints it as its other warnings, not as a Python source line."""
    from neuro_rm.auth import SpeakerAuthenticator
    from neuro_rm.learning.consolidation import Plan

    _, state = trained
    copy = tmp_path / "state"
    auth = SpeakerAuthenticator.load(state, anchored=False)
    auth.consolidation = lambda model, branches, ledger: Plan()
    auth.save(copy, overwrite=True)
    proc = _run("verify", "test:0", "--claim", "spk0", "--state", copy)
    assert "neuro-rm verify: warning: state in" in proc.stderr and "custom consolidation policy" in proc.stderr
    assert "UserWarning" not in proc.stderr


def test_consolidate_sets_the_policy_the_state_keeps_and_runs_it_now(trained, tmp_path):
    """Issue 19 (review48: no command set a policy): ``consolidate`` saves the policy it is given with the
    state, runs it at once (the enrolment's branch folded into store under a budget of 0), and ``--off``
    leaves none."""
    from neuro_rm.auth import SpeakerAuthenticator
    from neuro_rm.learning.consolidation import BranchBudget

    data, state = trained
    copy = tmp_path / "state"
    SpeakerAuthenticator.load(state.parent / "deployed", anchored=False).save(copy, overwrite=True)
    _run("enroll", "spk3", "--state", copy, "--data", data, "--quick", "--epochs", "1")
    assert SpeakerAuthenticator.load(copy).registry["spk3"].adapter == "enroll_3"  # a live branch under the default budget
    done = json.loads(_run("consolidate", "--state", copy, "--max-branches", "0", "--json").stdout)
    assert done["folded"] == ["enroll_3"] and done["policy"]["max_branches"] == 0
    back = SpeakerAuthenticator.load(copy)
    assert back.consolidation == BranchBudget(max_branches=0) and back.registry["spk3"].adapter is None
    assert [e["action"] for e in back.audit.entries[-2:]] == ["policy", "consolidate"]  # the change, then its run
    assert back.audit.entries[-2]["details"]["max_branches"] == 0
    off = json.loads(_run("consolidate", "--state", copy, "--off", "--json").stdout)
    assert off["policy"] == {"kind": "none"} and SpeakerAuthenticator.load(copy).consolidation is None
    logged = SpeakerAuthenticator.load(copy).audit.entries
    assert logged[-1]["action"] == "policy" and logged[-1]["details"] == {"kind": "none"}
    _run("consolidate", "--state", copy)  # no change asked: nothing logged
    _run("consolidate", "--state", copy, "--off")  # the policy it has already: nothing logged either
    assert len(SpeakerAuthenticator.load(copy).audit.entries) == len(logged)
    proc = _run("consolidate", "--state", copy, "--off", "--max-branches", "2", ok=False)
    assert proc.returncode == 2 and "--off sets no policy" in proc.stderr
    refit = json.loads(_run("consolidate", "--state", copy, "--refit-readout", "--json").stdout)["readout_refit"]
    back = SpeakerAuthenticator.load(copy)
    assert refit["rows"] == len(back.active_labels) == 4
    actions = [e["action"] for e in back.audit.entries[-2:]]  # a refit kept changes the rows: the threshold follows
    assert actions == ["refit_readout", "calibrate"] if refit["kept"] else actions[-1] == "refit_readout"
    assert refit.get("threshold") == (back.threshold if refit["kept"] else None)
    assert refit["write_bits"] == (4 * (back.model.head.in_features + 1) * 32 if refit["kept"] else 0)


def test_what_would_relearn_rows_after_a_suspension_is_refused_with_the_state_left_alone(trained, tmp_path):
    """review61: once a speaker is suspended, ``consolidate --refit-readout`` and an erasing ``revoke`` (both
    re-learn readout rows without the suspended voice among their negatives) are one ``error:`` line naming
    the suspension; nothing is saved, and the policy a refused refit came with is left unrun.  An erasure of
    suspended speakers must name them all."""
    from neuro_rm.auth import SpeakerAuthenticator

    data, state = trained
    copy = tmp_path / "state"
    SpeakerAuthenticator.load(state.parent / "deployed", anchored=False).save(copy, overwrite=True)
    _run("revoke", "spk1", "--state", copy, "--data", data, "--mode", "suspend", "--epochs", "1")
    _run("enroll", "spk3", "--state", copy, "--data", data, "--quick", "--epochs", "1")
    before = (copy / "CURRENT").read_bytes()
    for args in (("consolidate", "--state", copy, "--refit-readout", "--max-branches", "0"),
                 ("revoke", "spk2", "--state", copy, "--data", data, "--epochs", "1")):
        proc = _run(*args, ok=False)
        assert proc.returncode == 2 and "suspension is in force (spk1)" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert (copy / "CURRENT").read_bytes() == before
    suspended = json.loads(_run("revoke", "spk2", "--state", copy, "--data", data, "--mode", "suspend", "--epochs", "1", "--json").stdout)
    assert suspended["mode"] == "suspend"  # what the refusal points to works
    before = (copy / "CURRENT").read_bytes()
    proc = _run("revoke", "spk3", "--state", copy, "--data", data, "--mode", "suspend", ok=False)  # spk0 would be alone
    assert proc.returncode == 2 and "would leave 1 enrolled speaker" in proc.stderr, proc.stderr
    assert (copy / "CURRENT").read_bytes() == before
    proc = _run("revoke", "spk1", "--state", copy, "--data", data, ok=False)  # spk2 is suspended too
    assert proc.returncode == 2 and "neuro-rm revoke spk1 spk2 --mode erase" in proc.stderr, proc.stderr
    proc = _run("revoke", "spk0", "spk3", "--state", copy, "--data", data, ok=False)
    assert proc.returncode == 2 and "revoke takes one speaker" in proc.stderr, proc.stderr
    proc = _run("revoke", "spk1", "spk1", "--state", copy, "--data", data, ok=False)
    assert proc.returncode == 2 and "spk1 named more than once" in proc.stderr, proc.stderr
    assert (copy / "CURRENT").read_bytes() == before


def test_a_suspension_turned_into_an_erasure_lifts_the_refusals(trained, tmp_path):
    """``revoke NAME`` (erase, the default) on the one suspended speaker turns the suspension into an erasure;
    then a readout refit is allowed again."""
    from neuro_rm.auth import SpeakerAuthenticator

    data, state = trained
    copy = tmp_path / "state"
    SpeakerAuthenticator.load(state.parent / "deployed", anchored=False).save(copy, overwrite=True)
    _run("revoke", "spk1", "--state", copy, "--data", data, "--mode", "suspend", "--epochs", "1")
    _run("enroll", "spk3", "--state", copy, "--data", data, "--quick", "--epochs", "1")
    erased = json.loads(_run("revoke", "spk1", "--state", copy, "--data", data, "--epochs", "3", "--lr", "1e-2", "--json").stdout)
    assert erased["mode"] == "erase" and erased["suspensions_erased"] == ["spk1"] and erased["write_pulses"] > 0
    refit = json.loads(_run("consolidate", "--state", copy, "--refit-readout", "--json").stdout)
    assert refit["readout_refit"]["rows"] == 3


def test_data_command_summarises_a_file(trained):
    data, _ = trained
    summary = json.loads(_run("data", data, "--json").stdout)
    assert summary["samples"] == 160 and summary["n_channels"] == 40
    proc = _run("data", data.parent / "none.h5", ok=False)
    assert proc.returncode == 2 and "no SSC-layout file" in proc.stderr


def test_faults_without_a_state_folder_builds_one_and_says_so(tmp_path):
    data, state = tiny_spike_file(tmp_path / "tiny.h5"), tmp_path / "fresh"
    proc = _run("faults", "--data", data, "--state", state, "--epochs", "1", "--json")
    result = json.loads(proc.stdout)  # stdout is the one JSON object; the build reports on stderr
    assert len(result["rows"]) > 0 and 0 <= result["clean_accuracy"] <= 1
    assert f"no state folder at {state}" in proc.stderr and f"neuro-rm train --state {state}" in proc.stderr
    assert (state / "CURRENT").is_file()
    not_a_state = tmp_path / "other"
    not_a_state.mkdir()  # a folder that exists is never built over
    proc = _run("faults", "--data", data, "--state", not_a_state, "--json", ok=False)
    assert proc.returncode == 2 and "not a neuro_rm state folder" in proc.stderr and not any(not_a_state.iterdir())


def test_faults_on_each_preset_deploys_copies_of_a_trained_state(tmp_path):
    data, state = tiny_spike_file(tmp_path / "tiny.h5"), tmp_path / "fresh"
    proc = _run("faults", "--data", data, "--state", state, "--epochs", "1", "--preset", "both", "--json")
    result = json.loads(proc.stdout)
    assert sorted(result["presets"]) == ["hfox_cmo", "taox_1t1r"]
    for sweep in result["presets"].values():
        assert 0 <= sweep["control_accuracy"] <= 1 and len(sweep["rows"]) > 0
        assert all(row["repair"] == pytest.approx(row["restored_accuracy"] - sweep["control_accuracy"]) for row in sweep["rows"])
    assert "neuro-rm deploy" not in proc.stderr  # the state stays trained, not deployed: each preset deploys a copy
    proc = _run("faults", "--data", data, "--state", state, "--epochs", "1", "--preset", "taox_1t1r", "--json")
    assert json.loads(proc.stdout)["preset"] == "taox_1t1r"


def test_energy_command_prices_a_state_and_a_lifecycle_every_way(trained, tmp_path):
    data, state = trained
    priced = json.loads(_run("energy", "--state", state, "--json").stdout)
    for node in ("45nm", "180nm", "22nm"):
        for gpu in ("gpu_peak", "gpu_cited_b1"):
            assert priced[f"energy.{node}.{gpu}.inference_energy_ratio"] > 0
    assert priced["energy.180nm.inference_j_per_sample.hybrid"] > priced["energy.45nm.inference_j_per_sample.hybrid"]
    run = json.loads(_run("energy", "--data", data, "--fast", "--json").stdout)  # a real lifecycle, one JSON object
    stages = ("pretrain", "revoke_suspend", "revoke_erase", "baseline_full", "baseline_retrain", "enroll", "restore")
    assert all(run[f"energy.training_j.{stage}"] > 0 and run[f"energy.training_steps.{stage}"] > 0 for stage in stages)
    assert all(key.startswith("energy.") for key in run)
    assert run["energy.gpu_nvml"].startswith(("skipped", "measured"))
    proc = _run("energy", "--state", tmp_path / "missing", ok=False)
    assert proc.returncode == 2 and "not a neuro_rm state folder" in proc.stderr


def test_energy_command_runs_the_lifecycle_on_a_file_and_prints_its_energy_keys(trained, monkeypatch, capsys):
    """``energy --data FILE``: the file's splits go to the speaker lifecycle, shortened with ``--fast`` (the run
    above cannot tell a smoke run from a full one), and only its energy keys come out."""
    from neuro_rm import cli
    from neuro_rm.tasks import speaker

    data, _ = trained
    seen = {}

    def lifecycle(data, config, out, progress):
        seen.update(speakers=data.names, train=len(data.train), epochs=config.pretrain.epochs, out=out, seed=config.seed)
        return {"energy.training_j.pretrain": 1.5, "energy.gpu_nvml": "skipped", "pretrain.accuracy": 0.9}

    monkeypatch.setattr(speaker, "run_speaker_demo", lifecycle)
    assert cli.main(["energy", "--data", str(data), "--fast", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"energy.training_j.pretrain": 1.5, "energy.gpu_nvml": "skipped"}
    assert seen["speakers"] == ["spk0", "spk1", "spk2", "spk3"] and seen["train"] > 0 and seen["out"] is None
    assert seen["epochs"] == speaker.fast(speaker.DemoConfig()).pretrain.epochs  # --fast: the smoke-run recipe
    assert cli.main(["energy", "--data", str(data), "--json"]) == 0
    assert seen["epochs"] == speaker.DemoConfig().pretrain.epochs and seen["seed"] == speaker.DemoConfig().seed
    assert cli.main(["energy", "--data", str(data), "--speakers", "3", "--seed", "7", "--fast", "--json"]) == 0
    assert len(seen["speakers"]) == 3 and seen["seed"] == 7  # both reach the lifecycle


@pytest.mark.parametrize("flags, expected", [([], "none"), (["--compensation", "offset"], "offset"),
                                             (["--ideal", "--compensation", "column"], "column")])
def test_demo_runs_its_whole_lifecycle_under_the_chosen_drift_compensation(flags, expected):
    from neuro_rm.cli import _readout, build_parser

    readout = _readout(build_parser().parse_args(["demo", *flags]))
    assert readout.drift_compensation == expected
    assert readout.is_ideal == ("--ideal" in flags)


def test_demo_refuses_an_unknown_compensation():
    proc = subprocess.run([sys.executable, "-m", "neuro_rm.cli", "demo", "--compensation", "gain"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "--compensation" in proc.stderr and "offset" in proc.stderr


def test_demo_command_hands_the_chosen_compensation_to_the_lifecycle(monkeypatch, capsys):
    """Positive control for the parser test above: the config the demo runs with carries the flag."""
    from neuro_rm import cli
    from neuro_rm.tasks import speaker

    seen = {}
    monkeypatch.setattr(speaker, "run_speaker_demo", lambda data, config, out, progress: seen.setdefault("config", config) and {})
    assert cli.main(["demo", "--compensation", "offset", "--json", "--out", "none"]) == 0
    assert seen["config"].crossbar.drift_compensation == "offset" and not seen["config"].crossbar.is_ideal


@pytest.mark.parametrize(("logged", "rate"), [(5e-3, 5e-3), (1, 1.0), (float("nan"), None), (-1e-3, None), (True, None),
                                              ("3e-4", None), (None, None)])
def test_the_audit_reads_the_pretraining_rate_only_when_it_is_one(logged, rate):
    """Review (session 21): an int rate was ignored, nan accepted, and details that are no dict raised."""
    from types import SimpleNamespace

    from neuro_rm.audit import AuditLog
    from neuro_rm.cli import _pretrain_rate

    audit = AuditLog()
    audit.append("pretrain", None, speakers=["a", "b"], lr=logged)
    assert _pretrain_rate(SimpleNamespace(audit=audit)) == rate
    odd = AuditLog([{"action": "pretrain", "details": "not a dict"}])
    assert _pretrain_rate(SimpleNamespace(audit=odd)) is None
