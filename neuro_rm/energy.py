"""Energy constants (each with its source) and a ledger of events that turns work into joules.

The ledger is the single place where costs are added up: programming posts write pulses and verify
reads, adapters post SRAM writes, evaluation posts inference work.  Reports and ratios are computed
from the posted events only, so a figure can always be traced to the run that produced it.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, fields, replace

PJ = 1e-12

# Scaling of digital energies from 45 nm / 0.9 V to 180 nm / 1.8 V under constant-field rules:
# switched capacitance grows with feature size (x4) and energy with V^2 (x4).  An estimate, stated as such.
SCALE_45NM_TO_180NM = (180 / 45) * (1.8 / 0.9) ** 2


@dataclass(frozen=True)
class EnergyModel:
    """Per-operation energies and times.  Every default names its source; override any of them.

    Digital defaults are Horowitz's 45 nm figures (M. Horowitz, "Computing's energy problem (and what
    we can do about it)", ISSCC 2014, Fig. 1.1.9); ``cmos_180nm()`` scales them to the 180 nm node
    the paper's periphery would use.
    """

    # --- resistive memory (the paper does not publish per-pulse figures; these are derived estimates)
    # One SET/RESET pulse: E = V·I·t with V = 1.5 V, I = 100 µA (1T1R access-transistor limited),
    # t = 100 ns — typical TaOx 1T1R programming conditions; an assumption, override for your device.
    rm_write_pulse_j: float = 1.5 * 100e-6 * 100e-9
    rm_write_pulse_s: float = 100e-9
    # One read of one cell: E = V²·G·t with V_read = 0.2 V, G = 50 µS (mid-window of 20-80 µS),
    # t = 10 ns.  Used for both verify reads and in-array multiply-accumulates.
    rm_cell_read_j: float = 0.2**2 * 50e-6 * 10e-9
    rm_read_s: float = 10e-9
    # ADC: Walden figure of merit 50 fJ per conversion step, a mid-range value for SAR ADCs in mature
    # CMOS in B. Murmann, "ADC Performance Survey 1997-2024" (Stanford); E = FOM · 2^bits.
    adc_fom_j_per_step: float = 50e-15
    adc_bits: int = 8
    # --- digital (Horowitz ISSCC 2014, 45 nm): fp32 multiply 3.7 pJ + add 0.9 pJ; fp16 1.1 + 0.4 pJ;
    # int8 multiply 0.2 pJ + int32 add 0.1 pJ (accumulating in 32 bits).
    mac_fp32_j: float = (3.7 + 0.9) * PJ
    mac_fp16_j: float = (1.1 + 0.4) * PJ
    mac_int8_j: float = (0.2 + 0.1) * PJ
    # 8 KB SRAM: 10 pJ per 64-bit access (Horowitz ISSCC 2014); writes taken equal to reads.
    sram_read_j_per_bit: float = 10 * PJ / 64
    sram_write_j_per_bit: float = 10 * PJ / 64
    # --- GPU: NVIDIA A100 SXM datasheet, 312 TFLOP/s dense FP16 tensor at 400 W → 400 / 156e12 J per
    # MAC.  Peak utilisation, so this favours the GPU.
    gpu_mac_j: float = 400 / 156e12

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"EnergyModel.{f.name} must be a finite number >= 0, got {value}")
        if self.adc_bits < 1:
            raise ValueError(f"EnergyModel.adc_bits must be >= 1, got {self.adc_bits}")

    @classmethod
    def cmos_180nm(cls, **overrides: float) -> EnergyModel:
        """Digital and SRAM energies scaled from 45 nm to 180 nm by ``SCALE_45NM_TO_180NM`` (=16)."""
        base = cls()
        scaled = {
            name: getattr(base, name) * SCALE_45NM_TO_180NM
            for name in ("mac_fp32_j", "mac_fp16_j", "mac_int8_j", "sram_read_j_per_bit", "sram_write_j_per_bit")
        }
        return replace(base, **{**scaled, **overrides})

    @property
    def adc_conversion_j(self) -> float:
        return self.adc_fom_j_per_step * 2**self.adc_bits

    def mac_j(self, precision: str) -> float:
        """Digital MAC energy for an SRAM precision name (fp32, fp16, int8)."""
        table = {"fp32": self.mac_fp32_j, "fp16": self.mac_fp16_j, "int8": self.mac_int8_j}
        if precision not in table:
            raise ValueError(f"unknown digital precision {precision!r}; expected one of {sorted(table)}")
        return table[precision]

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Event:
    """One costed thing that happened: ``count`` operations of one kind, their joules and seconds."""

    category: str
    joules: float
    count: int = 0
    seconds: float = 0.0
    note: str = ""


class Ledger:
    """An append-only list of events with totals per category.

    Categories are dotted, the first part naming the phase: ``write.*`` (committing weights to memory),
    ``infer.*`` (running the network) and ``train.*`` (how much learning was done; counts, no joules).
    """

    def __init__(self, energy: EnergyModel | None = None) -> None:
        self.energy = energy or EnergyModel()
        self.events: list[Event] = []

    def post(self, category: str, joules: float = 0.0, count: int = 0, seconds: float = 0.0, note: str = "") -> Event:
        if not category or not isinstance(category, str):
            raise ValueError("a ledger event needs a non-empty category name")
        if not (math.isfinite(joules) and joules >= 0 and count >= 0 and seconds >= 0):
            raise ValueError(f"ledger event {category!r} needs finite, non-negative joules/count/seconds")
        event = Event(category, float(joules), int(count), float(seconds), note)
        self.events.append(event)
        return event

    # ------------------------------------------------------------------ posting physical work
    def post_programming(self, pulses: int, verify_reads: int, tiles: int = 1, note: str = "") -> None:
        """Write-and-verify: pulses and verify reads (each read goes through the ADC / sense path).

        Time assumes tiles program in parallel and cells within a tile one after another.
        """
        e = self.energy
        pulse_s = pulses * e.rm_write_pulse_s / max(tiles, 1)
        read_s = verify_reads * e.rm_read_s / max(tiles, 1)
        self.post("write.rm_pulse", pulses * e.rm_write_pulse_j, pulses, pulse_s, note)
        self.post("write.rm_verify", verify_reads * (e.rm_cell_read_j + e.adc_conversion_j), verify_reads, read_s, note)

    def post_sram_write(self, bits: int, note: str = "") -> None:
        self.post("write.sram", bits * self.energy.sram_write_j_per_bit, bits, note=note)

    def post_inference(
        self,
        analog_macs: int = 0,
        adc_conversions: int = 0,
        digital_macs: int = 0,
        digital_precision: str = "fp32",
        sram_bits_read: int = 0,
        note: str = "",
    ) -> None:
        e = self.energy
        if analog_macs:
            self.post("infer.rm_mac", analog_macs * e.rm_cell_read_j, analog_macs, note=note)
        if adc_conversions:
            self.post("infer.adc", adc_conversions * e.adc_conversion_j, adc_conversions, note=note)
        if digital_macs:
            self.post("infer.digital_mac", digital_macs * e.mac_j(digital_precision), digital_macs, note=note)
        if sram_bits_read:
            self.post("infer.sram_read", sram_bits_read * e.sram_read_j_per_bit, sram_bits_read, note=note)

    def post_gpu_inference(self, macs: int, note: str = "") -> None:
        self.post("infer.gpu_mac", macs * self.energy.gpu_mac_j, macs, note=note)

    def post_training(self, trainable_params: int, steps: int, note: str = "") -> None:
        """Training cost as the paper counts it: trainable parameters, and parameter updates made."""
        self.post("train.params", 0.0, trainable_params, note=note)
        self.post("train.updates", 0.0, trainable_params * steps, note=note)

    # ------------------------------------------------------------------ reading
    def _select(self, prefix: str | None) -> list[Event]:
        if prefix is None:
            return self.events
        return [ev for ev in self.events if ev.category == prefix or ev.category.startswith(prefix + ".")]

    def joules(self, prefix: str | None = None) -> float:
        return math.fsum(ev.joules for ev in self._select(prefix))

    def count(self, prefix: str | None = None) -> int:
        return sum(ev.count for ev in self._select(prefix))

    def seconds(self, prefix: str | None = None) -> float:
        return math.fsum(ev.seconds for ev in self._select(prefix))

    def by_category(self) -> dict[str, dict[str, float]]:
        table: dict[str, dict[str, float]] = defaultdict(lambda: {"joules": 0.0, "count": 0, "seconds": 0.0})
        for ev in self.events:
            row = table[ev.category]
            row["joules"] += ev.joules
            row["count"] += ev.count
            row["seconds"] += ev.seconds
        return dict(sorted(table.items()))

    def report(self) -> dict[str, object]:
        """Totals per phase and per category, JSON-ready."""
        return {
            "write_energy_j": self.joules("write"),
            "write_pulses": self.count("write.rm_pulse"),
            "programming_seconds": self.seconds("write"),
            "inference_energy_j": self.joules("infer"),
            "trainable_params": self.count("train.params"),
            "parameter_updates": self.count("train.updates"),
            "categories": self.by_category(),
        }

    def ratio(self, other: Ledger, prefix: str, quantity: str = "joules") -> float:
        """How many times more ``other`` spent than this ledger on ``prefix`` (other / self)."""
        read = {"joules": Ledger.joules, "count": Ledger.count, "seconds": Ledger.seconds}[quantity]
        mine, theirs = read(self, prefix), read(other, prefix)
        if mine == 0:
            return math.inf if theirs > 0 else math.nan
        return theirs / mine

    def to_json(self) -> str:
        return json.dumps(self.report(), indent=2, sort_keys=True)
