"""The lifecycle every task shares: its stages in order, timed; the two baselines (full fine-tune +
reprogram, retrain from scratch); the energy ratios against the full baseline; the report on disk.

A task is a subclass of ``Task`` that names its stages and implements them, and the few hooks the
baselines need (``finetune_all``, ``retrain``, ``measure``).  Everything it has in common with the other
tasks lives here, so a new task is one small module in ``neuro_rm/tasks/`` and nothing else.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import math
import time
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from neuro_rm import fused, work
from neuro_rm import layers as hybrid
from neuro_rm.device import ProgramResult
from neuro_rm.energy import Ledger
from neuro_rm.energy_report import demo_energy
from neuro_rm.work import PassWork

BASELINE = "baseline"  # the runner's own stage: both baselines, after the task's LoRA step
# fields that change how a run is shown, not what it computes: left out of ``settings_digest`` wherever they are
DISPLAY_FIELDS = ("progress",)


def sources_digest(root: Path) -> str:
    """The first 16 hex digits of a SHA-256 over the Python sources under ``root``, path and bytes of each (files in
    hidden folders, such as notebook checkpoints, left out)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        name = path.relative_to(root)
        if not any(part.startswith(".") for part in name.parts):
            digest.update(name.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def code_digest() -> str:
    """``sources_digest`` of this package, read once per process (first when the runner is imported): which code
    made a report, whether or not it ran from a git checkout (reports of other code must not pool as seeds of
    one run).  Every ``.py`` file under the package counts, tracked by git or not."""
    return sources_digest(Path(__file__).resolve().parents[1])


code_digest()  # read with the modules that will run, not later (an edit during a long run would not be theirs)


# libraries whose version can move a figure: training (snntorch), the linear floor (scikit-learn), the intervals (scipy),
# reading and encoding the data (h5py, tonic, torchaudio)
VERSIONED = ("numpy", "scikit-learn", "scipy", "snntorch", "h5py", "tonic", "torchaudio")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def provenance() -> dict[str, str]:
    """What besides the settings decides a run's numbers: the code, the torch build and the other libraries'
    versions, and whether the compiled module draws the read noise (its counter-based stream) or ``torch.randn``
    does (no compiler, or ``NEURO_RM_FUSED=0``): the same seed and settings give other draws."""
    stream = "compiled counter-based stream" if fused.module() is not None else "torch.randn (no compiled module)"
    return {"code.digest": code_digest(), "code.torch": torch.__version__, "code.noise_stream": stream,
            **{f"code.{package}": _version(package) for package in VERSIONED}}


def settings_digest(config: object, per_run: tuple[str, ...] = ("seed",)) -> str:
    """The first 16 hex digits of a SHA-256 over every field of a dataclass configuration, nested ones too (numbers
    as floats: 5 and 5.0 are one setting), but ``per_run`` (dotted paths from the top: the fields each run
    replaces with its own seed) and ``DISPLAY_FIELDS``: two runs with the same digest were made with the same
    settings in every respect (batch sizes, learning rates, unlearning method, audit cohort ...), whatever their
    seeds."""
    def settings(value: object, path: str) -> object:
        if isinstance(value, dict):
            return {k: settings(v, f"{path}{k}.") for k, v in value.items() if k not in DISPLAY_FIELDS and f"{path}{k}" not in per_run}
        if isinstance(value, list | tuple):
            return [settings(v, path) for v in value]
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    text = json.dumps(settings(dataclasses.asdict(config), ""), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def n_params(params: list[nn.Parameter] | nn.Module) -> int:
    """Trainable size of a parameter list or of a whole module."""
    return sum(p.numel() for p in (params.parameters() if isinstance(params, nn.Module) else params))


class Task:
    """One run of a task's lifecycle: the runner calls the stages, the task fills ``report``.

    ``stages`` lists method names in order; a tuple of names is timed as one stage, named by its first.
    ``baseline`` is the runner's: it must come after the stage that sets ``lora_prefix``'s report keys
    (``trainable_params``, ``write_energy_j``, ``write_bits``).  By then the task has set ``digital``
    (the pretrained network before deployment), ``snapshot`` (the array as deployed) and ``ledger``.
    """

    stages: tuple[str | tuple[str, ...], ...] = ()
    timing: str | None = "flat"  # "flat": report keys seconds.<stage>; "nested": one seconds_per_stage dict; None
    title = "lifecycle"  # the progress bar's label
    lora_prefix = "revoke"  # report prefix of the LoRA step the baselines are compared with
    lora_stage = "revoke"  # its name in ``loops``
    loops: dict[str, str] = {}  # energy stage → description prefix of its optimisation loops

    def __init__(self) -> None:
        self.report: dict[str, object] = {}
        self.ledger: Ledger | None = None
        self.digital: nn.Module | None = None
        self.snapshot: nn.Module | None = None
        self.full_ledger: Ledger | None = None
        self.rewritten: nn.Module | None = None  # the full baseline: a copy of ``snapshot`` rewritten with it
        self.rewrites: list[ProgramResult] = []  # the full baseline's write results, per layer
        self.retrained: nn.Module | None = None  # the retrain baseline as judged (written into the array, or digital)

    # ---- hooks of the baselines
    def finetune_all(self, model: nn.Module, params: list[nn.Parameter]) -> int:
        """Train every weight of ``model`` (a copy of ``digital``) toward the LoRA step's goal; its steps."""
        raise NotImplementedError

    def retrain(self) -> nn.Module | None:
        """The network trained from scratch without what was forgotten (digital), or None: no such baseline."""
        return None

    def retrain_array(self) -> nn.Module | None:
        """An array to write the retrained weights into (a copy of it is written), or None: judge them digitally."""
        return None

    def measure(self, prefix: str, model: nn.Module) -> None:
        """Report the task's figures of ``model`` as ``<prefix>.<figure>``."""
        raise NotImplementedError

    def calibration_batch(self) -> torch.Tensor | None:
        """Training inputs that fix the ADC full scale of an array a baseline has rewritten (writing clears it,
        and an uncalibrated array would calibrate on whichever test batch ``measure`` sends first); None: the
        task calibrates in ``measure`` itself."""
        return None

    # ---- hooks of the energy figures
    def inference(self) -> tuple[nn.Module | None, torch.Tensor | None, nn.Module | None]:
        """(deployed model, inputs, digital model) of the inference pass the energy keys price; Nones: no pass."""
        return None, None, None

    def inference_work(self) -> PassWork | None:
        """An inference pass the task measures itself (a sampler's many passes per image); None: the
        runner measures one pass over ``inference()``'s inputs."""
        return None

    def energy_extras(self) -> dict[str, object]:
        """Task-specific energy keys, from this run's ledgers."""
        return {}

    def baseline(self) -> None:
        """The runner's stage: both baselines, each judged by ``measure``; a task may add to it (``super()``)."""
        full_finetune_baseline(self)
        retrain_baseline(self)


def deploy_figures(report: dict[str, object], ledger: Ledger, model: nn.Module) -> None:
    """What writing the network into the arrays once cost: pulses, joules, programming time, cells."""
    report |= {f"deploy.{key}": value for key, value in hybrid.deployment_cost(model, ledger).items()}


def commit_branch(task: Task, model: nn.Module, prefix: str, adapter: str, kind: str, trainable: int, steps: int,
                  rows: tuple[int, int] = (0, 0), row_note: str = "") -> None:
    """Write a trained branch to SRAM at its precision (and ``rows`` new digital rows of a width), report its
    bits and joules as ``<prefix>.write_bits`` / ``.write_energy_j``, and charge its training to the ledger.
    The write is priced by what it adds to ``task.ledger``, so the layers holding the branch must post there."""
    for name, layer in hybrid.hybrid_layers(model):
        if adapter in layer.adapters and layer.ledger is not task.ledger:
            raise ValueError(f"commit_branch: layer {name!r} holding {adapter!r} posts to another ledger than task.ledger "
                             "(a copied model?); call layers.set_ledger(model, task.ledger) first")
    before = task.ledger.joules("write")
    bits = hybrid.commit_adapter(model, adapter, kind)
    if rows[0]:
        bits += task.ledger.post_row_write(*rows, note=row_note)
    task.report[f"{prefix}.write_bits"] = bits
    task.report[f"{prefix}.write_energy_j"] = task.ledger.joules("write") - before
    task.ledger.post_training(trainable, steps, note=prefix)


def _calibrate(task: Task, rewritten: nn.Module) -> None:
    """The ADCs of a rewritten array, calibrated on the task's training inputs as deployment calibrated them."""
    batch = task.calibration_batch()
    if batch is not None:
        hybrid.calibrate_cleared(rewritten, batch)


def full_finetune_baseline(task: Task) -> None:
    """Fine-tune every weight of a copy of the digital network, then rewrite a copy of the deployed array with
    it (``task.rewritten``; ``task.snapshot`` stays the array as deployed)."""
    full = copy.deepcopy(task.digital)
    params = list(full.parameters())
    steps = task.finetune_all(full, params)
    task.full_ledger = Ledger(task.ledger.energy)
    task.rewritten = copy.deepcopy(task.snapshot)
    task.rewrites = hybrid.reprogram_from(task.rewritten, full, task.full_ledger)
    _calibrate(task, task.rewritten)
    task.full_ledger.post_training(n_params(params), steps, note="baseline full fine-tune")
    task.measure("baseline_full", task.rewritten)
    task.report["baseline_full.write_pulses"] = task.full_ledger.count("write.rm_pulse")
    task.report["baseline_full.write_energy_j"] = task.full_ledger.joules("write")
    task.report["baseline_full.trainable_params"] = n_params(params)


def retrain_baseline(task: Task) -> None:
    """The gold standard of forgetting: a network trained without the forgotten data, written into a copy of
    ``retrain_array()`` when the task gives one (its write cost reported), judged digitally otherwise."""
    retrained = task.retrain()
    if retrained is None:
        return
    array = task.retrain_array()
    if array is not None:
        ledger = Ledger(task.ledger.energy)
        task.retrained = copy.deepcopy(array)
        hybrid.reprogram_from(task.retrained, retrained, ledger)
        _calibrate(task, task.retrained)
        task.measure("baseline_retrain", task.retrained)
        task.report["baseline_retrain.write_pulses"] = ledger.count("write.rm_pulse")
        task.report["baseline_retrain.write_energy_j"] = ledger.joules("write")
    else:
        task.retrained = retrained
        task.measure("baseline_retrain", retrained)


def energy_ratios(task: Task) -> None:
    """The paper's measures, LoRA step against full fine-tune + reprogram, and every energy key of the run.
    ``energy.write_energy_ratio`` is ``demo_energy``'s (default node, SRAM sized to what is stored);
    ``energy.write_energy_ratio_ledger`` is the ratio of this report's two ``write_energy_j`` keys (8 KB SRAM)."""
    report, lora = task.report, task.lora_prefix
    report["energy.training_cost_ratio"] = report["baseline_full.trainable_params"] / report[f"{lora}.trainable_params"]
    report["energy.write_energy_ratio_ledger"] = report["baseline_full.write_energy_j"] / report[f"{lora}.write_energy_j"]
    model, x, gpu_model = task.inference()
    report |= demo_energy(task.loops, model, x, report[f"{lora}.write_bits"], task.full_ledger, task.lora_stage,
                          "baseline_full", gpu_model=gpu_model, inference=task.inference_work())
    report |= task.energy_extras()


class _Clock:
    """Wall time and a progress bar per stage."""

    def __init__(self, task: Task, progress: bool) -> None:
        self.task, self.seconds = task, {}
        self.bar = tqdm(total=len(task.stages), desc=task.title, disable=not progress)

    def lap(self, name: str, start: float) -> None:
        self.seconds[name] = time.perf_counter() - start
        if self.task.timing == "flat":
            self.task.report[f"seconds.{name}"] = self.seconds[name]
        self.bar.set_postfix_str(f"{name} done")
        self.bar.update()

    def close(self) -> None:
        if self.task.timing == "nested":
            self.task.report["seconds_per_stage"] = self.seconds
        self.bar.close()


def _check_stages(task: Task) -> None:
    """Every stage is a method of the task, and ``baseline`` is listed exactly once."""
    names = [name for group in task.stages for name in ((group,) if isinstance(group, str) else group)]
    missing = [name for name in names if not callable(getattr(task, name, None))]
    if missing:
        raise ValueError(f"run_lifecycle: {type(task).__name__} has no stage method {missing}")
    if names.count(BASELINE) != 1:
        raise ValueError(f"run_lifecycle: {type(task).__name__}.stages lists {BASELINE!r} {names.count(BASELINE)} times; "
                         "it must run exactly once, after the LoRA step")


def _check_baseline_ready(task: Task) -> None:
    """The baselines need the LoRA step's report keys and the networks and ledger the earlier stages set."""
    lora = [f"{task.lora_prefix}.{key}" for key in ("trainable_params", "write_energy_j", "write_bits")]
    unset = [name for name in ("digital", "snapshot", "ledger") if getattr(task, name) is None]
    unset += [key for key in lora if key not in task.report]
    if unset:
        raise ValueError(f"run_lifecycle: stage {BASELINE!r} must come after the deployment and the LoRA step; "
                         f"not set yet: {', '.join(unset)}")


@work.metered
def run_lifecycle(task: Task, progress: bool = True) -> dict[str, object]:
    """Run ``task``'s stages in order (the baselines among them), then its energy figures; its report."""
    _check_stages(task)
    task.report.update(provenance())
    clock = _Clock(task, progress)
    for group in task.stages:
        names = (group,) if isinstance(group, str) else group
        start = time.perf_counter()
        for name in names:
            if name == BASELINE:
                _check_baseline_ready(task)
            getattr(task, name)()
        clock.lap(names[0], start)
    clock.close()
    energy_ratios(task)
    return task.report


def jsonable(value: object) -> object:
    """``value`` as strict JSON holds it: NaN (a figure not measured) becomes null, an infinity its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def write_report(report: dict[str, object], path: Path) -> Path:
    """The report as sorted, indented, strict JSON (NaN as null; other values JSON cannot hold as text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(report), indent=2, sort_keys=True, default=str, allow_nan=False))
    return path
