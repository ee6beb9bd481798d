"""Device faults and wear: accuracy under stuck cells, write noise, drift and worn cells, with and
without a restore branch; and how many lifecycle operations the array's endurance allows."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from neuro_rm import layers as hybrid
from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.device import PRESETS, ProgramResult, preset_name
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.loop import TrainConfig
from neuro_rm.learning.metrics import accuracy, predict_logits


@dataclass(frozen=True)
class Fault:
    """One fault condition applied to every crossbar of a model."""

    kind: str  # "stuck", "write_noise", "drift", "worn"
    level: float  # fraction of cells, µS, or seconds

    def apply(self, model: torch.nn.Module, seed: int = 0) -> None:
        if self.kind == "stuck":  # half stuck on, half stuck off
            hybrid.inject_stuck(model, self.level / 2, self.level / 2)
        elif self.kind == "write_noise":
            hybrid.add_write_noise(model, self.level)
        elif self.kind == "drift":
            hybrid.set_time(model, self.level)
        elif self.kind == "worn":
            _wear_out(model, self.level, seed)
        else:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected stuck, write_noise, drift or worn")

    @property
    def label(self) -> str:
        units = {"stuck": "", "write_noise": " µS", "drift": " s", "worn": ""}[self.kind]
        value = f"{self.level:.0%}" if self.kind in ("stuck", "worn") else f"{self.level:g}"
        return f"{self.kind} {value}{units}"


def _wear_out(model: torch.nn.Module, fraction: float, seed: int) -> None:
    """A share of cells reached their endurance at some earlier write: they stay frozen at an
    unrelated conductance, and refreshing the array (write-verify of its own weights) cannot move them."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"worn fraction must be in [0, 1], got {fraction}")
    generator = torch.Generator().manual_seed(seed)
    for _, layer in hybrid.hybrid_layers(model):
        cells = layer.crossbar.cells
        cfg = cells.config
        hit = torch.rand(cells.shape, generator=generator) < fraction
        frozen_at = cfg.g_min_us + torch.rand(cells.shape, generator=generator) * (cfg.g_max_us - cfg.g_min_us)
        cells.programmed_us = torch.where(hit, frozen_at, cells.programmed_us)
        cells.cycles[hit] = cfg.endurance_cycles
    hybrid.reprogram(model)


DEFAULT_FAULTS = (
    [Fault("stuck", r) for r in (0.01, 0.02, 0.05, 0.10)]
    + [Fault("write_noise", s) for s in (1.0, 2.0, 3.0, 5.0)]
    + [Fault("drift", t) for t in (3600.0, 86400.0, 1e6)]
    + [Fault("worn", r) for r in (0.01, 0.05)]
)


def fault_sweep(
    auth: SpeakerAuthenticator,
    test: LabelledSet,
    faults: list[Fault] | tuple[Fault, ...] = tuple(DEFAULT_FAULTS),
    restore: TrainConfig = TrainConfig(epochs=8, lr=2e-3, batch_size=64),
    seed: int = 0,
    on_row: Callable[[dict], None] | None = None,
    train: LabelledSet | None = None,
) -> dict[str, object]:
    """Accuracy on ``test`` under each fault, before and after restoring (the restore branch trained on
    ``train``, default the replay buffer; selected on the holdout buffer).  ``auth`` is left untouched.

    The same restore run on the healthy array is the control: part of what a restore branch wins is plain
    extra fine-tuning, so each row's ``repair`` is its restored accuracy less the control's (0: brought back as
    far as a healthy array), and ``net_repair`` is what the branch won on the faulty array less what it wins on
    the healthy one: (restored − faulty) − (control − clean)."""
    if not auth.deployed:
        raise ValueError("fault_sweep needs a deployed authenticator")
    test = test.of_classes(auth.active_labels)
    clean = accuracy(predict_logits(auth.model, test.x), test.y)
    control_trial = copy.deepcopy(auth)
    control_trial.restore(restore, data=train)
    control = accuracy(predict_logits(control_trial.model, test.x), test.y)
    rows = []
    for index, fault in enumerate(faults):
        trial = copy.deepcopy(auth)
        fault.apply(trial.model, seed + index)
        hybrid.calibrate_cleared(trial.model, trial.buffers.replay.x)  # a refresh (worn cells) cleared them
        faulty = accuracy(predict_logits(trial.model, test.x), test.y)
        trial.restore(restore, data=train)
        restored = accuracy(predict_logits(trial.model, test.x), test.y)
        row = {"fault": fault.kind, "level": fault.level, "label": fault.label, "accuracy": faulty,
               "restored_accuracy": restored, "repair": restored - control,
               "net_repair": (restored - faulty) - (control - clean)}
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return {"clean_accuracy": clean, "control_accuracy": control, "rows": rows}


def preset_sweeps(auth: SpeakerAuthenticator, test: LabelledSet, presets: list[str] | tuple[str, ...], seed: int = 0,
                  **sweep: object) -> dict[str, dict[str, object]]:
    """``fault_sweep`` on each device preset, keyed by preset name.  A trained, undeployed ``auth`` is
    deployed on a copy for each preset (``auth`` stays as it is); a deployed one can only be swept on
    the preset its cells already are."""
    unknown = [name for name in presets if name not in PRESETS]
    if unknown or not presets:
        raise ValueError(f"unknown device preset(s) {unknown}; choose from {sorted(PRESETS)}")
    if auth.deployed:
        own = preset_name(auth.device_config)
        if list(presets) != [own]:
            raise ValueError(f"the state is deployed on {own}; sweeping {', '.join(presets)} needs a trained, "
                             "undeployed state (neuro-rm train), deployed on each preset in memory")
        return {own: fault_sweep(auth, test, seed=seed, **sweep)}
    results = {}
    for name in presets:
        trial = copy.deepcopy(auth)
        trial.deploy(PRESETS[name](), seed=seed)
        results[name] = fault_sweep(trial, test, seed=seed, **sweep)
    return results


def endurance_budget(results: list[ProgramResult], endurance_cycles: int) -> dict[str, float | None]:
    """Operations until cells wear out, if each operation rewrote the array like ``results`` did.

    Under LoRA an operation writes SRAM only and uses no RM cycles, so RM endurance sets no limit
    (reported as None)."""
    pulses = torch.cat([r.pulses.flatten().float() for r in results])
    worst, p99, mean = float(pulses.max()), float(pulses.quantile(0.99)), float(pulses.mean())
    ops = lambda per_op: math.floor(endurance_cycles / per_op) if per_op > 0 else None  # noqa: E731
    return {
        "endurance_cycles": endurance_cycles,
        "full_reprogram_mean_cycles_per_op": mean,
        "full_reprogram_max_cycles_per_op": worst,
        "full_reprogram_ops_until_first_worn_cell": ops(worst),
        "full_reprogram_ops_until_1pct_worn": ops(p99),
        "lora_rm_cycles_per_op": 0,
        "lora_ops_limited_by_rm": None,
    }
