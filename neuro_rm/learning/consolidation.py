"""Branch consolidation: what happens to per-speaker LoRA branches as enrolled voices pile up.

Every enrolment adds a branch (the "hippocampus"), and so does every suspension (its mask); run unchecked,
verify time and SRAM grow with the number of speakers.  A *consolidation policy* is a plasticity hook the
authenticator calls after each enrolment and suspension (or a user calls when the device is idle): it looks at the live branches and returns a
:class:`Plan`; :func:`apply_plan` carries it out.

Two moves, both exact or bounded:

* **fold** (digital): the named branches are summed into one full-rank digital branch, ``store``
  (ΔW = B·I with B the summed ΔW, held at fp32 whatever the folded branches' precision), and deleted.
  Outputs are unchanged up to float rounding; memory and per-vector work stop growing (at most
  ``max_branches`` speaker branches plus one dense ΔW per layer, and the ``restore`` branch where there is one,
  which is no speaker's and never folded).
* **merge** (analogue, the "cortex"): ``store`` is written into the cells with ``merge_adapter`` (only cells
  whose target moves beyond the write tolerance are pulsed), after which nothing digital is left to read.
  Outputs then differ by at most what the write tolerance allows.

A third, **fuse**, changes no weight: inference folds the active branches into one ΔW per layer, so its
work is one dense product per layer whatever the number of branches, and training folds the branches that
do not train (``layers.fuse_adapters``).  A plan
says whether inference is fused afterwards; :func:`apply_plan` fuses or un-fuses accordingly.

The default, :class:`BranchBudget`, folds the oldest branches once more than ``max_branches`` are live;
inference is fused while ``store`` is live (one dense read beats a full-rank branch) or where the branches
cost more read one by one than as one dense ΔW, in every layer or in none.  By default it never merges.  A
merge writes each moved cell to its present conductance plus ΔW, because a branch is trained against the
cells as they are (a repair branch undoes their error: ``tests/test_crossbar.py``, a merged repair; re-targeting
from the intended weights would add the repair to those), so every merge's write-and-verify error stays in the cells: over many merges of
changes that cancel out it adds up like a random walk (``scripts/merge_error_walk.py``: the stored weights'
relative rms error 0.11 → 0.36 → 0.75 after 20 and 100 merges); a merge also rewrites a third to a half of
the cells and clips some at the window's edge (``benchmarks/bench_merge.py``); and on the 512-wide RSNN a
merge pays for its write energy within a few input vectors, so an energy rule alone would merge at every
enrolment.  With ``horizon_inferences`` set,
it merges ``store`` (with this plan's fold) when the digital reads the merge saves over that many input
vectors cost more energy than writing it (pulses estimated from the pulses per pulsed cell the arrays'
programming runs have needed so far), and the most-worn cell it would pulse stays within ``wear_budget`` of
its endurance after the most pulses one cell can take (a stuck or worn-out cell wears no further).  The reads saved are those
of the fp32 dense ΔW minus those of the branches left: none at equal precision where the model stays fused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm.energy import Ledger
from neuro_rm.lora import PRECISION_BITS, AdapterConfig, widest

STORE = "store"  # the folded, full-rank digital branch
STORE_PRECISION = "fp32"  # so that folding re-rounds nothing, whatever the folded branches' precision


@dataclass
class Plan:
    """Branches to fold into ``store`` (oldest first), whether ``store`` then goes into the cells, and
    whether inference folds the active branches into one ΔW per layer (``fuse_adapters``)."""

    fold: list[str] = field(default_factory=list)
    merge: bool = False
    fuse: bool = False


class ConsolidationPolicy(Protocol):
    def __call__(self, model: nn.Module, branches: list[str], ledger: Ledger) -> Plan: ...


@dataclass
class BranchBudget:
    """The default policy (see the module docstring).  ``horizon_inferences`` (in input vectors, the unit the
    read energy is counted in): None, the default, never merges; a number merges when the reads saved over
    that many vectors outweigh the write."""

    max_branches: int = 8
    horizon_inferences: float | None = None
    wear_budget: float = 0.5  # fraction of the cells' endurance a merge may bring the most-worn cell to

    def __post_init__(self) -> None:
        if self.max_branches < 0 or not 0 < self.wear_budget <= 1:
            raise ValueError(f"need max_branches >= 0 and 0 < wear_budget <= 1, got {self}")

    def __call__(self, model: nn.Module, branches: list[str], ledger: Ledger) -> Plan:
        fold = branches[: max(0, len(branches) - self.max_branches)]
        merge = bool(fold) and self.horizon_inferences is not None and merge_pays(
            model, ledger, fold, self.horizon_inferences, self.wear_budget)
        return Plan(fold, merge, fuse=fusion_pays(model, fold, merge))


def _read_j(ledger: Ledger, macs: int, precision: str) -> float:
    """Energy of ``macs`` digital multiply-adds whose weights are read from SRAM at ``precision``."""
    return macs * (ledger.energy.mac_j(precision) + PRECISION_BITS[precision] * ledger.energy.sram_read_bit_j)


def _digital_read_j(layer: hybrid.HybridLayer, ledger: Ledger, names: list[str], fused: bool) -> float:
    """Per input vector, reading the branches ``names`` of ``layer`` one by one (r·(in+out) MACs each, in·out
    for the full-rank ``store``) or fused into one dense ΔW (in·out MACs at the widest precision)."""
    held = [layer.adapters[n] for n in names if n in layer.adapters]
    if not held:
        return 0.0
    if fused:
        return _read_j(ledger, layer.crossbar.in_features * layer.crossbar.out_features, widest([a.precision for a in held]))
    return sum(_read_j(ledger, a.macs(layer.crossbar.in_features, layer.crossbar.out_features), a.precision) for a in held)


def _after(layer: hybrid.HybridLayer, fold: list[str], merge: bool) -> list[str]:
    """The digital branches ``layer`` reads once ``fold`` is folded (into ``store``) and, if ``merge``,
    ``store`` is written into the cells."""
    left = [n for n in layer.active if n not in fold and n != STORE]
    holds_store = STORE in layer.adapters or any(n in layer.adapters for n in fold)
    return left if merge or not holds_store else [*left, STORE]


def fusion_pays(model: nn.Module, fold: list[str], merge: bool) -> bool:
    """Whether, after the plan, reading one dense ΔW per layer costs fewer MACs than reading the
    branches one by one (always, while the full-rank ``store`` is live)."""
    for _, layer in hybrid.hybrid_layers(model):
        names = _after(layer, fold, merge)
        if STORE in names:
            return True
        rank = sum(layer.adapters[n].rank for n in names)
        if rank * (layer.crossbar.in_features + layer.crossbar.out_features) > layer.crossbar.in_features * layer.crossbar.out_features:
            return True
    return False


def merge_pays(model: nn.Module, ledger: Ledger, fold: list[str], horizon: float, wear_budget: float) -> bool:
    """Whether writing ``store``, with ``fold`` folded into it, into the cells costs less energy than the
    digital reads it saves over ``horizon`` input vectors, with the most-worn working cell it would pulse
    staying within ``wear_budget`` of its endurance even if it takes the most pulses write-and-verify gives
    one cell.  The write is priced as the cells it moves times the pulses per pulsed cell of the arrays'
    history.  The saving is what inference reads with ``store`` live (fused)
    minus what it reads after the merge: the other branches, fused in every layer or in none, as
    :func:`fusion_pays` decides for the model; zero at equal precision where they stay fused, since a fused
    layer reads one dense ΔW whatever it sums."""
    layers = [layer for _, layer in hybrid.hybrid_layers(model)
              if STORE in layer.adapters or any(n in layer.adapters for n in fold)]
    if not layers:
        return False
    # pulses per written cell, from the arrays' write history (saved with a state; a loaded ledger starts empty)
    history = hybrid.write_history(model)
    if history[1] == 0:  # no write history to price a merge by
        return False
    pulses_per_cell = int(history[0]) / int(history[1])
    fused_after = fusion_pays(model, fold, merge=True)  # what apply_plan will do, model-wide
    write_j = saved_j = 0.0
    for layer in layers:
        held = [n for n in [STORE, *fold] if n in layer.adapters]
        delta = layer.delta_weight(held).reshape(layer.crossbar.out_features, -1)
        cells = layer.crossbar.cells
        moved = layer.crossbar.cells_moved_by(delta).to(cells.cycles.device)
        write_j += int(moved.sum()) * pulses_per_cell * ledger.energy.rm_write_pulse_j
        saved_j += _read_j(ledger, delta.numel(), STORE_PRECISION) - _digital_read_j(layer, ledger, _after(layer, fold, merge=True), fused_after)
        wearing = moved & ~cells.stuck & ~cells.worn_out  # a worn or stuck cell wears no further
        # any one cell may take up to max_pulses (the average prices the energy, not the worst cell's wear)
        if wearing.any() and cells.cycles[wearing].max().item() + cells.config.max_pulses > wear_budget * cells.config.endurance_cycles:
            return False
    return write_j < horizon * saved_j


def fold_branches(model: nn.Module, names: list[str]) -> None:
    """Sum the ΔW of ``names`` into the full-rank ``store`` branch (created on first use) and delete them;
    ``store`` is active wherever it holds something.  Exact up to float rounding.  The layers' ledgers are
    charged the forming of each ΔW (digital MACs) and the rewrite of ``store`` (SRAM), both as writes.  Names
    are checked before any layer changes, and the fold is all or nothing: every layer's ``store`` takes its
    sum first (an interrupt there puts each ``store`` back as it was, the branches untouched), then the
    branches are deleted, which an interrupt does not stop half-way; a fold that stopped between layers
    would leave a branch both folded and live in some layers, counted twice."""
    live = set(hybrid.adapter_names(model))
    problems = [f"{name!r} twice" for name in sorted({n for n in names if names.count(n) > 1})]
    problems += [f"{name!r} is no live branch" for name in names if name not in live or name == STORE]
    if problems:
        raise ValueError(f"cannot fold {names}: {'; '.join(problems)}")
    folding = [(layer, [n for n in names if n in layer.adapters]) for _, layer in hybrid.hybrid_layers(model)]
    folding = [(layer, held) for layer, held in folding if held]
    saved = [(layer, layer.adapters[STORE].b.detach().clone() if STORE in layer.adapters else None, list(layer.active))
             for layer, _ in folding]
    try:
        for layer, held in folding:
            with torch.no_grad():
                delta = layer.delta_weight(held).reshape(layer.crossbar.out_features, -1).to(layer.crossbar.weight_max.device)
                if STORE not in layer.adapters:
                    layer.add_adapter(STORE, AdapterConfig(precision=STORE_PRECISION, full_rank=True))
                    layer.set_adapter([*layer.active, STORE])
                layer.adapters[STORE].b.add_(delta)
    except BaseException:
        for layer, store, active in saved:
            with torch.no_grad():
                if store is None and STORE in layer.adapters:
                    layer.delete_adapter(STORE)
                elif store is not None:
                    layer.adapters[STORE].b.copy_(store)
            layer.set_adapter(active)
        raise
    try:
        for layer, held in folding:
            if layer.ledger is not None:  # forming each ΔW is digital work, and rewriting ``store`` an SRAM write of all of it
                for name in held:
                    adapter = layer.adapters[name]
                    macs = adapter.delta_macs()
                    layer.ledger.post("write.digital_mac", macs * layer.ledger.energy.mac_j(adapter.precision), macs,
                                      note=f"fold {name} into store")
                layer.ledger.post_sram_write(layer.adapters[STORE].bits, note="fold into store")
    finally:  # the sums are in ``store``: every folded branch goes, whatever interrupts the charging
        for layer, held in folding:
            for name in held:
                if name in layer.adapters:
                    layer.delete_adapter(name)


def apply_plan(model: nn.Module, plan: Plan) -> dict[str, object]:
    """Carry out a plan: fold, merge, then fuse inference or read the branches one by one, as the plan
    says (a policy owns fusion: a hand-made ``fuse_adapters`` lasts until the next plan); returns what was
    done (folded names, cells pulsed by a merge)."""
    if plan.fold:
        fold_branches(model, plan.fold)
    merged = plan.merge and STORE in hybrid.adapter_names(model)
    pulses = sum(r.total_pulses for r in hybrid.merge_adapter(model, STORE)) if merged else 0
    for _, layer in hybrid.hybrid_layers(model):
        if layer.fused != plan.fuse:  # (re-)fusing drops the fused ΔW, whose rebuild is charged
            layer.fuse(plan.fuse)
    return {"folded": list(plan.fold), "merged": merged, "merge_pulses": pulses}
