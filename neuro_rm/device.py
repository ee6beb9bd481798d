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
    # the smallest change one pulse can make and above by the largest (strongest pulse amplitude).  At 1
    # the controller aims at the target itself; with this model's pulses (the same mean response up and
    # down, symmetric spread) a cell then lands on either side of the target alike, and the loop (which
    # stops at the first read inside the band) leaves a tenth of the offset it left at 0.7, where cells
    # approached from one side and stopped near the band's near edge: 0.38 µS (1.25 % of a trained RSNN's
    # largest |w|) below target on average, which cost 3.5 points of accuracy on the bundled speakers and
    # 33 on new voices (``scripts/deploy_error.py``).  A cell whose SET and RESET steps differ in strength
    # (abrupt SET, gradual RESET) would bring an offset back whatever the gain; this model has none.
    # Gains of 2 or more overshoot by more than the error and never settle.
    pulse_gain: float = 1.0
    min_step_us: float = 0.4
    max_step_us: float = 20.0
    cycle_to_cycle: float = 0.35  # relative std of the conductance change of one pulse
    device_to_device: float = 0.15  # log-normal std of a cell's response strength
    read_noise_us: float = 0.3  # std of one read at mid-window (verify reads and inference reads)
    # Share of the read-noise variance that grows in proportion to the conductance, for a read at unit input:
    # sigma(G)^2 = read_noise_us^2 * ((1 - share) + share * G / g_mid), an empirical fit of a read's spread
    # against G.  An inference read scales each cell's noise with its input (variance x^2 * sigma(G)^2), as
    # conductance fluctuations (random telegraph, 1/f noise) behave; thermal noise, which flows without any
    # input, and shot noise, whose variance grows with the current rather than its square, are not modelled
    # apart.
    read_noise_g_share: float = 1.0
    # Spread left by write-verify and the relaxation in the first second after it, std sigma(G) = a + b*G
    # (µS), drawn once per programming and kept: zero for the TaOx preset, whose loop models it directly.
    program_sigma_us: float = 0.0
    program_sigma_per_us: float = 0.0
    drift_t0_s: float = 1.0  # relaxation starts to show after about a second
    drift_pull: float = 0.015  # fraction of the distance to mid-window lost per decade of time
    drift_spread_us: float = 0.5  # std of the random relaxation per sqrt(decade)
    # Log-time drift of published HfOx cells (L = ln(1 + t/t0)): a mean shift of drift_shift_us_per_ln * L
    # and a relaxation spread of std drift_sigma_onset_us + drift_sigma_us_per_ln * L from t > 0 on.
    drift_shift_us_per_ln: float = 0.0
    drift_sigma_onset_us: float = 0.0
    drift_sigma_us_per_ln: float = 0.0
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
        if not 0 < self.pulse_gain < 2:
            raise ValueError(f"DeviceConfig.pulse_gain must be in (0, 2): a pulse aimed at gain·error with gain >= 2 "
                             f"overshoots by more than the error and never settles, got {self.pulse_gain}")
        for name in ("min_step_us", "max_step_us", "drift_t0_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"DeviceConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.min_step_us > self.max_step_us:
            raise ValueError("DeviceConfig.min_step_us must not exceed max_step_us")
        for name in ("cycle_to_cycle", "device_to_device", "read_noise_us", "drift_pull", "drift_spread_us",
                     "program_sigma_us", "program_sigma_per_us", "drift_sigma_onset_us", "drift_sigma_us_per_ln"):
            if getattr(self, name) < 0:
                raise ValueError(f"DeviceConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.read_noise_g_share <= 1.0:
            raise ValueError(f"DeviceConfig.read_noise_g_share must be in [0, 1], got {self.read_noise_g_share}")

    @classmethod
    def taox_1t1r(cls, **overrides: float) -> DeviceConfig:
        """The paper's TiN/Ta2O5/TaOx/TiN cell, with any field overridden by keyword.

        The paper (arXiv 2601.10037) reports the window, the ±2 µS write-verify tolerance, the endurance and
        conductance "stable over 10^6 s"; the read noise (0.3 µS at mid-window, variance proportional to
        G), the pulse statistics and the slow pull towards mid-window are our assumptions.
        """
        return replace(cls(), **overrides)

    @classmethod
    def hfox_cmo(cls, **overrides: float) -> DeviceConfig:
        """Conductive-metal-oxide / HfOx 1T1R cell of IBM Research Zurich, with published log-time drift.

        Source: D. F. Falcone et al., "All-in-one analog AI hardware: on-chip training and inference with
        conductive-metal-oxide/HfOx ReRAM devices", arXiv:2502.04524 (2025); the fitted constants are the
        ones IBM publishes for that data in aihwkit 1.x (``ReRamCMONoiseModel``, 2 % acceptance range):

        - window 9.0-88.19 µS (``g_min``/``g_max`` of that fit); 32 levels ("over 32 stable states").
        - programming spread after write-verify at 2 % acceptance: sigma(G) = 0.01129 + 0.011219·G µS.
        - drift, independent of G, with L = ln t (t in s): mean shift -0.089002·L µS and relaxation
          spread 0.41183 + 0.042011·L µS (std over cells).

        Our assumptions, not from the source: read noise 0.05 µS at mid-window (variance ∝ G; the source
        characterises 1/f read noise separately, Lombardo et al., DRC 2024), a tight verify loop (0.1 µS
        band, 0.02 µS smallest step) whose residual is small beside the published spread, and the TaOx
        preset's endurance and pulse statistics.  We use L = ln(1 + t/1 s), equal to ln t within 1e-4 µS
        beyond an hour.
        """
        preset = cls(
            g_min_us=9.0, g_max_us=88.19, levels=32, tolerance_us=0.1, min_step_us=0.02,
            read_noise_us=0.05, program_sigma_us=0.01129, program_sigma_per_us=0.011219,
            drift_pull=0.0, drift_spread_us=0.0, drift_shift_us_per_ln=-0.089002,
            drift_sigma_onset_us=0.41183, drift_sigma_us_per_ln=0.042011,
        )
        return replace(preset, **overrides)

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

    def read_variance_coefficients(self) -> tuple[float, float]:
        """(s0, s1) with read-noise variance sigma(G)^2 = s0 + s1·G (µS^2): affine in G, so that the noise
        of a whole column sum follows from two products of the inputs (see ``Crossbar``)."""
        var_mid = self.read_noise_us**2
        return var_mid * (1.0 - self.read_noise_g_share), var_mid * self.read_noise_g_share / self.g_mid_us

    def read_sigma_us(self, g_us: torch.Tensor) -> torch.Tensor:
        """Std of one read of cells at conductance ``g_us``."""
        s0, s1 = self.read_variance_coefficients()
        return (s0 + s1 * g_us.clamp_min(0.0)).sqrt()

    def program_sigma(self, g_us: torch.Tensor) -> torch.Tensor:
        """Std of the spread write-verify leaves around target ``g_us`` (zero unless the preset sets it)."""
        return self.program_sigma_us + self.program_sigma_per_us * g_us

    def quantize(self, g_us: torch.Tensor) -> torch.Tensor:
        """Snap target conductances to the nearest programmable level inside the window."""
        g = g_us.clamp(self.g_min_us, self.g_max_us)
        return self.g_min_us + torch.round((g - self.g_min_us) / self.level_step_us) * self.level_step_us


# Cited cell presets by name (for command lines and sweeps over devices).
PRESETS = {"taox_1t1r": DeviceConfig.taox_1t1r, "hfox_cmo": DeviceConfig.hfox_cmo}


def preset_name(config: DeviceConfig) -> str:
    """The preset ``config`` equals, or ``custom`` (a preset with any setting changed)."""
    return next((name for name, make in PRESETS.items() if make() == config), "custom")


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
    clipped: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.bool))  # asked beyond the window

    @property
    def total_pulses(self) -> int:
        return int(self.pulses.sum())

    @property
    def within_tolerance_fraction(self) -> float:
        return float(self.within_tolerance.float().mean()) if self.within_tolerance.numel() else 1.0


