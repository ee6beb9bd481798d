"""Recurrent spiking network for speaker identity, on snntorch.

Input spike-count frames (batch, T, channels) → input synapses → recurrent LIF layer (snntorch
``RLeaky``, whose recurrent synapses are an ``nn.Linear``) → spike counts over time → digital readout.
Both synapse matrices are ordinary ``nn.Linear`` layers, so ``analogize`` puts them on crossbars.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn

from neuro_rm.models.heads import GrowableHead


@dataclass(frozen=True)
class RSNNConfig:
    """Defaults follow the public reference: 140 → 512 recurrent → N, decay 0.5, threshold 0.3."""

    n_inputs: int = 140
    n_hidden: int = 512
    n_outputs: int = 5
    beta: float = 0.5
    threshold: float = 0.3
    surrogate_slope: float = 25.0

    def __post_init__(self) -> None:
        if min(self.n_inputs, self.n_hidden, self.n_outputs) < 1:
            raise ValueError(f"RSNNConfig sizes must be >= 1, got {self}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"RSNNConfig.beta (membrane decay) must be in [0, 1], got {self.beta}")
        if not self.threshold > 0:
            raise ValueError(f"RSNNConfig.threshold must be > 0, got {self.threshold}")


def _steady_reads(module: nn.Module) -> AbstractContextManager:
    """A synapse read at every time step may hold the checks it makes at each read to one per loop (a
    hardware layer's ``steady_reads``: its fused branches checked once per sample batch); a plain one has
    none to hold."""
    return module.steady_reads() if hasattr(module, "steady_reads") else nullcontext()


def lif_step(
    current: torch.Tensor, spk: torch.Tensor, mem: torch.Tensor, recurrent: nn.Module, beta: float, threshold: float
) -> torch.Tensor:
    """One step of snntorch's ``RLeaky`` (reset by subtraction, delayed reset), forward only, with the
    membrane updated in place: mem ← β·mem + I + W_rec·s − θ·s; returns s' = H(mem − θ).

    In place and written straight as floats (a bool tensor converted to float costs 8× the comparison);
    the same operations in the same order as the out-of-place formula, so the same values.
    """
    mem.mul_(beta).add_(current).add_(recurrent(spk)).sub_(spk, alpha=threshold)
    return torch.gt(mem, threshold, out=torch.empty_like(mem))


# The analogue synapses of the network, by module name (the readout stays digital).
SYNAPSES = ("fc_in", "lif.recurrent")
# Where erasure rewrites cells: the input synapses alone forget a voice as fully as both matrices, with
# about a quarter of the write pulses (12k vs 44k on the bundled speakers; README, Security).
ERASE_SYNAPSES = ("fc_in",)


class SpeakerRSNN(nn.Module):
    def __init__(self, config: RSNNConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or RSNNConfig()
        self.fc_in = nn.Linear(config.n_inputs, config.n_hidden)
        self.lif = snn.RLeaky(
            beta=config.beta,
            linear_features=config.n_hidden,
            threshold=config.threshold,
            spike_grad=surrogate.fast_sigmoid(slope=config.surrogate_slope),
        )
        self.head = GrowableHead(config.n_hidden, config.n_outputs)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.config.n_inputs:
            raise ValueError(
                f"SpeakerRSNN expects frames of shape (batch, time, {self.config.n_inputs}), got {tuple(x.shape)}"
            )

    def spikes(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden spike trains, (batch, T, hidden).

        With gradients on, every step goes through snntorch's ``RLeaky`` (surrogate gradients).  With
        gradients off, ``lif_step`` computes the same dynamics with fewer tensor operations.
        """
        self._check(x)
        current = self.fc_in(x)  # all time steps in one product
        if not torch.is_grad_enabled():
            return torch.stack(list(self._inference_steps(current)), dim=1)
        spk = torch.zeros(x.shape[0], self.config.n_hidden, dtype=current.dtype, device=current.device)
        mem = torch.zeros_like(spk)
        trains = []
        with _steady_reads(self.lif.recurrent):  # nothing writes the branches between the steps of one pass
            for t in range(x.shape[1]):
                spk, mem = self.lif(current[:, t], spk, mem)
                trains.append(spk)
        self.lif.reset_mem()  # drop the graph-bound state RLeaky keeps between calls
        return torch.stack(trains, dim=1)

    def _inference_steps(self, current: torch.Tensor) -> Iterator[torch.Tensor]:
        """The spikes of each time step without autograd (``lif_step``), from the input currents (batch, T, hidden)."""
        spk = torch.zeros(current.shape[0], self.config.n_hidden, dtype=current.dtype, device=current.device)
        mem = torch.zeros_like(spk)
        with _steady_reads(self.lif.recurrent):
            for t in range(current.shape[1]):
                spk = lif_step(current[:, t], spk, mem, self.lif.recurrent, self.config.beta, self.config.threshold)
                yield spk

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Spike counts per hidden neuron, what the readout sees (without autograd: counted step by step)."""
        if torch.is_grad_enabled():
            return self.spikes(x).sum(dim=1)
        self._check(x)
        current = self.fc_in(x)
        counts = torch.zeros(current.shape[0], self.config.n_hidden, dtype=current.dtype, device=current.device)
        for spk in self._inference_steps(current):
            counts.add_(spk)
        return counts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
