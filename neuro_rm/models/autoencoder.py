"""A small convolutional autoencoder: 32x32 RGB images ↔ a 4x8x8 latent grid for latent diffusion.

It plays the part of Stable Diffusion's VAE: trained once, then frozen, so the diffusion transformer
works on 256 numbers per image instead of 3,072.  It stays digital (plain torch); only the
transformer goes on crossbars.  Latents are standardised per channel (``calibrate``), the role of
SD's latent scaling factor, so the noise schedule sees unit-variance data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class AutoencoderConfig:
    image_size: int = 32
    widths: tuple[int, int] = (24, 48)  # channels at 16x16 and at 8x8
    latent_channels: int = 4

    def __post_init__(self) -> None:
        if self.image_size % 4 or min(*self.widths, self.latent_channels) < 1:
            raise ValueError(f"AutoencoderConfig needs an image size divisible by 4 and positive widths, got {self}")

    @property
    def latent_size(self) -> int:
        return self.image_size // 4


def _up(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1), nn.SiLU())


class LatentAutoencoder(nn.Module):
    def __init__(self, config: AutoencoderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or AutoencoderConfig()
        w1, w2 = config.widths
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w1, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w1, w1, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w1, w2, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w2, w2, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w2, config.latent_channels, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(config.latent_channels, w2, 3, padding=1), nn.SiLU(),
            _up(w2, w1), _up(w1, w1),
            nn.Conv2d(w1, 3, 3, padding=1), nn.Sigmoid(),
        )
        self.register_buffer("latent_mean", torch.zeros(1, config.latent_channels, 1, 1))
        self.register_buffer("latent_std", torch.ones(1, config.latent_channels, 1, 1))

    def _check(self, x: torch.Tensor) -> None:
        size = self.config.image_size
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, size, size):
            raise ValueError(f"the autoencoder expects images of shape (batch, 3, {size}, {size}), got {tuple(x.shape)}")

    def encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self.encoder(x * 2 - 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised latents (batch, C, 8, 8) of images in [0, 1]."""
        return (self.encode_raw(x) - self.latent_mean) / self.latent_std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from standardised latents."""
        return self.decoder(z * self.latent_std + self.latent_mean)

    def forward(self, x: torch.Tensor, latent_noise: float = 0.0) -> torch.Tensor:
        """Reconstruction; ``latent_noise`` (in latent std units) teaches the decoder to tolerate the
        imperfect latents a sampler produces."""
        raw = self.encode_raw(x)
        if latent_noise > 0:
            raw = raw + latent_noise * raw.detach().std() * torch.randn_like(raw)
        return self.decoder(raw)

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor, batch_size: int = 256) -> None:
        """Set the per-channel latent mean and std from ``images``."""
        raw = torch.cat([self.encode_raw(chunk) for chunk in images.split(batch_size)])
        self.latent_mean.copy_(raw.mean(dim=(0, 2, 3), keepdim=True))
        self.latent_std.copy_(raw.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6))
