"""Protections that a mutation audit found unguarded: each test fails when its protection is removed.

Device faults (fault sweep, ``neuro-rm faults --json``), the endurance budget, crash-safe snapshots, bad
input (spike files, face files, impossible configs) and security (no unpickling, adapter erasure, audit chain).
"""

import copy
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from conftest import resign, tiny_spike_file
from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm.audit import AuditLog, AuditTamperedError, _digest
from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.data import FrameConfig, SplitConfig, load_speakers, write_spike_file
from neuro_rm.data.cache import cached
from neuro_rm.data.faces import load_faces
from neuro_rm.device import DeviceConfig, ProgramResult
from neuro_rm.learning import TrainConfig, predict_logits
from neuro_rm.lora import AdapterConfig
from neuro_rm.models import RSNNConfig
from neuro_rm.reliability import Fault, endurance_budget, fault_sweep
from neuro_rm.store import CorruptStateError, load_snapshot, save_snapshot


@pytest.fixture(scope="module")
def deployed(tiny_speech):
    auth, _ = SpeakerAuthenticator.pretrain(
        ["ann", "bob", "cy", "dee"], tiny_speech["train"], tiny_speech["val"],
        RSNNConfig(n_inputs=20, n_hidden=16, n_outputs=4), TrainConfig(epochs=2, lr=5e-3, batch_size=32),
    )
    auth.deploy()
    auth.calibrate()
    return auth


class _Payload:
    """Unpickling this creates the file ``proof``: evidence that a pickle was executed."""

    def __init__(self, proof):
        self.proof = str(proof)

    def __reduce__(self):
        return (open, (self.proof, "w"))


# ---------------------------------------------------------------------- 1. device faults
def _ideal_logits(model, x):
    """Logits through the noise-free readout of the same cells (per-vector read noise differs on every call)."""
    config = model.fc_in.crossbar.config
    hybrid.set_readout(model, CrossbarConfig.ideal())
    try:
        return predict_logits(model, x)
    finally:
        hybrid.set_readout(model, config)


def test_fault_sweep_leaves_the_authenticator_untouched(deployed, tiny_speech):
    x = tiny_speech["test"].x
    state = {k: v.clone() for k, v in deployed.model.state_dict().items()}
    logits, adapters, entries = _ideal_logits(deployed.model, x), hybrid.adapter_names(deployed.model), len(deployed.audit.entries)
    stuck = deployed.model.fc_in.crossbar.cells.stuck.clone()
    sweep = fault_sweep(deployed, tiny_speech["test"], [Fault("stuck", 0.3)], TrainConfig(epochs=1, lr=5e-3, batch_size=32))
    assert len(sweep["rows"]) == 1
    after = deployed.model.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[k], v) for k, v in state.items())
    assert torch.equal(_ideal_logits(deployed.model, x), logits)
    assert torch.equal(deployed.model.fc_in.crossbar.cells.stuck, stuck)
    assert hybrid.adapter_names(deployed.model) == adapters and len(deployed.audit.entries) == entries


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "neuro_rm.cli", *map(str, args)], capture_output=True, text=True)


def test_faults_command_prints_one_json_object(tmp_path):
    data, state = tiny_spike_file(tmp_path / "tiny.h5", n_speakers=3, per_speaker=30, n_channels=24, events=40, n_bins=4), tmp_path / "state"
    for args in (("train", "--data", data, "--state", state, "--epochs", "2", "--lr", "5e-3", "--hidden", "16", "--hold-out", "0", "--json"),
                 ("deploy", "--state", state, "--json")):
        proc = _cli(*args)
        assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _cli("faults", "--state", state, "--epochs", "1", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)  # the whole of stdout is one JSON object
    assert 0 <= report["clean_accuracy"] <= 1
    kinds = {row["fault"] for row in report["rows"]}
    assert kinds == {"stuck", "write_noise", "drift", "worn"}
    for row in report["rows"]:
        assert 0 <= row["accuracy"] <= 1 and 0 <= row["restored_accuracy"] <= 1 and row["label"].startswith(row["fault"])
    (tmp_path / "not_a_state").mkdir()  # (a missing folder is built first: test_cli_speaker)
    proc = _cli("faults", "--state", tmp_path / "not_a_state", "--json")
    assert proc.returncode == 2 and "not a neuro_rm state folder" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------- 2. endurance budget
