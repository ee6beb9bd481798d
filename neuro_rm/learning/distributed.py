"""Data-parallel training across processes with torch.distributed, launched by ``torchrun``.

Every rank draws the same shuffled minibatch, keeps its own slice of it, and after the backward pass
the gradients are averaged over ranks with one all-reduce per parameter — the synchronisation DDP
performs, done on the parameter list the step trains (often just one adapter), so it works for every
lifecycle loss unchanged.  Backend: gloo on CPU, NCCL when CUDA is present.
"""

from __future__ import annotations

import atexit
import os

import torch
import torch.distributed as dist
from torch import nn


def init_from_env() -> bool:
    """Join the process group that ``torchrun`` describes in the environment; False when run alone."""
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        atexit.register(leave)
    return is_distributed()


def leave() -> None:
    """Tear the process group down while the interpreter is still whole.

    Left to interpreter shutdown, gloo's worker threads can be destroyed while still joinable and abort the
    process (SIGABRT, "terminate called without an active exception") after all its work succeeded.
    ``init_from_env`` registers this at exit; calling it earlier is harmless.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def shard(indices: torch.Tensor) -> torch.Tensor:
    """This rank's slice of a minibatch (all of it when run alone)."""
    if not is_distributed():
        return indices
    return indices[dist.get_rank() :: dist.get_world_size()]


def broadcast_parameters(params: list[nn.Parameter]) -> None:
    """Start every rank from rank 0's values."""
    if is_distributed():
        with torch.no_grad():
            for p in params:
                dist.broadcast(p.data, src=0)


def average_gradients(params: list[nn.Parameter]) -> None:
    if not is_distributed():
        return
    world = dist.get_world_size()
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= world
