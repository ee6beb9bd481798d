"""Resistive-memory cell population: write-and-verify programming, read noise, drift, wear and faults.

Conductances are kept in microsiemens (µS) so that the numbers read like the device literature.
Everything random draws from one seeded ``torch.Generator`` per population, so a run is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import torch
from torch import nn


@dataclass(frozen=True)
class DeviceConfig:
    """Behaviour of one 1T1R resistive-memory cell type.

    The default values describe the TiN/Ta2O5/TaOx/TiN 1T1R cell of arXiv 2601.10037: a 20-80 µS
    programmable window, write-and-verify to ±2 µS, endurance of about 3·10^4 cycles and conductance
    relaxation observed out to 10^6 s.  Noise magnitudes that the paper does not state (per-pulse
    cycle-to-cycle spread, device-to-device spread, drift coefficients) are modelling choices, kept
    here so that a user can sweep them.
    """

    g_min_us: float = 20.0
    g_max_us: float = 80.0
    levels: int = 128
    tolerance_us: float = 2.0
    max_pulses: int = 40
    # A cell whose verify reads show no progress (by more than 3 read-noise σ) over this many pulses in a
    # row is given up on and reported as failed, as a controller does with a dead cell, instead of being
    # pulsed (and worn) up to ``max_pulses``.
    give_up_after: int = 8
    # Write-verify controller: each pulse aims at ``pulse_gain`` of the remaining error, bounded below by
    # the smallest change one pulse can make and above by the largest (strongest pulse amplitude).
    pulse_gain: float = 0.7
    min_step_us: float = 0.4
    max_step_us: float = 20.0
    cycle_to_cycle: float = 0.35  # relative std of the conductance change of one pulse
    device_to_device: float = 0.15  # log-normal std of a cell's response strength
    read_noise_us: float = 0.3  # std of one read (verify reads and, when enabled, inference reads)
    drift_t0_s: float = 1.0  # relaxation starts to show after about a second
    drift_pull: float = 0.015  # fraction of the distance to mid-window lost per decade of time
    drift_spread_us: float = 0.5  # std of the random relaxation per sqrt(decade)
    endurance_cycles: int = 30_000
    stuck_on_rate: float = 0.0  # share of cells stuck at g_max from fabrication
    stuck_off_rate: float = 0.0  # share of cells stuck at g_min from fabrication

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value):
                raise ValueError(f"DeviceConfig.{f.name} must be finite, got {value}")
        if self.g_min_us < 0 or self.g_min_us >= self.g_max_us:
            raise ValueError(
                f"DeviceConfig conductance window needs 0 <= g_min_us < g_max_us, got "
                f"g_min_us={self.g_min_us}, g_max_us={self.g_max_us}"
            )
        if self.levels < 2:
            raise ValueError(f"DeviceConfig.levels must be at least 2, got {self.levels}")
        if not 0 < self.tolerance_us < (self.g_max_us - self.g_min_us) / 2:
            raise ValueError(f"DeviceConfig.tolerance_us must be > 0 and below half the conductance window "
                             f"({(self.g_max_us - self.g_min_us) / 2:g} µS; wider accepts any cell unwritten), got {self.tolerance_us}")
        if self.max_pulses < 1:
            raise ValueError(f"DeviceConfig.max_pulses must be >= 1, got {self.max_pulses}")
        if self.give_up_after < 1:
            raise ValueError(f"DeviceConfig.give_up_after must be >= 1, got {self.give_up_after}")
        if self.endurance_cycles < 1:
            raise ValueError(f"DeviceConfig.endurance_cycles must be >= 1, got {self.endurance_cycles}")
        for name in ("stuck_on_rate", "stuck_off_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"DeviceConfig.{name} must be in [0, 1], got {rate}")
        if self.stuck_on_rate + self.stuck_off_rate > 1.0:
            raise ValueError("DeviceConfig stuck_on_rate + stuck_off_rate must not exceed 1")
        for name in ("pulse_gain", "min_step_us", "max_step_us", "drift_t0_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"DeviceConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.min_step_us > self.max_step_us:
            raise ValueError("DeviceConfig.min_step_us must not exceed max_step_us")
        for name in ("cycle_to_cycle", "device_to_device", "read_noise_us", "drift_pull", "drift_spread_us"):
            if getattr(self, name) < 0:
                raise ValueError(f"DeviceConfig.{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def taox_1t1r(cls, **overrides: float) -> DeviceConfig:
        """The paper's TiN/Ta2O5/TaOx/TiN cell, with any field overridden by keyword."""
        return replace(cls(), **overrides)

    @property
    def g_mid_us(self) -> float:
        return 0.5 * (self.g_min_us + self.g_max_us)

    @property
    def verify_threshold_us(self) -> float:
        """Acceptance band of one verify read: the tolerance less a guard band of two read-noise stds,
        so that a noisy read that looks in tolerance almost always is."""
        return self.tolerance_us - min(2.0 * self.read_noise_us, 0.5 * self.tolerance_us)

    @property
    def level_step_us(self) -> float:
        return (self.g_max_us - self.g_min_us) / (self.levels - 1)

    def quantize(self, g_us: torch.Tensor) -> torch.Tensor:
        """Snap target conductances to the nearest programmable level inside the window."""
        g = g_us.clamp(self.g_min_us, self.g_max_us)
        return self.g_min_us + torch.round((g - self.g_min_us) / self.level_step_us) * self.level_step_us