def _result(pulses):
    pulses = torch.as_tensor(pulses, dtype=torch.int32)
    return ProgramResult(torch.zeros(pulses.shape), pulses, int(pulses.numel()), torch.ones(pulses.shape, dtype=torch.bool))


def test_endurance_budget_reads_the_worst_cell_and_the_one_percent_tail():
    # 2 % of cells need 40 pulses per rewrite: one of them wears first, and 1 % are worn by then as well
    two_pct = endurance_budget([_result([2] * 49 + [40]), _result([2] * 49 + [40])], 30_000)
    assert two_pct["full_reprogram_ops_until_first_worn_cell"] == 750
    assert two_pct["full_reprogram_ops_until_1pct_worn"] == 750
    # a 0.5 % tail wears early, but 1 % of the array lasts as long as its 2-pulse cells
    half_pct = endurance_budget([_result([2] * 995 + [40] * 5)], 30_000)
    assert half_pct["full_reprogram_ops_until_first_worn_cell"] == 750
    assert half_pct["full_reprogram_ops_until_1pct_worn"] == 15_000


def test_endurance_budget_uses_the_given_endurance():
    budget = endurance_budget([_result([10, 5, 1])], DeviceConfig(endurance_cycles=1_000).endurance_cycles)
    assert budget["endurance_cycles"] == 1_000 and budget["full_reprogram_ops_until_first_worn_cell"] == 100


def test_a_rewrite_that_needed_no_pulses_sets_no_limit():
    budget = endurance_budget([_result([0, 0, 0])], 30_000)
    assert budget["full_reprogram_ops_until_first_worn_cell"] is None
    assert budget["full_reprogram_ops_until_1pct_worn"] is None


# ---------------------------------------------------------------------- 3. crash safety
def test_a_missing_snapshot_file_is_reported_as_corrupt_state(tmp_path):
    save_snapshot(tmp_path, {"a.json": b"{}", "b.bin": b"xyz"})
    name = load_snapshot(tmp_path).name
    (tmp_path / "snapshots" / name / "b.bin").unlink()
    with pytest.raises(CorruptStateError, match="b.bin is missing"):
        load_snapshot(tmp_path)


@pytest.mark.parametrize("pointer", [b'{"snapshot": "0000', b"", b"[1, 2]", b'"000001"', b'{"snapshot": "000001"}', b"\xff\xfe",
                                     b'{"snapshot": 1, "files": {}}', b'{"snapshot": "000001", "files": []}',
                                     b'{"snapshot": "../..", "files": {}}', b'{"snapshot": "000001", "files": {"../../x": "0"}}'])
def test_an_unreadable_current_pointer_is_reported_as_corrupt_state(tmp_path, pointer):
    save_snapshot(tmp_path, {"a.json": b"{}"})
    (tmp_path / "CURRENT").write_bytes(pointer)
    with pytest.raises(CorruptStateError, match="CURRENT is unreadable"):
        load_snapshot(tmp_path)


@pytest.mark.parametrize("name", ["../escape", "sub/file", ".hidden", "", "..", "ABSOLUTE"])
def test_state_file_names_cannot_leave_the_snapshot(tmp_path, name):
    folder = tmp_path / "state"
    name = str(tmp_path / "escape") if name == "ABSOLUTE" else name
    with pytest.raises(ValueError, match="plain names"):
        save_snapshot(folder, {"ok.json": b"{}", name: b"planted"})
    assert not (tmp_path / "escape").exists() and not (folder / "snapshots" / "escape").exists()
    assert not (folder / "CURRENT").exists()


