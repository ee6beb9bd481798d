"""The reference's MLP-Mixer for faces, with a growable digital readout.

Images (batch, 1, 64, 64) are area-averaged to 16×16, cut into 4×4 patches (16 tokens of 16
pixels), embedded to 20 channels, then mixed by 2 blocks of token-mixing and channel-mixing MLPs
(hidden width 32, RMSNorm before each, residual connections, no biases anywhere in the mixer).
Every matrix is an ordinary ``nn.Linear``, so ``analogize`` puts all of them on crossbars; the
norms' gains and the readout stay digital.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from neuro_rm.models.cnn import check_images
from neuro_rm.models.heads import GrowableHead


@dataclass(frozen=True)
class MixerConfig:
    image_size: int = 64
    grid: int = 16  # the image is downsampled to grid × grid first
    patch: int = 4
    channels: int = 20
    hidden: int = 32
    depth: int = 2
    n_classes: int = 5

    def __post_init__(self) -> None:
        if min(self.image_size, self.grid, self.patch, self.channels, self.hidden, self.depth, self.n_classes) < 1:
            raise ValueError(f"MixerConfig sizes must be >= 1, got {self}")
        if self.image_size % self.grid or self.grid % self.patch:
            raise ValueError(
                f"MixerConfig needs image_size divisible by grid and grid by patch, got "
                f"{self.image_size}, {self.grid}, {self.patch}"
            )

    @property
    def tokens(self) -> int:
        return (self.grid // self.patch) ** 2


def mlp(width: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, hidden, bias=False), nn.GELU(), nn.Linear(hidden, width, bias=False))


class MixerBlock(nn.Module):
    """Mix across tokens (per channel), then across channels (per token)."""

    def __init__(self, tokens: int, channels: int, hidden: int) -> None:
        super().__init__()
        self.token_norm = nn.RMSNorm(channels)
        self.token_mlp = mlp(tokens, hidden)
        self.channel_norm = nn.RMSNorm(channels)
        self.channel_mlp = mlp(channels, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, tokens, channels)
        x = x + self.token_mlp(self.token_norm(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.channel_norm(x))


class FaceMixer(nn.Module):
    def __init__(self, config: MixerConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MixerConfig()
        self.embed = nn.Linear(config.patch**2, config.channels, bias=False)
        self.blocks = nn.Sequential(*(MixerBlock(config.tokens, config.channels, config.hidden) for _ in range(config.depth)))
        self.norm = nn.RMSNorm(config.channels)
        self.head = GrowableHead(config.channels, config.n_classes)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, patch²) pixels of the downsampled image."""
        check_images(x, self.config.image_size, "FaceMixer")
        small = F.adaptive_avg_pool2d(x, self.config.grid)
        return F.unfold(small, self.config.patch, stride=self.config.patch).transpose(1, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the readout sees: the normalised tokens, averaged."""
        return self.norm(self.blocks(self.embed(self.patches(x)))).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
