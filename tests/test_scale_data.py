import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from neuro_rm.data import load_speakers, read_info
from neuro_rm.data import speakers as speakers_module
from neuro_rm.data.synthetic import GeneratorConfig, generate_corpus

SMALL = GeneratorConfig(n_samples=400, n_speakers=12, n_words=5, n_channels=80, events_median=2000, chunk=64, seed=3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "gen.h5"
    return path, generate_corpus(path, SMALL)


def test_generated_file_has_the_ssc_layout_and_asked_size(corpus):
    path, stats = corpus
    info = read_info(path)
    assert len(info) == SMALL.n_samples == stats["samples"]
    assert len(np.unique(info.speakers)) == SMALL.n_speakers
    assert stats["events"] / stats["samples"] == pytest.approx(SMALL.events_median, rel=0.25)
    counts = np.bincount(info.speakers)
    assert counts.max() > 1.5 * counts.min()  # unequal, so top-k selection ranks something


def test_generation_is_seeded_and_independent_of_chunk_size(tmp_path):
    config = GeneratorConfig(n_samples=30, n_speakers=3, n_channels=40, events_median=50, chunk=7, seed=5)
    generate_corpus(tmp_path / "a.h5", config)
    generate_corpus(tmp_path / "b.h5", GeneratorConfig(**{**config.__dict__, "chunk": 30}))
    generate_corpus(tmp_path / "c.h5", GeneratorConfig(**{**config.__dict__, "seed": 6}))
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b, h5py.File(tmp_path / "c.h5") as c:
        assert all(np.array_equal(x, y) for x, y in zip(a["spikes/units"][()], b["spikes/units"][()], strict=True))
        assert not all(len(x) == len(y) and np.array_equal(x, y) for x, y in zip(a["spikes/units"][()], c["spikes/units"][()], strict=True))


def test_speakers_are_learnable_from_frames(corpus):
    """Nearest class mean on the frames beats chance by far: speaker identity is in the data."""
    splits = load_speakers(corpus[0], n_speakers=6, cache=False)
    train, test = splits.train, splits.test
    flat = lambda x: torch.nn.functional.normalize(x.flatten(1) - train.x.flatten(1).mean(0), dim=1)  # noqa: E731
    means = torch.stack([flat(train.x)[train.y == k].mean(0) for k in range(6)])
    accuracy = ((flat(test.x) @ means.T).argmax(1) == test.y).float().mean().item()
    assert accuracy > 3 / 6


PEAK = """
import sys, h5py
from neuro_rm.data import load_speakers
from neuro_rm.data import speakers as module
from neuro_rm.data.hsd import path_of
module.CHUNK_SAMPLES = 100
path, how, cache_dir, warm_up = sys.argv[1:5]
if how == "holding":  # a loader that reads the file's events whole before binning (the failure to catch)
    binned = module.to_frames
    def to_frames(dataset, *args):
        with h5py.File(path_of(dataset)) as f:
            held = f["spikes/times"][()], f["spikes/units"][()]
        return binned(dataset, *args)
    module.to_frames = to_frames
# warm-up on another, tiny file: lazy imports and first-use buffers, but none of the measured file's memory
load_speakers(warm_up, n_speakers=1, cache=False)
def kb(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field))
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) restarts from the present size
before = kb("VmRSS:")
if how in ("stream", "holding"):
    load_speakers(path, cache_dir=cache_dir)
else:  # the events read whole: what a loader that does not stream holds
    with h5py.File(path) as f:
        held = f["spikes/times"][()], f["spikes/units"][()]
print((kb("VmHWM:") - before) * 1024)
"""


def _peak_rss_growth(path, how, cache_dir, warm_up):
    """Bytes the peak resident memory of a fresh process grows by while loading (imports excluded)."""
    out = subprocess.run([sys.executable, "-c", PEAK, str(path), how, str(cache_dir), str(warm_up)],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak resident size from /proc")
def test_loader_streams_within_a_memory_bound(tmp_path):
    """Loading never holds the file's events: its peak memory stays well below what reading them costs, and
    a loader that does read them whole (the positive control) is seen to exceed the bound."""
    path, warm_up = tmp_path / "events.h5", tmp_path / "warm_up.h5"
    generate_corpus(path, GeneratorConfig(n_samples=1200, n_speakers=6, n_channels=80, events_median=8000, seed=1))
    generate_corpus(warm_up, GeneratorConfig(n_samples=40, n_speakers=2, n_channels=80, events_median=8000, seed=2))
    bound = 16 * 2**20  # bytes; the file holds ~40 MB of events, its frames ~0.8 MB
    streamed = _peak_rss_growth(path, "stream", tmp_path / "cache", warm_up)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 12  # one cache entry per chunk of 100
    whole = _peak_rss_growth(path, "whole", tmp_path / "cache", warm_up)
    holding = _peak_rss_growth(path, "holding", tmp_path / "cache_holding", warm_up)
    assert streamed < bound < min(whole, holding)


def test_chunked_frames_equal_one_shot_frames_and_come_back_from_the_cache(corpus, tmp_path, monkeypatch):
    path = corpus[0]
    one_shot = load_speakers(path, n_speakers=5, cache=False)
    monkeypatch.setattr(speakers_module, "CHUNK_SAMPLES", 17)
    chunked = load_speakers(path, n_speakers=5, cache_dir=tmp_path)
    monkeypatch.setattr(speakers_module, "to_frames", lambda *a: pytest.fail("binned again despite the cache"))
    again = load_speakers(path, n_speakers=5, cache_dir=tmp_path)
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(one_shot, name).x, getattr(chunked, name).x)
        assert torch.equal(getattr(chunked, name).x, getattr(again, name).x)
        assert torch.equal(getattr(one_shot, name).y, getattr(again, name).y)