# ---------------------------------------------------------------------- 4. bad input
def _h5(path, labels, speakers, n_times=None):
    n = len(labels) if n_times is None else n_times
    with h5py.File(path, "w") as f:
        for key, dtype in (("spikes/times", np.float32), ("spikes/units", np.uint16)):
            data = np.empty(n, dtype=object)
            for i in range(n):
                data[i] = np.asarray([0.1, 0.2], dtype=dtype)
            f.create_dataset(key, data=data, dtype=h5py.vlen_dtype(dtype))
        f.create_dataset("labels", data=labels)
        f.create_dataset("extra/speaker", data=speakers)
        f.attrs["n_channels"] = 40


@pytest.mark.parametrize(
    "labels, speakers",
    [
        (np.array([0.0, 1.5], np.float32), np.array([0, 1], np.uint16)),  # float labels
        (np.array([0, 1], np.uint16), np.array([0, -1], np.int16)),  # a negative speaker id
        (np.array([-2, 1], np.int32), np.array([0, 1], np.uint16)),  # a negative label
        (np.array([b"a", b"b"]), np.array([0, 1], np.uint16)),  # strings
    ],
)
def test_labels_and_speakers_of_the_wrong_dtype_are_refused(tmp_path, labels, speakers):
    path = tmp_path / "dtype.h5"
    _h5(path, labels, speakers)
    with pytest.raises(ValueError, match=r"dtype\.h5.*non-negative integers"):
        load_speakers(path, frames=FrameConfig(n_bins=2, max_time=1.0, group=4), cache=False)


def test_keys_of_different_lengths_are_refused(tmp_path):
    path = tmp_path / "ragged.h5"
    _h5(path, np.array([0, 0, 0], np.uint16), np.array([0, 0, 0], np.uint16), n_times=2)
    with pytest.raises(ValueError, match=r"ragged\.h5.*differ in length"):
        load_speakers(path, frames=FrameConfig(n_bins=2, max_time=1.0, group=4), split=SplitConfig(0.5, 0), cache=False)


