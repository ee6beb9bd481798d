"""Crash safety and refusal of unsafe files: the state on disk is always a complete, checked snapshot."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import resign

from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.learning import TrainConfig
from neuro_rm.models import RSNNConfig
from neuro_rm.store import CorruptStateError, load_snapshot

HERE = Path(__file__).parent


@pytest.fixture()
def saved_state(tiny_speech, tmp_path):
    train, val = tiny_speech["train"], tiny_speech["val"]
    auth, _ = SpeakerAuthenticator.pretrain(
        ["ann", "bob", "cy"], train.of_classes([0, 1, 2]), val.of_classes([0, 1, 2]),
        RSNNConfig(n_inputs=20, n_hidden=32, n_outputs=3), TrainConfig(epochs=3, lr=5e-3, batch_size=32),
    )
    auth.deploy()
    auth.calibrate()
    folder = tmp_path / "state"
    auth.save(folder)
    return folder


CHILD = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {tests!r})
    from conftest import synthetic_speakers
    import neuro_rm.store as store
    from neuro_rm.auth import SpeakerAuthenticator
    from neuro_rm.learning import TrainConfig, UnlearnConfig

    real_replace = store.os.replace
    def stalled_replace(src, dst):
        # the new snapshot is fully written; announce it, then hang before the atomic switch
        open({marker!r}, "w").close()
        time.sleep(60)
        real_replace(src, dst)
    store.os.replace = stalled_replace

    auth = SpeakerAuthenticator.load({folder!r})
    data = synthetic_speakers(seed=0)
    quick = TrainConfig(epochs=2, lr=5e-3, batch_size=32)
    if {op!r} == "enroll":
        auth.enroll("dee", data.of_classes([3]).x, data.of_classes([3]).x, quick)
    else:
        auth.revoke("bob", data.of_classes([1]).x, config=UnlearnConfig(train=quick))
    auth.save({folder!r})
    """
)


@pytest.mark.parametrize("op", ["enroll", "revoke"])
def test_sigkill_during_an_operation_leaves_the_previous_state(saved_state, tmp_path, op):
    before = load_snapshot(saved_state)
    marker = tmp_path / "stalled"
    script = CHILD.format(tests=str(HERE), folder=str(saved_state), marker=str(marker), op=op)
    child = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline, "child never reached the save"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert load_snapshot(saved_state) == before  # byte for byte the previous complete snapshot
    loaded = SpeakerAuthenticator.load(saved_state)
    assert loaded.registry["bob"].status == "enrolled" and "dee" not in loaded.registry
    # the half-written snapshot folder is ignored, and the next save cleans it away
    loaded.save(saved_state)
    assert len(list((saved_state / "snapshots").iterdir())) == 1


def test_a_planted_pickle_is_refused_and_never_executed(saved_state, tmp_path):
    pointer = json.loads((saved_state / "CURRENT").read_text())
    target = saved_state / "snapshots" / pointer["snapshot"] / "model.safetensors"
    proof = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(proof), "w"))

    torch.save({"x": Payload()}, target)
    resign(saved_state)  # even a holder of the key cannot make a pickle run
    with pytest.raises(CorruptStateError, match="not a valid safetensors file"):
        SpeakerAuthenticator.load(saved_state)
    assert not proof.exists()
