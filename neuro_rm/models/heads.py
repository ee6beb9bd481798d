"""A digital readout that can grow a row per new class and train only the rows it is told to."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GrowableHead(nn.Module):
    """Linear readout held in digital registers (SRAM), one row per class.

    Enrolling a class appends a row; ``train_rows`` restricts learning to chosen rows (the others get
    zero gradient), so a new class can be learnt without touching the old ones.
    """

    def __init__(self, in_features: int, n_classes: int) -> None:
        super().__init__()
        if in_features < 1 or n_classes < 1:
            raise ValueError(f"a head needs in_features >= 1 and n_classes >= 1, got {in_features}, {n_classes}")
        init = nn.Linear(in_features, n_classes)
        self.weight = nn.Parameter(init.weight.detach().clone())
        self.bias = nn.Parameter(init.bias.detach().clone())
        self._row_mask: torch.Tensor | None = None
        for p in (self.weight, self.bias):
            p.register_hook(self._mask_gradient)

    @property
    def n_classes(self) -> int:
        return self.weight.shape[0]

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    def _mask_gradient(self, grad: torch.Tensor) -> torch.Tensor:
        if self._row_mask is None:
            return grad
        mask = self._row_mask.to(grad.dtype)
        return grad * (mask.view(-1, 1) if grad.dim() == 2 else mask)

    def train_rows(self, rows: list[int] | None) -> None:
        """Let only ``rows`` learn (None: all rows learn)."""
        if rows is None:
            self._row_mask = None
            return
        bad = [r for r in rows if not 0 <= r < self.n_classes]
        if bad:
            raise ValueError(f"head rows {bad} out of range for {self.n_classes} classes")
        mask = torch.zeros(self.n_classes, dtype=torch.bool)
        mask[rows] = True
        self._row_mask = mask

    def grow(self, n_new: int = 1, seed: int = 0) -> list[int]:
        """Append ``n_new`` freshly initialised rows; returns their indices."""
        if n_new < 1:
            raise ValueError(f"grow needs n_new >= 1, got {n_new}")
        fresh = nn.Linear(self.in_features, n_new)
        generator = torch.Generator().manual_seed(seed)
        bound = 1.0 / self.in_features**0.5
        with torch.no_grad():
            w = (torch.rand(n_new, self.in_features, generator=generator) * 2 - 1) * bound
            fresh.weight.copy_(w)
            fresh.bias.zero_()
        start = self.n_classes
        self.weight = nn.Parameter(torch.cat([self.weight.detach(), fresh.weight.detach().to(self.weight)]))
        self.bias = nn.Parameter(torch.cat([self.bias.detach(), fresh.bias.detach().to(self.bias)]))
        for p in (self.weight, self.bias):
            p.register_hook(self._mask_gradient)
        self._row_mask = None
        return list(range(start, self.n_classes))

    def snapshot(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A detached copy of every row (weight, bias): what ``revert`` puts back if an operation fails."""
        return self.weight.detach().clone(), self.bias.detach().clone()

    def revert(self, rows: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Put back a ``snapshot``, its number of rows included (an interrupted enrolment has grown one).  With
        the same number of rows the values are copied into the parameters an optimiser may hold."""
        weight, bias = rows
        if weight.dim() != 2 or weight.shape[1] != self.in_features or bias.shape != weight.shape[:1]:
            raise ValueError(f"a head snapshot must be (rows, {self.in_features}) and (rows,), got "
                             f"{tuple(weight.shape)} and {tuple(bias.shape)}")
        if weight.shape == self.weight.shape:
            with torch.no_grad():
                self.weight.copy_(weight)
                self.bias.copy_(bias)
            return
        trains = self.weight.requires_grad
        self.weight = nn.Parameter(weight.clone().to(self.weight), requires_grad=trains)
        self.bias = nn.Parameter(bias.clone().to(self.bias), requires_grad=trains)
        for p in (self.weight, self.bias):
            p.register_hook(self._mask_gradient)
        self._row_mask = None

    def resize(self, n_classes: int) -> None:
        """Match a saved state with ``n_classes`` rows before loading it."""
        if n_classes > self.n_classes:
            self.grow(n_classes - self.n_classes)

    def erase_row(self, row: int) -> None:
        """Zero a class's readout and make it unreachable (its bias goes to -inf-like)."""
        with torch.no_grad():
            self.weight[row].zero_()
            self.bias[row] = -1e4

    def copy_row(self, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A detached copy of a class's (weight, bias): its voiceprint, as someone holding an old state has it."""
        return self.weight[row].detach().clone(), self.bias[row].detach().clone()

    def write_row(self, row: int, voiceprint: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Put a (weight, bias) copy back into ``row``."""
        with torch.no_grad():
            self.weight[row] = voiceprint[0]
            self.bias[row] = voiceprint[1]

    def reset_rows(self, rows: list[int], seed: int = 0) -> None:
        """Re-initialise ``rows`` as fresh rows (what they learnt before is overwritten, not kept)."""
        generator = torch.Generator().manual_seed(seed)
        bound = 1.0 / self.in_features**0.5
        with torch.no_grad():
            for row in rows:
                self.weight[row] = (torch.rand(self.in_features, generator=generator) * 2 - 1) * bound
                self.bias[row] = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)
