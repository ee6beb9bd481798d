"""Face recognition on the hybrid core: learn persons, forget one, add one — with energy and baselines.

The same lifecycle functions as the speaker task (``fit_classifier``, ``analogize``, ``unlearn``,
``learn_new_classes``, ``commit_adapter``, ``reprogram``) run a CNN or an MLP-Mixer on Olivetti faces,
through the shared runner (``tasks.runner``).  The splits (per source photo, before augmentation) are
``data.faces``'; the reference's leaky protocol is run too, only to show how much it flattered.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from scipy import stats
from torch import nn
from tqdm.auto import tqdm

from neuro_rm import layers as hybrid
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.data.faces import (
    OLIVETTI_PERSONS,
    AugmentConfig,
    Faces,
    FaceSplitConfig,
    FaceSplits,
    clean_split,
    leaky_split,
    load_faces,
)
from neuro_rm.device import DeviceConfig, preset_name
from neuro_rm.energy import Ledger
from neuro_rm.learning.continual import enroll_class
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.erase import ERASE_IMPOSTOR_SD
from neuro_rm.learning.loop import TrainConfig
from neuro_rm.learning.metrics import backward_transfer, per_class_accuracy, predict_logits
from neuro_rm.learning.report import accuracy_on, membership_auc
from neuro_rm.learning.train import fit_classifier
from neuro_rm.learning.unlearn import METHODS, UnlearnConfig, unlearn
from neuro_rm.lora import AdapterConfig
from neuro_rm.models.cnn import FaceCNN, FaceCNNConfig
from neuro_rm.models.mixer import FaceMixer, MixerConfig
from neuro_rm.readout import (
    DRIFT_TIMES_S,
    ArrayClock,
    Schedule,
    drift_sweep,
    readout_settings,
    stage_readouts,
)
from neuro_rm.tasks import runner
from neuro_rm.tasks.runner import BASELINE, Task, commit_branch, deploy_figures, n_params, write_report

MODELS = ("cnn", "mixer")
PAPER = {"paper.write_energy_ratio": 92.91, "paper.inference_energy_ratio": 25.43}


# ====================================================================== configuration
@dataclass(frozen=True)
class FaceDemoConfig:
    model: str = "cnn"
    persons: tuple[int, ...] = (0, 1, 2, 3, 4)  # learnt first
    forget: int = 1  # one of ``persons``, forgotten after deployment
    new_person: int = 5  # added after deployment
    split: FaceSplitConfig = FaceSplitConfig()
    augment: AugmentConfig = AugmentConfig()
    pretrain: TrainConfig = TrainConfig(epochs=30, lr=3e-3, batch_size=32)
    unlearn_methods: tuple[str, ...] = ("ascent", "relabel", "uniform")  # all tried; ties go to the reference's ascent
    unlearn: UnlearnConfig = UnlearnConfig(train=TrainConfig(epochs=10, lr=3e-3, batch_size=32))  # method set per candidate
    enroll: TrainConfig = TrainConfig(epochs=40, lr=3e-3, batch_size=32)
    adapter: AdapterConfig = AdapterConfig(rank=4, alpha=8.0, precision="int8")  # int8: as accurate on validation, cheaper
    replay_per_person: int = 22
    device: DeviceConfig = field(default_factory=DeviceConfig)
    crossbar: CrossbarConfig = CrossbarConfig()  # the periphery: realistic by default, CrossbarConfig.ideal() for none
    schedule: Schedule = Schedule()  # the array's age at each step (the face lifecycle has no restore step)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {MODELS}")
        if len(self.persons) < 3:
            raise ValueError(f"learn at least 3 persons (2 to keep, 1 to forget), got {self.persons}")
        if self.forget not in self.persons:
            raise ValueError(f"the person to forget ({self.forget}) must be one of the persons learnt first {self.persons}")
        if self.new_person in self.persons:
            raise ValueError(f"the new person ({self.new_person}) must not be one of those learnt first {self.persons}")
        bad = [m for m in self.unlearn_methods if m not in METHODS]
        if bad or not self.unlearn_methods:
            raise ValueError(f"unlearn_methods must be a non-empty subset of {METHODS}, got {self.unlearn_methods}")


PRESETS = {
    "cnn": FaceDemoConfig(model="cnn"),
    "mixer": FaceDemoConfig(
        model="mixer",
        augment=AugmentConfig(copies=20),
        pretrain=TrainConfig(epochs=40, lr=3e-3, batch_size=32),
    ),
}


def fast_config(config: FaceDemoConfig) -> FaceDemoConfig:
    """One fold, a few epochs and few copies: for smoke tests, not for results."""
    short = lambda c: replace(c, epochs=min(c.epochs, 3))  # noqa: E731
    few = replace(config.augment, copies=min(config.augment.copies, 2), val_copies=min(config.augment.val_copies, 2))
    return replace(config, split=replace(config.split, folds=1), augment=few, pretrain=short(config.pretrain),
                   enroll=short(config.enroll), unlearn=replace(config.unlearn, train=short(config.unlearn.train)))


def build_model(name: str, n_classes: int) -> nn.Module:
    if name == "cnn":
        return FaceCNN(FaceCNNConfig(n_classes=n_classes))
    if name == "mixer":
        return FaceMixer(MixerConfig(n_classes=n_classes))
    raise ValueError(f"unknown model {name!r}; choose one of {MODELS}")


# ====================================================================== the lifecycle
def _revoke(model: nn.Module, forget: int, keep: list[int], data: FaceSplits, config: FaceDemoConfig,
            method: str) -> tuple[nn.Module, float, int, int]:
    """Forget class ``forget`` in a copy of ``model`` with a LoRA branch; returns the copy, the
    validation score that selects the method, the branch's parameter count and steps taken."""
    revoked = copy.deepcopy(model)
    params = hybrid.add_adapter(revoked, f"revoke_{forget}", config.adapter)
    hybrid.activate_adapter(revoked, f"revoke_{forget}")
    old = [*keep, forget]
    fit = unlearn(revoked, params, [forget], data.train.of_classes(old), data.val.of_classes(old), keep,
                  replace(config.unlearn, method=method).at_depth(ERASE_IMPOSTOR_SD), f"revoke ({method})")
    return revoked, fit.best_score, sum(p.numel() for p in params), fit.steps


