"""Hybrid layers: a frozen crossbar base plus named digital LoRA adapters, and ``analogize``.

    y = G(W)·x + b + Σ_active (α/r)·B·(A·x)

The base has no trainable parameters (weights live in cells, the bias in digital registers), yet
gradients flow through it to the input, so adapters in earlier layers and trainable heads still learn.
Adapters follow a named lifecycle in the shape of Hugging Face PEFT: ``add_adapter`` (inactive until
``set_adapter``), ``disable_adapters`` (a context), ``merge_adapter`` (consolidate into the cells),
``delete_adapter`` (erase).  The older names ``set_active``, ``remove_adapter`` and ``merge`` still work
for this release and warn.
"""

from __future__ import annotations

import math
import secrets
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from neuro_rm import fused as fused_kernel
from neuro_rm.crossbar import Crossbar, CrossbarConfig, OpCounts
from neuro_rm.device import DeviceConfig, ProgramResult
from neuro_rm.energy import Ledger
from neuro_rm.lora import (
    PRECISION_BITS,
    AdapterConfig,
    Branch,
    DenseAdapter,
    LoRAAdapter,
    make_branch,
    quantize,
    widest,
)
from neuro_rm.plasticity import HookBus, PlasticityEvent, PlasticityHook


class HybridLayer(nn.Module):
    """Shared machinery of hybrid layers; subclasses say how weights and adapters meet the input."""

    def __init__(
        self,
        weight_shape: tuple[int, ...],
        bias: torch.Tensor | None,
        device: DeviceConfig | None = None,
        crossbar: CrossbarConfig | None = None,
        seed: int = 0,
        name: str = "",
    ) -> None:
        super().__init__()
        self.weight_shape = tuple(weight_shape)
        fan_out, fan_in = weight_shape[0], math.prod(weight_shape[1:])
        self.crossbar = Crossbar(fan_out, fan_in, device, crossbar, seed)
        self.register_buffer("bias", None if bias is None else bias.detach().clone().float())
        self.adapters = nn.ModuleDict()
        self.active: list[str] = []
        self.layer_name = name
        self.seed = seed
        self.ledger: Ledger | None = None
        self.bus = HookBus()
        self.digital_macs: dict[str, int] = {}
        self.fold_macs: dict[str, int] = {}  # of digital_macs: forming fused ΔWs (work with no backward pass)
        self.sram_bits_read = 0
        self.fused = False  # reads fold the active adapters into one ΔW (see ``fuse``)
        self._fused_cache: FusedDelta | None = None
        self.steady = 0  # depth of ``steady_reads`` contexts: while > 0 the fused ΔW is checked once
        self._fused_checked = False  # the fused ΔW was checked inside the open ``steady_reads`` context
        self.disabled = 0  # depth of ``disable_adapters`` contexts: while > 0 the base runs alone
        self.write_aware: set[str] = set()  # adapters trained to be merged: forward shows what a merge writes

    def __getstate__(self) -> dict[str, object]:
        """A copy or a pickle starts outside ``disable_adapters`` and ``steady_reads``: the depths belong to
        the contexts open on this object, which never exit on its copies.  It carries no fused ΔW either (the
        copy rebuilds its own at its first read): the cache's digest key stays with this object only."""
        return {**super().__getstate__(), "disabled": 0, "steady": 0, "_fused_checked": False, "_fused_cache": None}

    # ------------------------------------------------------------------ subclass interface
    def _base(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _adapter_out(self, x: torch.Tensor, adapter: LoRAAdapter) -> torch.Tensor:
        """The branch's product B·(A·x), before its scale α/r."""
        raise NotImplementedError

    def _vectors(self, x: torch.Tensor, y: torch.Tensor) -> int:
        raise NotImplementedError

    def _dense_out(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _branch_out(self, x: torch.Tensor, adapter: Branch) -> torch.Tensor:
        """The branch's product before its scale: low-rank through its factors, full-rank as one matrix."""
        if isinstance(adapter, DenseAdapter):
            return self._dense_out(x, adapter.delta_weight())
        return self._adapter_out(x, adapter)

    def _check_input(self, x: torch.Tensor) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        y = self._base(x)
        vectors = self._vectors(x, y)
        self.crossbar.count(vectors)
        if self.disabled:
            return y
        table = self.adapters._modules
        folded = self._fusing(table)
        if folded:
            delta, precision = self._fused_delta(folded)
            macs = vectors * delta.numel()
            self.digital_macs[precision] = self.digital_macs.get(precision, 0) + macs
            self.sram_bits_read += macs * PRECISION_BITS[precision]
            if len(folded) == len(self.active):  # gradients off: no autograd here, y is this call's own
                return y.add_(self._dense_out(x, delta.to(x.dtype)))
            # a constant through which gradients reach x; a copy, since autograd keeps it for the backward
            # pass and a read of another set of branches before then replaces (and wipes) the cache
            y = y + self._dense_out(x, delta.to(x.dtype, copy=True))
        for name in self.active:
            if name in folded:
                continue
            adapter = table[name]
            if name in self.write_aware:  # ΔW formed once per call, then a dense product per vector
                y = y + self._dense_out(x, self._applied_delta(name).to(x.dtype))
                dense = vectors * self.crossbar.in_features * self.crossbar.out_features
                macs, bits = adapter.delta_macs() + dense, adapter.bits + dense * PRECISION_BITS[adapter.precision]
            else:
                branch = self._branch_out(x, adapter)
                if y.requires_grad or branch.requires_grad:
                    y = y + adapter.scale * branch
                else:  # y is this call's own: scaled and added in one pass
                    y.add_(branch, alpha=adapter.scale)
                macs = vectors * adapter.macs(self.crossbar.in_features, self.crossbar.out_features)
                bits = vectors * adapter.bits  # no reuse assumed: worst case for adapters
            self.digital_macs[adapter.precision] = self.digital_macs.get(adapter.precision, 0) + macs
            self.sram_bits_read += bits
        return y

    def fuse(self, on: bool = True) -> None:
        """Fold the active adapters into one digital ΔW (or stop doing so).

        Pays once Σ r·(in+out) over the active adapters exceeds in·out MACs per vector (many branches).
        With gradients off every active adapter is folded; with gradients on, only those none of whose
        parameters trains, and only where they alone pay (training reads the frozen branches as one
        constant dense product and the training ones on their own, as ``_fusing`` says).  The folded ΔW
        is held at the widest precision of the adapters it sums (int8 with a scale per output row, so the
        sum is rounded once more: with int8 or fp16 branches a fused layer trains and infers on that
        rounding, about 3e-3 and 1e-4 relative apart from reading them one by one; fp32 branches agree to
        float rounding); building it is charged (its MACs, and an SRAM write of in·out words, work that has
        no backward pass), and it is rebuilt whenever the branches it folds, an adapter's settings, the
        write tolerance or any factor value differs from what it was built from.
        """
        if not isinstance(on, bool):
            raise TypeError(f"fuse takes True or False, got {on!r}")
        self.fused = on
        self._drop_fused()

    @contextmanager
    def steady_reads(self) -> Iterator[None]:
        """Within the block the fused ΔW is checked against the branches at the first read only, not at
        every read: for a loop that reads this layer many times while nothing writes its branches (a
        recurrent network's time steps), where the check, which compares every factor value, would cost
        more than the dense product it guards.  A factor value or a branch's setting (``alpha``, ``rank``,
        ``precision``) written inside the block is not seen; a change of the active set or of write-awareness
        is.  One thread at a time, as for the crossbar's reads."""
        if not self.steady:  # a new outermost block checks afresh
            self._fused_checked = False
        self.steady += 1
        try:
            yield
        finally:
            self.steady -= 1
            self._fused_checked = self._fused_checked and self.steady > 0

    def _drop_fused(self) -> None:
        """Forget the fused ΔW, wiped first: its copy of the factor values would outlive a branch in freed memory."""
        if self._fused_cache is not None:
            self._fused_cache.wipe()
        self._fused_cache = None

    def unfuse(self) -> None:
        _deprecated("unfuse", "fuse(False)")
        self.fuse(False)

    def _fusing(self, table: dict[str, nn.Module]) -> tuple[str, ...]:
        """The active branches this call reads folded into one ΔW: with gradients off, all of them (when
        fused); with gradients on, those none of whose parameters trains, where reading them one by one would
        cost more MACs per vector than one dense product (so training on a state with many branches costs
        what one frozen ΔW and the trained branch cost, however many speakers the ΔW holds)."""
        if not self.fused or not self.active:
            return ()
        if not torch.is_grad_enabled():
            return tuple(self.active)
        fan_in, fan_out = self.crossbar.in_features, self.crossbar.out_features
        frozen = tuple(n for n in self.active if not any(p.requires_grad for p in table[n].parameters()))
        separate = sum(fan_in * fan_out if n in self.write_aware else table[n].macs(fan_in, fan_out) for n in frozen)
        return frozen if len(frozen) > 1 and separate > fan_in * fan_out else ()

    def _fused_delta(self, names: tuple[str, ...]) -> tuple[torch.Tensor, str]:
        """The fold of branches ``names`` (active, in the active order), checked against their stored values
        unless checked already in the open ``steady_reads`` block; rebuilt (and charged) where stale."""
        cache = self._fused_cache
        if self._fused_checked and cache is not None and cache.key[0] == names:  # checked once in this block
            return cache.delta, cache.precision
        table = self.adapters._modules  # read straight from the table: ModuleDict's lookup costs 0.6 µs a branch
        adapters = [table[name] for name in names]
        aware = sorted(self.write_aware & set(names))
        key = (names, tuple(aware), self.crossbar.write_threshold if aware else None,
               tuple((type(a), a.rank, a.alpha, a.precision) for a in adapters))
        factors = tuple(p for a in adapters for p in a.held)
        if cache is None or not cache.holds(key, factors):
            if cache is not None:
                cache.wipe()  # the old copy may hold a branch that is gone or changed
            with torch.no_grad():
                delta = sum(self._applied_delta(name) for name in names)
                precision = widest([a.precision for a in adapters])
                delta = quantize(delta.reshape(self.crossbar.out_features, -1), precision, per_row=True)
            self._fused_cache = cache = FusedDelta(key, factors, delta, precision)
            fold_macs = sum(a.delta_macs() for a in adapters)
            self.digital_macs[precision] = self.digital_macs.get(precision, 0) + fold_macs
            self.fold_macs[precision] = self.fold_macs.get(precision, 0) + fold_macs
            if self.ledger is not None:
                self.ledger.post_sram_write(delta.numel() * PRECISION_BITS[precision], note="fused ΔW")
        self._fused_checked = self.steady > 0
        return cache.delta, cache.precision

    def _applied_delta(self, name: str) -> torch.Tensor:
        """ΔW of adapter ``name`` as the forward applies it (write-aware adapters: what a merge writes)."""
        delta = self.adapters[name].delta_weight()
        return self.writable(delta) if name in self.write_aware else delta

    # ------------------------------------------------------------------ crossbar
    def effective_weight(self) -> torch.Tensor:
        """The base weights as the cells hold them now (decoded, drift included, no read noise)."""
        return self.crossbar.weight().view(self.weight_shape)

    def program(self, weight: torch.Tensor, note: str = "program") -> ProgramResult:
        """Write-and-verify ``weight`` into the cells; costs go to the ledger, a hook event goes out."""
        if tuple(weight.shape) != self.weight_shape:
            raise ValueError(f"{self._label()}: weight shape {tuple(weight.shape)} != {self.weight_shape}")
        result = self.crossbar.program(weight.reshape(self.crossbar.out_features, -1))
        if self.ledger is not None:
            self.ledger.post_programming(result.total_pulses, result.verify_reads, self.crossbar.n_tiles, note)
        self.emit("program", conductance_us=result.conductance_us, pulses=result.pulses)
        return result

    def set_time(self, seconds: float) -> None:
        self.crossbar.set_time(seconds)
        self.emit("drift", seconds=seconds, conductance_us=self.crossbar.cells.conductance())

    def inject_stuck(self, on_rate: float, off_rate: float) -> int:
        stuck = self.crossbar.inject_stuck(on_rate, off_rate)
        self.emit("fault", stuck=stuck, conductance_us=self.crossbar.cells.conductance())
        return stuck

    def add_write_noise(self, sigma_us: float) -> None:
        self.crossbar.add_write_noise(sigma_us)
        self.emit("fault", write_noise_us=sigma_us, conductance_us=self.crossbar.cells.conductance())

    # ------------------------------------------------------------------ adapters
    def _label(self) -> str:
        return self.layer_name or type(self).__name__

    def _require(self, name: str) -> Branch:
        if name not in self.adapters:
            raise KeyError(f"{self._label()}: no adapter named {name!r} (have {sorted(self.adapters)})")
        return self.adapters[name]

    def add_adapter(self, name: str, config: AdapterConfig = AdapterConfig()) -> Branch:
        """Add a branch; like PEFT's, it is not active until ``set_adapter`` names it."""
        if not name or not isinstance(name, str) or "." in name:
            raise ValueError(f"adapter names must be non-empty strings without dots, got {name!r}")
        if not isinstance(config, AdapterConfig):
            raise TypeError(f"add_adapter takes an AdapterConfig, got {type(config).__name__}")
        if name in self.adapters:
            raise ValueError(f"{self._label()}: an adapter named {name!r} exists already")
        seed = (self.seed * 1_000_003 + zlib.crc32(name.encode())) % 2**31
        adapter = make_branch(self.crossbar.in_features, self.crossbar.out_features, config, seed)
        self.adapters[name] = adapter.to(self.crossbar.weight_max.device)
        return adapter

    def delete_adapter(self, name: str) -> None:
        """Erase an adapter: its tensors (and gradients) are zeroed and freed, it is no longer active,
        and no fused ΔW holding it survives.  An optimiser's state for it belongs to the caller: drop it."""
        adapter = self._require(name)
        # the event's copy (erase zeroes what a view would show), made only for hooks that listen: otherwise
        # no ΔW of the branch, nor the temporaries of forming it, is ever left in freed memory (review41 F5)
        delta = adapter.delta_weight().detach().clone() if len(self.bus) else None
        adapter.erase()
        del self.adapters[name]
        self.active = [n for n in self.active if n != name]
        self.write_aware.discard(name)
        self._drop_fused()
        self.emit("forget", adapter=name, delta_weight=delta)

    def set_adapter(self, names: str | Iterable[str]) -> None:
        """Make exactly ``names`` (one name or several) the active adapters of this layer."""
        names = _names(names, "set_adapter")
        for name in names:
            self._require(name)
        self.active = names
        self._fused_checked = False  # a new active set is checked even inside steady_reads

    def remove_adapter(self, name: str) -> None:
        _deprecated("remove_adapter", "delete_adapter")
        self.delete_adapter(name)

    def set_active(self, names: Iterable[str]) -> None:
        _deprecated("set_active", "set_adapter")
        self.set_adapter(names)

    def delta_weight(self, names: Iterable[str] | None = None) -> torch.Tensor:
        """Sum of the ΔW of ``names`` (default: the active adapters), in the layer's weight shape."""
        names = self.active if names is None else list(names)
        delta = torch.zeros(self.crossbar.out_features, self.crossbar.in_features)
        for name in names:
            delta = delta + self._require(name).delta_weight().detach().cpu()
        return delta.view(self.weight_shape)

    def writable(self, delta: torch.Tensor) -> torch.Tensor:
        """The part of a weight change that consolidation writes (entries beyond the write tolerance);
        gradients pass straight through, so a branch can be trained for what the cells will hold."""
        kept = delta * (delta.detach().abs() > self.crossbar.write_threshold)
        return delta + (kept - delta).detach()

    def merge_adapter(self, name: str) -> ProgramResult:
        """Consolidate: write ΔW(name) into the cells (only cells whose target moves beyond the write
        tolerance are pulsed; costs go to the ledger), then erase the adapter."""
        delta = self.delta_weight([name])
        result = self.crossbar.consolidate(delta.reshape(self.crossbar.out_features, -1))
        if self.ledger is not None:
            self.ledger.post_programming(result.total_pulses, result.verify_reads, self.crossbar.n_tiles, f"merge {name}")
        self.emit("consolidate", adapter=name, delta_weight=delta, conductance_us=result.conductance_us, pulses=result.pulses)
        clipped = int(result.clipped.sum())
        if clipped:
            warnings.warn(f"{self._label()}: merging {name!r} asked {clipped} cells for a conductance beyond the window; "
                          "they were written to its edge", RuntimeWarning, stacklevel=3)
        self.delete_adapter(name)
        return result

    def merge(self, name: str) -> ProgramResult:
        _deprecated("merge", "merge_adapter")
        return self.merge_adapter(name)

    # ------------------------------------------------------------------ events and counters
    def emit(self, kind: str, adapter: str | None = None, **data: object) -> None:
        if len(self.bus):
            self.bus.emit(PlasticityEvent(kind, self._label(), adapter, dict(data)))

    def reset_counts(self) -> None:
        self.crossbar.reset_counts()
        self.digital_macs = {}
        self.fold_macs = {}
        self.sram_bits_read = 0

    def extra_repr(self) -> str:
        return f"{self.weight_shape}, adapters={list(self.adapters)}, active={self.active}"


class HybridLinear(HybridLayer):
    """``nn.Linear`` whose weight lives in a crossbar."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **kwargs: object) -> None:
        init = nn.Linear(in_features, out_features, bias=bias)
        HybridLayer.__init__(self, (out_features, in_features), init.bias, **kwargs)
        self.in_features, self.out_features = in_features, out_features
        self.program(init.weight.detach())

    @classmethod
    def from_linear(cls, linear: nn.Linear, **kwargs: object) -> HybridLinear:
        layer = cls.__new__(cls)
        HybridLayer.__init__(layer, tuple(linear.weight.shape), linear.bias, **kwargs)
        layer.in_features, layer.out_features = linear.in_features, linear.out_features
        return layer

    def _check_input(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{self._label()}: expected input with {self.in_features} features, got shape {tuple(x.shape)}")

    def _base(self, x: torch.Tensor) -> torch.Tensor:
        return self.crossbar.matmul(x, self.bias)

    def _adapter_out(self, x: torch.Tensor, adapter: LoRAAdapter) -> torch.Tensor:
        a, b = adapter.factors()
        return F.linear(F.linear(x, a), b)

    def _vectors(self, x: torch.Tensor, y: torch.Tensor) -> int:
        return x.numel() // self.in_features

    def _dense_out(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return F.linear(x, delta)


class HybridConv2d(HybridLayer):
    """``nn.Conv2d`` (groups = 1, zero padding) whose kernel lives in a crossbar, rows = in·kh·kw."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        **kwargs: object,
    ) -> None:
        init = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=bias)
        HybridLayer.__init__(self, tuple(init.weight.shape), init.bias, **kwargs)
        self._take_geometry(init)
        self.program(init.weight.detach())

    @classmethod
    def from_conv2d(cls, conv: nn.Conv2d, **kwargs: object) -> HybridConv2d:
        layer = cls.__new__(cls)
        HybridLayer.__init__(layer, tuple(conv.weight.shape), conv.bias, **kwargs)
        layer._take_geometry(conv)
        return layer

    def _take_geometry(self, conv: nn.Conv2d) -> None:
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(
                "HybridConv2d supports groups=1 and numeric zero padding only; got "
                f"groups={conv.groups}, padding={conv.padding!r}, padding_mode={conv.padding_mode!r}"
            )
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation = conv.padding, conv.dilation

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self._label()}: expected input (batch, {self.in_channels}, height, width), got shape {tuple(x.shape)}"
            )

    def _conv(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, weight, None, self.stride, self.padding, self.dilation)

    def _base(self, x: torch.Tensor) -> torch.Tensor:
        config = self.crossbar.config
        if config.is_ideal and config.drift_compensation == "none":
            y = self._conv(x, self.crossbar.weight().view(self.weight_shape).to(x.dtype))
        else:  # the periphery (DAC, per-vector noise, tile-wise ADC) works on the explicit patch matrix
            cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
            h_out, w_out = self._out_hw(x)
            y = self.crossbar.matmul(cols.transpose(1, 2)).transpose(1, 2)
            y = y.reshape(x.shape[0], self.out_channels, h_out, w_out)
        return y if self.bias is None else y + self.bias.to(y.dtype).view(1, -1, 1, 1)

    def _out_hw(self, x: torch.Tensor) -> tuple[int, int]:
        size = []
        for i in range(2):
            span = self.dilation[i] * (self.kernel_size[i] - 1) + 1
            size.append((x.shape[2 + i] + 2 * self.padding[i] - span) // self.stride[i] + 1)
        return size[0], size[1]

    def _adapter_out(self, x: torch.Tensor, adapter: LoRAAdapter) -> torch.Tensor:
        a, b = adapter.factors()
        h = self._conv(x, a.view(adapter.rank, self.in_channels, *self.kernel_size))
        return F.conv2d(h, b.view(self.out_channels, adapter.rank, 1, 1))

    def _vectors(self, x: torch.Tensor, y: torch.Tensor) -> int:
        return y.shape[0] * y.shape[2] * y.shape[3]

    def _dense_out(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return self._conv(x, delta.view(self.weight_shape))


_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """``torch.equal`` for flat float tensors; on the CPU through numpy, whose vectorised compare is about
    five times faster on one thread."""
    if a.device.type == "cpu" and b.device.type == "cpu" and a.dtype == b.dtype and a.dtype in _NUMPY_FLOATS:
        return a.shape == b.shape and bool((a.numpy() == b.numpy()).all())
    return torch.equal(a, b)


_MERSENNE_61 = (1 << 61) - 1  # the digest's field: keys lie in [1, 2^61 - 1)


def _keyed_digest(factors: Sequence[torch.Tensor], secret: int) -> int | None:
    """The compiled keyed digest of ``factors``' bytes, or None where it cannot be made (no compiled module,
    a factor on a GPU or not laid out as plain bytes)."""
    compiled = fused_kernel.module()
    digest = compiled.keyed_digest(list(factors), secret) if compiled is not None else -1
    return digest if digest >= 0 else None


def _flat_copy(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The values of ``tensors`` end to end, in a new tensor (never a view of one of them)."""
    return torch.cat([t.detach().reshape(-1) for t in tensors])


class FusedDelta:
    """The active branches folded into one ΔW, and a record of what it was built from, so that a read can tell
    whether it is stale.  It compares the factors' stored values, not their version counters: writes through
    ``.data``, numpy views or fused optimisers bump no version.  A fused layer checks at every call,
    so on the CPU the record is the compiled ``keyed_digest`` of the factors' bytes under a key drawn afresh for
    each build and held by this cache alone (never saved; a pickle or copy of the layer carries no cache): one
    pass over the factors per check and no copy of the branches beside them.  A change made without the key
    is missed with probability below 1e-12; the key guards against writers that do not read the cache
    (optimisers, numpy views, checkpoint loads, mistakes), not against code in this process that reads it.
    A value that only changes its sign bit, -0.0 for 0.0, counts as a change and costs one rebuild.  Where no digest can be
    made (no compiler, factors on a GPU) the record is an exact copy of the values, compared value by value."""

    def __init__(self, key: tuple, factors: tuple[torch.Tensor, ...], delta: torch.Tensor, precision: str) -> None:
        self.key, self.factors, self.delta, self.precision = key, factors, delta, precision
        self._secret = secrets.randbelow(_MERSENNE_61 - 1) + 1
        self.digest = _keyed_digest(factors, self._secret)
        self.values = _flat_copy(factors) if self.digest is None else None

    def holds(self, key: tuple, factors: tuple[torch.Tensor, ...]) -> bool:
        """Whether this ΔW is still the fold of ``factors`` under ``key`` (settings, active set)."""
        if key != self.key or len(factors) != len(self.factors) or any(p is not q for p, q in zip(factors, self.factors, strict=True)):
            return False
        if self.digest is not None:
            return _keyed_digest(factors, self._secret) == self.digest  # None (a factor moved to a GPU): rebuild
        return _same_values(_flat_copy(factors), self.values)

    def wipe(self) -> None:
        """Overwrite the ΔW (and the copy of the factor values, where one is kept) with zeros before the cache
        is dropped or replaced: freed memory keeps no copy of a branch (a deleted one, or one since rewritten)."""
        if self.values is not None:
            self.values.zero_()
        self.delta.zero_()

    def nbytes(self) -> int:
        """Bytes held beside the model's own tensors: the ΔW, and the copy of the factor values where kept."""
        held = [self.delta] if self.values is None else [self.delta, self.values]
        return sum(t.numel() * t.element_size() for t in held)


# ====================================================================== whole-model operations
def hybrid_layers(model: nn.Module) -> list[tuple[str, HybridLayer]]:
    """The hybrid layers of ``model`` by qualified name, in ``named_modules`` order; the walk does not enter
    them (they hold no hybrid layer, and their branches' modules grow with every enrolment)."""
    found: list[tuple[str, HybridLayer]] = []
    seen: set[int] = set()

    def walk(prefix: str, module: nn.Module) -> None:
        if id(module) in seen:
            return
        seen.add(id(module))
        if isinstance(module, HybridLayer):
            found.append((prefix, module))
            return
        for name, child in module._modules.items():
            if child is not None:
                walk(f"{prefix}.{name}" if prefix else name, child)

    walk("", model)
    return found


def _layers_or_fail(model: nn.Module) -> list[tuple[str, HybridLayer]]:
    layers = hybrid_layers(model)
    if not layers:
        raise ValueError("the model has no hybrid layers; call neuro_rm.analogize(model) first")
    return layers


def analogize(
    model: nn.Module,
    device: DeviceConfig | None = None,
    targets: Sequence[type[nn.Module]] | Iterable[str] = (nn.Linear, nn.Conv2d),
    crossbar: CrossbarConfig | None = None,
    ledger: Ledger | None = None,
    hooks: Iterable[PlasticityHook] = (),
    seed: int = 0,
) -> nn.Module:
    """Replace the model's Linear/Conv2d layers by hybrid ones and program their weights, in place.

    ``targets`` is either layer types (every such layer is converted) or qualified module names (exactly
    those; an unknown name is an error).  Programming costs go to ``ledger``; all converted layers share
    one hook bus carrying ``hooks``.
    """
    targets = list(targets)
    by_type = all(isinstance(t, type) for t in targets)
    modules = dict(model.named_modules())
    if by_type:
        chosen = [n for n, m in modules.items() if n and isinstance(m, tuple(targets)) and not isinstance(m, HybridLayer)]
    else:
        missing = [t for t in targets if t not in modules]
        if missing:
            raise ValueError(f"analogize: no module named {missing} in the model")
        chosen = list(targets)
    bus = HookBus()
    for hook in hooks:
        bus.register(hook)
    for index, name in enumerate(chosen):
        old = modules[name]
        kwargs = {"device": device, "crossbar": crossbar, "seed": seed * 10_007 + index, "name": name}
        if isinstance(old, nn.Linear):
            new = HybridLinear.from_linear(old, **kwargs)
        elif isinstance(old, nn.Conv2d):
            new = HybridConv2d.from_conv2d(old, **kwargs)
        else:
            raise TypeError(f"analogize: {name} is a {type(old).__name__}; only Linear and Conv2d can go on a crossbar")
        new.ledger, new.bus = ledger, bus
        new.to(old.weight.device)
        new.program(old.weight.detach(), note=f"deploy {name}")
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else model, child, new)
    if chosen and not getattr(model, "_calibrates_adc", False):
        model.register_forward_pre_hook(_calibrate_on_first_batch, with_kwargs=True)
        model._calibrates_adc = True
    return model


@contextmanager
def calibrating(model: nn.Module, layers: Iterable[HybridLayer] | None = None) -> Iterator[None]:
    """While inside, every forward pass calibrates the ADCs of every crossbar (or of ``layers``), without
    gradients: each tile's full scale becomes the largest noise-free column sum seen over *all* passes
    inside, so a multi-pass workload (every step of a sampling trajectory) calibrates as one batch.
    Calibration is set-up, not inference: the operation counters are left as they were before."""
    chosen = [layer for _, layer in _layers_or_fail(model)] if layers is None else list(layers)
    counters = [(layer, replace(layer.crossbar.counts), dict(layer.digital_macs), layer.sram_bits_read)
                for _, layer in hybrid_layers(model)]
    for layer in chosen:
        layer.crossbar.start_calibration()
    try:
        with torch.no_grad():
            yield
    finally:
        for layer in chosen:
            layer.crossbar.calibrating = False
        for layer, counts, digital, sram in counters:
            layer.crossbar.counts, layer.digital_macs, layer.sram_bits_read = counts, digital, sram


def write_history(model: nn.Module) -> torch.Tensor:
    """Pulses applied and cells pulsed by every programming run of the model's arrays so far (int64, 2)."""
    return sum((layer.crossbar.cells.write_history for _, layer in hybrid_layers(model)), torch.zeros(2, dtype=torch.int64))


def deployment_cost(model: nn.Module, ledger: Ledger, joules_before: float = 0.0) -> dict[str, float | int]:
    """What writing ``model``'s hybrid layers into their arrays cost, from ``ledger``: write-verify pulses,
    joules since ``joules_before``, modelled programming seconds, cells."""
    return {"write_pulses": ledger.count("write.rm_pulse"), "write_energy_j": ledger.joules("write") - joules_before,
            "programming_seconds": ledger.seconds("write"),
            "cells": sum(layer.crossbar.n_cells for _, layer in hybrid_layers(model))}


def calibrate(model: nn.Module, *inputs: object, layers: Iterable[HybridLayer] | None = None, **kwargs: object) -> None:
    """Fix the ADC full scale of every crossbar (or of ``layers``) from one calibration batch.

    The batch runs once through the whole model, so a recurrent layer sees every time step; each tile
    keeps the largest noise-free column sum it saw.  Programming clears the calibration; a model that
    ``analogize`` converted calibrates on its first batch by itself, so call this to choose the batch
    (or use ``calibrating`` for a workload of several passes).
    """
    with calibrating(model, layers):
        model(*inputs, **kwargs)


def calibrate_cleared(model: nn.Module, *inputs: object, **kwargs: object) -> None:
    """Calibrate, on ``inputs`` (training data), only the ADCs whose full scale a write cleared or that were never
    calibrated; the others keep theirs.  Otherwise an uncalibrated array calibrates on whichever batch comes
    next, often a test batch."""
    pending = [layer for _, layer in hybrid_layers(model)
               if layer.crossbar.config.adc_bits is not None and not layer.crossbar.calibrated]
    if pending:
        calibrate(model, *inputs, layers=pending, **kwargs)


@dataclass
class ClipProbe:
    """ADC conversions counted by ``adc_clipping``: how many saturated, out of how many."""

    clipped: int = 0
    converted: int = 0

    @property
    def share(self) -> float:
        return self.clipped / self.converted if self.converted else 0.0


@contextmanager
def adc_clipping(model: nn.Module) -> Iterator[ClipProbe]:
    """Count, while inside, the tile column sums of every crossbar with an ADC that lie beyond its full scale
    (the code saturates); the probe is filled on exit.  A diagnostic: it recomputes each product noise-free."""
    crossbars = [layer.crossbar for _, layer in _layers_or_fail(model)]
    for crossbar in crossbars:
        crossbar.clip_tally = [0, 0]
    probe = ClipProbe()
    try:
        yield probe
    finally:
        for crossbar in crossbars:
            probe.clipped += crossbar.clip_tally[0]
            probe.converted += crossbar.clip_tally[1]
            crossbar.clip_tally = None


def set_readout(model: nn.Module, config: CrossbarConfig) -> None:
    """Read the same programmed cells through another periphery (e.g. ``CrossbarConfig.ideal()``)."""
    for _, layer in _layers_or_fail(model):
        layer.crossbar.set_config(config)


def _calibrate_on_first_batch(model: nn.Module, args: tuple, kwargs: dict) -> None:
    """Forward pre-hook: crossbars whose ADC has no full scale yet calibrate on this batch first."""
    pending = [
        layer for _, layer in hybrid_layers(model)
        if layer.crossbar.config.adc_bits is not None and not layer.crossbar.calibrated
    ]
    if pending and not any(layer.crossbar.calibrating for layer in pending):
        calibrate(model, *args, layers=pending, **kwargs)


def set_ledger(model: nn.Module, ledger: Ledger | None) -> None:
    for _, layer in _layers_or_fail(model):
        layer.ledger = ledger


def add_hook(model: nn.Module, hook: PlasticityHook) -> None:
    """Register ``hook`` on the bus of every hybrid layer of the model."""
    buses = {id(layer.bus): layer.bus for _, layer in _layers_or_fail(model)}
    for bus in buses.values():
        bus.register(hook)


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"neuro_rm: {old} is deprecated and goes in the next release; use {new}", DeprecationWarning, stacklevel=3)


def _names(names: str | Iterable[str], caller: str) -> list[str]:
    """One adapter name or several, as a list without repeats (a repeat would apply a branch twice)."""
    if isinstance(names, str):
        return [names]
    if not isinstance(names, Iterable):
        raise TypeError(f"{caller}: give an adapter name or a list of names, got {type(names).__name__}")
    names = list(names)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f"{caller}: adapter names are strings, got {bad}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{caller}: {repeated} named more than once")
    return names


