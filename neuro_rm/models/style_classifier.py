"""A small digital CNN that tells the painting style of a 32x32 RGB image: the judge of generated samples.

It is trained on real dataset images only and never sees a generated one, so the share of samples it
assigns to the requested style measures whether the generator paints that style.  ``features`` (the
pooled activity before the readout) feeds the kernel inception distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class StyleClassifierConfig:
    widths: tuple[int, int, int] = (16, 32, 64)
    n_classes: int = 10

    def __post_init__(self) -> None:
        if min(*self.widths, self.n_classes) < 1:
            raise ValueError(f"StyleClassifierConfig sizes must be >= 1, got {self}")


class StyleClassifier(nn.Module):
    def __init__(self, config: StyleClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or StyleClassifierConfig()
        w1, w2, w3 = config.widths
        self.body = nn.Sequential(
            nn.Conv2d(3, w1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w1, w2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w2, w3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(w3, config.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"StyleClassifier expects RGB images (batch, 3, H, W), got {tuple(x.shape)}")
        return self.body(x * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
