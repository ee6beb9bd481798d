"""Cochlea encoder: audio waveform → spike events in the SSC layout (seconds, channel ids).

Method (every step deterministic; the whole pipeline runs in float64 on the CPU):

1. **Resample** to ``sample_rate`` (``torchaudio.functional.resample``) and scale the clip to unit peak,
   so a quiet and a loud recording of the same voice give the same spikes (a fixed automatic gain).
2. **Filterbank**: a power spectrogram (Hann window ``window_s``, hop ``hop_s``, zero-padded to ``n_fft``)
   projected onto ``n_channels`` triangular filters spaced on the HTK mel scale between ``f_min`` and
   ``f_max`` (``torchaudio.transforms.MelSpectrogram``), the usual stand-in for the cochlea's place code.
3. **Compression**: power in dB relative to the clip's loudest time-frequency cell, clipped to the top
   ``dynamic_range_db``; 0 dB (the peak) maps to ``max_rate_hz`` and the floor to silence, linearly in dB.
4. **Spikes**: each channel is an integrate-and-fire neuron driven by that rate (frame k drives the interval
   [k·hop, (k+1)·hop)); it fires whenever its integrated drive crosses the next integer, at the exact,
   linearly interpolated crossing time.  Neighbouring channels start at staggered phases (golden-ratio
   fractions), so a group of adjacent channels summed into one input counts finer than any single channel.

Only events below the clip length are kept.  ``max_rate_hz`` and ``dynamic_range_db`` set the event rate
(and so the file size); ``n_channels`` matches the 700 of SSC/SHD by default, so frames summed in groups of 5
give the 140 inputs of the reference network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torchaudio

GOLDEN = (5**0.5 - 1) / 2


@dataclass(frozen=True)
class CochleaConfig:
    """Parameters of :class:`Cochlea` (see the module docstring for what each step does)."""

    n_channels: int = 700
    sample_rate: int = 8000
    f_min: float = 50.0
    f_max: float = 4000.0
    window_s: float = 0.032
    hop_s: float = 0.004
    n_fft: int = 2048
    dynamic_range_db: float = 45.0
    max_rate_hz: float = 18.0

    def __post_init__(self) -> None:
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                f"need 0 <= f_min < f_max <= sample_rate/2, got {self.f_min}, {self.f_max}, {self.sample_rate}"
            )
        if self.window_s * self.sample_rate > self.n_fft:
            raise ValueError(f"window ({self.window_s} s) longer than n_fft ({self.n_fft} samples)")
        if min(self.n_channels, self.hop_s, self.dynamic_range_db, self.max_rate_hz) <= 0:
            raise ValueError("n_channels, hop_s, dynamic_range_db and max_rate_hz must be positive")


class Spikes(NamedTuple):
    """One recording's events, sorted by time then channel."""

    times: np.ndarray  # float64 seconds
    units: np.ndarray  # int64 channel ids in [0, n_channels)


class Cochlea:
    """Encodes waveforms into spikes; build once per config (the filterbank is precomputed)."""

    def __init__(self, config: CochleaConfig = CochleaConfig()) -> None:
        self.config = config
        self.hop = round(config.hop_s * config.sample_rate)
        self.spectrogram = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            win_length=round(config.window_s * config.sample_rate),
            hop_length=self.hop,
            f_min=config.f_min,
            f_max=config.f_max,
            n_mels=config.n_channels,
            power=2.0,
            mel_scale="htk",
        ).double()
        self.phase = torch.remainder(torch.arange(config.n_channels, dtype=torch.float64) * GOLDEN, 1.0)

    def rates(self, waveform: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Firing rate (Hz) of every channel in every hop, shape (n_channels, frames)."""
        c = self.config
        wave = torch.as_tensor(np.asarray(waveform), dtype=torch.float64).reshape(-1)
        if sample_rate != c.sample_rate:
            wave = torchaudio.functional.resample(wave, sample_rate, c.sample_rate)
        peak = wave.abs().max()
        if peak == 0:
            return torch.zeros(c.n_channels, 0, dtype=torch.float64)
        power = self.spectrogram(wave / peak)
        db = 10 * torch.log10(power.clamp_min(1e-30))
        level = ((db - db.max()) / c.dynamic_range_db + 1).clamp(0, 1)
        return level * c.max_rate_hz

    def __call__(self, waveform: np.ndarray | torch.Tensor, sample_rate: int) -> Spikes:
        """Spike events of one mono recording (any sample rate; it is resampled first)."""
        duration = len(np.asarray(waveform).reshape(-1)) / sample_rate
        rates = self.rates(waveform, sample_rate)
        # integrated drive at every hop edge, from the channel's start phase in [0, 1); spike k fires when
        # the drive crosses k, at the crossing time interpolated linearly within the hop
        drive = torch.cat(
            [self.phase[:, None], self.phase[:, None] + torch.cumsum(rates * self.config.hop_s, 1)], 1
        )
        most = int(drive[:, -1].max())
        if most == 0:
            return Spikes(np.zeros(0), np.zeros(0, dtype=np.int64))
        levels = torch.arange(1, most + 1, dtype=torch.float64).expand(len(drive), most).contiguous()
        valid = levels <= drive[:, -1:]
        after = torch.searchsorted(drive, levels).clamp(
            max=drive.shape[1] - 1
        )  # first edge at or above level
        lo, hi = drive.gather(1, after - 1), drive.gather(1, after)
        frac = (levels - lo) / (hi - lo)  # hi > lo wherever valid
        times = ((after - 1 + frac) * self.config.hop_s)[valid].numpy()
        units = torch.arange(self.config.n_channels)[:, None].expand_as(levels)[valid].numpy()
        keep = times < duration
        order = np.lexsort((units[keep], times[keep]))
        return Spikes(times[keep][order], units[keep][order])