def add_adapter(
    model: nn.Module,
    name: str,
    config: AdapterConfig | None = None,
    layers: Iterable[str] | None = None,
    **legacy: object,
) -> list[nn.Parameter]:
    """Add adapter ``name`` to the hybrid layers (all, or those named) and return its parameters.

    As in PEFT, the new adapter is not active: call ``set_adapter``.  The older call with ``rank=``,
    ``alpha=``, ``precision=`` keywords still works for this release, warns, and activates the adapter
    as it always did.
    """
    if legacy:
        unknown = sorted(set(legacy) - {"rank", "alpha", "precision"})
        if unknown or config is not None:
            raise TypeError(f"add_adapter: pass an AdapterConfig, not {sorted(legacy)}")
        _deprecated("add_adapter(model, name, rank=, alpha=, precision=)", "add_adapter(model, name, AdapterConfig(...)) and set_adapter")
        params = add_adapter(model, name, AdapterConfig(**legacy), layers)
        activate_adapter(model, name)
        return params
    config = AdapterConfig() if config is None else config
    if not isinstance(config, AdapterConfig):
        raise TypeError(f"add_adapter: config must be an AdapterConfig(rank, alpha, precision), got {config!r}")
    if isinstance(layers, str):
        raise TypeError(f"add_adapter: layers is a list of layer names, got the string {layers!r}")
    available = dict(_layers_or_fail(model))
    names = list(available) if layers is None else list(layers)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"add_adapter: {unknown} are not hybrid layers (have {sorted(available)})")
    existing = [n for n in names if name in available[n].adapters]
    if existing:
        raise ValueError(f"add_adapter: an adapter named {name!r} exists already in {existing}")
    params: list[nn.Parameter] = []
    for n in names:
        params.extend(available[n].add_adapter(name, config).parameters())
    return params


