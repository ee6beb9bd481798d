"""Digital branches held in SRAM beside a crossbar: low-rank adapters ΔW = (α/r)·B·A, and full-rank ones.

An adapter only stores its factors and how precisely SRAM holds them; the hybrid layer decides how the
factors meet the input (a matrix product for linear layers, a convolution then a 1x1 convolution for
convolutional ones).  B starts at zero, so a new adapter changes nothing until it is trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

PRECISION_BITS = {"fp32": 32, "fp16": 16, "int8": 8}


@dataclass(frozen=True)
class AdapterConfig:
    """How a LoRA branch is shaped and stored: rank r, scale α (ΔW = (α/r)·B·A) and SRAM precision."""

    rank: int = 8
    alpha: float = 16.0
    precision: str = "fp32"
    full_rank: bool = False  # ΔW held as one matrix (``DenseAdapter``); rank and alpha then play no part

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank <= 0:
            raise ValueError(f"adapter rank must be a positive integer, got {self.rank!r}")
        if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"adapter alpha must be a finite number > 0, got {self.alpha!r}")
        if self.precision not in PRECISION_BITS:
            raise ValueError(f"adapter precision must be one of {sorted(PRECISION_BITS)}, got {self.precision!r}")
        if not isinstance(self.full_rank, bool):
            raise TypeError(f"adapter full_rank must be True or False, got {self.full_rank!r}")


def widest(precisions: list[str]) -> str:
    """The widest of ``precisions``: what a fused ΔW of adapters held at them is stored at."""
    return max(precisions, key=PRECISION_BITS.__getitem__)


def quantize(t: torch.Tensor, precision: str, per_row: bool = False) -> torch.Tensor:
    """Round a tensor to what SRAM of ``precision`` would hold; gradients pass straight through.

    int8 uses one scale for the tensor, or one per row (``per_row``: a weight matrix's output rows, so a
    row of small entries is not rounded away beside a row of large ones).
    """
    if precision == "fp32":
        return t
    if precision == "fp16":
        held = t.to(torch.float16).to(t.dtype)
    else:
        peak = t.detach().abs().amax(dim=1, keepdim=True) if per_row else t.detach().abs().max()
        scale = peak.clamp_min(1e-12) / 127.0
        held = torch.round(t / scale).clamp(-127, 127) * scale
    return t + (held - t).detach()


class Branch(nn.Module):
    """What every digital branch shares: the tensors SRAM holds (``held``), their cost, and their erasure."""

    rank: int
    alpha: float
    precision: str

    @property
    def held(self) -> tuple[torch.Tensor, ...]:
        """The tensors SRAM holds: every parameter, in the order registered (read straight from the module's
        table: a fused layer gathers them at every inference call).  Where the branch has submodules, as
        ``torch.nn.utils.parametrize`` adds, also theirs, parameters and buffers: a parametrised factor is
        its stored ``original`` and whatever state the parametrisation keeps (a mask); state it keeps in
        plain Python attributes is beyond any check."""
        if not self._modules:
            return tuple(self._parameters.values())
        return (*self.parameters(), *self.buffers())

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def delta_weight(self) -> torch.Tensor:
        raise NotImplementedError

    def macs(self, fan_in: int, fan_out: int) -> int:
        """Multiply-accumulates of one read of the branch on its own, per input vector."""
        raise NotImplementedError

    def delta_macs(self) -> int:
        """Multiply-accumulates of forming ΔW (what folding it into a fused ΔW costs)."""
        raise NotImplementedError

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.held)

    @property
    def bits(self) -> int:
        return self.n_params * PRECISION_BITS[self.precision]

    def erase(self) -> None:
        """Overwrite the held tensors with zeros and drop their storage (a forgotten branch leaves nothing)."""
        with torch.no_grad():
            for p in self.held:
                p.zero_()
                if p.grad is not None:
                    p.grad.zero_()  # a caller may hold the gradient too
                    p.grad = None
                p.data = torch.empty(0)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}, precision={self.precision}, params={self.n_params}"


class LoRAAdapter(Branch):
    """Factors A (rank x fan_in) and B (fan_out x rank) with scale α/r."""

    def __init__(self, fan_in: int, fan_out: int, config: AdapterConfig = AdapterConfig(), seed: int = 0):
        super().__init__()
        if not isinstance(config, AdapterConfig):
            raise TypeError(f"LoRAAdapter takes an AdapterConfig (rank, alpha, precision), got {type(config).__name__}")
        rank = config.rank
        self.rank, self.alpha, self.precision = rank, float(config.alpha), config.precision
        generator = torch.Generator().manual_seed(seed)
        bound = 1.0 / math.sqrt(fan_in)  # Kaiming-uniform-like spread, as for a fresh linear layer
        self.a = nn.Parameter((torch.rand(rank, fan_in, generator=generator) * 2 - 1) * bound)
        self.b = nn.Parameter(torch.zeros(fan_out, rank))

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, B) as SRAM holds them."""
        return quantize(self.a, self.precision), quantize(self.b, self.precision)

    def delta_weight(self) -> torch.Tensor:
        """ΔW = (α/r)·B·A, shape (fan_out, fan_in)."""
        a, b = self.factors()
        return self.scale * b @ a

    def macs(self, fan_in: int, fan_out: int) -> int:
        return self.rank * (fan_in + fan_out)

    def delta_macs(self) -> int:
        return self.rank * self.b.shape[0] * self.a.shape[1]


class DenseAdapter(Branch):
    """A full-rank branch: ΔW held as one (fan_out x fan_in) matrix, starting at zero.  What consolidation
    folds branches into: a LoRA branch of rank fan_in with an identity A would hold fan_in² more numbers,
    which every save and every check of a fused ΔW would carry."""

    def __init__(self, fan_in: int, fan_out: int, config: AdapterConfig = AdapterConfig(full_rank=True)):
        super().__init__()
        self.rank, self.alpha, self.precision = min(fan_in, fan_out), 1.0, config.precision
        self.b = nn.Parameter(torch.zeros(fan_out, fan_in))

    @property
    def scale(self) -> float:
        return 1.0

    def delta_weight(self) -> torch.Tensor:
        return quantize(self.b, self.precision)

    def macs(self, fan_in: int, fan_out: int) -> int:
        return fan_in * fan_out

    def delta_macs(self) -> int:
        return self.b.numel()


def make_branch(fan_in: int, fan_out: int, config: AdapterConfig, seed: int = 0) -> Branch:
    """The branch ``config`` describes: low-rank, or full-rank (``full_rank``)."""
    return DenseAdapter(fan_in, fan_out, config) if config.full_rank else LoRAAdapter(fan_in, fan_out, config, seed)
