"""Spike events → frames of spike counts: T time bins from t=0 to a max time, channels summed in groups."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tonic.transforms as T
from tonic.datasets.hsd import HSD


@dataclass(frozen=True)
class FrameConfig:
    """``n_bins`` equal bins over [0, ``max_time``) seconds (later events are dropped) and ``group``
    adjacent channels summed into one input; the reference speaker task uses 10 × 1.4 s and 700 → 140."""

    n_bins: int = 10
    max_time: float = 1.4
    group: int = 5

    def __post_init__(self) -> None:
        if self.n_bins < 1 or self.group < 1 or not self.max_time > 0:
            raise ValueError(f"need n_bins >= 1, group >= 1 and max_time > 0, got {self}")

    @property
    def bin_us(self) -> int:
        """Bin width in whole microseconds (tonic's time unit), so every sample gets exactly n_bins."""
        return max(1, round(self.max_time * 1e6 / self.n_bins))

    def n_inputs(self, n_channels: int) -> int:
        return math.ceil(n_channels / self.group)


def _sort_by_time(events: np.ndarray) -> np.ndarray:
    # tonic slices with searchsorted, which needs time-ordered events; SSC files are ordered, be safe anyway
    return events[np.argsort(events["t"], kind="stable")]


def frame_transform(config: FrameConfig, n_channels: int) -> T.Compose:
    """The tonic transform from one sample's events to a (n_bins, 1, n_inputs) count array."""
    return T.Compose(
        [
            _sort_by_time,
            T.Downsample(spatial_factor=1 / config.group),  # channel c → group floor(c / group)
            T.ToFrame(
                sensor_size=(config.n_inputs(n_channels), 1, 1),
                time_window=config.bin_us,
                start_time=0,
                end_time=config.bin_us * config.n_bins,
            ),
        ]
    )


def to_frames(dataset: HSD, indices: Sequence[int], config: FrameConfig, n_channels: int) -> np.ndarray:
    """Frames of the given samples of a tonic HSD dataset, shape (len(indices), n_bins, n_inputs), uint16."""
    dataset.transform = frame_transform(config, n_channels)
    out = np.zeros((len(indices), config.n_bins, config.n_inputs(n_channels)), dtype=np.uint16)
    for row, i in enumerate(indices):
        frame = dataset[int(i)][0]
        if frame.dtype.names is None:  # tonic hands an empty sample back as events: it stays all zeros
            out[row] = frame.reshape(config.n_bins, -1)
    return out
