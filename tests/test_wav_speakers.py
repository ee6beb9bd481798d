"""scripts/make_wav_speakers.py: a synthetic WAV folder that the cochlea encodes into a speaker set."""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import load_script

from neuro_rm.data.speakers import load_speakers


@pytest.fixture(scope="module")
def synth():
    return load_script("make_wav_speakers")


def test_script_output_encodes_and_loads_as_a_speaker_set(synth, tmp_path: Path, monkeypatch) -> None:
    wav_dir, out = tmp_path / "wavs", tmp_path / "voices.h5"
    argv = ["make_wav_speakers.py", "--wav-dir", str(wav_dir), "--out", str(out), "--speakers", "3",
            "--words", "2", "--takes", "3", "--seed", "4"]
    monkeypatch.setattr(sys, "argv", argv)
    synth.main()
    assert len(list(wav_dir.glob("*.wav"))) == 3 * 2 * 3
    splits = load_speakers(out, cache=False)
    assert splits.speaker_names == ["voicea", "voiceb", "voicec"]
    assert splits.word_names == ["sami", "tulo"]
    assert splits.n_channels == 700 and splits.frames.n_bins == 10
    n = len(splits.train) + len(splits.val) + len(splits.test)
    assert n == 18 and sorted(splits.train.y.unique().tolist()) == [0, 1, 2]
    assert sorted(splits.train.word.unique().tolist()) == [0, 1]
    assert float(splits.train.x.sum()) > 0  # the encoder found sound in every split's clips
    with h5py.File(out) as f:
        assert "make_wav_speakers.py --seed 4" in f.attrs["source"]


def test_folder_depends_only_on_the_seed_and_is_never_written_over(synth, tmp_path: Path) -> None:
    synth.write_folder(tmp_path / "a", 2, 1, seed=3, words=2)
    synth.write_folder(tmp_path / "b", 2, 1, seed=3, words=2)
    synth.write_folder(tmp_path / "c", 2, 1, seed=5, words=2)
    names = sorted(p.name for p in (tmp_path / "a").glob("*.wav"))
    assert names == ["0_voicea_0.wav", "0_voiceb_0.wav", "1_voicea_0.wav", "1_voiceb_0.wav"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
    before = (tmp_path / "a" / names[0]).read_bytes()
    with pytest.raises(FileExistsError, match="already holds WAV files"):
        synth.write_folder(tmp_path / "a", 2, 1, seed=9, words=2)
    assert (tmp_path / "a" / names[0]).read_bytes() == before


def _spectrum(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    power = np.abs(np.fft.rfft(audio * np.hanning(len(audio)))) ** 2
    return np.fft.rfftfreq(len(audio), 1 / 8000), power


def test_a_voice_is_its_pitch_and_tract_length(synth) -> None:
    """The two speaker cues the docstring promises: formants scale with the tract, harmonics with the pitch."""
    def voice(pitch: float, tract: float):
        return synth.Voice(pitch=pitch, tract=tract, tilt=0.93, breath=0.05, rate=1.0)

    def centroid(v) -> float:  # mean over takes of the spectral centroid below 4 kHz
        out = []
        for k in range(4):
            f, p = _spectrum(synth.utterance(v, "mosa", np.random.default_rng(k)))
            out.append((f * p).sum() / p.sum())
        return float(np.mean(out))

    assert centroid(voice(120, 1.15)) > 1.15 * centroid(voice(120, 0.85))

    def pitch(v) -> float:  # strongest autocorrelation lag between 2.5 and 12.5 ms of the loudest 100 ms
        audio = synth.utterance(v, "mosa", np.random.default_rng(0))
        start = int(np.argmax(np.convolve(audio**2, np.ones(800), mode="valid")))
        seg = audio[start:start + 800]
        ac = np.correlate(seg, seg, mode="full")[len(seg) - 1:]
        return 8000 / (20 + int(np.argmax(ac[20:100])))

    low, high = pitch(voice(100, 1.0)), pitch(voice(200, 1.0))
    assert 80 < low < 125 and 160 < high < 250 and high > 1.6 * low
