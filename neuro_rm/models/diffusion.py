"""Latent diffusion around the DiT: noise schedules and samplers from ``diffusers``, and generation.

Training noise comes from a ``DDPMScheduler`` (``add_noise`` at random timesteps); sampling uses a
``DDIMScheduler`` built from the same configuration, so the two always agree on the schedule, with
few deterministic steps and classifier-free guidance (conditional and null-class predictions, mixed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from neuro_rm.models.autoencoder import LatentAutoencoder
from neuro_rm.models.dit import NULL_CLASS


@dataclass(frozen=True)
class ScheduleConfig:
    train_timesteps: int = 1000
    beta_schedule: str = "linear"
    sample_steps: int = 20
    guidance: float = 3.0  # classifier-free guidance weight; 1 = conditional prediction only
    batch_size: int = 256  # samples denoised at once

    def __post_init__(self) -> None:
        if not 1 <= self.sample_steps <= self.train_timesteps:
            raise ValueError(f"sample_steps must be in 1..{self.train_timesteps}, got {self.sample_steps}")
        if self.guidance < 1:
            raise ValueError(f"guidance must be >= 1 (1: no guidance), got {self.guidance}")


def training_scheduler(config: ScheduleConfig) -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=config.train_timesteps, beta_schedule=config.beta_schedule)


def sampling_scheduler(config: ScheduleConfig) -> DDIMScheduler:
    """DDIM on the training schedule; 'trailing' spacing starts at the last timestep, as few steps need."""
    scheduler = DDIMScheduler.from_config(training_scheduler(config).config, clip_sample=False, timestep_spacing="trailing")
    scheduler.set_timesteps(config.sample_steps)
    return scheduler


def noisy_latents(
    scheduler: DDPMScheduler, z0: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z_t, t, noise): clean latents noised at uniformly drawn timesteps."""
    t = torch.randint(scheduler.config.num_train_timesteps, (len(z0),), generator=generator)
    noise = torch.randn(z0.shape, generator=generator)
    return scheduler.add_noise(z0, noise, t), t, noise


@torch.no_grad()
def sample_latents(denoiser: nn.Module, labels: torch.Tensor, shape: tuple[int, int, int], config: ScheduleConfig,
                   seed: int = 0) -> torch.Tensor:
    """Latents (N, *shape) for class ``labels`` by guided DDIM, starting from seeded noise."""
    was_training = denoiser.training
    denoiser.eval()
    generator = torch.Generator().manual_seed(seed)
    out = []
    for chunk in labels.split(config.batch_size):
        scheduler = sampling_scheduler(config)
        z = torch.randn((len(chunk), *shape), generator=generator)
        both = torch.cat([chunk, torch.full_like(chunk, NULL_CLASS)])
        for t in scheduler.timesteps:
            conditional, unconditional = denoiser(torch.cat([z, z]), t.expand(2 * len(chunk)), both).chunk(2)
            eps = unconditional + config.guidance * (conditional - unconditional)
            z = scheduler.step(eps, t, z).prev_sample
        out.append(z)
    denoiser.train(was_training)
    return torch.cat(out) if out else torch.empty(0, *shape)


@torch.no_grad()
def generate(denoiser: nn.Module, autoencoder: LatentAutoencoder, labels: torch.Tensor, config: ScheduleConfig,
             seed: int = 0) -> torch.Tensor:
    """Images (N, 3, 32, 32) in [0, 1] of the requested classes."""
    ac = autoencoder.config
    shape = (ac.latent_channels, ac.latent_size, ac.latent_size)
    return autoencoder.decode(sample_latents(denoiser, labels, shape, config, seed))
