"""Weight matrices on resistive crossbars: mapping, 128x128 tiling, analogue MVM, ADC and op counters.

A weight matrix ``W`` (out x in) is stored with its inputs on the array rows and its outputs on the
columns.  The effective weights used by every forward pass are *decoded from the cells' conductances*,
so whatever programming error, drift or fault the cells carry is exactly what the network computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from neuro_rm.device import CellArray, DeviceConfig, ProgramResult

MAPPINGS = ("offset", "differential")


@dataclass(frozen=True)
class CrossbarConfig:
    """How weights meet the array.

    ``offset``: one cell per weight, G = G_mid + k·w, zero weight at mid-window (as the public
    reference implementation maps weights).  ``differential``: a pair per weight, w ∝ G+ − G−, both
    starting from g_min; twice the cells, but a zero weight draws almost no current.
    """

    mapping: str = "offset"
    tile_rows: int = 128
    tile_cols: int = 128
    adc_bits: int | None = None  # None: ideal read-out; otherwise each tile's column sums are quantised
    input_bound: float = 1.0  # largest input magnitude the ADC range is sized for (1 for spikes)
    read_noise: bool = False  # sample fresh read noise on every forward pass

    def __post_init__(self) -> None:
        if self.mapping not in MAPPINGS:
            raise ValueError(f"CrossbarConfig.mapping must be one of {MAPPINGS}, got {self.mapping!r}")
        if self.tile_rows < 1 or self.tile_cols < 1:
            raise ValueError(f"crossbar tiles need positive size, got {self.tile_rows}x{self.tile_cols}")
        if self.adc_bits is not None and not 1 <= self.adc_bits <= 16:
            raise ValueError(f"CrossbarConfig.adc_bits must be None or 1..16, got {self.adc_bits}")
        if not (self.input_bound > 0 and math.isfinite(self.input_bound)):
            raise ValueError(f"CrossbarConfig.input_bound must be a finite number > 0, got {self.input_bound}")


@dataclass
class OpCounts:
    """Analogue work done since the counters were last reset."""

    vectors: int = 0  # input vectors applied
    array_activations: int = 0  # tile reads
    macs: int = 0  # cell-level multiply-accumulates
    adc_conversions: int = 0

    def __add__(self, other: OpCounts) -> OpCounts:
        return OpCounts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.vectors, self.array_activations, self.macs, self.adc_conversions)


def _straight_through(exact: torch.Tensor, rounded: torch.Tensor) -> torch.Tensor:
    """Forward the rounded value, backpropagate as if nothing was rounded."""
    return exact + (rounded - exact).detach()


class Crossbar(nn.Module):
    """One weight matrix held in resistive cells, tiled onto ``tile_rows x tile_cols`` arrays."""

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
        self.counts = OpCounts()
        self._weight_cache: torch.Tensor | None = None

    # ----------------------------------------------------------------- geometry
    @property
    def physical_columns(self) -> int:
        return self.out_features * self.cells.shape[0]

    @property
    def row_tiles(self) -> int:
        return math.ceil(self.in_features / self.config.tile_rows)

    @property
    def n_tiles(self) -> int:
        return self.row_tiles * math.ceil(self.physical_columns / self.config.tile_cols)

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
        """Write-and-verify a weight matrix into the cells; the scale follows the largest |w|."""
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
        result = self.cells.program(self.encode(weight))
        self._weight_cache = None
        return result

    def consolidate(self, delta: torch.Tensor) -> ProgramResult:
        """Add ``delta`` (weight units) to the stored weights, pulsing only the cells whose target moves by
        more than the write tolerance.

        The scale stays as programmed (a change of scale would move every cell), targets are clipped to
        the window, and a change below the tolerance is not written: write-and-verify could not place a
        cell that precisely anyway.  See ``write_threshold`` for that limit in weight units.
        """
        if delta.shape != (self.out_features, self.in_features):
            raise ValueError(f"delta shape {tuple(delta.shape)} does not match crossbar {self.out_features}x{self.in_features}")
        delta = delta.detach().float().cpu()
        if not torch.isfinite(delta).all():
            raise ValueError("cannot consolidate a weight change that contains NaN or infinite values")
        shift = self.encode(delta) - self.encode(torch.zeros_like(delta))
        moved = shift.abs() > self.device_config.tolerance_us
        result = self.cells.program(self.cells.conductance() + shift, cells=moved)
        self._weight_cache = None
        return result

    @property
    def write_threshold(self) -> float:
        """Smallest weight change (per cell) that consolidation writes: the tolerance over the gain."""
        return self.device_config.tolerance_us / self._gain()  # one cell of a pair carries the whole change

    # ----------------------------------------------------------------- state changes
    def set_time(self, seconds: float) -> None:
        """Let the cells relax for ``seconds`` since programming (drift)."""
        self.cells.elapsed_s = seconds
        self._weight_cache = None

    def inject_stuck(self, on_rate: float, off_rate: float) -> int:
        stuck = self.cells.inject_stuck(on_rate, off_rate)
        self._weight_cache = None
        return stuck

    def add_write_noise(self, sigma_us: float) -> None:
        self.cells.add_write_noise(sigma_us)
        self._weight_cache = None

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super()._load_from_state_dict(*args, **kwargs)
        self._weight_cache = None

    # ----------------------------------------------------------------- reading
    def weight(self) -> torch.Tensor:
        """Effective (decoded) weights now, without read noise; cached until the cells change."""
        if self._weight_cache is None:
            self._weight_cache = self.decode(self.cells.conductance())
        return self._weight_cache

    def sample_weight(self) -> torch.Tensor:
        """Effective weights as one noisy read of the array sees them.

        Read noise N(0, σ) on each cell is drawn directly in weight units (σ/k per cell; a
        differential pair reads two cells, so √2·σ/k), which equals decoding a noisy conductance read.
        """
        w = self.weight()
        sigma = self.device_config.read_noise_us
        if not self.config.read_noise or sigma == 0:
            return w
        per_weight = sigma / self._gain() * (math.sqrt(2.0) if self.config.mapping == "differential" else 1.0)
        return w + per_weight * torch.randn(w.shape, generator=self.cells.generator)

    def count(self, vectors: int) -> None:
        """Record ``vectors`` input vectors pushed through the array."""
        cols = self.physical_columns
        self.counts.vectors += vectors
        self.counts.array_activations += vectors * self.n_tiles
        self.counts.macs += vectors * self.in_features * cols
        self.counts.adc_conversions += vectors * self.row_tiles * cols

    def reset_counts(self) -> None:
        self.counts = OpCounts()

    def matmul(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Analogue product ``x @ W^T`` (x: ..., in) with the configured read noise and ADC.

        With an ADC, each row tile's column sums are quantised separately (a tile's currents are
        digitised before tiles are added), with a full scale sized for inputs up to ``input_bound``.
        """
        w = self.sample_weight() if weight is None else weight
        bits = self.config.adc_bits
        if bits is None:
            return F.linear(x, w.to(x.dtype))
        out = 0
        step_rows = self.config.tile_rows
        for r0 in range(0, self.in_features, step_rows):
            w_tile = w[:, r0 : r0 + step_rows].to(x.dtype)
            partial = F.linear(x[..., r0 : r0 + step_rows], w_tile)
            full_scale = self.config.input_bound * float(w_tile.abs().sum(dim=1).max().clamp_min(1e-12))
            lsb = 2 * full_scale / (2**bits - 1)
            rounded = torch.round(partial.clamp(-full_scale, full_scale) / lsb) * lsb
            out = out + _straight_through(partial, rounded)
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.out_features}x{self.in_features}, mapping={self.config.mapping}, "
            f"tiles={self.n_tiles}, adc_bits={self.config.adc_bits}"
        )
