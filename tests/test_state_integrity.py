"""A state cannot be lost or quietly rewritten: locking, no silent overwrite, keyed integrity, one-line errors.

Every test here fails when the protection it names is removed (see the README's "State integrity").
"""

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import resign, tiny_spike_file
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import neuro_rm.store as store
from neuro_rm.audit import AuditLog
from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.cli import main
from neuro_rm.learning import TrainConfig, UnlearnConfig
from neuro_rm.models import RSNNConfig
from neuro_rm.statekey import ENV, KeyFileError, read_key
from neuro_rm.statelock import StateBusyError, state_lock
from neuro_rm.store import (
    CorruptStateError,
    StaleSnapshotWarning,
    StateChangedError,
    StateExistsError,
    load_snapshot,
    save_snapshot,
)

QUICK = TrainConfig(epochs=2, lr=5e-3, batch_size=32)


def _cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "neuro_rm.cli", *map(str, args)], capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def cli_state(tmp_path_factory):
    """A state made the README's way: ``train`` then ``deploy`` on an SSC-layout file; copy before changing it."""
    folder = tmp_path_factory.mktemp("integrity")
    data, state = tiny_spike_file(folder / "tiny.h5", n_speakers=4, per_speaker=30, n_channels=24, events=40, n_bins=4), folder / "state"
    for args in (("train", "--data", data, "--state", state, "--epochs", "2", "--lr", "5e-3", "--hidden", "16", "--json"),
                 ("deploy", "--state", state, "--json")):
        proc = _cli(*args)
        assert proc.returncode == 0, proc.stderr[-2000:]
    return data, state


@pytest.fixture()
def state(cli_state, tmp_path):
    copy = tmp_path / "state"
    shutil.copytree(cli_state[1], copy)
    return copy


@pytest.fixture()
def other_state(tiny_speech, tmp_path):
    """A second, independent state signed with the same key."""
    auth, _ = SpeakerAuthenticator.pretrain(["ann", "bob", "cy"], tiny_speech["train"].of_classes([0, 1, 2]),
                                            tiny_speech["val"].of_classes([0, 1, 2]),
                                            RSNNConfig(n_inputs=20, n_hidden=16, n_outputs=3), QUICK)
    folder = tmp_path / "other"
    auth.save(folder)
    return folder


def _snapshot_dir(folder):
    return folder / "snapshots" / json.loads((folder / "CURRENT").read_text())["snapshot"]


def _rehash(folder):
    """What anyone who can write the folder can do without the key: make every sha256 checksum match again."""
    pointer = json.loads((folder / "CURRENT").read_text())
    snapshot = folder / "snapshots" / pointer["snapshot"]
    pointer["files"] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in snapshot.iterdir()}
    (folder / "CURRENT").write_text(json.dumps(pointer))


def _edit_state_json(folder, change):
    path = _snapshot_dir(folder) / "state.json"
    state = json.loads(path.read_text())
    change(state)
    path.write_text(json.dumps(state))


