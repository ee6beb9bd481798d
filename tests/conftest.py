import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from neuro_rm.data import write_spike_file
from neuro_rm.learning.data import LabelledSet
from neuro_rm.statekey import ENV, read_key, sign
from neuro_rm.store import _signed_bytes

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (scripts/ is not a package), so that its functions can be tested."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a script's dataclasses look their module up while being built
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # no half-built module left for a later test to find
        raise
    return module


@pytest.fixture(scope="session", autouse=True)
def state_key_outside_home(tmp_path_factory):
    """Every test (and every CLI subprocess it starts) signs states with a throw-away key, never ~/.config."""
    path = tmp_path_factory.mktemp("key") / "state.key"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, str(path))
        yield path


def resign(folder):
    """Re-hash every file of a state folder's live snapshot and re-sign CURRENT with the test key: what
    an attacker who holds the key could do, so that the checks behind the signature can be reached."""
    pointer = json.loads((folder / "CURRENT").read_text())
    snapshot = folder / "snapshots" / pointer["snapshot"]
    pointer["files"] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in snapshot.iterdir()}
    pointer["mac"] = sign(read_key(os.environ[ENV]), _signed_bytes(pointer))
    (folder / "CURRENT").write_text(json.dumps(pointer))


def synthetic_speakers(n_speakers=4, per_speaker=60, n_inputs=20, steps=5, seed=0):
    """Spike-count frames where each speaker drives its own band of channels more often."""
    generator = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for speaker in range(n_speakers):
        rate = torch.full((steps, n_inputs), 0.05)
        band = slice(speaker * n_inputs // n_speakers, (speaker + 1) * n_inputs // n_speakers)
        rate[:, band] = 0.6
        xs.append(torch.bernoulli(rate.expand(per_speaker, steps, n_inputs), generator=generator))
        ys.append(torch.full((per_speaker,), speaker))
    x, y = torch.cat(xs), torch.cat(ys)
    x[:, 0, 0] = 1.0  # every sample has at least one spike
    return LabelledSet(x, y)


@pytest.fixture(scope="session")
def tiny_speech():
    """train / val / test splits of a small, easy synthetic speaker set."""
    return {name: synthetic_speakers(seed=i) for i, name in enumerate(("train", "val", "test"))}


def tiny_spike_file(path, n_speakers=4, per_speaker=40, n_channels=40, events=60, n_bins=5, seed=0):
    """A small SSC-layout file: each speaker fires mostly in its own band of channels, plus some noise."""
    rng = np.random.default_rng(seed)
    times, units, speakers = [], [], []
    band = n_channels // n_speakers
    for speaker in range(n_speakers):
        for _ in range(per_speaker):
            u = np.concatenate([rng.integers(speaker * band, (speaker + 1) * band, events), rng.integers(0, n_channels, events // 4)])
            t = rng.uniform(0, 0.5, len(u))
            order = np.argsort(t)
            times.append(t[order])
            units.append(u[order])
            speakers.append(speaker)
    write_spike_file(
        path, times, units, labels=[0] * len(speakers), speakers=speakers, n_channels=n_channels,
        label_names=["word"], speaker_names=[f"spk{i}" for i in range(n_speakers)],
        attrs={"default_frames": {"n_bins": n_bins, "max_time": 0.5, "group": 2}},
    )
    return path