class FaceTask(Task):
    """Pretrain → deploy → forget → add on ready-made splits of one fold.

    Classes: 0..k-1 are the persons learnt first (in ``config.persons`` order), k is the new person.
    """

    stages = ("pretrain", "deploy", "revoke", BASELINE, "enroll")
    timing = None  # one run per fold: the face report times the whole demo only

    def __init__(self, data: FaceSplits, config: FaceDemoConfig) -> None:
        super().__init__()
        self.data, self.config = data, config
        k = len(config.persons)
        self.old, self.new = list(range(k)), k
        self.gone = config.persons.index(config.forget)
        self.keep = [c for c in self.old if c != self.gone]
        self.report.update({"model": config.model, "persons": list(config.persons),
                            "forgotten_person": config.forget, "new_person": config.new_person})
        self.test_old, self.test_keep = data.test.of_classes(self.old), data.test.of_classes(self.keep)
        self.test_gone = data.test.of_classes([self.gone])
        for name, photos in (("old", self.test_old), ("keep", self.test_keep), ("gone", self.test_gone),
                             ("new", data.test.of_classes([self.new]))):
            self.report[f"test_photos.{name}"] = len(photos.y)  # per fold: what one photo is worth
        self.members_gone = data.photos["train"].of_classes([self.gone])
        self.heldout_gone = LabelledSet.concat(data.photos["val"].of_classes([self.gone]), self.test_gone)

    def _mia(self, model: nn.Module) -> float:
        return membership_auc(model, self.members_gone, self.heldout_gone)

    def pretrain(self) -> None:
        """Digital pretraining on the first k persons; validation picks the epoch."""
        data, report = self.data, self.report
        torch.manual_seed(self.config.seed)
        self.model = model = build_model(self.config.model, len(self.old))
        self.fit = fit_classifier(model, data.train.of_classes(self.old), data.val.of_classes(self.old), self.config.pretrain)
        report["pretrain.accuracy"] = accuracy_on(model, self.test_old)
        report["pretrain.retain_accuracy"] = accuracy_on(model, self.test_keep)
        report["pretrain.forget_accuracy"] = accuracy_on(model, self.test_gone)
        report["pretrain.val_accuracy"] = self.fit.best_score
        report["pretrain.mia_auc"] = self._mia(model)
        report["params.total"] = n_params(model)
        self.digital = copy.deepcopy(model)

    def deploy(self) -> None:
        """Every conv/linear layer is written into crossbars once; accuracy after drift without and with
        each drift compensation."""
        config, report, model = self.config, self.report, self.model
        self.ledger = ledger = Ledger()
        ledger.post_training(self.fit.trainable_params, self.fit.steps, note="pretrain")
        hybrid.analogize(model, config.device, crossbar=config.crossbar, ledger=ledger, seed=config.seed)
        model.eval()
        self.calibration = self.data.train.of_classes(self.old).x
        hybrid.calibrate(model, self.calibration)  # the ADC full scale from training images, not from the first test batch
        report["deploy.accuracy"] = accuracy_on(model, self.test_old)
        report["device_preset"], report["readout"] = preset_name(config.device), readout_settings(model)
        report["schedule"] = {k: v for k, v in config.schedule.as_dict().items() if k != "restore_s"}  # no restore step here
        self.clock = ArrayClock(config.schedule)
        stage_readouts(report, "deploy", model, self.test_old, self.calibration)
        for key, value in drift_sweep(model, self.test_old, self.calibration, DRIFT_TIMES_S).items():
            report[f"deploy.drift_accuracy.{key}"] = value  # at 0 s the readouts above measure no drift
        deploy_figures(report, ledger, model)
        self.snapshot = copy.deepcopy(model)  # the array as deployed, for the reprogramming baseline

    def revoke(self) -> None:
        """Forget person ``gone`` with a LoRA branch; every candidate method, chosen on validation."""
        config, report, ledger, gone = self.config, self.report, self.ledger, self.gone
        self.clock.advance(self.model, "revoke")
        candidates = {m: _revoke(self.model, gone, self.keep, self.data, config, m) for m in config.unlearn_methods}
        for m, (candidate, score, _, _) in candidates.items():
            report[f"revoke.{m}.val_score"] = score
            report[f"revoke.{m}.forget_accuracy"] = accuracy_on(candidate, self.test_gone)
            report[f"revoke.{m}.retain_accuracy"] = accuracy_on(candidate, self.test_keep)
            report[f"revoke.{m}.mia_auc"] = self._mia(candidate)
        self.method = method = max(candidates, key=lambda m: candidates[m][1])  # first listed wins ties
        self.model, _, lora_params, steps = candidates[method]
        hybrid.set_ledger(self.model, ledger)
        commit_branch(self, self.model, "revoke", f"revoke_{gone}", "depress", lora_params, steps)
        report["revoke.method"] = method
        report["revoke.chance_accuracy"] = 1 / len(self.old)
        for key in ("forget_accuracy", "retain_accuracy", "mia_auc"):
            report[f"revoke.{key}"] = report[f"revoke.{method}.{key}"]
        report["revoke.trainable_params"] = lora_params
        stage_readouts(report, "revoke", self.model, self.test_keep, self.calibration, self.test_keep)
        self.loops = {"pretrain": "pretrain", "revoke": "revoke (", "baseline_full": "baseline: full",
                      "baseline_retrain": "baseline: retrain", "enroll": "enroll"}

    def finetune_all(self, model: nn.Module, params: list[nn.Parameter]) -> int:
        """The same unlearning method on every weight, digitally."""
        data, old = self.data, self.old
        fit = unlearn(model, params, [self.gone], data.train.of_classes(old), data.val.of_classes(old), self.keep,
                      replace(self.config.unlearn, method=self.method).at_depth(ERASE_IMPOSTOR_SD), "baseline: full fine-tune")
        return fit.steps

    def retrain(self) -> nn.Module:
        """Retrain from scratch without the forgotten person (the gold standard of forgetting), digitally."""
        torch.manual_seed(self.config.seed + 1)
        retrained = build_model(self.config.model, len(self.old))
        fit_classifier(retrained, self.data.train.of_classes(self.keep), self.data.val.of_classes(self.keep),
                       self.config.pretrain, description="baseline: retrain")
        return retrained

    def measure(self, prefix: str, model: nn.Module) -> None:
        self.report[f"{prefix}.forget_accuracy"] = accuracy_on(model, self.test_gone)
        self.report[f"{prefix}.retain_accuracy"] = accuracy_on(model, self.test_keep)
        # the retrained model's membership AUC sits with the revocation's figures (its key since the first report)
        self.report["baseline_full.mia_auc" if prefix == "baseline_full" else "revoke.retrain_mia_auc"] = self._mia(model)

    def calibration_batch(self) -> torch.Tensor:
        return self.calibration

    def enroll(self) -> None:
        """Add the new person: a new LoRA branch and a new, trained readout row, with replay."""
        config, report, model, new, keep = self.config, self.report, self.model, self.new, self.keep
        data, test_keep = self.data, self.test_keep
        self.clock.advance(model, "enroll")
        before_acc = per_class_accuracy(predict_logits(model, test_keep.x), test_keep.y)
        replay = data.train.of_classes(keep).subsample(config.replay_per_person, config.seed)
        done = enroll_class(model, f"enroll_{new}", config.adapter, data.train.of_classes([new]), replay,
                            data.val.of_classes([*keep, new]), config.enroll, row_seed=config.seed + new)
        enroll_params = done.trainable
        commit_branch(self, model, "enroll", f"enroll_{new}", "potentiate", enroll_params, done.fit.steps,
                      (1, done.row_width), "readout row")
        after_logits = predict_logits(model, test_keep.x)
        report["enroll.new_accuracy"] = accuracy_on(model, data.test.of_classes([new]))
        report["enroll.old_accuracy"] = accuracy_on(model, test_keep)
        report["enroll.backward_transfer"] = backward_transfer(before_acc, per_class_accuracy(after_logits, test_keep.y))
        report["enroll.revoked_accuracy"] = accuracy_on(model, self.test_gone)
        report["enroll.trainable_params"] = enroll_params
        stage_readouts(report, "enroll", model, data.test.of_classes([*keep, new]), self.calibration,
                       test_keep)

    def inference(self) -> tuple[nn.Module, torch.Tensor, nn.Module]:
        return self.model, self.data.test.of_classes([*self.keep, self.new]).x, self.digital

    def energy_extras(self) -> dict[str, object]:
        return {"energy.inference_energy_ratio": self.report["energy.inference_energy_ratio_vs_gpu"],
                "energy.rm_write_cycles_lora": 0}


