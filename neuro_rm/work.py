"""Counting the operations a network performs, pass by pass and training stage by training stage.

Energy is computed from counted work, never from parameter counts.  While a ``WorkMeter`` is active,
forward hooks on every module read each hybrid layer's own counters (array MACs, ADC and DAC
conversions, adapter MACs, SRAM reads) before and after its call, and count the multiply-accumulates
of plain digital layers (readouts, a digital copy being fine-tuned).  Work done with gradients on is a
training forward pass, from which the backward pass is derived (``backward_of``); work with gradients
off is evaluation.  The one optimisation loop opens a ``training`` record per call, so each lifecycle
stage's training work is counted without the stage knowing about it.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import torch
from torch import nn
from torch.nn.modules import module as torch_module

from neuro_rm.crossbar import OpCounts
from neuro_rm.layers import HybridLayer, ModelCounts

P, R = ParamSpec("P"), TypeVar("R")


def _add(table: dict, key: object, value: int) -> None:
    if value:
        table[key] = table.get(key, 0) + value


@dataclass
class PassWork:
    """The operations of some forward (or derived backward) passes of a network."""

    hybrid: ModelCounts = field(default_factory=ModelCounts)  # crossbar layers: arrays, DAC/ADC, adapters
    trained_adapter_macs: dict[str, int] = field(default_factory=dict)  # of hybrid.digital_macs: adapters that train
    fold_macs: dict[str, int] = field(default_factory=dict)  # of hybrid.digital_macs: forming fused ΔWs (no backward)
    digital_macs: int = 0  # plain digital layers (fp32)
    trained_digital_macs: int = 0  # of those: layers whose weights train (backward adds weight gradients)
    digital_sram_bits: int = 0  # plain digital layers' weights read once per call
    samples: int = 0  # inputs of the outermost module calls
    calls: int = 0  # outermost module calls (batches: one launch each on a GPU)
    stored: dict[int, int] = field(default_factory=dict)  # module id → bits of digital weights it keeps in SRAM
    launches_per_sample: float = 1.0  # outermost calls one sample needs at batch 1 (a sampler: one per step)

    @property
    def stored_bits(self) -> int:
        """Bits of digital state (active branches at their precision, digital layers in fp32) the passes read."""
        return sum(self.stored.values())

    @property
    def gpu_macs(self) -> int:
        """Every MAC as a digital processor (a GPU) would do it."""
        return self.hybrid.logical_macs + self.hybrid.adapter_macs + self.digital_macs


def backward_of(forward: PassWork, error_bits: int = 8) -> PassWork:
    """The backward pass of ``forward``, derived operation by operation.

    Crossbar bases are frozen: their input gradient is one transposed read of the same cells (same MACs;
    the errors enter through the column DACs, multi-valued at ``error_bits``, and leave through row ADCs),
    no weight gradient.  A digital layer or adapter costs one pass for the input gradient and, when it
    trains, one more for the weight gradient; its weights are read again.  The first layer's input
    gradient is charged too (an upper bound by one layer's transposed read).
    """
    f, h = forward, forward.hybrid
    back = ModelCounts(logical_macs=h.logical_macs, sram_bits_read=h.sram_bits_read)
    back.analog.macs = h.analog.macs
    back.analog.adc_conversions = h.analog.dac_conversions
    back.analog.dac_conversions = h.analog.adc_conversions
    _add(back.dac_by_bits, error_bits, h.analog.adc_conversions)
    for precision, macs in h.digital_macs.items():  # a fused ΔW's forming is no product with the input: no gradient
        _add(back.digital_macs, precision, macs - f.fold_macs.get(precision, 0) + f.trained_adapter_macs.get(precision, 0))
    return PassWork(back, {}, {}, f.digital_macs + f.trained_digital_macs, 0, f.digital_sram_bits, 0, 0, dict(f.stored))


@dataclass
class TrainingWork:
    """One call of the optimisation loop: its forward passes (gradients on), its evaluations, its updates."""

    description: str
    trainable_params: int
    forward: PassWork = field(default_factory=PassWork)
    evaluation: PassWork = field(default_factory=PassWork)
    steps: int = 0
    state_per_param: int = 3  # fp32 values the optimiser keeps per trainable parameter: Adam's gradient, m and v

    @property
    def optimizer_updates(self) -> int:
        return self.trainable_params * self.steps

    @property
    def sram_bytes(self) -> float:
        """SRAM the loop needs: the digital weights its passes read, plus the optimiser's state (fp32) per
        trainable parameter (``state_per_param``)."""
        stored = self.forward.stored | self.evaluation.stored
        return (sum(stored.values()) + self.trainable_params * self.state_per_param * 32) / 8


class WorkMeter:
    """Counts the work of every module call while active (``with WorkMeter() as meter:``).

    Work goes to the current sink: an open ``training`` record, or a ``measure`` call; work outside
    both is not kept.  ``records`` lists the training records in the order they ran.
    """

    def __init__(self) -> None:
        self.records: list[TrainingWork] = []
        self.sink: TrainingWork | PassWork | None = None
        self._before: dict[int, tuple] = {}
        self._depth = 0
        self._handles: list = []
        self._token: contextvars.Token | None = None

    def __enter__(self) -> WorkMeter:
        if _ACTIVE.get() is not None:
            raise RuntimeError("a WorkMeter is active already; nest measurements with measure()/training()")
        self._handles = [torch_module.register_module_forward_pre_hook(self._pre),
                         torch_module.register_module_forward_hook(self._post)]
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        _ACTIVE.reset(self._token)

    def _target(self) -> PassWork | None:
        if isinstance(self.sink, TrainingWork):
            return self.sink.forward if torch.is_grad_enabled() else self.sink.evaluation
        return self.sink

    def _pre(self, module: nn.Module, args: tuple) -> None:
        self._depth += 1
        if self._target() is None:
            return
        if self._depth == 1 and args and isinstance(args[0], torch.Tensor) and args[0].dim() > 0:
            self._target().samples += args[0].shape[0]
            self._target().calls += 1
        if isinstance(module, HybridLayer) and not module.crossbar.calibrating:  # calibration is set-up, as in layers
            x = args[0].detach()
            binary = bool(((x == 0) | (x == 1)).all())
            self._before[id(module)] = (module.crossbar.counts.as_tuple(), dict(module.digital_macs), dict(module.fold_macs),
                                        module.sram_bits_read, binary)

    def _post(self, module: nn.Module, args: tuple, output: object) -> None:
        self._depth -= 1
        target = self._target()
        if target is None:
            return
        if isinstance(module, HybridLayer):
            if id(module) in self._before:
                self._count_hybrid(module, target, *self._before.pop(id(module)))
                target.stored[id(module)] = sum(module.adapters[name].bits for name in module.active)
            return
        weight = getattr(module, "weight", None)
        if (isinstance(weight, torch.Tensor) and weight.dim() >= 2 and isinstance(output, torch.Tensor)
                and not isinstance(module, nn.Embedding)):
            macs = output.numel() * (weight.numel() // weight.shape[0])  # Linear: in_features; Conv: in·kernel
            target.digital_macs += macs
            target.digital_sram_bits += weight.numel() * 32
            target.stored[id(module)] = sum(p.numel() for p in module.parameters(recurse=False)) * 32
            if weight.requires_grad and torch.is_grad_enabled():
                target.trained_digital_macs += macs

    @staticmethod
    def _count_hybrid(layer: HybridLayer, target: PassWork, counts: tuple, digital: dict, folds: dict, sram: int,
                      binary: bool) -> None:
        delta = OpCounts(*(a - b for a, b in zip(layer.crossbar.counts.as_tuple(), counts, strict=True)))
        h = target.hybrid
        h.analog = h.analog + delta
        h.logical_macs += delta.vectors * layer.crossbar.in_features * layer.crossbar.out_features
        h.sram_bits_read += layer.sram_bits_read - sram
        bits = 1 if binary else (layer.crossbar.config.dac_bits or 1)
        _add(h.dac_by_bits, bits, delta.dac_conversions)
        for precision, macs in layer.digital_macs.items():
            _add(h.digital_macs, precision, macs - digital.get(precision, 0))
        for precision, macs in layer.fold_macs.items():
            _add(target.fold_macs, precision, macs - folds.get(precision, 0))
        if torch.is_grad_enabled() and not layer.disabled:  # only the parameters that train get a weight gradient
            for name in layer.active:
                adapter = layer.adapters[name]
                _add(target.trained_adapter_macs, adapter.precision, _weight_gradient_macs(layer, name, delta.vectors))


def _weight_gradient_macs(layer: HybridLayer, name: str, vectors: int) -> int:
    """MACs of branch ``name``'s weight gradients in one call over ``vectors`` input vectors: one per weight
    and vector for each factor that trains (a LoRA branch read as its factors, a full-rank one as its matrix);
    a write-aware branch, read as its dense ΔW, gets ΔW's gradient (in·out per vector) and, from it, each
    training factor's (one ΔW-forming product each)."""
    adapter = layer.adapters[name]
    training = [p for p in adapter.parameters() if p.requires_grad]
    if not training:
        return 0
    if name in layer.write_aware:
        return vectors * layer.crossbar.in_features * layer.crossbar.out_features + len(training) * adapter.delta_macs()
    return vectors * sum(p.numel() for p in training)


_ACTIVE: contextvars.ContextVar[WorkMeter | None] = contextvars.ContextVar("neuro_rm_work_meter", default=None)


def active_meter() -> WorkMeter | None:
    return _ACTIVE.get()


def metered(run: Callable[P, R]) -> Callable[P, R]:
    """Run ``run`` under a WorkMeter (its own, unless one is active); while it runs, the meter's
    ``records`` are the training records of this call only (a lifecycle run once per fold sees its own)."""

    @functools.wraps(run)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        meter = _ACTIVE.get()
        if meter is None:
            with WorkMeter():
                return run(*args, **kwargs)
        outer, meter.records = meter.records, []
        try:
            return run(*args, **kwargs)
        finally:
            meter.records = outer + meter.records

    return wrapper


@contextmanager
def unmetered() -> Iterator[None]:
    """Work done inside is not counted: a control run beside a lifecycle (e.g. the restore on a healthy
    copy that measures repair net of plain fine-tuning) is not a cost of the lifecycle."""
    token = _ACTIVE.set(None)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def measure(run: Callable[[], object]) -> PassWork:
    """The work of ``run()`` (with a meter of its own when none is active)."""
    meter = _ACTIVE.get()
    if meter is None:
        with WorkMeter():
            return measure(run)
    work, previous = PassWork(), meter.sink
    meter.sink = work
    try:
        run()
    finally:
        meter.sink = previous
    return work


@contextmanager
def training(description: str, params: list[nn.Parameter]) -> Iterator[TrainingWork]:
    """A training record for one optimisation loop; kept by the active meter (discarded when there is none)."""
    record = TrainingWork(description, sum(p.numel() for p in params))
    meter = _ACTIVE.get()
    if meter is None:
        yield record
        return
    previous, meter.sink = meter.sink, record
    try:
        yield record
    finally:
        meter.sink = previous
        meter.records.append(record)
