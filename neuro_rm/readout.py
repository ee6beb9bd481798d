"""What the demos report about the chip at each lifecycle stage: the array's age on a stated schedule,
and the same programmed cells read through the ideal periphery, the realistic one and with drift
compensation (switching the periphery reads the cells again; nothing is retrained or rewritten)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.report import accuracy_on

DAY_S = 86_400.0
COMPENSATED = ("global", "column", "offset")  # the drift compensations compared with none
DRIFT_TIMES_S = (3600.0, 86400.0, 1e6)  # the ages of the deployed array in the demos' drift sweep


@dataclass(frozen=True)
class Schedule:
    """Age of the array (seconds since deployment) when each lifecycle step runs.  The demos age the
    array between steps instead of resetting its clock, so every step runs on a drifted array."""

    revoke_s: float = DAY_S  # one day
    enroll_s: float = 7 * DAY_S  # one week
    restore_s: float = 30 * DAY_S  # one month

    def __post_init__(self) -> None:
        if not 0 <= self.revoke_s <= self.enroll_s <= self.restore_s < float("inf"):
            raise ValueError(f"Schedule needs 0 <= revoke_s <= enroll_s <= restore_s (finite), got {self}")

    def as_dict(self) -> dict[str, float]:
        return {"deploy_s": 0.0, **asdict(self)}


class ArrayClock:
    """Lifecycle time since deployment; ``advance`` ages a model's cells to the age of a stage."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.now_s = 0.0

    def advance(self, model: nn.Module, stage: str) -> float:
        """Age every crossbar of ``model`` by the time between the last stage and ``stage``; each keeps
        counting from its own last write (a step that wrote cells restarted that array's clock)."""
        target = getattr(self.schedule, f"{stage}_s")
        if target < self.now_s:
            raise ValueError(f"stage {stage!r} at {target:g} s comes before the clock's {self.now_s:g} s")
        for _, layer in hybrid.hybrid_layers(model):
            layer.set_time(layer.crossbar.cells.elapsed_s + target - self.now_s)
        self.now_s = target
        return target


def readout_of(model: nn.Module) -> CrossbarConfig:
    """The periphery the model's crossbars are read through (all share one)."""
    configs = {layer.crossbar.config for _, layer in hybrid.hybrid_layers(model)}
    if len(configs) != 1:
        raise ValueError(f"the model's crossbars are read through {len(configs)} different peripheries; expected one")
    return configs.pop()


def readout_settings(model: nn.Module) -> dict[str, object]:
    """The periphery's settings, JSON-ready, with the device preset's read noise."""
    layer = hybrid.hybrid_layers(model)[0][1]
    return {**asdict(readout_of(model)), "is_ideal": readout_of(model).is_ideal,
            "read_noise_us": layer.crossbar.device_config.read_noise_us}


def peripheries(config: CrossbarConfig) -> dict[str, CrossbarConfig]:
    """The readouts compared at each stage, on the cells' own mapping and tiling: ``ideal``, ``realistic``
    (``config`` itself unless it is ideal, then the realistic default) and ``realistic`` with global,
    per-column and offset drift compensation."""
    geometry = {"mapping": config.mapping, "tile_rows": config.tile_rows, "tile_cols": config.tile_cols}
    realistic = config if not config.is_ideal else CrossbarConfig(**geometry)
    return {"ideal": CrossbarConfig.ideal(**geometry), "realistic": replace(realistic, drift_compensation="none"),
            **{f"compensated_{mode}": replace(realistic, drift_compensation=mode) for mode in COMPENSATED}}


def _saved_draws(model: nn.Module) -> list[tuple[torch.Generator, torch.Tensor]]:
    """Every crossbar's random generator with its state now, for ``_rewind``."""
    return [(layer.crossbar.cells.generator, layer.crossbar.cells.generator.get_state())
            for _, layer in hybrid.hybrid_layers(model)]


def _rewind(saved: list[tuple[torch.Generator, torch.Tensor]]) -> None:
    for generator, state in saved:
        generator.set_state(state)


def readout_accuracies(model: nn.Module, test: LabelledSet, calibration: object,
                       configs: dict[str, CrossbarConfig] | None = None) -> dict[str, float]:
    """Accuracy on ``test`` of the same cells under each of ``configs`` (default ``peripheries``).

    Common random numbers: the cells' generators are put back to one saved state before each periphery
    reads the test, so every periphery reads the same read-noise draws and two that compute alike score
    alike (at age 0, where compensation is a gain of exactly 1, ``realistic`` equals ``compensated_global``);
    a difference is the periphery's, not sampling.  Afterwards the own periphery and the generators' state
    are put back, so that measuring leaves every later result as it was.  An ADC without a full scale (after
    a write, or in an ideal run) is calibrated on ``calibration`` inputs (training data), never on the test
    inputs."""
    own = readout_of(model)
    saved = _saved_draws(model)
    out = {}
    try:
        for name, config in (configs or peripheries(own)).items():
            hybrid.set_readout(model, config)
            hybrid.calibrate_cleared(model, calibration)
            _rewind(saved)  # after calibrating: a calibration pass (first ADC periphery only) draws too
            out[name] = accuracy_on(model, test)
    finally:
        hybrid.set_readout(model, own)
        _rewind(saved)
    return out


def drift_sweep(model: nn.Module, test: LabelledSet, calibration: object,
                times_s: tuple[float, ...]) -> dict[str, float]:
    """Accuracy on ``test`` with the array aged to each of ``times_s`` (seconds since programming), through
    the model's own periphery without compensation (``<t>s``) and with each (``<mode>.<t>s``, mode in
    ``COMPENSATED``): the drift that compensation is meant to undo, on cells no branch has adapted to.
    Every read at every age takes the same draws (``readout_accuracies``), so the figures differ by drift
    and compensation only; the draws and each array's age are put back, so the sweep changes no later
    result."""
    own, layers = readout_of(model), [layer for _, layer in hybrid.hybrid_layers(model)]
    ages = [layer.crossbar.cells.elapsed_s for layer in layers]
    reads = {"": replace(own, drift_compensation="none"),
             **{f"{mode}.": replace(own, drift_compensation=mode) for mode in COMPENSATED}}
    out = {}
    try:
        for t in times_s:
            hybrid.set_time(model, t)
            out.update({f"{prefix}{t:g}s": value
                        for prefix, value in readout_accuracies(model, test, calibration, reads).items()})
    finally:
        for layer, age in zip(layers, ages, strict=True):
            layer.set_time(age)
    return out


def stage_readouts(report: dict[str, object], stage: str, model: nn.Module, test: LabelledSet,
                   calibration: object, array_test: LabelledSet | None = None) -> None:
    """Put into a demo's flat ``report``:

    ``<stage>.readout.<periphery>``: the stage's whole model (array and digital branches) on ``test``.  After
    a stage that trained a branch, the branch was trained through the run's own readout and has absorbed
    part of the drift through it, so a compensation switched on (or off) now corrects twice (or not at all):
    these rows say what switching now would do, not what compensation achieves.
    ``<stage>.array.<periphery>`` (with ``array_test``, the deployed classes still served): the analogue array
    alone, every branch disabled, at the stage's age: the drift-compensation figures.  The branches are back
    on exactly as they were afterwards."""
    for name, value in readout_accuracies(model, test, calibration).items():
        report[f"{stage}.readout.{name}"] = value
    if array_test is not None:
        with hybrid.disable_adapters(model):
            array = readout_accuracies(model, array_test, calibration)
        for name, value in array.items():
            report[f"{stage}.array.{name}"] = value