def _holding(model: nn.Module, name: str) -> list[HybridLayer]:
    layers = [layer for _, layer in _layers_or_fail(model) if name in layer.adapters]
    if not layers:
        raise KeyError(f"no adapter named {name!r} in the model (have {adapter_names(model)})")
    return layers


def adapter_names(model: nn.Module) -> list[str]:
    seen: dict[str, None] = {}
    for _, layer in hybrid_layers(model):
        seen.update(dict.fromkeys(layer.adapters))
    return list(seen)


def adapter_parameters(model: nn.Module, name: str) -> list[nn.Parameter]:
    return [p for layer in _holding(model, name) for p in layer.adapters[name].parameters()]


def adapter_specs(model: nn.Module) -> dict[str, dict[str, object]]:
    """Enough to rebuild every adapter before loading a state dict: rank, alpha, precision, whether it is
    full-rank (its shape then follows each layer), layers."""
    specs: dict[str, dict[str, object]] = {}
    for layer_name, layer in hybrid_layers(model):
        for name, adapter in layer.adapters.items():
            spec = specs.setdefault(name, {"rank": adapter.rank, "alpha": adapter.alpha, "precision": adapter.precision,
                                           "full_rank": isinstance(adapter, DenseAdapter), "layers": []})
            spec["layers"].append(layer_name)
    return specs


