"""Speaker-identification splits of SSC-layout data, as the public reference builds them.

Keep the ``n_speakers`` speakers with the most samples (label 0 = most samples, ties by speaker id), shuffle
each speaker's samples with a generator seeded by (seed, speaker id), put the first ``train_fraction``
(17/21) in train and the rest in test, then move ``val_fraction`` of each speaker's train samples to a
validation set so model selection never reads the test set.  A speaker's split does not depend on which
other speakers are kept, so labels and splits stay stable when a held-back speaker is enrolled later.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tonic.datasets.hsd import HSD

from neuro_rm.data.cache import cached, default_cache_dir, file_digest
from neuro_rm.data.frames import FrameConfig, to_frames
from neuro_rm.data.hsd import SpikeFile, open_folder, path_of
from neuro_rm.data.spikefile import SpikeFileInfo, check_samples, read_info

MAX_FRAME_COUNTS = 1 << 30  # spike counts binned at once (2 GiB as uint16, 4 GiB as the float32 frames)
# Samples binned (and cached on disk) at a time: memory holds the float32 frames of the chosen samples
# plus one chunk, never a file's events, so a corpus-size file streams through.
CHUNK_SAMPLES = 4096


@dataclass(frozen=True)
class SplitConfig:
    """Proportions and seed of the per-speaker split."""

    train_fraction: float = 17 / 21
    val_fraction: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.train_fraction < 1 and 0 <= self.val_fraction < 1):
            raise ValueError(f"need 0 < train_fraction < 1 and 0 <= val_fraction < 1, got {self}")


@dataclass
class SpeakerFrames:
    """Frames of one split: ``x`` (N, T, C) float32 spike counts, ``y`` speaker label, ``word`` the file's
    label (spoken word or digit), ``sample`` the row in the pooled source files (train, valid, test order)."""

    x: torch.Tensor
    y: torch.Tensor
    word: torch.Tensor
    sample: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def select(self, labels: list[int] | range) -> SpeakerFrames:
        """Only the samples of these speaker labels (labels unchanged)."""
        keep = torch.isin(self.y, torch.as_tensor(list(labels), dtype=torch.long))
        return SpeakerFrames(self.x[keep], self.y[keep], self.word[keep], self.sample[keep])


@dataclass
class SpeakerSplits:
    """Train / validation / test frames; label k is speaker ``speaker_names[k]`` (file id ``speaker_ids[k]``)."""

    train: SpeakerFrames
    val: SpeakerFrames
    test: SpeakerFrames
    speaker_names: list[str]
    speaker_ids: list[int]
    word_names: list[str]
    frames: FrameConfig
    n_channels: int
    sources: list[str]

    def select(self, labels: list[int] | range) -> SpeakerSplits:
        """The same splits restricted to some speakers, labels and names unchanged (e.g. ``range(k - 1)`` to
        pretrain without the last speaker, ``[k - 1]`` to enroll it)."""
        return SpeakerSplits(
            self.train.select(labels),
            self.val.select(labels),
            self.test.select(labels),
            self.speaker_names,
            self.speaker_ids,
            self.word_names,
            self.frames,
            self.n_channels,
            self.sources,
        )


def top_speakers(speakers: np.ndarray, n_speakers: int | None) -> list[int]:
    """Speaker ids with the most samples, largest first (ties: smaller id first); None keeps all."""
    ids, counts = np.unique(speakers, return_counts=True)
    order = np.lexsort((ids, -counts))
    if n_speakers is not None and not 1 <= n_speakers <= len(ids):
        raise ValueError(f"n_speakers must be in 1..{len(ids)} (speakers in the data), got {n_speakers}")
    return ids[order][:n_speakers].tolist()


def split_indices(speakers: np.ndarray, keep: list[int], config: SplitConfig) -> dict[str, np.ndarray]:
    """Sample indices of train / val / test for the speakers in ``keep`` (see the module docstring)."""
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for speaker in keep:
        idx = np.random.default_rng([config.seed, speaker]).permutation(np.flatnonzero(speakers == speaker))
        n_train = int(len(idx) * config.train_fraction)
        n_val = round(n_train * config.val_fraction)
        parts["val"].append(idx[:n_val])
        parts["train"].append(idx[n_val:n_train])
        parts["test"].append(idx[n_train:])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def speaker_splits(
    datasets: list[HSD],
    n_speakers: int | None = None,
    frames: FrameConfig | None = None,
    split: SplitConfig | None = None,
    cache_dir: Path | None = None,
) -> SpeakerSplits:
    """Pool tonic HSD datasets (the files of one corpus), pick speakers, bin their samples and split them
    (defaults: ``FrameConfig()``, ``SplitConfig()``, no cache)."""
    frames, split = frames or FrameConfig(), split or SplitConfig()
    infos = [read_info(path_of(ds)) for ds in datasets]
    n_channels = {info.n_channels for info in infos}
    if len(n_channels) != 1:
        raise ValueError(f"files disagree on the channel count: {sorted(n_channels)}")
    n_channels = n_channels.pop()
    speakers = np.concatenate([info.speakers for info in infos])
    words = np.concatenate([info.labels for info in infos])
    keep = top_speakers(speakers, n_speakers)
    chosen = np.flatnonzero(np.isin(speakers, keep))
    offsets = np.cumsum([0] + [len(info) for info in infos])
    counts = len(chosen) * frames.n_bins * frames.n_inputs(n_channels)
    if counts > MAX_FRAME_COUNTS:
        raise ValueError(
            f"{', '.join(str(i.path) for i in infos)}: {len(chosen)} samples x {frames.n_bins} bins x "
            f"{frames.n_inputs(n_channels)} inputs is {counts} counts, more than {MAX_FRAME_COUNTS} (MAX_FRAME_COUNTS)"
        )

    x = torch.empty((len(chosen), frames.n_bins, frames.n_inputs(n_channels)), dtype=torch.float32)
    row = 0
    for ds, info, start in zip(datasets, infos, offsets[:-1], strict=True):
        local = chosen[(chosen >= start) & (chosen < start + len(info))] - start
        digest = file_digest(info.path)
        for first in range(0, len(local), CHUNK_SAMPLES):
            block = _frames_chunk(ds, info, digest, local[first : first + CHUNK_SAMPLES], frames, n_channels, cache_dir)
            x[row : row + len(block)] = torch.from_numpy(block.astype(np.float32))
            row += len(block)
    label_of = {speaker: label for label, speaker in enumerate(keep)}

    def part(idx: np.ndarray) -> SpeakerFrames:
        return SpeakerFrames(
            x=x[torch.from_numpy(np.searchsorted(chosen, idx))],  # x rows follow the sorted ``chosen``
            y=torch.as_tensor([label_of[int(s)] for s in speakers[idx]], dtype=torch.long),
            word=torch.as_tensor(words[idx], dtype=torch.long),
            sample=torch.as_tensor(idx, dtype=torch.long),
        )

    parts = split_indices(speakers, keep, split)
    names = _merge_names(infos)
    return SpeakerSplits(
        train=part(parts["train"]),
        val=part(parts["val"]),
        test=part(parts["test"]),
        speaker_names=[names[s] for s in keep],
        speaker_ids=keep,
        word_names=infos[0].label_names,
        frames=frames,
        n_channels=n_channels,
        sources=[str(info.path) for info in infos],
    )


def _frames_chunk(
    dataset: HSD, info: SpikeFileInfo, digest: str, indices: np.ndarray, frames: FrameConfig, n_channels: int,
    cache_dir: Path | None,
) -> np.ndarray:
    """uint16 frames of some samples of one file, from the disk cache when there (checked on first binning)."""

    def compute() -> dict[str, np.ndarray]:
        check_samples(info, indices)
        return {"x": to_frames(dataset, indices, frames, n_channels)}

    key = {"file": digest, "frames": asdict(frames), "n_channels": n_channels, "samples": _digest(indices)}
    return cached(key, compute, cache_dir)["x"]


def load_speakers(
    path: str | Path,
    n_speakers: int | None = None,
    frames: FrameConfig | None = None,
    split: SplitConfig | None = None,
    cache: bool = True,
    cache_dir: Path | None = None,
) -> SpeakerSplits:
    """Speaker splits of one SSC-layout file; ``frames`` defaults to the file's ``default_frames``
    attribute (files we build store one) or the SSC reference (10 bins over 1.4 s, groups of 5)."""
    info = read_info(path)
    if frames is None:
        frames = (
            FrameConfig(**info.attrs["default_frames"]) if "default_frames" in info.attrs else FrameConfig()
        )
    dataset = SpikeFile(path, n_channels=info.n_channels)
    return speaker_splits([dataset], n_speakers, frames, split, _cache(cache, cache_dir))


def load_folder_speakers(
    root: str | Path,
    kind: str = "SSC",
    n_speakers: int | None = 5,
    frames: FrameConfig | None = None,
    split: SplitConfig | None = None,
    cache: bool = True,
    cache_dir: Path | None = None,
) -> SpeakerSplits:
    """Speaker splits of a local SSC or SHD download (all its files pooled); defaults as the reference:
    top-5 speakers, 10 bins over 1.4 s, 700 channels in groups of 5.  Never downloads."""
    return speaker_splits(open_folder(root, kind), n_speakers, frames, split, _cache(cache, cache_dir))


def _cache(cache: bool, cache_dir: Path | None) -> Path | None:
    return (cache_dir or default_cache_dir()) if cache else None


def _digest(indices: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()


def _merge_names(infos: list[SpikeFileInfo]) -> dict[int, str]:
    names: dict[int, str] = {}
    for info in infos:
        names.update(info.speaker_names)
    return names
