"""Weight matrices on resistive crossbars: mapping, 128x128 tiling, analogue MVM, ADC and op counters.

A weight matrix ``W`` (out x in) is stored with its inputs on the array rows and its outputs on the
columns.  The effective weights used by every forward pass are *decoded from the cells' conductances*,
so whatever programming error, drift or fault the cells carry is exactly what the network computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from neuro_rm import fused
from neuro_rm.device import CellArray, DeviceConfig, ProgramResult

MAPPINGS = ("offset", "differential")


COMPENSATIONS = ("none", "global", "column", "offset")


@dataclass(frozen=True)
class CrossbarConfig:
    """How weights meet the array, and the periphery that reads it.

    ``offset``: one cell per weight, G = G_mid + k·w, zero weight at mid-window (as the public
    reference implementation maps weights).  ``differential``: a pair per weight, w ∝ G+ − G−, both
    starting from g_min; twice the cells, but a zero weight draws almost no current.

    Realistic by default; ``CrossbarConfig.ideal()`` switches the periphery off for comparison:

    - ``read_noise``: every read of the array is noisy, drawn afresh for every input vector and
      dependent on each cell's conductance (``DeviceConfig.read_sigma_us``).
    - ``dac_bits`` / ``input_bound``: each input passes a multi-level signed DAC with a fixed range
      [−input_bound, input_bound) in steps of input_bound / 2^(dac_bits−1) (8 bits over ±16: steps of
      1/8, so spikes and spike counts up to 15 pass exactly; larger inputs saturate).
    - ``adc_bits``: each tile's column sums are digitised by an ADC whose full scale is fixed per tile and
      column, calibrated once after programming on a calibration batch (see ``Crossbar.calibrate``), and
      saturates beyond it.
    - ``drift_compensation``: ``global`` or ``column`` rescales outputs by reference / now, from a
      readout of a fixed calibration input recorded at programming time; ``offset`` subtracts each
      column's common weight error (its mean over the rows) times Σx, measured as the column's sum read
      with every row on against the sum of its programming targets, which the controller knows (a
      common conductance shift is an offset ∝ Σx, not a gain, under the offset mapping). Off by default.
      Assumed, not modelled: the all-rows read has its own ADC range (through the data path's calibrated
      full scale it saturates on a drifted array: a review measured 33 % of tile columns at 10^6 s, and the
      HfOx speaker RSNN then at 95.6 % instead of 99.2 %); it is taken noise-free (averaging 16 noisy reads
      changed nothing in that review); IR drop, worst with every row on, is not simulated; and neither the
      reference reads nor the multiply-add per output are charged in the ledger.
    """

    mapping: str = "offset"
    tile_rows: int = 128
    tile_cols: int = 128
    read_noise: bool = True
    dac_bits: int | None = 8  # None: inputs reach the rows unquantised
    input_bound: float = 16.0  # DAC range: inputs in [-input_bound, input_bound)
    adc_bits: int | None = 8  # None: ideal read-out of the column sums
    drift_compensation: str = "none"

    def __post_init__(self) -> None:
        if self.mapping not in MAPPINGS:
            raise ValueError(f"CrossbarConfig.mapping must be one of {MAPPINGS}, got {self.mapping!r}")
        if self.tile_rows < 1 or self.tile_cols < 1:
            raise ValueError(f"crossbar tiles need positive size, got {self.tile_rows}x{self.tile_cols}")
        if self.adc_bits is not None and not 2 <= self.adc_bits <= 16:
            raise ValueError(f"CrossbarConfig.adc_bits must be None or 2..16, got {self.adc_bits}")
        if self.dac_bits is not None and not 1 <= self.dac_bits <= 16:
            raise ValueError(f"CrossbarConfig.dac_bits must be None or 1..16, got {self.dac_bits}")
        if not (self.input_bound > 0 and math.isfinite(self.input_bound)):
            raise ValueError(f"CrossbarConfig.input_bound must be a finite number > 0, got {self.input_bound}")
        if self.drift_compensation not in COMPENSATIONS:
            raise ValueError(
                f"CrossbarConfig.drift_compensation must be one of {COMPENSATIONS}, got {self.drift_compensation!r}"
            )

    @classmethod
    def ideal(cls, **overrides: object) -> CrossbarConfig:
        """No read noise, no DAC, no ADC: the decoded weights applied exactly (the old behaviour)."""
        return replace(cls(read_noise=False, dac_bits=None, adc_bits=None), **overrides)

    @property
    def is_ideal(self) -> bool:
        return not self.read_noise and self.dac_bits is None and self.adc_bits is None


@dataclass
class OpCounts:
    """Analogue work done since the counters were last reset."""

    vectors: int = 0  # input vectors applied
    array_activations: int = 0  # tile reads
    macs: int = 0  # cell-level multiply-accumulates
    adc_conversions: int = 0
    dac_conversions: int = 0  # one per input element and column of tiles (each tile drives its own rows)

    def __add__(self, other: OpCounts) -> OpCounts:
        return OpCounts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.vectors, self.array_activations, self.macs, self.adc_conversions, self.dac_conversions)


def _straight_through(exact: torch.Tensor, rounded: torch.Tensor) -> torch.Tensor:
    """Forward the rounded value, backpropagate as if nothing was rounded."""
    return exact + (rounded - exact).detach()


# The fixed calibration input of the drift reference readout: 64 random binary vectors (a seed, not data).
_REFERENCE_VECTORS, _REFERENCE_SEED = 64, 20_240_601
# Reads without autograd go through the periphery this many tile sums at a time (1 MB: cache-sized).
_CHUNK_ELEMENTS = 1 << 18
_EMPTY = torch.empty(0)  # an absent optional tensor, for the compiled kernel
# A work buffer is reallocated smaller once it holds more than this many times a read's need, and more than
# this floor of elements (64 kB of float32: below it, keeping one costs less than reallocating it).
SCRATCH_SLACK, SCRATCH_FLOOR = 4, 1 << 14


def noise_key(generator: torch.Generator) -> int:
    """One draw of ``generator`` that keys a call's read-noise stream (see ``stream_normals``)."""
    return int(torch.randint(1 << 62, (), generator=generator))