@pytest.mark.parametrize(
    "images, labels",
    [
        (np.zeros((4, 64, 64, 3), np.uint8), np.arange(4)),  # colour images
        (np.zeros((64, 64), np.uint8), np.arange(1)),  # one image without the batch axis
        (np.zeros((4, 64, 64), np.uint8), np.arange(3)),  # a label short
        (np.zeros((4, 64, 64), np.uint8), np.zeros((4, 1))),  # labels of the wrong shape
    ],
)
def test_face_files_of_the_wrong_shape_are_refused(tmp_path, images, labels):
    path = tmp_path / "faces.npz"
    np.savez(path, images=images, labels=labels)
    with pytest.raises(ValueError, match=r"faces\.npz.*uint8 images \(N, H, W\) and N labels"):
        load_faces(path)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: DeviceConfig(endurance_cycles=0), "endurance_cycles"),
        (lambda: DeviceConfig(max_pulses=0), "max_pulses"),
        (lambda: DeviceConfig(pulse_gain=0.0), "pulse_gain"),
        (lambda: DeviceConfig(pulse_gain=2.0), "pulse_gain"),
        (lambda: DeviceConfig(min_step_us=5.0, max_step_us=1.0), "min_step_us"),
        (lambda: DeviceConfig(stuck_on_rate=0.6, stuck_off_rate=0.6), "must not exceed 1"),
        (lambda: CrossbarConfig(tile_rows=0), "positive size"),
        (lambda: CrossbarConfig(tile_cols=-4), "positive size"),
        (lambda: CrossbarConfig(adc_bits=0), "adc_bits"),
        (lambda: CrossbarConfig(adc_bits=17), "adc_bits"),
        (lambda: CrossbarConfig(input_bound=float("inf")), "input_bound"),
        (lambda: RSNNConfig(beta=1.5), "beta"),
        (lambda: RSNNConfig(beta=-0.1), "beta"),
        (lambda: RSNNConfig(threshold=0.0), "threshold"),
        (lambda: RSNNConfig(n_hidden=0), "sizes"),
        (lambda: TrainConfig(lr=0.0), "lr"),
        (lambda: TrainConfig(lr=-1e-3), "lr"),
        (lambda: TrainConfig(lr=float("nan")), "lr"),
        (lambda: TrainConfig(epochs=0), "epochs"),
        (lambda: TrainConfig(batch_size=0), "batch_size"),
        (lambda: TrainConfig(patience=0), "patience"),
        (lambda: FrameConfig(n_bins=0), "n_bins"),
        (lambda: FrameConfig(group=0), "group"),
        (lambda: FrameConfig(max_time=0.0), "max_time"),
        (lambda: SplitConfig(train_fraction=1.0), "train_fraction"),
    ],
)
def test_impossible_config_values_are_refused_by_name(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# ---------------------------------------------------------------------- 5. security
def test_a_tampered_audit_log_in_a_state_folder_is_refused(deployed, tmp_path):
    deployed.save(tmp_path)
    pointer = json.loads((tmp_path / "CURRENT").read_text())
    audit_path = tmp_path / "snapshots" / pointer["snapshot"] / "audit.jsonl"
    entries = [json.loads(line) for line in audit_path.read_text().splitlines()]
    entries[0]["details"]["val_accuracy"] = 1.0  # rewrite history, keep everything else as it was
    audit_path.write_bytes("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries).encode())
    resign(tmp_path)  # an attacker who holds the key: the chain still shows the edit
    with pytest.raises(AuditTamperedError):
        SpeakerAuthenticator.load(tmp_path)


def test_a_deleted_audit_entry_shows_even_with_renumbered_rehashed_entries():
    log = AuditLog()
    for action in ("pretrain", "deploy", "revoke", "calibrate"):
        log.append(action, "bob" if action == "revoke" else None)
    entries = copy.deepcopy(log.entries)
    del entries[2]  # hide the revocation
    for position, entry in enumerate(entries):
        entry["index"] = position
        entry["hash"] = _digest(entry)  # each entry hashes right, but the chain is broken at the gap
    with pytest.raises(AuditTamperedError, match="entry 2"):
        AuditLog(entries).verify()
    with pytest.raises(AuditTamperedError):
        AuditLog.from_jsonl("".join(json.dumps(e) + "\n" for e in entries).encode())


def test_a_removed_adapter_is_overwritten_where_other_references_still_see_it():
    torch.manual_seed(0)
    model = hybrid.analogize(nn.Sequential(nn.Linear(6, 4)))
    params = hybrid.add_adapter(model, "alice", AdapterConfig(2, 4.0))
    with torch.no_grad():
        for p in params:
            p.add_(0.5)
    views = [p.detach() for p in params]  # e.g. held by an optimiser or a caller: same storage
    hybrid.delete_adapter(model, "alice")
    assert all(v.numel() > 0 and torch.count_nonzero(v) == 0 for v in views)
    assert all(p.numel() == 0 for p in params)


def test_a_planted_pickle_in_the_data_cache_is_never_executed(tmp_path):
    proof = tmp_path / "pwned"
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(6, dtype=np.uint16).reshape(2, 3)}

    key = {"files": ["abc"], "frames": {"n_bins": 2}}
    cached(key, compute, tmp_path / "cache")
    (entry,) = (tmp_path / "cache").glob("*.npz")
    np.savez(entry, x=np.array([_Payload(proof)], dtype=object))  # replaced by a pickle-bearing .npz
    again = cached(key, compute, tmp_path / "cache")
    assert not proof.exists()
    assert len(calls) == 2 and np.array_equal(again["x"], compute()["x"])  # refused and rebuilt


def test_a_planted_pickle_in_a_faces_file_is_never_executed(tmp_path):
    proof, path = tmp_path / "pwned", tmp_path / "faces.npz"
    np.savez(path, images=np.array([_Payload(proof)], dtype=object), labels=np.zeros(1, np.int64))
    with pytest.raises(ValueError, match=r"faces\.npz"):
        load_faces(path)
    assert not proof.exists()


# ---------------------------------------------------------------------- 4b. huge files (limits checked before reading)
def test_a_file_declaring_too_many_samples_is_refused_before_reading(tmp_path, monkeypatch):
    from neuro_rm.data import spikefile

    assert spikefile.MAX_SAMPLES >= 200_000  # all of SSC fits
    monkeypatch.setattr(spikefile, "MAX_SAMPLES", 1_000)
    path = tmp_path / "declared.h5"
    with h5py.File(path, "w") as f:  # declared, never written: the file stays a few KB
        for key, dtype in (("spikes/times", h5py.vlen_dtype(np.float16)), ("spikes/units", h5py.vlen_dtype(np.uint16)),
                           ("labels", np.uint16), ("extra/speaker", np.uint16)):
            f.create_dataset(key, shape=(1_001,), dtype=dtype, chunks=(64,))
    with pytest.raises(ValueError, match=r"declared\.h5.*1001 samples.*MAX_SAMPLES"):
        load_speakers(path, cache=False)


@pytest.mark.parametrize("n_channels", [10**12, 0, -3, 2.5, "many"])
def test_an_impossible_channel_count_is_refused(tmp_path, n_channels):
    path = tmp_path / "channels.h5"
    _h5(path, np.array([0, 1], np.uint16), np.array([0, 1], np.uint16))
    with h5py.File(path, "a") as f:
        f.attrs["n_channels"] = n_channels
    with pytest.raises(ValueError, match=r"channels\.h5.*n_channels must be an integer"):
        load_speakers(path, cache=False)


def test_a_sample_with_too_many_events_is_refused(tmp_path, monkeypatch):
    from neuro_rm.data import spikefile

    monkeypatch.setattr(spikefile, "MAX_EVENTS_PER_SAMPLE", 100)
    path = tmp_path / "dense.h5"
    times = [np.linspace(0, 0.9, 10), np.linspace(0, 0.9, 101)]
    write_spike_file(path, times, [np.zeros(10, int), np.zeros(101, int)], [0, 0], [0, 1], n_channels=40,
                     label_names=["w"], speaker_names=["a", "b"], attrs={})
    with pytest.raises(ValueError, match=r"dense\.h5: sample 1: 101 events.*MAX_EVENTS_PER_SAMPLE"):
        load_speakers(path, frames=FrameConfig(n_bins=2, max_time=1.0, group=4), split=SplitConfig(0.5, 0), cache=False)


def test_frames_too_large_to_hold_are_refused_before_allocating(tmp_path):
    path = tmp_path / "bins.h5"
    write_spike_file(path, [np.array([0.1])] * 4, [np.array([1])] * 4, [0] * 4, [0, 0, 1, 1], n_channels=40,
                     label_names=["w"], speaker_names=["a", "b"], attrs={"default_frames": {"n_bins": 10**9, "max_time": 1.0, "group": 1}})
    with pytest.raises(ValueError, match=r"bins\.h5.*MAX_FRAME_COUNTS"):
        load_speakers(path, cache=False)


def test_a_faces_file_that_unpacks_to_too_much_is_refused(tmp_path, monkeypatch):
    from neuro_rm.data import faces

    monkeypatch.setattr(faces, "MAX_FACES_BYTES", 1 << 20)
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, images=np.zeros((300, 64, 64), np.uint8), labels=np.zeros(300, np.int64))  # 1.2 MB, ~10 KB packed
    with pytest.raises(ValueError, match=r"bomb\.npz.*MAX_FACES_BYTES"):
        load_faces(path)
    monkeypatch.undo()
    assert len(load_faces().labels) == 400  # the bundled set is well inside the limit
