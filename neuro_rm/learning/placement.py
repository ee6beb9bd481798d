"""Where tensors live: ``auto`` | ``cpu`` | ``cuda[:N]`` → a torch device, with a one-line error when absent.

Random draws of the simulated cells come from seeded CPU generators and are then moved to the cells'
device, so a seed gives the same draws on every device (see ``device.CellArray``).
"""

from __future__ import annotations

import itertools

import torch

CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | torch.device | None = "cpu") -> torch.device:
    """``auto``: the GPU when CUDA is present, else the CPU; ``None`` is the CPU (the default)."""
    if name is None:
        return torch.device("cpu")
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device must be one of {CHOICES} (or cuda:N), got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be one of {CHOICES} (or cuda:N), got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: no CUDA GPU is available here (use --device cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    return device


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (the CPU for a model with neither)."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return torch.device("cpu") if first is None else first.device
