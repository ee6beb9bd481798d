"""A small class-conditional diffusion transformer (DiT) on latent grids, ready for ``analogize``.

Latents (batch, C, 8, 8) are cut into p×p patches (16 tokens for p = 2), embedded by a linear layer,
given fixed 2-D sine-cosine positions and passed through transformer blocks whose LayerNorms are
modulated by the condition c = embed(timestep) + embed(class): adaLN-Zero, where each block's
shift/scale/gate come from a linear layer initialised at zero, so every block starts as the identity.
Every ``nn.Linear`` (patch embedding, timestep MLP, attention, MLP, modulation, output) is an ordinary
torch layer and goes on a crossbar; the class embedding stays digital (a table in SRAM) and can grow
a row per new style.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import Timesteps, get_2d_sincos_pos_embed
from torch import nn

NULL_CLASS = -1  # label meaning "no class": the unconditional branch of classifier-free guidance


@dataclass(frozen=True)
class DiTConfig:
    latent_channels: int = 4
    latent_size: int = 8
    patch: int = 2
    dim: int = 96
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    n_classes: int = 6

    def __post_init__(self) -> None:
        if self.latent_size % self.patch or self.dim % self.heads or (self.dim // self.heads) % 2:
            raise ValueError(f"DiTConfig: the patch must divide the latent size and dim/heads must be even, got {self}")
        if min(self.depth, self.n_classes, self.latent_channels) < 1 or self.mlp_ratio <= 0:
            raise ValueError(f"DiTConfig sizes must be positive, got {self}")

    @property
    def tokens(self) -> int:
        return (self.latent_size // self.patch) ** 2


class ClassEmbedding(nn.Module):
    """One learnt row per class plus a null row (label ``NULL_CLASS``).

    Rows added by ``grow`` are separate parameters, so a new class can learn its row while the others
    stay exactly as they were.
    """

    def __init__(self, n_classes: int, dim: int) -> None:
        super().__init__()
        self.tables = nn.ParameterList([nn.Parameter(0.02 * torch.randn(n_classes, dim))])
        self.null = nn.Parameter(torch.zeros(dim))

    @property
    def n_classes(self) -> int:
        return sum(t.shape[0] for t in self.tables)

    def grow(self, n_new: int) -> nn.Parameter:
        """Append ``n_new`` rows, each starting as the null row (the model's 'any style'); returns them."""
        if n_new < 1:
            raise ValueError(f"grow needs n_new >= 1, got {n_new}")
        rows = nn.Parameter(self.null.detach().clone().expand(n_new, -1).contiguous())
        self.tables.append(rows)
        return rows

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        n = self.n_classes
        if ((labels >= n) | (labels < NULL_CLASS)).any():
            raise ValueError(f"class labels must be in 0..{n - 1} or {NULL_CLASS} (null), got {labels.unique().tolist()}")
        table = torch.cat([*self.tables, self.null.unsqueeze(0)])
        return table[torch.where(labels == NULL_CLASS, n, labels)]


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.modulation = nn.Linear(dim, 6 * dim)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(F.silu(c)).chunk(6, dim=-1)
        x = x + gate1.unsqueeze(1) * self.attention(_modulate(self.norm1(x), shift1, scale1))
        h = _modulate(self.norm2(x), shift2, scale2)
        return x + gate2.unsqueeze(1) * self.fc2(F.gelu(self.fc1(h), approximate="tanh"))


class DiT(nn.Module):
    """ε-prediction network: ``model(z_t, t, labels)`` → predicted noise, shaped like ``z_t``."""

    def __init__(self, config: DiTConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DiTConfig()
        patch_dim = cfg.latent_channels * cfg.patch**2
        self.patch_embed = nn.Linear(patch_dim, cfg.dim)
        grid = cfg.latent_size // cfg.patch
        pos = get_2d_sincos_pos_embed(cfg.dim, grid, base_size=grid, output_type="pt")
        self.register_buffer("pos_embed", pos.float().unsqueeze(0))
        self.time_proj = Timesteps(cfg.dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_mlp = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim))
        self.class_embed = ClassEmbedding(cfg.n_classes, cfg.dim)
        self.blocks = nn.ModuleList(DiTBlock(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(cfg.dim, elementwise_affine=False, eps=1e-6)
        self.modulation_out = nn.Linear(cfg.dim, 2 * cfg.dim)
        self.out = nn.Linear(cfg.dim, patch_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for m in [*(b.modulation for b in self.blocks), self.modulation_out, self.out]:
            nn.init.zeros_(m.weight)  # adaLN-Zero: blocks and output start at zero

    def patchify(self, z: torch.Tensor) -> torch.Tensor:
        b, c, h, w = z.shape
        p = self.config.patch
        return z.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), c * p * p)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        b, p, g = tokens.shape[0], cfg.patch, cfg.latent_size // cfg.patch
        x = tokens.view(b, g, g, cfg.latent_channels, p, p).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(b, cfg.latent_channels, cfg.latent_size, cfg.latent_size)

    def forward(self, z: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if z.dim() != 4 or tuple(z.shape[1:]) != (cfg.latent_channels, cfg.latent_size, cfg.latent_size):
            raise ValueError(
                f"DiT expects latents of shape (batch, {cfg.latent_channels}, {cfg.latent_size}, {cfg.latent_size}), "
                f"got {tuple(z.shape)}"
            )
        x = self.patch_embed(self.patchify(z)) + self.pos_embed
        c = self.time_mlp(self.time_proj(t.reshape(-1)).to(z.dtype)) + self.class_embed(labels)
        for block in self.blocks:
            x = block(x, c)
        shift, scale = self.modulation_out(F.silu(c)).chunk(2, dim=-1)
        return self.unpatchify(self.out(_modulate(self.norm_out(x), shift, scale)))
