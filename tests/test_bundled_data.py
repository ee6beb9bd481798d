"""The bundled spiking FSDD: loads offline, keeps speaker identity, and is reproduced by its build script."""

from __future__ import annotations

import json
import socket
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from neuro_rm.data import (
    CochleaConfig,
    bundled_speech_path,
    format_summary,
    load_bundled_speakers,
    read_info,
    summarize,
)
from neuro_rm.data.fsdd import DEFAULT_FRAMES, encode_fsdd, list_recordings

WAV_DIR = Path(__file__).resolve().parents[1].parent / "shared/data/fsdd/recordings"
needs_wavs = pytest.mark.skipif(not WAV_DIR.is_dir(), reason=f"FSDD recordings not at {WAV_DIR}")


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    """The whole bundled set, loaded cold (empty cache) with every socket refused: no network needed."""

    def offline(*args, **kwargs):
        raise AssertionError("network access")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "socket", offline)
        return load_bundled_speakers(cache_dir=tmp_path_factory.mktemp("cache"))


def test_file_header_matches_the_encoder_defaults() -> None:
    path = bundled_speech_path()
    assert path.stat().st_size <= 15e6
    info = read_info(path)
    assert len(info) == 3000 and info.n_channels == 700
    assert sorted(info.speaker_names.values()) == [
        "george",
        "jackson",
        "lucas",
        "nicolas",
        "theo",
        "yweweler",
    ]
    assert (
        np.bincount(info.speakers).tolist() == [500] * 6 and np.bincount(info.labels).tolist() == [300] * 10
    )
    assert info.attrs["encoder"] == asdict(CochleaConfig()) and info.attrs["default_frames"] == asdict(
        DEFAULT_FRAMES
    )


def test_splits_and_frames(splits) -> None:
    assert splits.speaker_names == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    assert [len(p) for p in (splits.train, splits.val, splits.test)] == [6 * 343, 6 * 61, 6 * 96]
    assert splits.frames == DEFAULT_FRAMES and splits.word_names[:2] == ["zero", "one"]
    assert splits.train.x.shape[1:] == (10, 140) and splits.train.x.dtype == torch.float32
    assert 500 < splits.train.x.sum((1, 2)).mean() < 2000  # ~1000 events per recording


def test_linear_probe_tells_speakers_apart(splits) -> None:
    """A ridge-regression linear classifier on log spike counts: the frames keep speaker identity."""
    train = torch.log1p(splits.train.x.flatten(1)).double()
    mean, std = train.mean(0), train.std(0) + 1e-3

    def features(part) -> torch.Tensor:
        z = (torch.log1p(part.x.flatten(1)).double() - mean) / std
        return torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], 1)

    a, targets = features(splits.train), torch.nn.functional.one_hot(splits.train.y, 6).double()
    weights = torch.linalg.solve(a.T @ a + 100 * torch.eye(a.shape[1], dtype=a.dtype), a.T @ targets)
    acc = {
        n: (features(p) @ weights).argmax(1).eq(p.y).double().mean().item()
        for n, p in (("val", splits.val), ("test", splits.test))
    }
    assert acc["val"] >= 0.9 and acc["test"] >= 0.9, acc


def test_summary_is_json_and_readable() -> None:
    d = summarize()
    json.loads(json.dumps(d))
    assert d["speech"]["speakers"] == {
        n: 500 for n in ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    }
    assert d["faces"]["persons"] == 40 and "yweweler" in format_summary(d)


@needs_wavs
def test_rebuild_is_byte_identical_and_matches_the_committed_file(tmp_path: Path) -> None:
    torch.set_num_threads(1)  # as the build script
    recordings = list_recordings(WAV_DIR)[::499]  # a few of every speaker
    encode_fsdd(recordings, tmp_path / "a.h5")
    encode_fsdd(recordings, tmp_path / "b.h5")
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    with h5py.File(bundled_speech_path()) as committed, h5py.File(tmp_path / "a.h5") as fresh:
        row = {name.decode(): i for i, name in enumerate(committed["extra/recording"][()])}
        for j, name in enumerate(fresh["extra/recording"][()]):
            i = row[name.decode()]
            assert np.array_equal(committed["spikes/times"][i], fresh["spikes/times"][j])
            assert np.array_equal(committed["spikes/units"][i], fresh["spikes/units"][j])
            assert committed["labels"][i] == fresh["labels"][j]