def run_lifecycle(data: FaceSplits, config: FaceDemoConfig) -> dict[str, object]:
    """Pretrain → deploy → forget → add, with both baselines, on ready-made splits; a flat report."""
    return runner.run_lifecycle(FaceTask(data, config), progress=False)


def leaky_protocol(images: torch.Tensor, labels: torch.Tensor, config: FaceDemoConfig) -> dict[str, float]:
    """The same pretraining under the reference's augment-then-split protocol: its test accuracy, and
    the share of its test images that are copies of a photo with a copy in the training set."""
    data = leaky_split(images, labels, list(config.persons), config.split, config.augment, config.seed)
    torch.manual_seed(config.seed)
    model = build_model(config.model, len(config.persons))
    fit_classifier(model, data.train, data.val, config.pretrain, description="leaky split")
    seen = torch.isin(data.origin["test"], data.origin["train"])
    return {"split.leaky_test_accuracy": accuracy_on(model, data.test), "split.leaky_test_seen_fraction": float(seen.float().mean())}


def average_reports(reports: list[dict[str, object]]) -> dict[str, object]:
    """One report for all folds: numbers averaged (dicts of numbers per entry), other values kept when
    the folds agree and counted when they differ (e.g. which unlearning method validation chose)."""
    out: dict[str, object] = {}
    for key, first in reports[0].items():
        values = [r[key] for r in reports]
        if all(v == first for v in values):
            out[key] = first
        elif isinstance(first, dict):
            out[key] = {k: sum(v[k] for v in values) / len(values) for k in first}
        elif isinstance(first, (int, float)) and not isinstance(first, bool):
            out[key] = sum(values) / len(values)
        else:
            out[key] = {str(v): values.count(v) for v in dict.fromkeys(map(str, values))}
    return out