def active_adapters(model: nn.Module) -> list[str]:
    """Names active in any hybrid layer, in order of first appearance."""
    seen: dict[str, None] = {}
    for _, layer in hybrid_layers(model):
        seen.update(dict.fromkeys(layer.active))
    return list(seen)


def delete_adapter(model: nn.Module, name: str) -> None:
    """Erase adapter ``name`` everywhere: its tensors are zeroed and freed, nothing of it is left."""
    for layer in _holding(model, name):
        layer.delete_adapter(name)


def set_adapter(model: nn.Module, names: str | Iterable[str]) -> None:
    """Make exactly ``names`` (one name or several) active, in every layer that holds them."""
    names = _names(names, "set_adapter")
    known = set(adapter_names(model))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"set_adapter: no adapter named {unknown} (have {sorted(known)})")
    for _, layer in hybrid_layers(model):
        layer.set_adapter([n for n in names if n in layer.adapters])


def activate_adapter(model: nn.Module, name: str) -> None:
    """Switch ``name`` on in every layer that holds it, beside the adapters already on there."""
    for layer in _holding(model, name):
        if name not in layer.active:
            layer.set_adapter([*layer.active, name])


@contextmanager
def disable_adapters(model: nn.Module) -> Iterator[None]:
    """Run the analogue bases alone (a digital model runs as it is) while inside, whatever adapters are
    added or activated meanwhile; the active sets are left as they are, so on exit, error or not, the
    model computes with them again.  Contexts nest."""
    layers = [layer for _, layer in hybrid_layers(model)]
    for layer in layers:
        layer.disabled += 1
    try:
        yield
    finally:
        for layer in layers:
            layer.disabled -= 1


