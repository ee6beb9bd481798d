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


@dataclass(frozen=True)
class TechNode:
    """A CMOS technology node: feature size and supply, for scaling every CMOS energy of the chip.

    Scaling rule (dynamic energy E = C·V²): switched capacitance grows in proportion to feature size,
    so E(node) = E(45 nm) · (L / 45 nm) · (V / 0.9 V)².  It applies to every CMOS constant of the hybrid
    chip alike (digital MACs, SRAM, ADC, DAC), never to the resistive cells (device physics) nor to the
    GPU (its own datasheet).  A first-order estimate, stated as such: leakage and wire energy are left out.
    """

    name: str
    feature_nm: float
    vdd: float
    source: str

    def scale(self) -> float:
        """Energy factor from the 45 nm / 0.9 V reference (Horowitz's node) to this node."""
        return (self.feature_nm / 45.0) * self.supply_scale()

    def supply_scale(self) -> float:
        """The V² part alone, for a constant whose capacitance does not shrink with the node."""
        return (self.vdd / 0.9) ** 2


NODES = {
    # Horowitz ISSCC 2014 measured his table at 45 nm, 0.9 V: the reference, factor 1.
    "45nm": TechNode("45nm", 45, 0.9, "Horowitz, ISSCC 2014, Fig. 1.1.9 (45 nm, 0.9 V)"),
    # 180 nm at 1.8 V: the mature CMOS of 1T1R TaOx test chips such as the paper's periphery.
    "180nm": TechNode("180nm", 180, 1.8, "nominal supply of 180 nm CMOS (1.8 V core devices)"),
    # 22 nm at 0.8 V: a current embedded-RRAM logic node (e.g. 22FFL eRRAM, Intel ISSCC 2019 / TSMC 22ULL).
    "22nm": TechNode("22nm", 22, 0.8, "nominal supply of 22 nm embedded-RRAM logic processes (0.8 V)"),
}
DEFAULT_NODE = "45nm"
# Adam's update per parameter: m ← β1·m + (1−β1)·g (2 mul, 1 add), v ← β2·v + (1−β2)·g² (3 mul, 1 add),
# w ← w − lr·m̂ / (√v̂ + ε) (sqrt, add, divide, multiply-subtract); counted as 8 multiply-accumulates.
ADAM_MACS = 8
# Kept for callers of the 180 nm preset: (180/45)·(1.8/0.9)² = 16.
SCALE_45NM_TO_180NM = NODES["180nm"].scale()
# The CMOS constants of EnergyModel, all given at 45 nm and scaled together by TechNode.scale() (C ∝ L, V²).
CMOS_FIELDS = ("adc_fom_j_per_step", "mac_fp32_j", "mac_fp16_j", "mac_int8_j", "sram_read_j_per_bit",
               "sram_write_j_per_bit")
# CMOS constants whose capacitance is not set by the feature size, scaled by V² alone (TechNode.supply_scale):
# the DAC's unit capacitor (sized for matching, i.e. by area) and the sense amplifier (its source's own rule).
SUPPLY_FIELDS = ("dac_unit_j", "sense_amp_j")
# How a verify read is sensed: a window check by a sense amplifier, or a full ADC conversion.
VERIFY_SENSING = ("sense_amp", "adc")
# SRAM energy per 64-bit access against array capacity, Horowitz ISSCC 2014, Fig. 1.1.9 (45 nm):
# 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ.
SRAM_ACCESS_J = ((8 * 1024, 10 * PJ), (32 * 1024, 20 * PJ), (1024 * 1024, 100 * PJ))
SRAM_BASE_BYTES = SRAM_ACCESS_J[0][0]


