"""Augmentation of binned spike frames, for training on small speaker sets.

Training reads frames (N, T, C spike counts) binned once and cached, so the events tonic's transforms act on
(``DropEvent``, ``TimeJitter``/``TimeSkew``, ``SpatialJitter``) are gone by then; these are their equivalents on
counts, drawn fresh for every minibatch: each spike is dropped with probability ``spike_dropout`` (binomial
thinning, i.e. DropEvent), the whole sample moves by up to ``time_shift`` bins (a later or earlier onset) and by
up to ``channel_jitter`` channels (a slightly different vocal tract or cochlea), with zeros shifted in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Augment:
    spike_dropout: float = 0.0
    time_shift: int = 0  # bins, each direction
    channel_jitter: int = 0  # input channels (after grouping), each direction

    def __post_init__(self) -> None:
        if not 0 <= self.spike_dropout < 1 or self.time_shift < 0 or self.channel_jitter < 0:
            raise ValueError(f"Augment needs 0 <= spike_dropout < 1 and shifts >= 0, got {self}")

    @property
    def active(self) -> bool:
        return self.spike_dropout > 0 or self.time_shift > 0 or self.channel_jitter > 0


def _shift(x: torch.Tensor, shifts: torch.Tensor, dim: int) -> torch.Tensor:
    """Sample i moved by ``shifts[i]`` along ``dim`` (1 = time, 2 = channels), zeros shifted in."""
    out = torch.zeros_like(x)
    n = x.shape[dim]
    for s in shifts.unique().tolist():
        rows = shifts == s
        if abs(s) >= n:
            continue
        src = x[rows].narrow(dim, max(-s, 0), n - abs(s))
        out[rows] = out[rows].index_copy(dim, torch.arange(max(s, 0), max(s, 0) + n - abs(s)), src)
    return out


def augment(x: torch.Tensor, config: Augment, generator: torch.Generator) -> torch.Tensor:
    """A fresh random variant of the frames ``x`` (N, T, C); ``x`` itself is not changed."""
    if config.spike_dropout > 0:
        keep = torch.full_like(x, 1 - config.spike_dropout)
        x = torch.binomial(x.round().clamp_min(0), keep, generator=generator)
    for dim, reach in ((1, config.time_shift), (2, config.channel_jitter)):
        if reach > 0:
            x = _shift(x, torch.randint(-reach, reach + 1, (len(x),), generator=generator), dim)
    return x