HEADLINE = ("pretrain.accuracy", "deploy.accuracy", "revoke.forget_accuracy", "revoke.retain_accuracy",
            "enroll.new_accuracy", "enroll.old_accuracy")
# the test photos behind each headline figure (``test_photos.<set>`` of a fold)
HEADLINE_PHOTOS = {"pretrain.accuracy": "old", "deploy.accuracy": "old", "revoke.forget_accuracy": "gone",
                   "revoke.retain_accuracy": "keep", "enroll.new_accuracy": "new", "enroll.old_accuracy": "keep"}


def learning_first(config: FaceDemoConfig, persons: int) -> FaceDemoConfig:
    """The lifecycle on Olivetti persons 0 … persons−1 learnt first (person 1 forgotten) and person ``persons``
    added: the paper's setting is 5; more persons give the retained figures a finer resolution."""
    if not 3 <= persons <= OLIVETTI_PERSONS - 1:
        raise ValueError(f"persons must be between 3 and {OLIVETTI_PERSONS - 1} (one Olivetti person is kept back to add), "
                         f"got {persons}")
    return replace(config, persons=tuple(range(persons)), forget=1, new_person=persons)


def pooled_intervals(folds: list[dict[str, object]], level: float = 0.95) -> dict[str, object]:
    """Each headline accuracy over every fold's test photos together (each photo is a test photo once), with
    its Wilson interval: ``photos.<key>`` and ``interval.<key>``."""
    out: dict[str, object] = {}
    for key, photos in HEADLINE_PHOTOS.items():
        n = [int(r[f"test_photos.{photos}"]) for r in folds]
        correct = sum(round(float(r[key]) * k) for r, k in zip(folds, n, strict=True))
        interval = stats.binomtest(correct, sum(n)).proportion_ci(confidence_level=level, method="wilson")
        out[f"photos.{key}"], out[f"interval.{key}"] = sum(n), [interval.low, interval.high]
    return out


