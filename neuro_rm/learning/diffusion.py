"""The diffusion lifecycle on the hybrid core: learn styles, forget some with a LoRA branch, learn new
ones with another — every stage through the one optimisation loop (``learning.loop.optimize``).

Forgetting follows concept ablation (Kumari et al., "Ablating Concepts in Text-to-Image Diffusion
Models", ICCV 2023): for a forgotten style f the branch is trained so that ε(z_t, f) matches what the
deployed base, without any branch, predicts for a retained *anchor* style at the same z_t; the
retained styles keep their ordinary denoising loss (the retain term).  Asking for style f then paints
the anchor style, and the analogue weights are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm.learning.loop import TrainConfig, optimize
from neuro_rm.lora import AdapterConfig
from neuro_rm.models.autoencoder import LatentAutoencoder
from neuro_rm.models.diffusion import ScheduleConfig, noisy_latents, sample_latents, training_scheduler
from neuro_rm.models.dit import NULL_CLASS


@dataclass(frozen=True)
class DenoiseConfig:
    train: TrainConfig = TrainConfig(epochs=120, lr=2e-3, batch_size=64)
    p_uncond: float = 0.1  # share of labels dropped to the null class (classifier-free guidance)

    def __post_init__(self) -> None:
        if not 0 <= self.p_uncond < 1:
            raise ValueError(f"p_uncond must be in [0, 1), got {self.p_uncond}")


@dataclass(frozen=True)
class BranchConfig:
    """A LoRA branch: rank, alpha, and which hybrid layers carry it (None: all of them)."""

    rank: int = 4
    alpha: float = 8.0
    layers: tuple[str, ...] | None = None  # words a layer's qualified name must contain, e.g. ("modulation",)


def add_branch(model: nn.Module, name: str, config: BranchConfig) -> list[nn.Parameter]:
    """Add LoRA branch ``name`` to the hybrid layers ``config.layers`` selects; returns its parameters."""
    names = [n for n, _ in hybrid.hybrid_layers(model)]
    if config.layers is not None:
        names = [n for n in names if any(word in n for word in config.layers)]
        if not names:
            raise ValueError(f"no hybrid layer name contains any of {config.layers}")
    params = hybrid.add_adapter(model, name, AdapterConfig(config.rank, config.alpha), names)
    hybrid.activate_adapter(model, name)
    return params


@dataclass(frozen=True)
class ForgetConfig:
    """Forgetting: its training run (labels of kept samples still dropped for guidance), the anchor class
    a forgotten one is pulled to, and the weight of the forget term against the retain term."""

    denoise: DenoiseConfig = DenoiseConfig(train=TrainConfig(epochs=10, lr=2e-3, batch_size=64))
    anchor: int = 0
    forget_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.forget_weight > 0:
            raise ValueError(f"forget_weight must be > 0, got {self.forget_weight}")


def train_autoencoder(autoencoder: LatentAutoencoder, images: torch.Tensor, config: TrainConfig,
                      latent_noise: float = 0.1) -> int:
    """Fit the reconstruction, then fix the latent scaling on the same images; returns steps."""

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(autoencoder(images[idx], latent_noise), images[idx])

    autoencoder.train()
    steps = optimize(list(autoencoder.parameters()), batch_loss, len(images), config, description="autoencoder")
    autoencoder.eval()
    autoencoder.calibrate(images)
    return steps


@torch.no_grad()
def encode(autoencoder: LatentAutoencoder, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([autoencoder.encode(chunk) for chunk in images.split(batch_size)])


def _drop_labels(labels: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    return torch.where(torch.rand(len(labels), generator=generator) < p, NULL_CLASS, labels)


def train_denoiser(model: nn.Module, params: list[nn.Parameter], latents: torch.Tensor, labels: torch.Tensor,
                   schedule: ScheduleConfig, config: DenoiseConfig, description: str = "denoiser") -> int:
    """Ordinary ε-prediction training of ``params`` (all weights, or a branch and new rows); returns steps."""
    scheduler = training_scheduler(schedule)
    generator = torch.Generator().manual_seed(config.train.seed)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        z_t, t, noise = noisy_latents(scheduler, latents[idx], generator)
        return F.mse_loss(model(z_t, t, _drop_labels(labels[idx], config.p_uncond, generator)), noise)

    model.train()
    steps = optimize(params, batch_loss, len(latents), config.train, description=description)
    model.eval()
    return steps


def forget_styles(model: nn.Module, params: list[nn.Parameter], latents: torch.Tensor, labels: torch.Tensor,
                  forget: list[int], schedule: ScheduleConfig, config: ForgetConfig,
                  teacher: nn.Module | None = None, description: str = "forget styles") -> int:
    """Train ``params`` (a LoRA branch) so that asking for a style in ``forget`` paints ``config.anchor``.

    ``latents``/``labels`` hold the forgotten and the retained styles' training images.  Each step
    noises a batch; the forget term asks ε(z_t, f) (f drawn from ``forget``) to equal the teacher's
    ε(z_t, anchor) on every sample, the retain term is the denoising loss of the retained samples.
    The teacher is ``model``'s analogue base with its branches switched off, or a frozen copy of the
    network when every weight is trained (the full fine-tuning baseline).  Returns steps.
    """
    if not forget or config.anchor in forget:
        raise ValueError(f"forget needs at least one style and an anchor outside it, got {forget}, anchor {config.anchor}")
    scheduler = training_scheduler(schedule)
    dn = config.denoise
    generator = torch.Generator().manual_seed(dn.train.seed)
    gone = torch.tensor(forget)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        z_t, t, noise = noisy_latents(scheduler, latents[idx], generator)
        y = labels[idx]
        keep = ~torch.isin(y, gone)
        with torch.no_grad(), hybrid.disable_adapters(model):
            target = (model if teacher is None else teacher)(z_t, t, torch.full_like(y, config.anchor))
        asked = gone[torch.randint(len(gone), (len(y),), generator=generator)]
        n_keep = int(keep.sum())
        kept_labels = _drop_labels(y[keep], dn.p_uncond, generator)
        pred = model(torch.cat([z_t[keep], z_t]), torch.cat([t[keep], t]), torch.cat([kept_labels, asked]))
        forget_term = F.mse_loss(pred[n_keep:], target)
        retain_term = F.mse_loss(pred[:n_keep], noise[keep]) if n_keep else pred.sum() * 0
        return retain_term + config.forget_weight * forget_term

    model.train()
    steps = optimize(params, batch_loss, len(latents), dn.train, description=description)
    model.eval()
    return steps


def calibrate_adc(model: nn.Module, n_classes: int, per_class: int, shape: tuple[int, int, int], schedule: ScheduleConfig,
                  seed: int) -> None:
    """Fix every crossbar's ADC full scale over whole guided-DDIM trajectories of ``per_class`` samples of each
    of ``n_classes`` classes (conditional and null-class passes, every timestep), accumulated.

    One batch would calibrate for one timestep only; a later step, or a class never seen, would saturate.
    Like hardware, this sets the periphery's full-scale registers: no cell is written.  Use a noise seed of
    its own, not the one samples are judged on.
    """
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    with hybrid.calibrating(model):
        sample_latents(model, labels, shape, schedule, seed)
