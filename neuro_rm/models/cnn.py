"""A small convolutional face classifier whose convolutions and hidden layer go on crossbars.

Images (batch, 1, 64, 64) → area-averaged to 32×32 → [3×3 conv → ReLU → 2×2 max-pool] per stage →
average-pool to 4×4 →
hidden linear layer → ReLU → digital readout.  Every ``Conv2d`` and ``Linear`` is an ordinary torch
layer, so ``analogize`` converts all of them; the readout is a ``GrowableHead`` (SRAM), which it leaves
alone, so a new person can get a new row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from neuro_rm.models.heads import GrowableHead


def check_images(x: torch.Tensor, size: int, model: str) -> None:
    """Refuse anything but a batch of single-channel ``size``×``size`` images, naming what was expected."""
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, size, size):
        raise ValueError(f"{model} expects images of shape (batch, 1, {size}, {size}), got {tuple(x.shape)}")


@dataclass(frozen=True)
class FaceCNNConfig:
    image_size: int = 64
    downsample: int = 2  # area-average by this factor first: a quarter of the work, same validation accuracy
    channels: tuple[int, ...] = (8, 16, 32)
    pooled: int = 4  # side of the feature map the hidden layer reads
    hidden: int = 64
    n_classes: int = 5

    def __post_init__(self) -> None:
        if not self.channels or min(self.channels) < 1 or min(self.hidden, self.n_classes, self.pooled, self.downsample) < 1:
            raise ValueError(f"FaceCNNConfig sizes must be >= 1, got {self}")
        needed = self.pooled * 2 ** len(self.channels) * self.downsample
        if self.image_size < needed or self.image_size % self.downsample:
            raise ValueError(
                f"FaceCNNConfig: downsampling by {self.downsample}, {len(self.channels)} pooling stages and a "
                f"{self.pooled}x{self.pooled} map need images of at least {needed} pixels, divisible by "
                f"{self.downsample}; got {self.image_size}"
            )


class FaceCNN(nn.Module):
    def __init__(self, config: FaceCNNConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FaceCNNConfig()
        stages: list[nn.Module] = []
        previous = 1
        for width in config.channels:
            stages += [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            previous = width
        self.conv = nn.Sequential(nn.AvgPool2d(config.downsample), *stages, nn.AdaptiveAvgPool2d(config.pooled), nn.Flatten())
        self.fc = nn.Linear(previous * config.pooled**2, config.hidden)
        self.head = GrowableHead(config.hidden, config.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the readout sees: the hidden layer's activity."""
        check_images(x, self.config.image_size, "FaceCNN")
        return torch.relu(self.fc(self.conv(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