def run_face_demo(
    model_name: str = "cnn",
    out_dir: Path | str | None = None,
    fast: bool = False,
    seed: int = 0,
    progress: bool = True,
    config: FaceDemoConfig | None = None,
    faces: Faces | None = None,
    ideal: bool = False,
    device: DeviceConfig | None = None,
    persons: int | None = None,
) -> dict[str, object]:
    """Run the face lifecycle for one model on every fold and return a flat, JSON-ready report.

    Figures are means over the folds (``per_fold.*`` lists the headline ones, ``interval.*`` their pooled
    Wilson intervals), so every photo of the persons used is a test photo once.  ``config`` replaces the model's preset (``seed`` still
    applies); ``faces`` replaces the bundled Olivetti set; ``ideal`` reads the crossbars through the ideal
    periphery and ``device`` replaces the cell preset; ``persons`` learns that many first (``learning_first``).
    With ``out_dir`` the report is also written there as ``face_demo_<model>.json``.
    """
    start = time.perf_counter()
    if model_name not in PRESETS:
        raise ValueError(f"unknown model {model_name!r}; choose one of {MODELS}")
    config = replace(config or PRESETS[model_name], model=model_name, seed=seed)
    if ideal:
        config = replace(config, crossbar=CrossbarConfig.ideal())
    if device is not None:
        config = replace(config, device=device)
    if persons is not None:
        config = learning_first(config, persons)
    if fast:
        config = fast_config(config)
    faces = faces if faces is not None else load_faces()
    images, labels = faces.images, faces.labels
    if images.dim() != 3 or images.shape[1:] != (64, 64):
        raise ValueError(f"face images must have shape (n, 64, 64), got {tuple(images.shape)}")
    persons = [*config.persons, config.new_person]
    folds = []
    for fold in tqdm(range(config.split.folds), desc=f"faces ({model_name})", disable=not progress):
        data = clean_split(images, labels, persons, config.split, config.augment, config.seed, fold)
        folds.append(run_lifecycle(data, config))
    report = average_reports(folds)
    report["revoke.method"] = {m: sum(r["revoke.method"] == m for r in folds) for m in config.unlearn_methods}
    report.update({f"per_fold.{key}": [r[key] for r in folds] for key in HEADLINE})
    report.update(pooled_intervals(folds))
    report["folds"] = config.split.folds
    report["split.clean_test_accuracy"] = report["pretrain.accuracy"]
    report.update(leaky_protocol(images, labels, config))
    report["split.train_images_per_person"] = config.split.train * (1 + config.augment.copies)
    report.update(PAPER)
    report["seconds"] = time.perf_counter() - start
    if out_dir is not None:
        write_report(report, Path(out_dir) / f"face_demo_{model_name}.json")
    return report


def run_face_demos(model: str = "cnn", out_dir: Path | str | None = None, fast: bool = False, seed: int = 0,
                   progress: bool = True, ideal: bool = False, device: DeviceConfig | None = None,
                   persons: int | None = None) -> dict[str, object]:
    """``model`` is one of ``MODELS`` (its flat report) or ``both`` (reports keyed by model name)."""
    def run(name: str) -> dict[str, object]:
        return run_face_demo(name, out_dir, fast, seed, progress, ideal=ideal, device=device, persons=persons)

    return run(model) if model != "both" else {name: run(name) for name in MODELS}


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ",".join(f"{k}={_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(map(_cell, value))
    return str(value)


def format_result(result: dict[str, object]) -> str:
    """A text table of the figures, one column per model."""
    reports = {result["model"]: result} if "model" in result else result
    keys = list(next(iter(reports.values())))
    width = max(map(len, keys))
    lines = [f"{'':<{width}}  " + "  ".join(f"{name:>12}" for name in reports)]
    lines += [f"{k:<{width}}  " + "  ".join(f"{_cell(r[k]):>12}" for r in reports.values()) for k in keys]
    return "\n".join(lines)