def stream_normals(key: int, shape: torch.Size) -> torch.Tensor:
    """Standard normal draws of ``shape`` (CPU) from the stream ``key``: every entry its own, and calls with
    different keys share nothing.  With the compiled module, the counter-based stream its periphery loop makes
    (pair p of row v: Box-Muller on a SplitMix64 hash of key and v·⌈width/2⌉ + p), so the eager and compiled
    periphery read the same draws; without one, ``torch.randn`` from a generator seeded with the key."""
    compiled = fused.module()
    if compiled is None:
        return torch.randn(shape, generator=torch.Generator().manual_seed(key))
    draws = torch.empty(shape)
    compiled.normal_fill(draws, key)
    return draws


def standard_normals(shape: torch.Size, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Fresh standard normal draws of ``shape`` for one call's read noise, keyed by the cells' generator."""
    return stream_normals(noise_key(generator), shape).to(device)


def _or_empty(t: torch.Tensor | None) -> torch.Tensor:
    return _EMPTY if t is None else t


def _compiled_for(x: torch.Tensor) -> object | None:
    """The compiled periphery module where it can read ``x`` (float32, CPU, contiguous), else None."""
    return fused.kernel() if x.dtype == torch.float32 and x.device.type == "cpu" and x.is_contiguous() else None


def _spike_rows(x: torch.Tensor) -> torch.Tensor | None:
    """Σx per row when every entry is 0 or 1 (spikes), else None.

    x in [0, 1] and Σx² = Σx force x(x − 1) = 0 everywhere; four read-only passes, no copies, one sync
    (one pass where the compiled kernel is available).
    """
    if x.numel() == 0:
        return None
    compiled = _compiled_for(x)
    if compiled is not None:
        rows = torch.empty(x.shape[0], 1)
        return rows if compiled.binary_rows(x, rows) else None
    flat = x.reshape(-1)
    rows = x.sum(dim=-1, keepdim=True)
    low, high, squares, total = torch.stack((x.amin(), x.amax(), torch.dot(flat, flat), rows.sum())).tolist()
    return rows if low >= 0 and high <= 1 and squares == total else None


class Crossbar(nn.Module):
    """One weight matrix held in resistive cells, tiled onto ``tile_rows x tile_cols`` arrays.

    Reading it (``matmul``) follows one input vector through the periphery: DAC on the rows, the tiles'
    column currents (decoded conductances, so programming error, drift and faults are exactly what is
    computed), read noise, an ADC per tile and column, the digital sum over row tiles and the optional
    drift-compensation gain.  All row tiles are computed in one batched product.

    The decoded weights, the read-noise variances and the compensation are cached until the cells change
    through this object (``program``, ``consolidate``, ``set_time``, ``inject_stuck``, ``add_write_noise``,
    ``load_state_dict``): a change made on ``self.cells`` directly is not seen.  Reads without autograd use
    reused work buffers, so one crossbar is read by one thread at a time.
    """

    def __init__(
        self,
        out_features: int,
        in_features: int,
        device: DeviceConfig | None = None,
        config: CrossbarConfig | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if out_features < 1 or in_features < 1:
            raise ValueError(f"a crossbar needs a non-empty weight matrix, got {out_features}x{in_features}")
        self.device_config = device or DeviceConfig()
        self.config = config or CrossbarConfig()
        self.out_features, self.in_features = out_features, in_features
        planes = 2 if self.config.mapping == "differential" else 1
        self.cells = CellArray((planes, out_features, in_features), self.device_config, seed)
        self.register_buffer("weight_max", torch.ones(()))  # |w| that maps to the window edge
        # ADC full scale per (row tile, column), fixed by calibration; zero until calibrated
        self.register_buffer("adc_full_scale", torch.zeros(self.row_tiles, out_features))
        # |output| per column for the fixed calibration input, recorded at programming time
        self.register_buffer("drift_reference", torch.zeros(out_features))
        # sum over the rows of each column's target weights, recorded when the cells are written
        self.register_buffer("column_target", torch.zeros(out_features))
        self.counts = OpCounts()
        self.calibrating = False  # True while a calibration batch runs through the model
        self._seen: torch.Tensor | None = None  # largest |column sum| per tile seen while calibrating
        self.clip_tally: list[int] | None = None  # [clipped, converted] ADC conversions while a probe counts
        self._weight_cache: torch.Tensor | None = None
        self._conductance_cache: tuple[float, torch.Tensor] | None = None
        self._gain_cache: torch.Tensor | None = None
        self._adc_cache: tuple | None = None
        self._calibrated: bool | None = None
        self._noise_cache: tuple | None = None
        self._per_vector: tuple[int, int, int, int] | None = None  # op counts per input vector
        self._scratch_buffers: dict[str, torch.Tensor] = {}  # reused no-grad work buffers (see ``_scratch``)

    # ----------------------------------------------------------------- geometry
    @property
    def physical_columns(self) -> int:
        return self.out_features * self.cells.shape[0]

    @property
    def row_tiles(self) -> int:
        return math.ceil(self.in_features / self.config.tile_rows)

    @property
    def column_tiles(self) -> int:
        return math.ceil(self.physical_columns / self.config.tile_cols)

    @property
    def n_tiles(self) -> int:
        return self.row_tiles * self.column_tiles

    @property
    def n_cells(self) -> int:
        return self.cells.programmed_us.numel()

    # ----------------------------------------------------------------- mapping
    def _gain(self) -> float:
        """Conductance change (µS) per unit of weight."""
        d = self.device_config
        span = (d.g_max_us - d.g_mid_us) if self.config.mapping == "offset" else (d.g_max_us - d.g_min_us)
        return span / float(self.weight_max)

    def encode(self, weight: torch.Tensor) -> torch.Tensor:
        """Target conductances (µS) for a weight matrix, under the current ``weight_max``."""
        d, k = self.device_config, self._gain()
        if self.config.mapping == "offset":
            return (d.g_mid_us + k * weight).unsqueeze(0)
        return torch.stack((d.g_min_us + k * weight.clamp_min(0), d.g_min_us + k * (-weight).clamp_min(0)))

    def decode(self, conductance_us: torch.Tensor) -> torch.Tensor:
        """The weights that a set of conductances represents: exactly what the array computes."""
        k = self._gain()
        if self.config.mapping == "offset":
            return (conductance_us[0] - self.device_config.g_mid_us) / k
        return (conductance_us[0] - conductance_us[1]) / k

    def program(self, weight: torch.Tensor) -> ProgramResult:
        """Write-and-verify a weight matrix into the cells; the scale follows the largest |w|.

        Programming also clears the ADC calibration (the next batch recalibrates it) and records the
        drift-compensation reference readout.
        """
        if weight.shape != (self.out_features, self.in_features):
            raise ValueError(
                f"weight shape {tuple(weight.shape)} does not match crossbar "
                f"{self.out_features}x{self.in_features}"
            )
        weight = weight.detach().float().cpu()
        if not torch.isfinite(weight).all():
            raise ValueError("cannot program weights that contain NaN or infinite values")
        largest = float(weight.abs().max())
        # floor the scale: all-zero (or denormal) weights fit any gain, and a steep one errs least
        self.weight_max.fill_(max(largest, 1e-12))
        result = self._program(self.encode(weight))
        self._written(result, self.decode(result.targets_us).sum(dim=1))
        return result

    def consolidate(self, delta: torch.Tensor) -> ProgramResult:
        """Add ``delta`` (weight units) to the stored weights, pulsing only the cells whose target moves by
        more than the write tolerance.

        The scale stays as programmed (a change of scale would move every cell), targets are clipped to
        the window, and a change below the tolerance is not written: write-and-verify could not place a
        cell that precisely anyway.  See ``write_threshold`` for that limit in weight units.  Like
        programming, it clears the ADC calibration and records a new drift reference.
        """
        if delta.shape != (self.out_features, self.in_features):
            raise ValueError(f"delta shape {tuple(delta.shape)} does not match crossbar {self.out_features}x{self.in_features}")
        delta = delta.detach().float().cpu()
        if not torch.isfinite(delta).all():
            raise ValueError("cannot consolidate a weight change that contains NaN or infinite values")
        shift = self._cell_shift(delta)
        moved = shift.abs() > self._write_resolution_us()
        intended = self._column_targets() + (delta * moved.any(dim=0)).sum(dim=1)  # only what the write asked
        result = self._program(self.cells.conductance() + shift, cells=moved)
        self._written(result, intended)
        return result

    def _program(self, targets_us: torch.Tensor, cells: torch.Tensor | None = None) -> ProgramResult:
        """Write-and-verify the cells; interrupted, the cells hold what the pulses so far made of them, so no
        cached view of them survives."""
        try:
            return self.cells.program(targets_us, cells)
        except BaseException:
            self._changed()
            raise

    def _cell_shift(self, delta: torch.Tensor) -> torch.Tensor:
        """The conductance change (µS, cell by cell) that adding ``delta`` (weight units) asks of the cells."""
        return self.encode(delta) - self.encode(torch.zeros_like(delta))

    def cells_moved_by(self, delta: torch.Tensor) -> torch.Tensor:
        """The cells ``consolidate(delta)`` would pulse: those asked to move beyond the write resolution."""
        return self._cell_shift(delta.detach().float().cpu()).abs() > self._write_resolution_us()

    def _column_targets(self) -> torch.Tensor:
        """Per column, the sum of the weights the cells were last asked to hold (the programmed cells
        themselves for a state saved before this reference existed)."""
        if not self.column_target.any():
            return self.decode(self.cells.programmed_us).sum(dim=1)
        return self.column_target

    def _written(self, result: ProgramResult, column_target: torch.Tensor) -> None:
        """After a write: the ADC calibration is cleared (the next batch or ``calibrate`` sets it anew), every
        cached view of the cells is stale, and the compensation references are recorded: the drift readout
        afresh, the column targets as the write intended them (a partial write adds what it asked of the
        cells it moved; the others keep their targets, so drift from before the write stays visible)."""
        self.adc_full_scale.zero_()
        self._changed()
        self._seen = None
        self.drift_reference.copy_(self._reference_readout())
        self.column_target.copy_(column_target)

    def _write_resolution_us(self) -> float:
        """Smallest conductance change a write can place: the verify tolerance, or half a level step
        where levels are coarser (a smaller change would land on a neighbouring level at random)."""
        cfg = self.device_config
        return max(cfg.tolerance_us, cfg.level_step_us / 2)

    @property
    def write_threshold(self) -> float:
        """Smallest weight change (per cell) that consolidation writes: the write resolution over the gain."""
        return self._write_resolution_us() / self._gain()  # one cell of a pair carries the whole change

    # ----------------------------------------------------------------- state changes
    def _changed(self) -> None:
        self._weight_cache = self._conductance_cache = self._gain_cache = self._adc_cache = self._calibrated = None
        self._noise_cache = self._per_vector = None

    def set_config(self, config: CrossbarConfig) -> None:
        """Swap the periphery (noise, DAC, ADC, compensation); the mapping and tiling are fixed by the cells."""
        old = self.config
        if (config.mapping, config.tile_rows, config.tile_cols) != (old.mapping, old.tile_rows, old.tile_cols):
            raise ValueError(
                f"set_config can change the periphery only; mapping and tiles stay {old.mapping}, "
                f"{old.tile_rows}x{old.tile_cols} (got {config.mapping}, {config.tile_rows}x{config.tile_cols})"
            )
        self.config = config
        self._changed()

    def set_time(self, seconds: float) -> None:
        """Let the cells relax for ``seconds`` since programming (drift)."""
        self.cells.elapsed_s = seconds
        self._changed()

    def inject_stuck(self, on_rate: float, off_rate: float) -> int:
        stuck = self.cells.inject_stuck(on_rate, off_rate)
        self._changed()
        return stuck

    def add_write_noise(self, sigma_us: float) -> None:
        self.cells.add_write_noise(sigma_us)
        self._changed()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs) -> None:  # noqa: ANN001, PLR0913
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        # states saved before these buffers existed: the ADC recalibrates, the reference is rebuilt lazily
        for name in ("adc_full_scale", "drift_reference", "column_target"):
            if prefix + name in missing_keys:
                missing_keys.remove(prefix + name)
                getattr(self, name).zero_()
        self._changed()

    # ----------------------------------------------------------------- reading
    def weight(self) -> torch.Tensor:
        """Effective (decoded) weights now, without read noise; cached until the cells change."""
        if self._weight_cache is None:
            self._weight_cache = self.decode(self.cells.conductance())
        return self._weight_cache

    def _conductance_variance(self, per_conductance: float) -> torch.Tensor:
        """Read-noise variance per unit x² of each weight's cells (one cell, or both of a pair):
        ``per_conductance`` · G summed over the cells, as (in, out), contiguous (the product's layout);
        cached with its factor, so that a read pays one product and no pass to scale it."""
        cached = self._conductance_cache
        if cached is None or cached[0] != per_conductance:
            summed = self.cells.conductance().sum(dim=0).t().contiguous()
            cached = self._conductance_cache = (per_conductance, summed.mul_(per_conductance))
        return cached[1]

    def _reference_readout(self, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Per-column |output| summed over the fixed calibration input (noise-free: 64 vectors average it)."""
        weight = self.weight() if weight is None else weight
        generator = torch.Generator().manual_seed(_REFERENCE_SEED)
        x = (torch.rand(_REFERENCE_VECTORS, self.in_features, generator=generator) < 0.5).to(weight)
        return F.linear(x, weight).abs().sum(dim=0)

    def offset_correction(self) -> torch.Tensor | None:
        """Per column, the common weight error to subtract per unit of Σx (``offset`` compensation): (column
        sum read now − sum of its targets) / rows; None in the other modes."""
        if self.config.drift_compensation != "offset":
            return None
        if self._gain_cache is None:
            self._gain_cache = (self.weight().sum(dim=1) - self._column_targets()) / self.in_features
        return self._gain_cache

    def compensation_gain(self) -> torch.Tensor | None:
        """Drift-compensation gain (reference / now readout), global or per column; None when off."""
        mode = self.config.drift_compensation
        if mode in ("none", "offset"):
            return None
        if self._gain_cache is None:
            if not self.drift_reference.any():  # loaded from an older state: the programmed cells' readout
                self.drift_reference.copy_(self._reference_readout(self.decode(self.cells.programmed_us)))
            now, ref = self._reference_readout(), self.drift_reference
            if mode == "global":
                gain = ref.sum() / now.sum().clamp_min(1e-12)
            else:  # a column that reads (almost) nothing cannot be rescaled; leave it alone
                alive = now > 1e-6 * float(now.max().clamp_min(1e-12))
                gain = torch.where(alive, ref / now.clamp_min(1e-12), torch.ones_like(now))
            self._gain_cache = gain
        return self._gain_cache

    def count(self, vectors: int) -> None:
        """Record ``vectors`` input vectors pushed through the array."""
        if self._per_vector is None:  # the geometry is fixed; only the DAC depends on the periphery
            cols = self.physical_columns
            dac = self.in_features * self.column_tiles if self.config.dac_bits is not None else 0
            self._per_vector = (self.n_tiles, self.in_features * cols, self.row_tiles * cols, dac)
        tiles, macs, conversions, dac = self._per_vector
        counts = self.counts
        counts.vectors += vectors
        counts.array_activations += vectors * tiles
        counts.macs += vectors * macs
        counts.adc_conversions += vectors * conversions
        counts.dac_conversions += vectors * dac

    def reset_counts(self) -> None:
        self.counts = OpCounts()

    def dac(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs as the row DACs apply them: signed levels of input_bound / 2^(bits−1), saturating."""
        bits = self.config.dac_bits
        if bits is None:
            return x
        step, low, high = self.config.input_bound / 2 ** (bits - 1), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        compiled = _compiled_for(x)
        if compiled is not None:  # one pass instead of four, the same values
            levels = torch.empty_like(x, requires_grad=False)
            compiled.dac_levels(x.detach(), step, low, high, levels)
        else:
            levels = torch.round(x.detach() / step).clamp_(low, high).mul_(step)
        return _straight_through(x, levels) if x.requires_grad else levels

    def _dac_passes_spikes(self) -> bool:
        """Whether 0 and 1 are both DAC levels, so that spikes pass the DAC unchanged."""
        bits = self.config.dac_bits
        if bits is None:
            return True
        per_unit = 2 ** (bits - 1) / self.config.input_bound  # levels per unit input
        return per_unit == round(per_unit) and per_unit <= 2 ** (bits - 1) - 1

    def _arrange(self, w: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Weights (out, in) as the tiles hold them: full row tiles (tiles, rows, out) and the partly
        filled last tile (out, rows); None where there is no such tile."""
        rows, full = self.config.tile_rows, self.in_features // self.config.tile_rows
        whole = w[:, : full * rows].reshape(-1, full, rows).permute(1, 2, 0) if full else None
        rest = w[:, full * rows :] if full < self.row_tiles else None
        return whole, rest

    def _row_tiles_of(self, x: torch.Tensor, full: int) -> torch.Tensor:
        """The inputs of the ``full`` full row tiles, (tiles, vectors, rows): a view, no copy."""
        rows = self.config.tile_rows
        return x[:, : full * rows].reshape(-1, full, rows).transpose(0, 1)

    def _tile_parts(
        self, x: torch.Tensor, whole_w: torch.Tensor | None, rest_w: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Column sums of the full row tiles, (tiles, vectors, out), from one batched product, and of the
        partly filled last tile, (vectors, out), for weights arranged by ``_arrange`` (with autograd)."""
        full = 0 if whole_w is None else whole_w.shape[0]
        whole = None if whole_w is None else torch.bmm(self._row_tiles_of(x, full), whole_w)
        rest = None if rest_w is None else F.linear(x[:, full * self.config.tile_rows :], rest_w)
        return whole, rest

    def _tile_sums(
        self, x: torch.Tensor, whole_w: torch.Tensor | None, rest_w: torch.Tensor | None, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The same products as ``_tile_parts`` for inputs without autograd, all row tiles in one tensor
        (row_tiles, vectors, out), written into ``out`` if given."""
        sums = torch.empty(self.row_tiles, x.shape[0], self.out_features, dtype=x.dtype, device=x.device) if out is None else out
        full = 0 if whole_w is None else whole_w.shape[0]
        if whole_w is not None:
            torch.bmm(self._row_tiles_of(x, full), whole_w, out=sums[:full])
        if rest_w is not None:
            torch.mm(x[:, full * self.config.tile_rows :], rest_w.t(), out=sums[full])
        return sums

    def _scratch(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """A reused work buffer of ``shape`` (not in the state_dict), for reads without autograd that use it
        at once: a fresh allocation per call costs about as much as a pass over it."""
        size = math.prod(shape)
        return self._buffer(name, size, like)[:size].view(shape)

    def _buffer(self, name: str, size: int, like: torch.Tensor) -> torch.Tensor:
        """The flat work buffer behind ``_scratch``: at least ``size`` elements of ``like``'s kind, and not
        more than ``SCRATCH_SLACK`` times that (beyond a small floor), so one large batch (a calibration, an
        evaluation) does not pin its work memory for every later small read."""
        flat = self._scratch_buffers.get(name)
        oversized = flat is not None and flat.numel() > SCRATCH_SLACK * max(size, SCRATCH_FLOOR)
        if flat is None or oversized or flat.numel() < size or flat.dtype != like.dtype or flat.device != like.device:
            flat = self._scratch_buffers[name] = torch.empty(size, dtype=like.dtype, device=like.device)
        return flat

    def _noise_terms(self) -> tuple[float, float, float, float]:
        """Read-noise variance coefficients in output units (see ``_noise_std``), cached until the cells or
        the scale change: (per ‖x‖², per x²·G, per Σx for spikes, per output for spikes)."""
        if self._noise_cache is None or self._noise_cache[0] is not self.device_config:
            s0, s1 = self.device_config.read_variance_coefficients()
            gain = self._gain()
            k2 = gain**2
            s0 *= self.cells.shape[0]  # a differential pair reads two cells
            spikes = (s0 + s1 * self.device_config.g_mid_us) / k2
            self._noise_cache = (self.device_config, (s0 / k2, s1 / k2, spikes, s1 / gain))
        return self._noise_cache[1]

    def _variance_terms(
        self, x: torch.Tensor, spike_rows: torch.Tensor | None
    ) -> tuple[torch.Tensor, float, float, torch.Tensor | None]:
        """Each output's read-noise variance, per input vector (output-referred), as
        ``row_scale · rows + alpha · source``: a sum per vector (vectors, 1) and its factor, a factor, and the
        matrix whose product with x² is the source, or None where the source is the output itself; no autograd.

        Independent cell noise of variance s0 + s1·G gives a column sum of variance
        Σ_i x_i²·(s0 + s1·G_i) / k² = (s0·‖x‖² + s1·(x² @ Gᵀ)) / k².  For the offset mapping and binary
        inputs (spikes, ``spike_rows`` = Σx) x² = x and x @ Gᵀ = G_mid·Σx + k·(x @ wᵀ), so the output
        already holds it (digitised, to within an LSB per tile).  ``alpha`` = 0: the row term alone.
        """
        per_square, per_conductance, per_spike, per_output = self._noise_terms()
        if spike_rows is not None and (per_conductance == 0 or self.config.mapping == "offset"):
            return spike_rows, per_spike, per_output, None
        rows = (x * x).sum(dim=-1, keepdim=True)
        if not per_conductance:
            return rows, per_square, 0.0, None
        return rows, per_square, 1.0, self._conductance_variance(per_conductance).to(x.dtype)

    def _variance_parts(
        self, x: torch.Tensor, spike_rows: torch.Tensor | None, out: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, float, float, torch.Tensor | None]:
        """``_variance_terms`` with the squares' product made (into ``out`` if given): the source, None
        where it is the output itself."""
        rows, row_scale, alpha, square_w = self._variance_terms(x, spike_rows)
        return rows, row_scale, alpha, None if square_w is None else torch.mm(x * x, square_w, out=out)

    def _noise_std(
        self, x: torch.Tensor, y: torch.Tensor, spike_rows: torch.Tensor | None, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Std of each output's read noise (see ``_variance_parts``); ``out`` (shaped like ``y``) takes it if given."""
        rows, row_scale, alpha, source = self._variance_parts(x, spike_rows, out)
        row = row_scale * rows
        if not alpha:  # one std per input vector, broadcast over the outputs
            return row.clamp_(min=1e-30).sqrt_()
        var = torch.add(row, y, alpha=alpha, out=out) if source is None else source.add_(row)
        return var.clamp_(min=1e-30).sqrt_()  # (sqrt is many times slower on exact zeros)

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor) -> None:
        """Fix each tile's ADC full scale from a calibration batch: the largest |column sum| seen (noise-free).

        Calls accumulate until the next programming or ``start_calibration``.  A column that saw nothing
        gets 1 % of its tile's largest full scale, or the worst case input_bound·Σ|w| when the whole tile
        saw nothing.
        """
        x = self.dac(x.reshape(-1, self.in_features))
        w = self.weight().to(x.dtype)
        seen = self._tile_sums(x, *self._arrange(w)).abs_().amax(dim=1).float().cpu()
        self._seen = seen if self._seen is None else torch.maximum(self._seen, seen)
        padded = F.pad(w.abs(), (0, self.row_tiles * self.config.tile_rows - self.in_features))
        worst = padded.reshape(self.out_features, self.row_tiles, -1).sum(-1).T.float().cpu()
        tile_max = self._seen.amax(dim=1, keepdim=True)
        floor = torch.where(tile_max > 0, 0.01 * tile_max, self.config.input_bound * worst)
        self.adc_full_scale.copy_(torch.maximum(self._seen, floor).clamp_min(1e-12))
        self._adc_cache = self._calibrated = None

    @torch.no_grad()
    def count_clipping(self, x: torch.Tensor) -> None:
        """Add to ``clip_tally`` how many tile column sums of ``x`` (noise-free) lie beyond the ADC's full
        scale, i.e. saturate, and how many were converted."""
        x = self.dac(x.reshape(-1, self.in_features))
        sums = self._tile_sums(x, *self._arrange(self.weight().to(x.dtype))).abs_()
        self.clip_tally[0] += int((sums > self.adc_full_scale.to(sums).unsqueeze(1)).sum())
        self.clip_tally[1] += sums.numel()

    def start_calibration(self) -> None:
        """Forget the current full scale; every ``matmul`` until ``calibrating`` is reset calibrates."""
        self._seen = None
        self.calibrating = True

    @property
    def calibrated(self) -> bool:
        if self._calibrated is None:
            self._calibrated = bool(self.adc_full_scale.gt(0).all())
        return self._calibrated

    def _adc_weights(self, dtype: torch.dtype) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor, tuple[torch.Tensor, ...]]:
        """The weights divided by each tile's and column's LSB, so that a product comes out in ADC codes,
        arranged by tiles (contiguous, for the batched product), the LSBs (tiles, 1, out) and the same
        LSBs tile by tile."""
        if self._adc_cache is None or self._adc_cache[0] != dtype:
            lsb = self.adc_full_scale / (2 ** (self.config.adc_bits - 1) - 1)  # (tiles, out)
            per_row = lsb.repeat_interleave(self.config.tile_rows, dim=0)[: self.in_features].T  # (out, in)
            whole, rest = self._arrange((self.weight() / per_row).to(dtype))
            lsb = lsb.to(dtype).unsqueeze(1)
            self._adc_cache = (dtype, None if whole is None else whole.contiguous(), rest, lsb, tuple(lsb.unbind(0)),
                               None if rest is None else rest.t().contiguous())
        return self._adc_cache[1:5]

    def _rest_rows(self, dtype: torch.dtype) -> torch.Tensor | None:
        """The partly filled last tile's LSB-scaled weights as rows (rest, out), contiguous (compiled read)."""
        self._adc_weights(dtype)
        return self._adc_cache[5]

    def _quantise(self, codes: torch.Tensor, lsb: tuple[torch.Tensor, ...], out: torch.Tensor | None = None) -> torch.Tensor:
        """Tile column sums given in LSBs, (row_tiles, vectors, out) → rounded, saturating ADC codes (in
        place), scaled back with each tile's LSBs and added digitally (into ``out`` if given); no autograd."""
        levels = self._levels()
        first, *others = codes.round_().clamp_(-levels, levels)
        # tile by tile into one sum: a sum over the leading dimension is slow on CPU
        y = torch.mul(first, lsb[0], out=out)
        for code, step in zip(others, lsb[1:], strict=True):
            y.addcmul_(code, step)
        return y

    def _digitise(self, x: torch.Tensor) -> torch.Tensor:
        """Every row tile's column sums through its ADC, with autograd: the product runs on the weights,
        and the ADC's rounding is passed straight through from the tile sums."""
        _, _, lsb, lsb_tiles = self._adc_weights(x.dtype)
        whole, rest = self._tile_parts(x, *self._arrange(self.weight().to(x.dtype)))
        exact = sum(part if part.dim() == 2 else part.sum(dim=0) for part in (whole, rest) if part is not None)
        full = 0 if whole is None else whole.shape[0]
        with torch.no_grad():
            codes = torch.empty(self.row_tiles, x.shape[0], self.out_features, dtype=x.dtype, device=x.device)
            if whole is not None:
                torch.div(whole.detach(), lsb[:full], out=codes[:full])
            if rest is not None:
                torch.div(rest.detach(), lsb[-1], out=codes[full])
            rounded = self._quantise(codes, lsb_tiles)
        return _straight_through(exact, rounded)

    def matmul(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Analogue product ``x @ W^T`` (x: ..., in) through DAC, array, read noise, ADC and compensation,
        plus the digital ``bias`` if given.

        With an ADC, every row tile's column sums are digitised separately (a tile's currents are
        converted before tiles are added) against the calibrated full scale; an uncalibrated array
        calibrates on its first batch.  Read noise is output-referred: one draw per output and input
        vector with the std of the summed independent cell noises, added to the digitised sum.
        Gradients pass straight through DAC and ADC.
        """
        cfg = self.config
        if self.calibrating:
            self.calibrate(x)
        shape = x.shape
        x = x.reshape(-1, self.in_features)
        noisy = cfg.read_noise and self.device_config.read_noise_us > 0
        spike_rows = _spike_rows(x.detach()) if noisy or cfg.dac_bits is not None else None
        if spike_rows is None or not self._dac_passes_spikes():
            x = self.dac(x)
        adc = cfg.adc_bits is not None and (self.calibrated or x.any())  # all-zero input: nothing to digitise
        if adc and not self.calibrated:
            self.calibrate(x)
        if adc and self.clip_tally is not None:
            self.count_clipping(x)
        bias = None if bias is None else bias.to(x.dtype)
        offset = self.offset_correction()
        if not torch.is_grad_enabled() or not x.requires_grad:
            with torch.no_grad():
                y = self._read(x, spike_rows, noisy, adc, bias)
                if offset is not None:  # digital: the column's common error times Σx, per vector
                    row_sums = spike_rows if spike_rows is not None else x.sum(dim=-1, keepdim=True)
                    y.addr_(row_sums.squeeze(-1), offset.to(y.dtype), alpha=-1.0)
        else:
            y = self._digitise(x) if adc else F.linear(x, self.weight().to(x.dtype))
            if noisy:
                with torch.no_grad():
                    std = self._noise_std(x.detach(), y.detach(), spike_rows)
                    draws = standard_normals(y.shape, self.cells.generator, y.device)
                y = y + draws * std
            gain = self.compensation_gain()
            if gain is not None:
                y = y * gain.to(y.dtype)
            if offset is not None:
                y = y - x.sum(dim=-1, keepdim=True) * offset.to(y.dtype)
            if bias is not None:
                y = y + bias
        return y.reshape(*shape[:-1], self.out_features)

    def _read(
        self, x: torch.Tensor, spike_rows: torch.Tensor | None, noisy: bool, adc: bool, bias: torch.Tensor | None
    ) -> torch.Tensor:
        """The read without autograd (called with it off).

        The periphery runs on ``_CHUNK_ELEMENTS`` tile sums at a time, in reused buffers, so that its passes
        over tile sums, codes and noise stay in cache.  Each chunk's arithmetic is exactly the unchunked
        one: one window of normals for the whole call, sliced per chunk.  Where ``fused.kernel()`` is
        available the whole read is one compiled call.
        """
        gain = self.compensation_gain()
        if not (noisy or adc or gain is not None):
            y = F.linear(x, self.weight().to(x.dtype))
            return y if bias is None else y.add_(bias)
        y = torch.empty(x.shape[0], self.out_features, dtype=x.dtype, device=x.device)
        weights = self._adc_weights(x.dtype) if adc else self.weight().to(x.dtype).t()
        gain = None if gain is None else gain.to(y.dtype).expand(self.out_features).contiguous()
        step = max(1, min(len(x), _CHUNK_ELEMENTS // (self.row_tiles * self.out_features)))  # rows a chunk
        compiled = _compiled_for(x)
        if compiled is not None:
            # the kernel makes the squares' product for the vectors that carry input only
            rows, row_scale, alpha, square_w = self._variance_terms(x, spike_rows) if noisy else (_EMPTY, 0.0, 0.0, None)
            whole_w, _, lsb, _ = weights if adc else (weights, None, None, None)
            rest_w = self._rest_rows(x.dtype) if adc else None
            compiled.periphery_read(x, _or_empty(whole_w), _or_empty(rest_w), _or_empty(lsb), self._levels() if adc else -1,
                                    y, noisy, noise_key(self.cells.generator) if noisy else 0, rows, row_scale, alpha, _or_empty(square_w), _or_empty(gain),
                                    _or_empty(bias), step, self._buffer("sums", self.row_tiles * step * self.out_features, x))
            return y
        draws = standard_normals(y.shape, self.cells.generator, y.device) if noisy else None
        for start in range(0, x.shape[0], step):
            rows = slice(start, start + step)
            self._read_chunk(x[rows], y[rows], None if spike_rows is None else spike_rows[rows],
                             None if draws is None else draws[rows], weights, gain, bias)
        return y

    def _levels(self) -> int:
        """The ADC's largest code: ±(2^(bits−1) − 1)."""
        return 2 ** (self.config.adc_bits - 1) - 1

    def _read_chunk(
        self,
        x: torch.Tensor,
        out: torch.Tensor,
        spike_rows: torch.Tensor | None,
        draws: torch.Tensor | None,
        weights: tuple | torch.Tensor,
        gain: torch.Tensor | None,
        bias: torch.Tensor | None,
    ) -> None:
        """One chunk of ``_read`` into ``out``, in eager torch: tiles through their ADCs (``weights`` from
        ``_adc_weights``) or the plain product (``weights`` transposed), then read noise, compensation, bias."""
        if isinstance(weights, tuple):
            whole_w, rest_w, _, lsb = weights
            sums = self._tile_sums(x, whole_w, rest_w, out=self._scratch("sums", (self.row_tiles, *out.shape), x))
            self._quantise(sums, lsb, out=out)
        else:
            torch.mm(x, weights, out=out)
        if draws is not None:
            out.addcmul_(draws, self._noise_std(x, out, spike_rows, out=self._scratch("var", out.shape, x)))
        if gain is not None:
            out.mul_(gain)
        if bias is not None:
            out.add_(bias)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"{self.out_features}x{self.in_features}, mapping={c.mapping}, tiles={self.n_tiles}, "
            f"read_noise={c.read_noise}, dac_bits={c.dac_bits}, adc_bits={c.adc_bits}, "
            f"drift_compensation={c.drift_compensation}"
        )