def _main(capsys, *args):
    """Run ``neuro-rm`` in this process; returns (exit code, stderr lines)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:  # argparse refusals
        code = exit_.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err.strip().splitlines()


# ---------------------------------------------------------------------- 1. one writer at a time
def test_a_second_writer_is_refused_while_the_state_is_held(state):
    before = (state / "CURRENT").read_bytes()
    with state_lock(state):
        proc = _cli("restore", "--state", state, "--epochs", "1")
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and "busy: another neuro-rm holds this state" in err[0], err
    assert (state / "CURRENT").read_bytes() == before


def test_two_processes_mutating_one_state_both_updates_survive_in_order(cli_state, state, tmp_path):
    """revoke and enroll started together: the second waits for the first, and neither change is lost."""
    data = cli_state[0]
    logs = {op: tmp_path / f"{op}.err" for op in ("revoke", "enroll")}
    args = {"revoke": ("revoke", "spk1", "--epochs", "2"), "enroll": ("enroll", "spk3", "--epochs", "2")}
    with state_lock(state):  # hold the state so that both start while it is taken, as a slow command would
        procs = {op: subprocess.Popen([sys.executable, "-m", "neuro_rm.cli", *args[op], "--state", str(state), "--data",
                                       str(data), "--wait", "300", "--json"], stdout=subprocess.PIPE, stderr=logs[op].open("w"))
                 for op in args}
        deadline = time.monotonic() + 180
        while not all("waiting for another neuro-rm" in logs[op].read_text() for op in logs):
            assert all(p.poll() is None for p in procs.values()), {op: logs[op].read_text() for op in logs}
            assert time.monotonic() < deadline, "the commands never waited for the held state"
            time.sleep(0.1)
    finished = []  # the one that took the lock first finishes first: the other waits for the lock, then works
    deadline = time.monotonic() + 300
    while len(finished) < len(procs):
        finished += [op for op, proc in procs.items() if op not in finished and proc.poll() is not None]
        assert time.monotonic() < deadline, "the commands did not finish"
        time.sleep(0.05)
    for op, proc in procs.items():
        assert proc.returncode == 0, logs[op].read_text()[-2000:]
    loaded = SpeakerAuthenticator.load(state)
    assert loaded.registry["spk1"].status == "revoked" and loaded.registry["spk3"].status == "enrolled"
    changes = [e["action"] for e in loaded.audit.entries if e["action"] in ("revoke", "enroll")]
    assert changes == finished  # each once, in the order they held the state: the second built on the first


def test_a_save_over_a_state_that_changed_since_loading_is_refused(state, tiny_speech):
    first, second = SpeakerAuthenticator.load(state), SpeakerAuthenticator.load(state)
    forget = first.buffers.replay.of_classes([first.registry["spk1"].label]).x
    first.revoke("spk1", forget, config=UnlearnConfig(train=QUICK))
    first.save(state)
    second.calibrate()
    with pytest.raises(StateChangedError, match="changed since it was loaded"):
        second.save(state)
    assert SpeakerAuthenticator.load(state).registry["spk1"].status == "revoked"  # the revocation was not lost


LOCK_HOLDER = textwrap.dedent(
    """
    import sys, time
    from neuro_rm.statelock import state_lock
    with state_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
    """
)


def test_a_lock_left_by_a_killed_process_is_recovered(state):
    child = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(state)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    with pytest.raises(StateBusyError):
        with state_lock(state):
            pass
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with state_lock(state):  # the kernel dropped the dead holder's lock; the LOCK file itself is harmless
        assert (state / "LOCK").exists()


# ---------------------------------------------------------------------- 2. no silent overwrite
def test_train_refuses_to_replace_a_state_without_overwrite(cli_state, state):
    data = cli_state[0]
    SpeakerAuthenticator.load(state).save(state)  # anchored here: the folder is recorded as holding this state
    before = load_snapshot(state)
    proc = _cli("train", "--data", data.parent / "missing.h5", "--state", state, "--epochs", "1", "--hidden", "8")
    # refused before any data is read or any training is done
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert load_snapshot(state) == before
    proc = _cli("train", "--data", data, "--state", state, "--epochs", "1", "--hidden", "8", "--overwrite", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = SpeakerAuthenticator.load(state)  # --overwrite moved the folder's anchor to the new state
    assert not fresh.deployed and [e["action"] for e in fresh.audit.entries] == ["pretrain"]
    assert load_snapshot(state).version.state_id != before.version.state_id
    assert len(list((state / "snapshots").iterdir())) == 1


def test_an_overwrite_keeps_the_previous_state_until_the_new_one_is_complete(state, other_state, monkeypatch):
    before = load_snapshot(state)
    fresh = SpeakerAuthenticator.load(other_state)
    with pytest.raises(StateExistsError):  # another state's authenticator: never saved in this folder
        fresh.save(state)

    def crash(src, dst):
        raise OSError("power cut before the switch")

    monkeypatch.setattr(store.os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        fresh.save(state, overwrite=True)
    monkeypatch.undo()
    assert load_snapshot(state) == before  # the old state is whole; the half-written one is cleared next time
    SpeakerAuthenticator.load(state).save(state)
    assert len(list((state / "snapshots").iterdir())) == 1


# ---------------------------------------------------------------------- 3. keyed integrity
TAMPERS = {
    "threshold": lambda folder, other: _edit_state_json(folder, lambda s: s.update(threshold=-1e9)),
    "status_flip": lambda folder, other: _edit_state_json(
        folder, lambda s: [r.update(status="enrolled") for r in s["speakers"] if r["status"] == "revoked"]),
    "buffer_swap": lambda folder, other: shutil.copy(_snapshot_dir(other) / "buffers.safetensors",
                                                     _snapshot_dir(folder) / "buffers.safetensors"),
    "snapshot_swap": lambda folder, other: [shutil.copy(p, _snapshot_dir(folder) / p.name) for p in _snapshot_dir(other).iterdir()],
    "truncated_audit": lambda folder, other: (_snapshot_dir(folder) / "audit.jsonl").write_text(
        "".join((_snapshot_dir(folder) / "audit.jsonl").read_text().splitlines(keepends=True)[:-2])),
}


@pytest.fixture()
def revoked_state(state):
    auth = SpeakerAuthenticator.load(state)
    auth.revoke("spk1", auth.buffers.replay.of_classes([auth.registry["spk1"].label]).x, config=UnlearnConfig(train=QUICK))
    auth.calibrate()
    auth.save(state)
    return state


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_a_tampered_state_is_refused_even_after_rehashing(revoked_state, other_state, tamper, capsys):
    TAMPERS[tamper](revoked_state, other_state)
    _rehash(revoked_state)
    with pytest.raises(CorruptStateError, match="does not match its signature"):
        SpeakerAuthenticator.load(revoked_state)
    code, err = _main(capsys, "verify", "test:0", "--claim", "spk1", "--state", revoked_state)
    assert code == 2 and len(err) == 1 and "signature" in err[0], err


def test_another_states_snapshot_under_this_states_signed_current_is_refused(revoked_state, other_state):
    """The other state's snapshot moved in, and this CURRENT's checksums rewritten to fit it: the signature
    (over this state's CURRENT) no longer matches.  Its whole CURRENT moved in too: see the anchor tests."""
    theirs = json.loads((other_state / "CURRENT").read_text())
    ours = json.loads((revoked_state / "CURRENT").read_text())
    shutil.copytree(_snapshot_dir(other_state), revoked_state / "snapshots" / "000777")
    ours.update(snapshot="000777", files=theirs["files"])
    (revoked_state / "CURRENT").write_text(json.dumps(ours))
    with pytest.raises(CorruptStateError, match="does not match its signature"):
        SpeakerAuthenticator.load(revoked_state)


def test_a_registry_that_contradicts_the_audit_log_is_refused_even_when_signed(revoked_state):
    """A holder of the key who flips a revoked speaker back is still caught by the audit log."""
    _edit_state_json(revoked_state, lambda s: [r.update(status="enrolled") for r in s["speakers"] if r["name"] == "spk1"])
    resign(revoked_state)
    with pytest.raises(CorruptStateError, match="'spk1' is enrolled in the registry but last revoked in the audit log"):
        SpeakerAuthenticator.load(revoked_state)


def test_a_shortened_audit_log_is_refused_even_when_signed(revoked_state):
    path = _snapshot_dir(revoked_state) / "audit.jsonl"
    log = AuditLog.from_jsonl(path.read_bytes())
    path.write_bytes(AuditLog(log.entries[:-1]).to_jsonl())  # a whole chain, one entry short
    resign(revoked_state)  # re-signs the files, but not the audit head kept beside them
    with pytest.raises(CorruptStateError, match="audit log .* does not end at its signed head"):
        SpeakerAuthenticator.load(revoked_state)


def _put_back(folder, source):
    """What anyone who can write ``folder`` can do without the key: replace its CURRENT and snapshots by
    those of ``source`` (an older copy of it, or another state), as ``cp -a`` would."""
    shutil.rmtree(folder / "snapshots")
    shutil.copytree(source / "snapshots", folder / "snapshots")
    shutil.copy2(source / "CURRENT", folder / "CURRENT")


def _revoke(folder, name="spk1"):
    auth = SpeakerAuthenticator.load(folder)
    auth.revoke(name, auth.buffers.replay.of_classes([auth.registry[name].label]).x, config=UnlearnConfig(train=QUICK))
    auth.calibrate()
    auth.save(folder)


def test_an_older_genuine_copy_put_back_is_refused(state, tmp_path, capsys):
    """Rollback: a copy from before a revocation, signed with the same key, put back over the folder."""
    SpeakerAuthenticator.load(state).save(state)  # anchored here
    backup = tmp_path / "backup"
    shutil.copytree(state, backup)
    _revoke(state)
    _put_back(state, backup)
    with pytest.raises(CorruptStateError, match="older copy was put back.*rollback refused"):
        SpeakerAuthenticator.load(state)
    code, err = _main(capsys, "verify", "test:0", "--claim", "spk1", "--state", state)
    assert code == 2 and len(err) == 1 and "rollback refused" in err[0], err
    assert SpeakerAuthenticator.load(backup).registry["spk1"].status == "enrolled"  # the copy itself is genuine
    put_back = load_snapshot(state, anchored=False)
    for overwrite in (False, True):  # review63: loaded as it was and saved, it continued the state: the rollback laundered
        with pytest.raises(ValueError, match="had spk1 revoked"):  # the folder's record of its revocations
            SpeakerAuthenticator.load(state, anchored=False).save(state, overwrite=overwrite)
        with pytest.raises(CorruptStateError, match=r"rollback refused\); nothing was saved"):  # and the anchor
            SpeakerAuthenticator.load(state, anchored=False).save(state, overwrite=overwrite, discard_revocations=True)
    assert load_snapshot(state, anchored=False) == put_back
    # and another state saved over it cannot read what the folder revoked from the copy: refused unless discarding
    with pytest.raises(ValueError, match="cannot be read"):
        SpeakerAuthenticator.load(backup).save(state, overwrite=True)


def test_an_older_copy_saved_over_the_folder_is_refused_unless_its_revocations_are_discarded_on_the_record(state, tmp_path):
    """review62: the same rollback through the API (the backup loaded as an old copy and saved over the folder
    with ``overwrite``) brought the revoked voice back enrolled, and the folder's log no longer named its
    revocation.  Now refused, nothing written; ``discard_revocations`` replaces it with the discard on record."""
    SpeakerAuthenticator.load(state).save(state)
    backup = tmp_path / "backup"
    shutil.copytree(state, backup)
    _revoke(state)
    before = load_snapshot(state)
    old = SpeakerAuthenticator.load(backup, anchored=False)
    entries = len(old.audit.entries)
    with pytest.raises(ValueError, match="had spk1 revoked .*enrolled"):
        old.save(state, overwrite=True)
    assert load_snapshot(state) == before and len(old.audit.entries) == entries  # nothing saved, nothing logged
    old.save(state, overwrite=True, discard_revocations=True)
    replaced = SpeakerAuthenticator.load(state)
    assert replaced.registry["spk1"].status == "enrolled"  # what was asked for, and the log says what it cost
    assert [e for e in replaced.audit.entries if e["action"] == "replace"][0]["details"]["revocations_discarded"] == ["spk1"]
    SpeakerAuthenticator.load(state).save(state)  # a state continuing itself is no replacement: no check, no entry
    assert sum(e["action"] == "replace" for e in SpeakerAuthenticator.load(state).audit.entries) == 1


def _backup_then_revoke(state, tmp_path):
    """The folder anchored, a backup copied, then spk1 erased in the folder: the backup still holds the voice."""
    SpeakerAuthenticator.load(state).save(state)
    backup = tmp_path / "backup"
    shutil.copytree(state, backup)
    _revoke(state)
    return SpeakerAuthenticator.load(backup, anchored=False)


def test_a_folder_deleted_and_saved_afresh_keeps_its_revocations(state, tmp_path):
    """review63 F1: deleting the folder and saving an old copy to its path (no overwrite: a new state) brought
    the revoked voice back with no trace; the record of the folder's revocations outlives the folder."""
    old = _backup_then_revoke(state, tmp_path)
    shutil.rmtree(state)
    with pytest.raises(ValueError, match="had spk1 revoked"):
        old.save(state)
    assert not state.exists()
    old.save(state, discard_revocations=True)
    assert [e["details"] for e in SpeakerAuthenticator.load(state).audit.entries if e["action"] == "replace"] == \
        [{"revocations_discarded": ["spk1"]}]


def test_train_into_a_deleted_folder_refuses_its_revoked_voices_before_training(cli_state, revoked_state):
    shutil.rmtree(revoked_state)
    proc = _cli("train", "--data", cli_state[0], "--state", revoked_state, "--epochs", "1", "--hidden", "8")
    assert proc.returncode == 2 and "revoked spk1" in proc.stderr and "would enrol them again" in proc.stderr, proc.stderr
    assert not (revoked_state / "CURRENT").exists()


def test_an_erasure_replaced_by_a_suspension_of_the_same_voice_is_refused(state, tmp_path):
    """review63 F5: the backup suspends the voice the folder had erased, and saved over the folder it would
    turn an erasure into a mask that switching branches off undoes."""
    old = _backup_then_revoke(state, tmp_path)
    old.revoke("spk1", old.buffers.replay.of_classes([old.registry["spk1"].label]).x, config=UnlearnConfig(train=QUICK),
               mode="suspend")
    with pytest.raises(ValueError, match="had spk1 revoked .*enrolled \\(or only suspended, where erased\\)"):
        old.save(state, overwrite=True)


def test_a_revocation_recorded_between_the_check_and_the_write_refuses_the_save(state, tmp_path, monkeypatch):
    """review63 F4: the check ran before the folder's lock; the record is read again under it."""
    from neuro_rm.auth import persistence

    old = _backup_then_revoke(state, tmp_path)
    shutil.rmtree(state)
    monkeypatch.setattr(persistence, "revocations_at", lambda *args, **kwargs: {})  # the check saw none yet
    with pytest.raises(ValueError, match="spk1 revoked at this folder while the save was being made"):
        old.save(state)
    assert not (state / "CURRENT").exists()


def test_a_revocation_saved_by_a_save_cut_after_its_switch_is_on_the_record(state, tmp_path, monkeypatch):
    """review64: the folder's record learnt a revocation only at the save's last step, so a save cut after its
    switch left it off, and a deleted folder then took an old copy back.  The record grows before the switch."""
    SpeakerAuthenticator.load(state).save(state)
    backup = tmp_path / "backup"
    shutil.copytree(state, backup)

    def cut(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(store.stateanchor, "commit", cut)
    with pytest.raises(KeyboardInterrupt):
        _revoke(state)
    monkeypatch.undo()
    assert SpeakerAuthenticator.load(state).registry["spk1"].status == "revoked"  # the save did switch
    shutil.rmtree(state)
    with pytest.raises(ValueError, match="had spk1 revoked"):
        SpeakerAuthenticator.load(backup, anchored=False).save(state)


def test_a_discard_over_an_unreadable_state_names_what_the_record_knew(state, tmp_path):
    """review64: over an old copy put back (unreadable anchored), a discard logged "unknown" and dropped spk1
    from the folder's record without naming it."""
    old = _backup_then_revoke(state, tmp_path)
    shutil.rmtree(state)
    shutil.copytree(tmp_path / "backup", state)
    old.save(state, overwrite=True, discard_revocations=True)
    replaced = [e["details"] for e in SpeakerAuthenticator.load(state).audit.entries if e["action"] == "replace"]
    assert replaced == [{"revocations_discarded": ["spk1"], "replaced_state": "unreadable"}]


def test_a_link_to_the_key_finds_the_same_anchors(state, tmp_path):
    """review64: the anchors were named after the key file's path as given, so a link to the same key loaded a
    rolled-back folder as anchored."""
    _backup_then_revoke(state, tmp_path)
    _put_back(state, tmp_path / "backup")
    alias = tmp_path / "alias.key"
    alias.symlink_to(os.environ[ENV])
    with pytest.raises(CorruptStateError, match="rollback refused"):
        SpeakerAuthenticator.load(state, key_file=alias)


def test_anchors_written_beside_a_key_link_before_are_still_found(state, tmp_path, monkeypatch):
    """review65: naming the anchors after the key's real path lost the records written, before, beside a
    link to the key; where only those exist they are used."""
    real = Path(os.environ[ENV])
    alias = tmp_path / "links" / "alias.key"
    alias.parent.mkdir()
    alias.symlink_to(real)
    earlier = alias.with_name("alias.key.anchors")
    shutil.copytree(real.with_name(f"{real.name}.anchors"), earlier)  # as the earlier code wrote them
    monkeypatch.setattr(store.stateanchor, "anchor_dir", lambda key_file=None: earlier)  # the earlier naming
    old = _backup_then_revoke(state, tmp_path)
    monkeypatch.undo()
    shutil.rmtree(real.with_name(f"{real.name}.anchors"))  # only the earlier records remain
    shutil.rmtree(state)
    with pytest.raises(ValueError, match="had spk1 revoked"):
        old.save(state, key_file=alias)


def test_a_seeded_demo_refuses_to_replace_a_state_it_did_not_write_before_any_work(state, tmp_path, capsys):
    """review64: ``demo --seeds N --out X`` checked X/state alone, and replaced X/seed_k/state whatever it held."""
    target = tmp_path / "out" / "seed_0" / "state"
    shutil.copytree(state, target)
    before = (target / "CURRENT").read_bytes()
    code, err = _main(capsys, "demo", "--fast", "--seeds", "2", "--out", tmp_path / "out", "--data", tmp_path / "missing.h5")
    assert code == 2 and "the demo did not write" in err[0] and (target / "CURRENT").read_bytes() == before, err


def test_a_discarding_save_interrupted_after_its_switch_keeps_the_discard_on_record_when_retried(state, tmp_path, monkeypatch):
    """review63: the failed save took the ``replace`` entry out of the log in memory, and the retry, finding
    the folder switched already (nothing left to discard), saved the state without it."""
    SpeakerAuthenticator.load(state).save(state)
    backup = tmp_path / "backup"
    shutil.copytree(state, backup)
    _revoke(state)
    old = SpeakerAuthenticator.load(backup, anchored=False)

    def cut(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(store.stateanchor, "commit", cut)
    with pytest.raises(KeyboardInterrupt):
        old.save(state, overwrite=True, discard_revocations=True)
    monkeypatch.undo()
    old.save(state, overwrite=True, discard_revocations=True)
    kept = SpeakerAuthenticator.load(state).audit.entries
    assert [e["details"]["revocations_discarded"] for e in kept if e["action"] == "replace"] == [["spk1"]]


def test_a_state_saved_back_under_a_new_key_is_no_replacement(state, tmp_path):
    """review63: re-keying the state one loaded was refused as a replacement of an unreadable state."""
    auth = SpeakerAuthenticator.load(state)
    auth.save(state, overwrite=True, key_file=tmp_path / "new.key")
    again = SpeakerAuthenticator.load(state, key_file=tmp_path / "new.key")
    assert not any(e["action"] == "replace" for e in again.audit.entries)


def test_train_overwrite_refuses_to_enrol_a_revoked_voice_again_before_training(cli_state, revoked_state):
    data = cli_state[0]
    before = load_snapshot(revoked_state)
    proc = _cli("train", "--data", data, "--state", revoked_state, "--epochs", "1", "--hidden", "8", "--overwrite")
    assert proc.returncode == 2 and "revoked spk1" in proc.stderr and "--discard-revocations" in proc.stderr, proc.stderr
    assert "training on this data would enrol them again" in proc.stderr  # said before training, not at the save
    assert load_snapshot(revoked_state) == before
    proc = _cli("train", "--data", data, "--state", revoked_state, "--epochs", "1", "--hidden", "8", "--overwrite",
                "--discard-revocations", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = SpeakerAuthenticator.load(revoked_state)
    assert [e["action"] for e in fresh.audit.entries] == ["pretrain", "replace"]
    assert fresh.audit.entries[-1]["details"]["revocations_discarded"] == ["spk1"]


def test_another_state_swapped_in_whole_is_refused(revoked_state, other_state, capsys):
    """Another state's CURRENT and snapshot, both genuine and signed with the same key, put in this folder."""
    _put_back(revoked_state, other_state)
    load_snapshot(revoked_state, anchored=False)  # signature and checksums pass: only the anchor can tell
    with pytest.raises(CorruptStateError, match="replaced by another state"):
        SpeakerAuthenticator.load(revoked_state)
    code, err = _main(capsys, "verify", "test:0", "--claim", "spk1", "--state", revoked_state)
    assert code == 2 and len(err) == 1 and "replaced by another state" in err[0], err


def test_an_audit_log_cut_and_signed_with_the_key_is_refused_by_the_anchor(revoked_state):
    """Even a holder of the key who cuts the log and signs a head to match cannot go behind the anchor."""
    path = _snapshot_dir(revoked_state) / "audit.jsonl"
    cut = AuditLog(AuditLog.from_jsonl(path.read_bytes()).entries[:-1])  # the last calibration: registry still agrees
    path.write_bytes(cut.to_jsonl())
    pointer = json.loads((revoked_state / "CURRENT").read_text())
    pointer["extra"]["audit"] = cut.head
    (revoked_state / "CURRENT").write_text(json.dumps(pointer))
    resign(revoked_state)
    with pytest.raises(CorruptStateError, match="audit log was cut"):
        SpeakerAuthenticator.load(revoked_state)


def test_a_copy_elsewhere_loads_and_its_saves_leave_the_original_anchored(state, tmp_path):
    SpeakerAuthenticator.load(state).save(state)
    copy = tmp_path / "copy"
    shutil.copytree(state, copy)
    auth = SpeakerAuthenticator.load(copy)  # never written there: trusted on the key alone
    auth.calibrate()
    auth.save(copy)  # a new state id for the copy, so the original's record does not move
    assert load_snapshot(copy).version.state_id != load_snapshot(state).version.state_id
    assert SpeakerAuthenticator.load(state).audit.head != auth.audit.head


def test_a_crash_between_the_switch_and_the_anchor_update_still_loads(state, monkeypatch):
    auth = SpeakerAuthenticator.load(state)
    auth.save(state)
    auth.calibrate()

    def crash(*args, **kwargs):
        raise OSError("power cut after the switch")

    monkeypatch.setattr(store.stateanchor, "commit", crash)
    with pytest.raises(OSError, match="power cut"):
        auth.save(state)
    monkeypatch.undo()
    loaded = SpeakerAuthenticator.load(state)  # the switched-in snapshot was recorded as pending first
    assert loaded.audit.head == auth.audit.head
    loaded.save(state)
    assert SpeakerAuthenticator.load(state).audit.head == auth.audit.head


def test_a_stale_object_cannot_overwrite_a_folder_deleted_and_made_anew(state, tiny_speech):
    """ABA: the new state reuses the old one's snapshot name; the nonce tells them apart."""
    stale = SpeakerAuthenticator.load(state)
    name = load_snapshot(state).name
    shutil.rmtree(state)
    fresh, _ = SpeakerAuthenticator.pretrain(["ann", "bob", "cy"], tiny_speech["train"].of_classes([0, 1, 2]),
                                             tiny_speech["val"].of_classes([0, 1, 2]),
                                             RSNNConfig(n_inputs=20, n_hidden=8, n_outputs=3), QUICK)
    for _ in range(int(name)):
        fresh.save(state)
    assert load_snapshot(state).name == name  # the name the stale object loaded, now another state's
    with pytest.raises(StateChangedError, match="changed since it was loaded"):
        stale.save(state)
    assert SpeakerAuthenticator.load(state).registry.keys() == {"ann", "bob", "cy"}


def test_a_fifo_in_place_of_current_gets_one_line_without_hanging(state):
    (state / "CURRENT").unlink()
    os.mkfifo(state / "CURRENT")
    for args in (("verify", "test:0", "--claim", "spk0"), ("deploy",)):
        proc = _cli(*args, "--state", state, timeout=60)
        err = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(err) == 1 and "not a plain file" in err[0], err


def test_a_key_inside_the_state_folder_or_in_a_folder_others_can_write_is_refused(state, tmp_path, capsys):
    inside = tmp_path / "new_state" / "state.key"
    code, err = _main(capsys, "train", "--state", inside.parent, "--key-file", inside, "--epochs", "1")
    assert code == 2 and len(err) == 1 and "inside the state folder" in err[0], err
    assert not inside.parent.exists()  # refused before anything was made
    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(os.environ[ENV], shared / "state.key")
    shared.chmod(0o777)
    code, err = _main(capsys, "verify", "test:0", "--claim", "spk0", "--state", state, "--key-file", shared / "state.key")
    assert code == 2 and len(err) == 1 and "which others can write" in err[0], err


def test_the_key_lives_outside_the_state_and_another_key_is_refused(state, tmp_path, capsys, monkeypatch):
    key = read_key()
    assert not any(key in p.read_bytes() for p in state.rglob("*") if p.is_file())
    other_key = tmp_path / "elsewhere" / "other.key"
    code, err = _main(capsys, "verify", "test:0", "--claim", "spk0", "--state", state, "--key-file", other_key)
    assert code == 2 and "no state key" in err[0] and not other_key.exists()  # loading never creates a key
    read_key(other_key, create=True)
    assert stat.S_IMODE(other_key.stat().st_mode) == 0o600
    monkeypatch.setenv(ENV, str(other_key))
    with pytest.raises(CorruptStateError, match="another key"):
        SpeakerAuthenticator.load(state)
    other_key.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_key(other_key)


# ---------------------------------------------------------------------- 4. one line, exit 2, never a traceback
def test_bad_paths_and_options_get_one_line(state, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    cases = [
        (("deploy", "--state", a_file), "not a folder"),
        (("train", "--state", a_file / "sub", "--epochs", "1"), "Not a directory"),
        (("verify", "test:0", "--claim", "spk0", "--state", a_file / "sub"), "not a neuro_rm state folder"),
        (("verify", "test:²", "--claim", "spk0", "--state", state), "SPLIT:INDEX"),
        (("deploy", "--state", state, "--seed", "10^23"), "--seed"),
        (("deploy", "--state", state, "--seed", str(10**23)), "--seed: must be from 0 to"),
        (("restore", "--state", state, "--lr", "inf"), "--lr: must be > 0"),
        (("restore", "--state", state, "--lr", "nan"), "--lr: must be > 0"),
        (("restore", "--state", state, "--epochs", "0"), "--epochs: must be from 1"),
        (("deploy", "--state", state, "--tolerance", "1e300"), "--tolerance: must be > 0"),
        (("device", "--tolerance", "40"), "below half the conductance window"),
        (("device", "--levels", str(10**9)), "--levels"),
        (("restore", "--state", state, "--wait", "-1"), "--wait"),
        (("train", "--state", state, "--epochs", "abc"), "argument --epochs: invalid int value"),
        (("verify", "test:0", "--state", state), "required: --claim"),
        (("revoke", "spk1", "--state", state, "--mode", "bogus"), "invalid choice"),
        (("deploy", "--state", state, "--no-such-option"), "unrecognized arguments"),
    ]
    before = (state / "CURRENT").read_bytes()
    for args, words in cases:
        code, err = _main(capsys, *args)
        assert code == 2 and len(err) == 1 and words in err[0], (args, err)
        assert err[0].startswith(f"neuro-rm {args[0]}: error: "), (args, err)
    assert (state / "CURRENT").read_bytes() == before


def test_a_non_object_audit_line_gets_one_line(state, capsys):
    path = _snapshot_dir(state) / "audit.jsonl"
    path.write_text(path.read_text() + "[1, 2, 3]\n")
    resign(state)
    code, err = _main(capsys, "verify", "test:0", "--claim", "spk0", "--state", state)
    assert code == 2 and len(err) == 1 and "not a JSON object" in err[0], err


@pytest.mark.parametrize("change, field", [
    (lambda s: s.update(threshold="high"), "threshold"),
    (lambda s: s["metadata"].update(data=7), "metadata.data"),
    (lambda s: s["speakers"][0].update(label="0"), "speakers[0].label"),
    (lambda s: s["rsnn"].update(n_hidden=60_000), "rsnn"),  # 3.6e9 weights: refused before it is built
    (lambda s: s["adapters"].update(x={"rank": 1, "alpha": 1.0, "precision": "fp7", "layers": []}), "adapters.x.precision"),
    (lambda s: s["adapters"].update(x={"rank": 1, "alpha": 1.0, "precision": "fp32", "full_rank": "yes", "layers": []}),
     "adapters.x.full_rank"),
    (lambda s: s["speakers"][0].update(adapter="ghost"), "speakers[0].adapter"),
    (lambda s: s.update(fused={"fc_in": "yes"}), "fused"),
    (lambda s: s.update(buffer_caps={"replay": 0}), "buffer_caps"),
    (lambda s: s.update(buffer_caps={"replay": 10**10}), "buffer_caps"),
    (lambda s: s.update(buffer_caps={"holdout": 2.5}), "buffer_caps"),
])
def test_a_signed_state_json_with_a_wrong_type_or_size_is_refused_by_name(state, capsys, change, field):
    _edit_state_json(state, change)
    resign(state)  # a writer that held the key but was wrong (an older version, a bug)
    code, err = _main(capsys, "verify", "test:0", "--claim", "spk0", "--state", state)
    assert code == 2 and len(err) == 1 and f"state.json: {field} must be" in err[0], err


def _paths(value, prefix=()):
    """Every place in a JSON tree that a mutation can hit."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _mutate(tree, where, value, delete):
    """``tree`` with the node at position ``where`` (of all its nodes) replaced by ``value``, or removed."""
    paths = list(_paths(tree))
    target = paths[where % len(paths)]
    if not target:
        return value, target
    parent = tree
    for step in target[:-1]:
        parent = parent[step]
    if delete:
        del parent[target[-1]]
    else:
        parent[target[-1]] = value
    return tree, target


def _verdict_or_one_line(capsys, folder):
    code, err = _main(capsys, "verify", "test:0", "--claim", "spk0", "--state", folder, "--json")
    return code == 0 or (code == 2 and len(err) == 1 and err[0].startswith("neuro-rm verify: error: ")), err


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.integers(0, 10**6), value=JSON, delete=st.booleans())
def test_random_mutations_of_state_json_get_one_line_or_a_verdict(cli_state, tmp_path_factory, capsys, where, value, delete):
    """A value anywhere in state.json replaced (or removed) and re-signed: refused in one line (exit 2), or a verdict."""
    folder = tmp_path_factory.mktemp("mutant") / "state"
    shutil.copytree(cli_state[1], folder)
    path = _snapshot_dir(folder) / "state.json"
    state, target = _mutate(json.loads(path.read_text()), where, value, delete)
    path.write_text(json.dumps(state))
    resign(folder)
    ok, err = _verdict_or_one_line(capsys, folder)
    assert ok, (target, value, err)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["CURRENT", "audit.jsonl"]), where=st.integers(0, 10**6), value=JSON, delete=st.booleans())
@example(which="CURRENT", where=10**6, value="\x80", delete=False)  # a non-ASCII signature once raised a TypeError
def test_random_mutations_of_current_and_the_audit_log_get_one_line_or_a_verdict(cli_state, tmp_path_factory, capsys,
                                                                                  which, where, value, delete):
    """CURRENT edited without the key, or the audit log edited and re-signed by a key holder: one line or a verdict."""
    folder = tmp_path_factory.mktemp("mutant") / "state"
    shutil.copytree(cli_state[1], folder)
    if which == "CURRENT":
        pointer, target = _mutate(json.loads((folder / "CURRENT").read_text()), where, value, delete)
        (folder / "CURRENT").write_text(json.dumps(pointer))
    else:
        path = _snapshot_dir(folder) / "audit.jsonl"
        entries, target = _mutate([json.loads(line) for line in path.read_text().splitlines()], where, value, delete)
        lines = entries if isinstance(entries, list) else [entries]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        resign(folder)
    ok, err = _verdict_or_one_line(capsys, folder)
    assert ok, (which, target, value, err)


# ---------------------------------------------------------------------- 4b. paths and leftovers
def test_a_relative_data_path_is_stored_absolute(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny_spike_file(Path("tiny.h5"), n_speakers=3, per_speaker=30, n_channels=24, events=40, n_bins=4)
    assert _main(capsys, "train", "--data", "tiny.h5", "--state", "st", "--epochs", "1", "--hidden", "8", "--hold-out", "0")[0] == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    stored = SpeakerAuthenticator.load(tmp_path / "st").metadata["data"]
    assert stored == str(tmp_path / "tiny.h5")
    assert _main(capsys, "deploy", "--state", tmp_path / "st")[0] == 0
    assert _main(capsys, "verify", "test:0", "--claim", "spk0", "--state", tmp_path / "st", "--json")[0] == 0


def test_a_half_written_snapshot_is_removed_when_the_next_writer_starts(state, capsys):
    live = _snapshot_dir(state)
    half = state / "snapshots" / "999999"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"half of a revoked speaker's branch")
    assert _main(capsys, "deploy", "--state", state)[0] == 2  # refused (deployed already), but it held the lock
    assert not half.exists() and live.exists()


def test_an_old_snapshot_that_cannot_be_deleted_is_reported(state, monkeypatch):
    old = _snapshot_dir(state)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(store.shutil, "rmtree", refuse)
    with pytest.warns(StaleSnapshotWarning, match=f"could not delete old snapshot {old}"):
        SpeakerAuthenticator.load(state).save(state)
    assert old.exists()


def test_the_cli_reports_an_old_snapshot_it_could_not_delete(state, monkeypatch, capsys):
    monkeypatch.setattr(store.shutil, "rmtree", lambda path, *a, **k: (_ for _ in ()).throw(PermissionError(13, "denied")))
    live = _snapshot_dir(state)
    older = state / "snapshots" / "000001"  # left over from an earlier command that could not delete it either
    shutil.copytree(live, older)
    code, err = _main(capsys, "restore", "--state", state, "--epochs", "1", "--json")
    warned = [line for line in err if "warning: could not delete old snapshot" in line]
    assert code == 0 and len(warned) == 2, err  # each once: the cleanup before loading leaves older snapshots alone
    assert any(f"{older} " in line for line in warned) and any(f"{live} " in line for line in warned), err


def test_a_load_racing_a_save_reads_the_new_snapshot_whole(tmp_path, monkeypatch):
    """A reader that read CURRENT just before a writer switched snapshots and deleted the old one."""
    save_snapshot(tmp_path, {"a.json": b"old"})
    parse, raced = store._parse_pointer, []

    def parse_then_save(raw, path):
        pointer = parse(raw, path)
        if not raced:
            raced.append(1)
            save_snapshot(tmp_path, {"a.json": b"new"}, expected=pointer["nonce"])  # switches, deletes the old
        return pointer

    monkeypatch.setattr(store, "_parse_pointer", parse_then_save)
    assert load_snapshot(tmp_path).files == {"a.json": b"new"}


def test_snapshot_saves_without_a_loaded_snapshot_are_refused_at_the_store(tmp_path):
    save_snapshot(tmp_path, {"a.json": b"{}"})
    with pytest.raises(StateExistsError):
        save_snapshot(tmp_path, {"a.json": b"[]"})
    first = load_snapshot(tmp_path).version.nonce
    save_snapshot(tmp_path, {"a.json": b"[1]"}, expected=first)
    with pytest.raises(StateChangedError):
        save_snapshot(tmp_path, {"a.json": b"[2]"}, expected=first)
    assert load_snapshot(tmp_path).files == {"a.json": b"[1]"}


def test_the_demo_refuses_to_replace_a_state_it_did_not_write(cli_state, state, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    shutil.move(state, out / "state")
    before = load_snapshot(out / "state", anchored=False)
    code, err = _main(capsys, "demo", "--fast", "--data", cli_state[0], "--out", out)
    assert code == 2 and len(err) == 1 and "--overwrite" in err[0], err  # refused before any work
    assert load_snapshot(out / "state", anchored=False) == before
    from neuro_rm.cli import _demo_may_replace

    auth = SpeakerAuthenticator.load(out / "state")
    auth.metadata["origin"] = "demo"
    auth.save(out / "state")
    _demo_may_replace(out / "state", overwrite=False)  # a state the demo wrote is its own to replace


def test_the_demo_replaces_its_own_output_state(tiny_speech, tmp_path):
    """The demo's output folder is its own: a second run in the same process replaces the state there (a new
    snapshot, one pretraining on the record) instead of being refused."""
    from neuro_rm.tasks.speaker import DemoConfig, SpeakerData, fast, run_speaker_demo

    data = SpeakerData(["s0", "s1", "s2", "s3"], tiny_speech["train"], tiny_speech["val"], tiny_speech["test"])
    config = fast(DemoConfig(pretrain=TrainConfig(epochs=2, lr=5e-3, batch_size=32)))
    pointers = []
    for _ in range(2):
        run_speaker_demo(data, config, out_dir=tmp_path, progress=False)
        pointers.append((tmp_path / "state" / "CURRENT").read_text())
    assert pointers[0] != pointers[1]  # the second run's state, not the first one left in place
    assert [e["action"] for e in SpeakerAuthenticator.load(tmp_path / "state").audit.entries].count("pretrain") == 1


@pytest.mark.parametrize("planted", ["LOCK", ".CURRENT.tmp", "snapshots"])
def test_a_link_planted_in_the_state_folder_is_refused_and_nothing_outside_is_touched(state, tmp_path, capsys, planted):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "notes.txt").write_text("keep me")
    (victim / "2021").mkdir()  # a digit-named folder, as snapshots are
    target = victim if planted == "snapshots" else victim / "notes.txt"
    if planted == "snapshots":
        shutil.rmtree(state / "snapshots")
    (state / planted).unlink(missing_ok=True)
    (state / planted).symlink_to(target)
    code, err = _main(capsys, "deploy", "--state", str(state))
    assert code == 2 and len(err) == 1 and "symbolic link" in err[0]
    assert (victim / "notes.txt").read_text() == "keep me" and (victim / "2021").is_dir()


def test_a_deeply_nested_current_pointer_gets_one_line(state, capsys):
    (state / "CURRENT").write_text("[" * 200_000)
    code, err = _main(capsys, "verify", "test:0", "--claim", "spk0", "--state", str(state))
    assert code == 2 and len(err) == 1


def test_deletion_stays_in_the_snapshots_folder_opened_even_if_a_link_is_swapped_in(state, tmp_path, monkeypatch):
    """The clean-up opens `snapshots` once and deletes relative to that handle: a link swapped in for the
    folder after it was opened (the timed attack) cannot redirect the deletion to another folder."""
    victim = tmp_path / "victim"
    (victim / "999999").mkdir(parents=True)  # named as the stale snapshot the clean-up deletes
    stale = state / "snapshots" / "999999"
    stale.mkdir()
    real_delete = store._delete_one

    def swap_then_delete(path, name, snapshots):
        (state / "snapshots").rename(state / "moved")  # the attacker's swap, between the open and the delete
        (state / "snapshots").symlink_to(victim)
        try:
            real_delete(path, name, snapshots)
        finally:
            (state / "snapshots").unlink()
            (state / "moved").rename(state / "snapshots")

    monkeypatch.setattr(store, "_delete_one", swap_then_delete)
    store._delete_snapshots(state, keep=None, newer_only=False)  # every snapshot but none kept: the worst case
    assert (victim / "999999").is_dir()  # nothing outside was touched
    assert not stale.exists()  # the stale snapshot inside was deleted through the handle


def test_a_state_folder_that_is_a_link_is_refused(state, tmp_path, capsys):
    """A link to an older copy would load that copy under a path with no anchor record: a rollback."""
    link = tmp_path / "linked"
    link.symlink_to(state)
    code, err = _main(capsys, "verify", "test:0", "--claim", "spk0", "--state", str(link))
    assert code == 2 and len(err) == 1 and "symbolic link" in err[0]
    code, err = _main(capsys, "deploy", "--state", str(link))
    assert code == 2 and "symbolic link" in err[0]


def test_a_hard_linked_lock_file_is_refused_and_its_other_name_kept(state, tmp_path, capsys):
    victim = tmp_path / "notes.txt"
    victim.write_text("keep me")
    (state / "LOCK").unlink(missing_ok=True)
    os.link(victim, state / "LOCK")
    code, err = _main(capsys, "deploy", "--state", str(state))
    assert code == 2 and len(err) == 1 and "hard link" in err[0]
    assert victim.read_text() == "keep me"


def test_energy_refuses_to_replace_a_state_it_did_not_write(state, capsys):
    out = state.parent
    assert out / "state" == state
    code, err = _main(capsys, "energy", "--fast", "--out", str(out), "--json")
    assert code == 2 and len(err) == 1 and "--overwrite" in err[0]