def merge_adapter(model: nn.Module, name: str) -> list[ProgramResult]:
    """Consolidate adapter ``name`` into the crossbars (costed write-verify of the cells it moves beyond
    the write tolerance) and erase it."""
    return [layer.merge_adapter(name) for layer in _holding(model, name)]


def remove_adapter(model: nn.Module, name: str) -> None:
    _deprecated("remove_adapter", "delete_adapter")
    delete_adapter(model, name)


def set_active(model: nn.Module, names: Iterable[str]) -> None:
    _deprecated("set_active", "set_adapter")
    set_adapter(model, names)


def merge(model: nn.Module, name: str) -> list[ProgramResult]:
    _deprecated("merge", "merge_adapter")
    return merge_adapter(model, name)


def forget_cell_history(model: nn.Module, names: Iterable[str]) -> None:
    """Say that the cells of layers ``names`` were rewritten to erase something, so that hooks keeping
    snapshots of those cells (a ``Recorder``) drop the older ones."""
    layers = dict(_layers_or_fail(model))
    for name in names:
        layers[name].emit("forget", cells=True)


def set_write_aware(model: nn.Module, name: str, on: bool = True) -> None:
    """Train adapter ``name`` for consolidation: while on, its forward applies only the entries of ΔW
    that ``merge`` will write, so what the branch learns is what the cells will hold."""
    for layer in _holding(model, name):
        (layer.write_aware.add if on else layer.write_aware.discard)(name)
        layer._fused_checked = False