def sram_size_factor(capacity_bytes: float) -> float:
    """Energy per access of an SRAM of ``capacity_bytes`` relative to Horowitz's 8 KB array.

    Log-log interpolation through his three points (a bigger array drives longer bit- and wordlines),
    extended past 1 MB along the last segment; arrays under 8 KB keep the 8 KB price (no smaller point).
    """
    if not (math.isfinite(capacity_bytes) and capacity_bytes >= 0):
        raise ValueError(f"SRAM capacity must be a finite number of bytes >= 0, got {capacity_bytes}")
    base = SRAM_ACCESS_J[0][1]
    if capacity_bytes <= SRAM_BASE_BYTES:
        return 1.0
    segment = 0 if capacity_bytes <= SRAM_ACCESS_J[1][0] else 1  # past 1 MB: the last segment, extended
    (lo, e_lo), (hi, e_hi) = SRAM_ACCESS_J[segment], SRAM_ACCESS_J[segment + 1]
    return e_lo / base * (capacity_bytes / lo) ** (math.log(e_hi / e_lo) / math.log(hi / lo))


@dataclass(frozen=True)
class EnergyModel:
    """Per-operation energies and times.  Every default names its source; override any of them.

    Every CMOS constant (``CMOS_FIELDS``) is given at 45 nm, Horowitz's node (M. Horowitz, "Computing's
    energy problem (and what we can do about it)", ISSCC 2014, Fig. 1.1.9); ``for_node`` scales them all
    by one ``TechNode`` so that the whole hybrid chip (RM periphery, SRAM, digital MACs) sits at one node.
    ``node`` names the node the constants are at.
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
    # ADC: Walden figure of merit 50 fJ per conversion step, a mid-range (not frontier) value for SAR
    # ADCs in B. Murmann, "ADC Performance Survey 1997-2024" (Stanford); E = FOM · 2^bits.  A survey-wide
    # value, not one node's: placing it at 45 nm and scaling it by C·V² is an assumption (it makes the
    # 180 nm ADC 800 fJ/step, the poor end of published 180 nm SARs).
    adc_fom_j_per_step: float = 50e-15
    adc_bits: int = 8
    # DAC: a binary-weighted capacitive DAC switches on average ∝ 2^bits·C_u·V² per conversion (Saberi et
    # al., "Analysis of power consumption and linearity in capacitive DACs used in SAR ADCs", IEEE TCAS-I
    # 58(8), 2011); C_u = 1 fF (a matching-limited unit capacitor, an assumption) at V = 0.9 V (45 nm);
    # matching sets C_u by area, not by L, so only V² scales it between nodes.
    # A binary (spike) input needs one level: a 1-bit row driver, 2·C_u·V².
    dac_unit_j: float = 1e-15 * 0.9**2
    # Verify reads: write-and-verify checks a cell against its target window (±tolerance), two decisions
    # (above the lower bound, below the upper) of a latched voltage sense amplifier.  NeuroSim prices one
    # sense-amplifier decision at 9.845 fJ at 65 nm, 1.1 V, from SPICE (P.-Y. Chen, X. Peng, S. Yu, IEEE TCAD
    # 37(12), 2018; MLP_NeuroSim V3.0, VoltageSenseAmp), scaled as NeuroSim scales it, by V² alone:
    # 9.845 fJ · (0.9/1.1)² = 6.59 fJ at 0.9 V.  ``verify_sensing="adc"`` prices every verify read as a full
    # ``adc_bits`` conversion instead (this code's earlier pricing, which had no source: an assumption variant).
    sense_amp_j: float = 9.845e-15 * (0.9 / 1.1) ** 2
    verify_decisions: int = 2
    verify_sensing: str = "sense_amp"
    # --- digital (Horowitz ISSCC 2014, 45 nm): fp32 multiply 3.7 pJ + add 0.9 pJ; fp16 1.1 + 0.4 pJ;
    # int8 multiply 0.2 pJ + int32 add 0.1 pJ (accumulating in 32 bits).
    mac_fp32_j: float = (3.7 + 0.9) * PJ
    mac_fp16_j: float = (1.1 + 0.4) * PJ
    mac_int8_j: float = (0.2 + 0.1) * PJ
    # 8 KB SRAM: 10 pJ per 64-bit access (Horowitz ISSCC 2014); writes taken equal to reads.  A bigger
    # array costs more per access (``sram_size_factor``): ``sram_bytes`` is the capacity the chip needs for
    # what it stores (energy_report sizes it per task; 8 KB, the base, unless set).
    sram_read_j_per_bit: float = 10 * PJ / 64
    sram_write_j_per_bit: float = 10 * PJ / 64
    sram_bytes: float = SRAM_BASE_BYTES
    # --- GPU: NVIDIA A100 SXM datasheet, 312 TFLOP/s dense FP16 tensor at 400 W → 400 / 156e12 J per
    # MAC.  Peak utilisation, so this favours the GPU.
    gpu_mac_j: float = 400 / 156e12
    node: str = DEFAULT_NODE

    def __post_init__(self) -> None:
        if self.node not in NODES:
            raise ValueError(f"EnergyModel.node must be one of {sorted(NODES)}, got {self.node!r}")
        if self.verify_sensing not in VERIFY_SENSING:
            raise ValueError(f"EnergyModel.verify_sensing must be one of {VERIFY_SENSING}, got {self.verify_sensing!r}")
        for f in fields(self):
            if f.name in ("node", "verify_sensing"):
                continue
            value = getattr(self, f.name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"EnergyModel.{f.name} must be a finite number >= 0, got {value}")
        if self.adc_bits < 1:
            raise ValueError(f"EnergyModel.adc_bits must be >= 1, got {self.adc_bits}")

    @classmethod
    def for_node(cls, node: str = DEFAULT_NODE, **overrides: float) -> EnergyModel:
        """The default constants with every CMOS one scaled to ``node`` (see ``TechNode``): ``CMOS_FIELDS`` by
        C·V² with C ∝ L, ``SUPPLY_FIELDS`` by V² alone."""
        if node not in NODES:
            raise ValueError(f"unknown technology node {node!r}; presets: {sorted(NODES)}")
        base, tech = cls(), NODES[node]
        scaled = {name: getattr(base, name) * tech.scale() for name in CMOS_FIELDS}
        scaled |= {name: getattr(base, name) * tech.supply_scale() for name in SUPPLY_FIELDS}
        return replace(base, **{**scaled, "node": node, **overrides})

    @classmethod
    def cmos_180nm(cls, **overrides: float) -> EnergyModel:
        """The whole chip at 180 nm (``SCALE_45NM_TO_180NM`` = 16 on every CMOS constant)."""
        return cls.for_node("180nm", **overrides)

    @property
    def adc_conversion_j(self) -> float:
        return self.adc_fom_j_per_step * 2**self.adc_bits

    @property
    def verify_read_j(self) -> float:
        """One verify read of one cell: the cell read and its sensing (``verify_sensing``)."""
        if self.verify_sensing == "adc":
            return self.rm_cell_read_j + self.adc_conversion_j
        return self.rm_cell_read_j + self.verify_decisions * self.sense_amp_j

    @property
    def sram_read_bit_j(self) -> float:
        """One bit read from an SRAM of ``sram_bytes``."""
        return self.sram_read_j_per_bit * sram_size_factor(self.sram_bytes)

    @property
    def sram_write_bit_j(self) -> float:
        """One bit written to an SRAM of ``sram_bytes``."""
        return self.sram_write_j_per_bit * sram_size_factor(self.sram_bytes)

    def dac_conversion_j(self, bits: int) -> float:
        """One DAC conversion of a ``bits``-bit input (1: a binary row driver)."""
        if bits < 1:
            raise ValueError(f"DAC bits must be >= 1, got {bits}")
        return self.dac_unit_j * 2**bits

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
        """Write-and-verify: pulses and verify reads (each priced by ``EnergyModel.verify_read_j``).

        Time assumes tiles program in parallel and cells within a tile one after another.
        """
        e = self.energy
        pulse_s = pulses * e.rm_write_pulse_s / max(tiles, 1)
        read_s = verify_reads * e.rm_read_s / max(tiles, 1)
        self.post("write.rm_pulse", pulses * e.rm_write_pulse_j, pulses, pulse_s, note)
        self.post("write.rm_verify", verify_reads * e.verify_read_j, verify_reads, read_s, note)

    def post_sram_write(self, bits: int, note: str = "") -> None:
        self.post("write.sram", bits * self.energy.sram_write_bit_j, bits, note=note)

    def post_row_write(self, rows: int, width: int, bits: int = 32, note: str = "") -> int:
        """Rows of a digital table (readout rows with their bias, embedding rows) written to SRAM; every
        task charges its row writes through here.  Returns the bits written."""
        written = rows * width * bits
        self.post_sram_write(written, note=note)
        return written

    def post_optimizer(self, updates: int, note: str = "") -> None:
        """Adam's state traffic for ``updates`` parameter updates (trainable parameters × steps).

        Per update: read weight, gradient, m and v, write weight, gradient, m and v, all fp32 in SRAM
        (master weights stay fp32 whatever the adapters' storage precision), and ``ADAM_MACS`` fp32
        operations of the update rule.
        """
        e = self.energy
        self.post("train.sram_read", updates * 4 * 32 * e.sram_read_bit_j, updates * 4 * 32, note=note)
        self.post("train.sram_write", updates * 4 * 32 * e.sram_write_bit_j, updates * 4 * 32, note=note)
        self.post("train.digital_mac", updates * ADAM_MACS * e.mac_fp32_j, updates * ADAM_MACS, note=note)

    def post_inference(
        self,
        analog_macs: int = 0,
        adc_conversions: int = 0,
        digital_macs: int = 0,
        digital_precision: str = "fp32",
        sram_bits_read: int = 0,
        note: str = "",
        dac_conversions: dict[int, int] | None = None,
        phase: str = "infer",
    ) -> None:
        """Compute work priced on the hybrid chip; ``phase`` is ``infer`` or ``train`` (its passes).

        ``dac_conversions`` maps input bits to conversions (1 = binary inputs through a row driver).
        """
        if phase not in ("infer", "train"):
            raise ValueError(f"compute phase must be 'infer' or 'train', got {phase!r}")
        e = self.energy
        if analog_macs:
            self.post(f"{phase}.rm_mac", analog_macs * e.rm_cell_read_j, analog_macs, note=note)
        if adc_conversions:
            self.post(f"{phase}.adc", adc_conversions * e.adc_conversion_j, adc_conversions, note=note)
        for bits, conversions in sorted((dac_conversions or {}).items()):
            if conversions:
                self.post(f"{phase}.dac", conversions * e.dac_conversion_j(bits), conversions, note=f"{note} {bits}-bit".strip())
        if digital_macs:
            self.post(f"{phase}.digital_mac", digital_macs * e.mac_j(digital_precision), digital_macs, note=note)
        if sram_bits_read:
            self.post(f"{phase}.sram_read", sram_bits_read * e.sram_read_bit_j, sram_bits_read, note=note)

    def post_gpu_inference(self, macs: int, note: str = "", phase: str = "infer") -> None:
        self.post(f"{phase}.gpu_mac", macs * self.energy.gpu_mac_j, macs, note=note)

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
            "training_energy_j": self.joules("train"),
            "trainable_params": self.count("train.params"),
            "parameter_updates": self.count("train.updates"),
            "categories": self.by_category(),
        }

    def write_joules(self, energy: EnergyModel) -> float:
        """The write events re-priced under ``energy`` (another node): their counts times its unit prices."""
        unit = {"write.rm_pulse": energy.rm_write_pulse_j, "write.rm_verify": energy.verify_read_j,
                "write.sram": energy.sram_write_bit_j}
        unknown = {ev.category for ev in self._select("write")} - set(unit)
        if unknown:
            raise ValueError(f"cannot re-price write events {sorted(unknown)}")
        return math.fsum(ev.count * unit[ev.category] for ev in self._select("write"))

    def ratio(self, other: Ledger, prefix: str, quantity: str = "joules") -> float:
        """How many times more ``other`` spent than this ledger on ``prefix`` (other / self)."""
        read = {"joules": Ledger.joules, "count": Ledger.count, "seconds": Ledger.seconds}[quantity]
        mine, theirs = read(self, prefix), read(other, prefix)
        if mine == 0:
            return math.inf if theirs > 0 else math.nan
        return theirs / mine

    def to_json(self) -> str:
        return json.dumps(self.report(), indent=2, sort_keys=True)
