"""Labelled tensors as the lifecycle steps pass them around."""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Integer types a set of frames is packed into, narrowest first (``pack_frames``).
PACKED_DTYPES = (torch.uint8, torch.int16)


def pack_frames(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the narrowest integer type that holds every value exactly, or ``x`` itself if none does.

    Spike-count frames are small non-negative integers: a kept set of them needs a byte a value, not
    float32's four, and loses nothing (``x.float()`` gives the same frames back)."""
    if x.is_complex() or x.dtype == torch.bool:
        return x
    if x.numel() == 0:
        return x.to(PACKED_DTYPES[0])
    if x.is_floating_point() and torch.signbit(x[x == 0]).any():
        return x  # a negative zero would come back positive
    lowest, highest = x.min(), x.max()
    for dtype in PACKED_DTYPES:
        info = torch.iinfo(dtype)
        if lowest >= info.min and highest <= info.max and torch.equal(x.to(dtype).to(x.dtype), x):
            return x.to(dtype)
    return x


@dataclass
class LabelledSet:
    """Inputs and integer labels of equal length."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"inputs and labels differ in length: {len(self.x)} vs {len(self.y)}")
        self.y = self.y.long()

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> LabelledSet:
        """The same samples on ``device`` (no copy when they are there already)."""
        return LabelledSet(self.x.to(device), self.y.to(device))

    def where(self, mask: torch.Tensor) -> LabelledSet:
        return LabelledSet(self.x[mask], self.y[mask])

    def of_classes(self, classes: list[int] | set[int]) -> LabelledSet:
        return self.where(torch.isin(self.y, torch.tensor(sorted(classes), dtype=torch.long)))

    def without_classes(self, classes: list[int] | set[int]) -> LabelledSet:
        return self.where(~torch.isin(self.y, torch.tensor(sorted(classes), dtype=torch.long)))

    def subsample(self, per_class: int, seed: int = 0) -> LabelledSet:
        """At most ``per_class`` samples of each class, chosen with a fixed seed (a replay buffer)."""
        generator = torch.Generator().manual_seed(seed)
        keep = []
        for c in torch.unique(self.y):
            idx = torch.nonzero(self.y == c).flatten()
            keep.append(idx[torch.randperm(len(idx), generator=generator)[:per_class]])
        return LabelledSet(self.x[torch.cat(keep)], self.y[torch.cat(keep)]) if keep else self

    def class_weights(self, n_classes: int) -> torch.Tensor:
        """Cross-entropy weights that give every present class the same total weight (absent classes: 0)."""
        counts = torch.bincount(self.y, minlength=n_classes).float()
        present = counts > 0
        return torch.where(present, counts.sum() / (counts.clamp_min(1) * present.sum()), torch.zeros_like(counts))

    @staticmethod
    def concat(*sets: LabelledSet) -> LabelledSet:
        sets = [s for s in sets if len(s)]
        return LabelledSet(torch.cat([s.x for s in sets]), torch.cat([s.y for s in sets]))