def commit_adapter(model: nn.Module, name: str, kind: str) -> int:
    """Record a trained adapter as stored: SRAM write cost to the ledger, a plasticity event out.

    ``kind`` is ``potentiate`` (learnt something new) or ``depress`` (trained to suppress).
    Returns the bits written.
    """
    if kind not in ("potentiate", "depress"):
        raise ValueError(f"commit_adapter kind must be 'potentiate' or 'depress', got {kind!r}")
    bits = 0
    for layer in _holding(model, name):
        adapter = layer.adapters[name]
        bits += adapter.bits
        if layer.ledger is not None:
            layer.ledger.post_sram_write(adapter.bits, note=f"adapter {name}")
        layer.emit(kind, adapter=name, delta_weight=adapter.delta_weight().detach().clone())
    return bits


def fuse_adapters(model: nn.Module, fused: bool = True) -> None:
    """Fold (or unfold) each layer's active adapters into one digital ΔW: all of them with gradients off, the
    frozen ones where that pays with gradients on (``HybridLayer.fuse``)."""
    if not isinstance(fused, bool):
        raise TypeError(f"fuse_adapters takes fused=True or False, got {fused!r}")
    for _, layer in _layers_or_fail(model):
        layer.fuse(fused)


def set_time(model: nn.Module, seconds: float) -> None:
    """Let every crossbar relax for ``seconds`` since it was programmed."""
    for _, layer in _layers_or_fail(model):
        layer.set_time(seconds)


