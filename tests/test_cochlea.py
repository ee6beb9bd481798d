"""The cochlea encoder: SSC-layout output, determinism, place code, rate knob."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuro_rm.data import Cochlea, CochleaConfig


def tone(freq: float, seconds: float = 0.5, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return 0.3 * np.sin(2 * np.pi * freq * t) * np.hanning(len(t))


def test_output_layout_sorted_and_in_range() -> None:
    cochlea = Cochlea()
    spikes = cochlea(tone(700.0), 16000)
    assert len(spikes.times) == len(spikes.units) > 100
    assert np.all(np.diff(spikes.times) >= 0)
    assert spikes.times.min() >= 0 and spikes.times.max() < 0.5
    assert spikes.units.min() >= 0 and spikes.units.max() < cochlea.config.n_channels


def test_deterministic_for_fixed_parameters() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(size=4000) * np.hanning(4000)
    a, b = Cochlea()(noise, 8000), Cochlea()(noise, 8000)
    assert np.array_equal(a.times, b.times) and np.array_equal(a.units, b.units)
    c = Cochlea()(torch.tensor(noise), 8000)  # tensors and arrays alike
    assert np.array_equal(a.times, c.times)


def test_place_code_follows_frequency() -> None:
    config = CochleaConfig()
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731 - HTK mel, as the filterbank uses
    centres = np.linspace(mel(config.f_min), mel(config.f_max), config.n_channels + 2)[1:-1]
    for freq in (300.0, 1000.0, 3000.0):
        counts = np.bincount(Cochlea(config)(tone(freq, rate=8000), 8000).units, minlength=config.n_channels)
        busiest = centres[counts == counts.max()].mean()  # several channels saturate around the tone
        assert abs(busiest - mel(freq)) < 0.02 * mel(freq)


def test_level_invariant_and_silent_input_gives_no_spikes() -> None:
    cochlea = Cochlea()
    loud, quiet = cochlea(tone(500.0), 16000), cochlea(0.01 * tone(500.0), 16000)
    assert abs(len(loud.times) - len(quiet.times)) <= 0.01 * len(loud.times)  # peak-normalised
    empty = cochlea(np.zeros(8000), 8000)
    assert len(empty.times) == 0 and empty.units.dtype == np.int64


def test_rate_knob_scales_event_count() -> None:
    wave = tone(800.0, rate=8000)
    slow = Cochlea(CochleaConfig(max_rate_hz=10))(wave, 8000)
    fast = Cochlea(CochleaConfig(max_rate_hz=40))(wave, 8000)
    assert 3.5 < len(fast.times) / len(slow.times) < 4.5


def test_channel_count_is_configurable() -> None:
    spikes = Cochlea(CochleaConfig(n_channels=64))(tone(1000.0, rate=8000), 8000)
    assert spikes.units.max() < 64 and len(spikes.times) > 0


@pytest.mark.parametrize(
    "bad",
    [{"f_max": 5000.0}, {"f_min": 4000.0, "f_max": 3000.0}, {"max_rate_hz": 0.0}, {"window_s": 0.5}],
)
def test_invalid_config(bad: dict) -> None:
    with pytest.raises(ValueError):
        CochleaConfig(**bad)
