"""The one optimisation loop every lifecycle step uses: minibatches, Adam, a step counter.

Steps differ only in their loss and in which parameters they may change, so they pass those in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from neuro_rm import work
from neuro_rm.learning import distributed
from neuro_rm.learning.augment import Augment


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    seed: int = 0
    progress: bool = False
    min_steps: int = 0  # small sets: run more epochs, until at least this many optimiser steps are budgeted
    patience: int | None = None  # stop after this many epochs without a better (smoothed) validation score ...
    patience_steps: int | None = None  # ... and not before this many optimiser steps without one (small sets: more epochs)
    smooth_epochs: int = 1  # stopping watches the median validation score of this many last epochs
    augment: Augment = Augment()  # spike dropout and shifts of the training frames (fit_classifier)
    average_last: float = 0.0  # > 0: keep the mean weights of this fraction of the last epochs run, not the best epoch
    lr_candidates: tuple[float, ...] = ()  # fit_classifier: also train from the same start at these rates, keep the best on validation

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"TrainConfig needs epochs >= 1 and batch_size >= 1, got {self.epochs}, {self.batch_size}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"TrainConfig.patience must be None or >= 1, got {self.patience}")
        if self.min_steps < 0:
            raise ValueError(f"TrainConfig.min_steps must be >= 0, got {self.min_steps}")
        if self.patience_steps is not None and self.patience_steps < 1:
            raise ValueError(f"TrainConfig.patience_steps must be None or >= 1, got {self.patience_steps}")
        if self.smooth_epochs < 1:
            raise ValueError(f"TrainConfig.smooth_epochs must be >= 1, got {self.smooth_epochs}")
        if not 0.0 <= self.average_last <= 1.0:
            raise ValueError(f"TrainConfig.average_last must be a fraction in [0, 1], got {self.average_last}")
        if not all(lr > 0 for lr in (self.lr, *self.lr_candidates)):
            raise ValueError(f"TrainConfig.lr and lr_candidates must be > 0, got {self.lr}, {self.lr_candidates}")


def epochs_for(n_samples: int, config: TrainConfig) -> int:
    """``config.epochs``, or more where that many epochs of ``n_samples`` would give fewer than ``config.min_steps`` steps."""
    return max(config.epochs, math.ceil(config.min_steps / math.ceil(n_samples / config.batch_size)))


def minibatches(n: int, batch_size: int, generator: torch.Generator) -> Iterable[torch.Tensor]:
    """Shuffled index batches covering ``n`` samples once."""
    order = torch.randperm(n, generator=generator)
    return order.split(batch_size)


def optimize(
    params: list[nn.Parameter],
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    n_samples: int,
    config: TrainConfig,
    after_epoch: Callable[[int], bool | None] | None = None,
    description: str = "train",
) -> int:
    """Minimise ``batch_loss(indices)`` over ``params`` for ``epochs_for`` epochs; returns steps taken.

    ``after_epoch(epoch)`` may return True to stop early (model selection lives in the caller).
    Under ``torchrun`` each rank trains on its slice of every minibatch and gradients are averaged.
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError(f"{description}: there are no trainable parameters")
    if n_samples < 1:
        raise ValueError(f"{description}: there are no training samples")
    distributed.broadcast_parameters(params)
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    steps = 0
    show = config.progress and distributed.rank() == 0
    try:
        with work.training(description, params) as record:  # counted when a WorkMeter is active
            for epoch in tqdm(range(epochs_for(n_samples, config)), desc=description, disable=not show, leave=False):
                for indices in minibatches(n_samples, config.batch_size, generator):
                    local = distributed.shard(indices)
                    optimizer.zero_grad(set_to_none=True)
                    if len(local):  # a rank with an empty slice still joins the gradient average
                        loss = batch_loss(local)
                        if not torch.isfinite(loss):
                            raise FloatingPointError(f"{description}: loss became {float(loss)} at step {steps}")
                        loss.backward()
                    distributed.average_gradients(params)
                    optimizer.step()
                    steps += 1
                    record.steps = steps
                if after_epoch is not None and after_epoch(epoch):
                    break
    finally:
        with torch.no_grad():  # a trained parameter keeps no gradient: memory, and a trace of the last batch
            for p in params:
                if p.grad is not None:
                    p.grad.zero_()
                    p.grad = None
    return steps