@dataclass
class ProgramResult:
    """What one write-and-verify run did, cell by cell."""

    conductance_us: torch.Tensor
    pulses: torch.Tensor  # int32, pulses applied to each cell in this run
    verify_reads: int  # reads summed over all cells (every cell is read at least once)
    within_tolerance: torch.Tensor  # bool, true conductance within tolerance of its (quantised) target
    iterations: int = 0
    targets_us: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    failed: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.bool))  # given up on: no response

    @property
    def total_pulses(self) -> int:
        return int(self.pulses.sum())

    @property
    def within_tolerance_fraction(self) -> float:
        return float(self.within_tolerance.float().mean()) if self.within_tolerance.numel() else 1.0


class CellArray(nn.Module):
    """A population of cells of one ``DeviceConfig``, holding their physical state.

    State (buffers, so it travels with ``state_dict``): programmed conductance, the time since
    programming (drift is a function of it), cumulative write cycles (wear), a response-strength factor
    per cell (device-to-device spread) and a stuck mask.
    """

    def __init__(self, shape: tuple[int, ...], config: DeviceConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.generator = torch.Generator().manual_seed(int(seed))
        n = math.prod(shape)
        if n == 0:
            raise ValueError(f"a cell array needs at least one cell, got shape {shape}")
        g = torch.Generator().manual_seed(int(seed) + 7919)
        # Freshly formed cells rest in the high-resistance state, slightly above g_min.
        self.register_buffer(
            "programmed_us", (config.g_min_us + torch.rand(shape, generator=g) * config.tolerance_us).float()
        )
        self.register_buffer("response", torch.exp(config.device_to_device * torch.randn(shape, generator=g)))
        self.register_buffer("relax_direction", torch.randn(shape, generator=g))
        self.register_buffer("cycles", torch.zeros(shape, dtype=torch.int32))
        self.register_buffer("stuck", torch.zeros(shape, dtype=torch.bool))
        self.register_buffer("elapsed", torch.zeros((), dtype=torch.float64))
        self._stick(config.stuck_on_rate, config.stuck_off_rate, g)

    @property
    def elapsed_s(self) -> float:
        """Seconds since the cells were last programmed."""
        return float(self.elapsed)

    @elapsed_s.setter
    def elapsed_s(self, seconds: float) -> None:
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError(f"elapsed time must be a finite number of seconds >= 0, got {seconds}")
        self.elapsed.fill_(seconds)

    @property
    def shape(self) -> torch.Size:
        return self.programmed_us.shape

    # ----------------------------------------------------------------- faults and wear
    def _stick(self, on_rate: float, off_rate: float, generator: torch.Generator) -> int:
        if on_rate <= 0 and off_rate <= 0:
            return 0
        u = torch.rand(self.shape, generator=generator)
        on = (u < on_rate) & ~self.stuck
        off = (u >= on_rate) & (u < on_rate + off_rate) & ~self.stuck
        self.programmed_us[on] = self.config.g_max_us
        self.programmed_us[off] = self.config.g_min_us
        self.stuck.logical_or_(on | off)
        return int(on.sum() + off.sum())

    def inject_stuck(self, on_rate: float, off_rate: float) -> int:
        """Stick a further share of cells at g_max (on) or g_min (off); returns how many were stuck."""
        for name, rate in (("on_rate", on_rate), ("off_rate", off_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"inject_stuck {name} must be in [0, 1], got {rate}")
        return self._stick(on_rate, off_rate, self.generator)

    def add_write_noise(self, sigma_us: float) -> None:
        """Perturb every working cell by N(0, sigma_us): programming without (or with a cruder) verify."""
        if not (math.isfinite(sigma_us) and sigma_us >= 0):
            raise ValueError(f"write noise sigma must be a finite number of µS >= 0, got {sigma_us}")
        noise = sigma_us * torch.randn(self.shape, generator=self.generator)
        noisy = (self.programmed_us + noise).clamp(self.config.g_min_us, self.config.g_max_us)
        self.programmed_us = torch.where(self.stuck, self.programmed_us, noisy)

    @property
    def worn_out(self) -> torch.Tensor:
        return self.cycles >= self.config.endurance_cycles

    # ----------------------------------------------------------------- reading
    def conductance(self) -> torch.Tensor:
        """Noise-free conductance now, after relaxation for ``elapsed_s`` seconds."""
        return self.drifted(self.elapsed_s)

    def drifted(self, seconds: float) -> torch.Tensor:
        """Conductance ``seconds`` after programming.

        Phenomenological relaxation: with d = log10(1 + t/t0) decades, each cell moves a share
        ``drift_pull``·d of its distance towards mid-window and takes a random walk of std
        ``drift_spread_us``·sqrt(d) along a per-cell direction fixed at programming time.  Being a
        function of t (not of the path), the same t always gives the same conductances.
        """
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError(f"drift time must be a finite number of seconds >= 0, got {seconds}")
        cfg = self.config
        if seconds == 0:
            return self.programmed_us.clone()
        decades = math.log10(1.0 + seconds / cfg.drift_t0_s)
        pull = min(cfg.drift_pull * decades, 1.0)
        g = self.programmed_us + pull * (cfg.g_mid_us - self.programmed_us)
        g = g + cfg.drift_spread_us * math.sqrt(decades) * self.relax_direction
        g = g.clamp(cfg.g_min_us, cfg.g_max_us)
        return torch.where(self.stuck, self.programmed_us, g)

    def read(self, noisy: bool = True) -> torch.Tensor:
        g = self.conductance()
        if noisy and self.config.read_noise_us > 0:
            g = g + self.config.read_noise_us * torch.randn(g.shape, generator=self.generator)
        return g

    # ----------------------------------------------------------------- programming
    def program(self, targets_us: torch.Tensor, cells: torch.Tensor | None = None) -> ProgramResult:
        """Write-and-verify every cell (or only the ``cells`` mask) towards its target, vectorised.

        Loop: read (with read noise), compare with the tolerance, pulse the cells still outside it with
        a stochastic conductance change, repeat up to ``max_pulses``.  Each pulse is one write cycle of
        wear; cells at their endurance limit stick where they are and stop responding.  A cell that shows
        no progress for ``give_up_after`` pulses is abandoned and reported in ``failed``.  Programming
        starts from the current (drifted) state, so cells already close to target need only a read.
        Cells outside ``cells`` are neither read nor pulsed: they keep their (drifted) conductance.
        """
        cfg = self.config
        if targets_us.shape != self.shape:
            raise ValueError(f"targets shape {tuple(targets_us.shape)} does not match cells {tuple(self.shape)}")
        if not torch.isfinite(targets_us).all():
            raise ValueError("programming targets contain NaN or infinite values")
        if cells is not None and cells.shape != self.shape:
            raise ValueError(f"cell mask shape {tuple(cells.shape)} does not match cells {tuple(self.shape)}")
        g = self.conductance()
        selected = torch.ones(self.shape, dtype=torch.bool) if cells is None else cells.bool()
        targets = torch.where(selected, cfg.quantize(targets_us.float()), g)
        pulses = torch.zeros(self.shape, dtype=torch.int32)
        frozen = self.stuck | self.worn_out
        pending = selected.clone()
        failed = torch.zeros(self.shape, dtype=torch.bool)
        best_error = torch.full(self.shape, float("inf"))
        stalled = torch.zeros(self.shape, dtype=torch.int32)  # pulses in a row without progress
        reads = 0
        iterations = 0
        for _ in range(cfg.max_pulses):
            reads += int(pending.sum())
            observed = g + cfg.read_noise_us * torch.randn(g.shape, generator=self.generator)
            error = targets - observed
            distance = error.abs()
            progress = distance < best_error - 3 * cfg.read_noise_us
            best_error = torch.minimum(best_error, distance)
            stalled = torch.where(progress, torch.zeros_like(stalled), stalled + 1)
            pending &= distance > cfg.verify_threshold_us
            failed |= pending & (stalled > cfg.give_up_after)
            pending &= ~failed
            if not pending.any():
                break
            iterations += 1
            step = (cfg.pulse_gain * error.abs()).clamp(cfg.min_step_us, cfg.max_step_us)
            spread = 1.0 + cfg.cycle_to_cycle * torch.randn(g.shape, generator=self.generator)
            change = torch.sign(error) * step * self.response * spread.clamp_min(0.0)
            responsive = pending & ~frozen
            g = torch.where(responsive, (g + change).clamp(cfg.g_min_us, cfg.g_max_us), g)
            pulses += pending.to(torch.int32)
            self.cycles.add_(pending.to(torch.int32))
            frozen |= self.worn_out
        else:
            reads += int(pending.sum())  # the final verify of cells still pending after the last pulse
        self.stuck.logical_or_(self.worn_out)
        self.programmed_us = g
        self.elapsed_s = 0.0
        within = (g - targets).abs() <= cfg.tolerance_us
        return ProgramResult(g.clone(), pulses, reads, within, iterations, targets, failed)