def inject_stuck(model: nn.Module, on_rate: float, off_rate: float) -> int:
    return sum(layer.inject_stuck(on_rate, off_rate) for _, layer in _layers_or_fail(model))


def add_write_noise(model: nn.Module, sigma_us: float) -> None:
    """Perturb every crossbar's cells by Gaussian conductance noise of ``sigma_us``."""
    for _, layer in _layers_or_fail(model):
        layer.add_write_noise(sigma_us)


def reprogram(model: nn.Module, weights: dict[str, torch.Tensor] | None = None) -> list[ProgramResult]:
    """Write-verify new base weights (default: each layer's own effective weights, i.e. a refresh)."""
    results = []
    for name, layer in _layers_or_fail(model):
        target = layer.effective_weight() if weights is None else weights[name]
        results.append(layer.program(target.detach().cpu(), note=f"reprogram {name}"))
    return results


def reprogram_from(deployed: nn.Module, trained: nn.Module, ledger: Ledger) -> list[ProgramResult]:
    """The full-reprogramming baseline: write every weight of ``trained`` (a digital copy of the same
    network, fine-tuned) into ``deployed``'s crossbars, costed in ``ledger``, and copy its digital state
    (biases, norms, readout) over."""
    names = [name for name, _ in hybrid_layers(deployed)]
    set_ledger(deployed, ledger)
    results = reprogram(deployed, {name: trained.get_submodule(name).weight for name in names})
    crossbar_weights = {f"{name}.weight" for name in names}
    digital = {k: v for k, v in trained.state_dict().items() if k not in crossbar_weights}
    result = deployed.load_state_dict(digital, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"reprogram_from: the deployed model has no place for {result.unexpected_keys}")
    return results