class CellArray(nn.Module):
    """A population of cells of one ``DeviceConfig``, holding their physical state.

    State (buffers, so it travels with ``state_dict``): programmed conductance, the time since the last
    programming run and each cell's age at that run (a cell left out of a partial write keeps drifting
    from when it was written; drift is a function of the cell's age), cumulative write cycles (wear), a
    response-strength factor per cell (device-to-device spread), a stuck mask, and the write history as a
    controller would log it: pulses applied, and cells pulsed at least once, by all programming runs (a cell
    already within tolerance takes a read, no pulse), whose ratio prices the next write of cells that must
    move (wear set by fault injection is no write and is not in it).
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
        self.register_buffer("age_offset_s", torch.zeros(shape))  # age at the last programming run
        self.register_buffer("write_history", torch.zeros(2, dtype=torch.int64))  # pulses applied, cells pulsed
        self._stick(config.stuck_on_rate, config.stuck_off_rate, g)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs) -> None:  # noqa: ANN001, PLR0913
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        if prefix + "age_offset_s" in missing_keys:  # saved before partial writes kept ages: all written at once
            missing_keys.remove(prefix + "age_offset_s")
            self.age_offset_s.zero_()
        if prefix + "write_history" in missing_keys:  # saved before the history was kept: none to price a write by
            missing_keys.remove(prefix + "write_history")
            self.write_history.zero_()
        pulses, pulsed = (int(v) for v in self.write_history)
        if not 0 <= pulsed <= pulses:  # a negative or impossible history would price a merge at nothing
            error_msgs.append(f"{prefix}write_history must hold pulses >= cells pulsed >= 0, got [{pulses}, {pulsed}]")

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
        u = torch.rand(self.shape, generator=generator).to(self.cycles.device)
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
        noise = sigma_us * torch.randn(self.shape, generator=self.generator).to(self.cycles.device)
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
        """Conductance ``seconds`` after the last programming run (cells it left out are older).

        Phenomenological relaxation: with L = ln(1 + t/t0) and d = L / ln 10 decades, each cell moves a
        share ``drift_pull``·d of its distance towards mid-window, shifts by ``drift_shift_us_per_ln``·L
        (the systematic log-time drift of HfOx cells), and moves along a per-cell direction fixed at
        programming time by std ``drift_spread_us``·sqrt(d) + ``drift_sigma_onset_us`` +
        ``drift_sigma_us_per_ln``·L.  Being a function of t (not of the path), the same t always gives the
        same conductances.
        """
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError(f"drift time must be a finite number of seconds >= 0, got {seconds}")
        cfg = self.config
        age = self.age_offset_s.double() + seconds
        if not age.any():
            return self.programmed_us.clone()
        ln_t = torch.log1p(age / cfg.drift_t0_s)
        decades = ln_t / math.log(10.0)
        pull = (cfg.drift_pull * decades).clamp(max=1.0)
        g = self.programmed_us + pull * (cfg.g_mid_us - self.programmed_us) + cfg.drift_shift_us_per_ln * ln_t
        onset = cfg.drift_sigma_onset_us * (age > 0)
        spread = cfg.drift_spread_us * decades.sqrt() + onset + cfg.drift_sigma_us_per_ln * ln_t
        g = (g + spread * self.relax_direction).float()
        g = g.clamp(cfg.g_min_us, cfg.g_max_us)
        return torch.where(self.stuck, self.programmed_us, g)

    def read(self, noisy: bool = True) -> torch.Tensor:
        g = self.conductance()
        if noisy and self.config.read_noise_us > 0:
            g = g + self.config.read_sigma_us(g) * torch.randn(g.shape, generator=self.generator).to(g.device)
        return g

    # ----------------------------------------------------------------- programming
    def _keep(self, written: torch.Tensor, g: torch.Tensor) -> None:
        """After a write: the ``written`` cells hold ``g`` and start ageing anew; the others keep what they
        were programmed to and their age."""
        self.programmed_us = torch.where(written, g, self.programmed_us)
        self.age_offset_s = torch.where(written, 0.0, self.age_offset_s + self.elapsed_s).float()
        self.elapsed_s = 0.0

    def program(self, targets_us: torch.Tensor, cells: torch.Tensor | None = None) -> ProgramResult:
        """Write-and-verify every cell (or only the ``cells`` mask) towards its target, vectorised.

        Loop: read (with read noise), compare with the tolerance, pulse the cells still outside it with
        a stochastic conductance change, repeat up to ``max_pulses``.  Each pulse is one write cycle of
        wear; cells at their endurance limit stick where they are and stop responding.  A cell that shows
        no progress for ``give_up_after`` pulses is abandoned and reported in ``failed``.  A preset with a
        published post-verify spread (``program_sigma``) then draws it once for every working cell.  Programming
        starts from the current (drifted) state, so cells already close to target need only a read.
        Cells outside ``cells`` are neither read nor pulsed: they keep their state and go on drifting
        from when they were written.  A target beyond the conductance window is written to its edge and
        reported in ``clipped``.
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
        try:
            for _ in range(cfg.max_pulses):
                reads += int(pending.sum())
                observed = g + cfg.read_sigma_us(g) * torch.randn(g.shape, generator=self.generator).to(g.device)
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
                spread = 1.0 + cfg.cycle_to_cycle * torch.randn(g.shape, generator=self.generator).to(g.device)
                change = torch.sign(error) * step * self.response * spread.clamp_min(0.0)
                responsive = pending & ~frozen
                g = torch.where(responsive, (g + change).clamp(cfg.g_min_us, cfg.g_max_us), g)
                pulses += pending.to(torch.int32)
                self.cycles.add_(pending.to(torch.int32))
                # logged as the pulses go out, so an interrupted run is on the record too
                self.write_history += torch.tensor([int(pending.sum()), int((pending & (pulses == 1)).sum())])
                frozen |= self.worn_out
            else:
                reads += int(pending.sum())  # the final verify of cells still pending after the last pulse
        except BaseException:  # interrupted: the cells pulsed so far hold what the pulses made of them
            self.stuck.logical_or_(self.worn_out)
            self._keep(pulses > 0, g)
            raise
        self.stuck.logical_or_(self.worn_out)
        if cfg.program_sigma_us > 0 or cfg.program_sigma_per_us > 0:
            spread = cfg.program_sigma(targets) * torch.randn(g.shape, generator=self.generator).to(g.device)
            settled = (g + spread).clamp(cfg.g_min_us, cfg.g_max_us)
            g = torch.where(frozen | failed | ~selected, g, settled)
        self._keep(selected, g)
        clipped = selected & ((targets_us < cfg.g_min_us - cfg.tolerance_us) | (targets_us > cfg.g_max_us + cfg.tolerance_us))
        within = ((g - targets).abs() <= cfg.tolerance_us) & ~clipped
        return ProgramResult(g.clone(), pulses, reads, within, iterations, targets, failed, clipped)