@dataclass
class ModelCounts:
    """Work a model did since its counters were reset, split analogue / digital."""

    analog: OpCounts = field(default_factory=OpCounts)
    logical_macs: int = 0  # weight-level MACs of the bases (what a digital processor would do)
    digital_macs: dict[str, int] = field(default_factory=dict)
    sram_bits_read: int = 0
    dac_by_bits: dict[int, int] = field(default_factory=dict)  # input bits → DAC conversions

    @property
    def adapter_macs(self) -> int:
        return sum(self.digital_macs.values())


def collect_counts(model: nn.Module) -> ModelCounts:
    counts = ModelCounts()
    for _, layer in hybrid_layers(model):
        c = layer.crossbar.counts
        counts.analog = counts.analog + c
        counts.logical_macs += c.vectors * layer.crossbar.in_features * layer.crossbar.out_features
        for precision, macs in layer.digital_macs.items():
            counts.digital_macs[precision] = counts.digital_macs.get(precision, 0) + macs
        counts.sram_bits_read += layer.sram_bits_read
        if c.dac_conversions:
            bits = layer.crossbar.config.dac_bits or 1
            counts.dac_by_bits[bits] = counts.dac_by_bits.get(bits, 0) + c.dac_conversions
    return counts


def reset_counts(model: nn.Module) -> None:
    for _, layer in hybrid_layers(model):
        layer.reset_counts()


def post_inference(
    ledger: Ledger, counts: ModelCounts, mode: str = "hybrid", extra_digital_macs: int = 0, phase: str = "infer"
) -> None:
    """Post the work of ``counts`` as it would cost on one kind of hardware.

    ``hybrid``: bases in the crossbars (DAC, array, ADC), adapters digital from SRAM (as measured).
    ``analog``: the same network with its adapters merged into the crossbars (no digital branch).
    ``gpu``: every MAC on a GPU.  ``extra_digital_macs`` covers digital layers outside the crossbars
    (heads), fp32.  ``phase="train"`` posts a training pass's work under ``train.*``.
    """
    if mode == "hybrid":
        ledger.post_inference(counts.analog.macs, counts.analog.adc_conversions, note="bases",
                              dac_conversions=counts.dac_by_bits, phase=phase)
        for precision, macs in counts.digital_macs.items():
            ledger.post_inference(digital_macs=macs, digital_precision=precision, note="adapters", phase=phase)
        ledger.post_inference(sram_bits_read=counts.sram_bits_read, digital_macs=extra_digital_macs,
                              note="adapters+heads", phase=phase)
    elif mode == "analog":
        ledger.post_inference(counts.analog.macs, counts.analog.adc_conversions, extra_digital_macs, note="merged",
                              dac_conversions=counts.dac_by_bits, phase=phase)
    elif mode == "gpu":
        ledger.post_gpu_inference(counts.logical_macs + counts.adapter_macs + extra_digital_macs, phase=phase)
    else:
        raise ValueError(f"post_inference mode must be 'hybrid', 'analog' or 'gpu', got {mode!r}")


def trainable_parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
