"""Face recognition on the hybrid core: learn persons, forget one, add one — with energy and baselines.

The same lifecycle functions as the speaker task (``fit_classifier``, ``analogize``, ``unlearn``,
``learn_new_classes``, ``commit_adapter``, ``reprogram``) run a CNN or an MLP-Mixer on Olivetti faces.

Splitting is done per source image before any augmentation, so augmented copies of one photograph
never sit on both sides of a split.  The reference augments first and splits afterwards; that
protocol is run too, only to show how much it flatters the test accuracy.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from neuro_rm import layers as hybrid
from neuro_rm import work
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.data.faces import Faces, load_faces
from neuro_rm.device import DeviceConfig, preset_name
from neuro_rm.energy import Ledger
from neuro_rm.energy_report import demo_energy
from neuro_rm.learning.continual import learn_new_classes
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.loop import TrainConfig
from neuro_rm.learning.metrics import backward_transfer, per_class_accuracy, predict_logits
from neuro_rm.learning.report import accuracy_on, membership_auc
from neuro_rm.learning.train import fit_classifier
from neuro_rm.learning.unlearn import METHODS, UnlearnConfig, unlearn
from neuro_rm.lora import AdapterConfig
from neuro_rm.models.cnn import FaceCNN, FaceCNNConfig
from neuro_rm.models.mixer import FaceMixer, MixerConfig
from neuro_rm.readout import ArrayClock, Schedule, readout_settings, stage_readouts

MODELS = ("cnn", "mixer")
PAPER = {"paper.write_energy_ratio": 92.91, "paper.inference_energy_ratio": 25.43}


# ====================================================================== splits and augmentation
@dataclass(frozen=True)
class AugmentConfig:
    """Label-preserving changes a face photo can plausibly undergo."""

    copies: int = 10  # augmented copies per training photo, besides the photo itself
    val_copies: int = 10  # likewise per validation photo: a smoother signal for choosing epochs
    max_shift: float = 3.0  # pixels
    max_rotation_deg: float = 10.0
    brightness: float = 0.2  # gain drawn from 1 ± brightness
    flip: bool = True

    def __post_init__(self) -> None:
        if min(self.copies, self.val_copies) < 0 or self.max_shift < 0 or self.max_rotation_deg < 0 or not 0 <= self.brightness < 1:
            raise ValueError(f"AugmentConfig needs copies, shift, rotation >= 0 and brightness in [0, 1), got {self}")


@dataclass(frozen=True)
class FaceSplitConfig:
    """How each person's source images are shared out; the rest of them are the test images."""

    train: int = 6
    val: int = 2
    folds: int = 5  # the split is rotated so that each photo is a test photo in one fold

    def __post_init__(self) -> None:
        if self.train < 1 or self.val < 1 or self.folds < 1:
            raise ValueError(f"FaceSplitConfig needs at least one training and one validation image and fold, got {self}")


@dataclass
class FaceSplits:
    """Labelled splits; ``origin[name][i]`` is the index in the face set of the photo sample i came from.

    ``train`` and ``val`` hold their photos followed by augmented copies; ``photos`` holds each split's
    photos alone (membership inference compares real photos only).
    """

    train: LabelledSet
    val: LabelledSet
    test: LabelledSet
    origin: dict[str, torch.Tensor]
    photos: dict[str, LabelledSet]


def class_labels(labels: torch.Tensor, persons: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices of the persons' photos, their class: position of the person in ``persons``)."""
    known = sorted(int(p) for p in torch.unique(labels))
    unknown = [p for p in persons if p not in known]
    if unknown:
        raise ValueError(f"unknown person id(s) {unknown}; the face set has persons {known[0]}..{known[-1]}")
    if len(set(persons)) != len(persons):
        raise ValueError(f"person ids must be distinct, got {persons}")
    index = torch.cat([torch.nonzero(labels == p).flatten() for p in persons])
    classes = torch.cat([torch.full(((labels == p).sum(),), c) for c, p in enumerate(persons)])
    return index, classes


def augment(images: torch.Tensor, copies: int, config: AugmentConfig, seed: int) -> torch.Tensor:
    """``copies`` random variants of every image (N, 1, H, W), grouped by source image."""
    x = images.repeat_interleave(copies, dim=0)
    if len(x) == 0:
        return x
    g = torch.Generator().manual_seed(seed)
    uniform = lambda *shape: torch.rand(*shape, generator=g) * 2 - 1  # noqa: E731
    angle = uniform(len(x)) * math.radians(config.max_rotation_deg)
    shift = uniform(len(x), 2) * config.max_shift * 2 / images.shape[-1]  # grid units span 2 per image
    mirror = torch.where(torch.rand(len(x), generator=g) < 0.5, -1.0, 1.0) if config.flip else torch.ones(len(x))
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * mirror, -sin, shift[:, 0]], 1), torch.stack([sin * mirror, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    moved = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    gain = 1 + uniform(len(x)) * config.brightness
    return (moved * gain.view(-1, 1, 1, 1)).clamp(0, 1)


def _with_copies(photos: LabelledSet, origin: torch.Tensor, copies: int, config: AugmentConfig,
                 seed: int) -> tuple[LabelledSet, torch.Tensor]:
    """Photos followed by their augmented copies, with labels and origins carried along."""
    extra = LabelledSet(augment(photos.x, copies, config, seed), photos.y.repeat_interleave(copies))
    return LabelledSet.concat(photos, extra), torch.cat([origin, origin.repeat_interleave(copies)])


def clean_split(images: torch.Tensor, labels: torch.Tensor, persons: list[int], split: FaceSplitConfig,
                aug: AugmentConfig, seed: int = 0, fold: int = 0) -> FaceSplits:
    """Split every person's photos into train / val / test first, then augment the training photos only.

    Each person's photos are shuffled once (by ``seed``); fold f rotates them by f test-sets' worth,
    so over ``split.folds`` folds every photo is tested once (when the folds fit).
    """
    if not 0 <= fold < split.folds:
        raise ValueError(f"fold must be in 0..{split.folds - 1}, got {fold}")
    index, classes = class_labels(labels, persons)
    g = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
    tags: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
    ends = (split.train, split.train + split.val)
    for c in range(len(persons)):
        own = index[classes == c]
        n_test = len(own) - ends[1]
        if n_test < 1 or n_test * split.folds > len(own):
            raise ValueError(f"person {persons[c]} has {len(own)} photos: too few for {split.train} train + "
                             f"{split.val} val + test photos in {split.folds} disjoint folds")
        own = own[torch.randperm(len(own), generator=g)].roll(fold * n_test)
        for name, chosen in zip(parts, (own[: ends[0]], own[ends[0] : ends[1]], own[ends[1] :]), strict=True):
            parts[name].append(chosen)
            tags[name].append(torch.full((len(chosen),), c))
    origin = {name: torch.cat(chunks) for name, chunks in parts.items()}
    sets = {name: LabelledSet(images[idx].unsqueeze(1), torch.cat(tags[name])) for name, idx in origin.items()}
    photos = dict(sets)
    sets["train"], origin["train"] = _with_copies(photos["train"], origin["train"], aug.copies, aug, seed)
    sets["val"], origin["val"] = _with_copies(photos["val"], origin["val"], aug.val_copies, aug, seed + 1)
    return FaceSplits(sets["train"], sets["val"], sets["test"], origin, photos)


def leaky_split(images: torch.Tensor, labels: torch.Tensor, persons: list[int], split: FaceSplitConfig,
                aug: AugmentConfig, seed: int = 0) -> FaceSplits:
    """The reference's protocol, kept only to measure it: augment every photo, then split at random.

    Copies of one photo land in train and test alike, so the test set shows the network faces it has
    nearly seen.
    """
    index, classes = class_labels(labels, persons)
    data, origin = _with_copies(LabelledSet(images[index].unsqueeze(1), classes), index, aug.copies, aug, seed)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    per_person = len(index) // len(persons)
    n_train = len(order) * split.train // per_person
    n_val = len(order) * split.val // per_person
    picks = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    sets = {name: data.where(idx) for name, idx in picks.items()}
    return FaceSplits(sets["train"], sets["val"], sets["test"], {k: origin[v] for k, v in picks.items()}, sets)


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
                  replace(config.unlearn, method=method), f"revoke ({method})")
    return revoked, fit.best_score, sum(p.numel() for p in params), fit.steps


@work.metered
def run_lifecycle(data: FaceSplits, config: FaceDemoConfig) -> dict[str, object]:
    """Pretrain → deploy → forget → add, with both baselines, on ready-made splits; a flat report.

    Classes: 0..k-1 are the persons learnt first (in ``config.persons`` order), k is the new person.
    """
    torch.manual_seed(config.seed)
    k = len(config.persons)
    old, new = list(range(k)), k
    gone = config.persons.index(config.forget)
    keep = [c for c in old if c != gone]
    report: dict[str, object] = {"model": config.model, "persons": list(config.persons),
                                 "forgotten_person": config.forget, "new_person": config.new_person}
    test_old, test_keep, test_gone = data.test.of_classes(old), data.test.of_classes(keep), data.test.of_classes([gone])
    members_gone = data.photos["train"].of_classes([gone])
    heldout_gone = LabelledSet.concat(data.photos["val"].of_classes([gone]), test_gone)

    # 1. digital pretraining on the first k persons; validation picks the epoch
    model = build_model(config.model, k)
    fit = fit_classifier(model, data.train.of_classes(old), data.val.of_classes(old), config.pretrain)
    report["pretrain.accuracy"] = accuracy_on(model, test_old)
    report["pretrain.retain_accuracy"] = accuracy_on(model, test_keep)
    report["pretrain.forget_accuracy"] = accuracy_on(model, test_gone)
    report["pretrain.val_accuracy"] = fit.best_score
    report["pretrain.mia_auc"] = membership_auc(model, members_gone, heldout_gone)
    report["params.total"] = sum(p.numel() for p in model.parameters())
    digital = copy.deepcopy(model)

    # 2. deploy: every conv/linear layer is written into crossbars once
    ledger = Ledger()
    ledger.post_training(fit.trainable_params, fit.steps, note="pretrain")
    hybrid.analogize(model, config.device, crossbar=config.crossbar, ledger=ledger, seed=config.seed)
    model.eval()
    calibration = data.train.of_classes(old).x
    hybrid.calibrate(model, calibration)  # the ADC full scale from training images, not from the first test batch
    report["deploy.accuracy"] = accuracy_on(model, test_old)
    report["device_preset"], report["readout"] = preset_name(config.device), readout_settings(model)
    report["schedule"] = {k: v for k, v in config.schedule.as_dict().items() if k != "restore_s"}  # no restore step here
    clock = ArrayClock(config.schedule)
    stage_readouts(report, "deploy", model, test_old, calibration)
    report["deploy.write_pulses"] = ledger.count("write.rm_pulse")
    report["deploy.write_energy_j"] = ledger.joules("write")
    report["deploy.programming_seconds"] = ledger.seconds("write")
    report["deploy.cells"] = sum(layer.crossbar.n_cells for _, layer in hybrid.hybrid_layers(model))
    snapshot = copy.deepcopy(model)  # the array as deployed, for the reprogramming baseline

    # 3. forget person `gone` with a LoRA branch; every candidate method, chosen on validation
    clock.advance(model, "revoke")
    candidates = {m: _revoke(model, gone, keep, data, config, m) for m in config.unlearn_methods}
    for m, (candidate, score, _, _) in candidates.items():
        report[f"revoke.{m}.val_score"] = score
        report[f"revoke.{m}.forget_accuracy"] = accuracy_on(candidate, test_gone)
        report[f"revoke.{m}.retain_accuracy"] = accuracy_on(candidate, test_keep)
        report[f"revoke.{m}.mia_auc"] = membership_auc(candidate, members_gone, heldout_gone)
    method = max(candidates, key=lambda m: candidates[m][1])  # first listed wins ties
    model, _, lora_params, steps = candidates[method]
    hybrid.set_ledger(model, ledger)
    before = ledger.joules("write")
    report["revoke.write_bits"] = hybrid.commit_adapter(model, f"revoke_{gone}", "depress")
    report["revoke.write_energy_j"] = ledger.joules("write") - before
    ledger.post_training(lora_params, steps, note="revoke")
    report["revoke.method"] = method
    report["revoke.chance_accuracy"] = 1 / k
    for key in ("forget_accuracy", "retain_accuracy", "mia_auc"):
        report[f"revoke.{key}"] = report[f"revoke.{method}.{key}"]
    report["revoke.trainable_params"] = lora_params
    stage_readouts(report, "revoke", model, test_keep, calibration)

    # baseline: fine-tune every weight digitally with the same method, then rewrite the crossbars
    full = copy.deepcopy(digital)
    full_params = list(full.parameters())
    full_fit = unlearn(full, full_params, [gone], data.train.of_classes(old), data.val.of_classes(old), keep,
                       replace(config.unlearn, method=method), "baseline: full fine-tune")
    full_ledger = Ledger(ledger.energy)
    hybrid.reprogram_from(snapshot, full, full_ledger)
    full_ledger.post_training(sum(p.numel() for p in full_params), full_fit.steps, note="baseline full")
    report["baseline_full.forget_accuracy"] = accuracy_on(snapshot, test_gone)
    report["baseline_full.retain_accuracy"] = accuracy_on(snapshot, test_keep)
    report["baseline_full.mia_auc"] = membership_auc(snapshot, members_gone, heldout_gone)
    report["baseline_full.write_pulses"] = full_ledger.count("write.rm_pulse")
    report["baseline_full.write_energy_j"] = full_ledger.joules("write")
    report["baseline_full.trainable_params"] = sum(p.numel() for p in full_params)

    # baseline: retrain from scratch without the forgotten person (the gold standard of forgetting)
    torch.manual_seed(config.seed + 1)
    retrained = build_model(config.model, k)
    fit_classifier(retrained, data.train.of_classes(keep), data.val.of_classes(keep), config.pretrain,
                   description="baseline: retrain")
    report["baseline_retrain.forget_accuracy"] = accuracy_on(retrained, test_gone)
    report["baseline_retrain.retain_accuracy"] = accuracy_on(retrained, test_keep)
    report["revoke.retrain_mia_auc"] = membership_auc(retrained, members_gone, heldout_gone)

    # 4. add the new person: a new LoRA branch and a new, trained readout row, with replay
    clock.advance(model, "enroll")
    before_acc = per_class_accuracy(predict_logits(model, test_keep.x), test_keep.y)
    model.head.grow(1, seed=config.seed + new)
    model.head.train_rows([new])
    params = hybrid.add_adapter(model, f"enroll_{new}", config.adapter)
    hybrid.activate_adapter(model, f"enroll_{new}")
    replay = data.train.of_classes(keep).subsample(config.replay_per_person, config.seed)
    try:
        enroll_fit = learn_new_classes(model, [*params, model.head.weight, model.head.bias], data.train.of_classes([new]),
                                       replay, data.val.of_classes([*keep, new]), config.enroll)
    finally:
        model.head.train_rows(None)
    before = ledger.joules("write")
    bits = hybrid.commit_adapter(model, f"enroll_{new}", "potentiate")
    row_bits = ledger.post_row_write(1, model.head.in_features + 1, note="readout row")
    enroll_params = sum(p.numel() for p in params) + model.head.in_features + 1
    ledger.post_training(enroll_params, enroll_fit.steps, note="enroll")
    after_logits = predict_logits(model, test_keep.x)
    report["enroll.new_accuracy"] = accuracy_on(model, data.test.of_classes([new]))
    report["enroll.old_accuracy"] = accuracy_on(model, test_keep)
    report["enroll.backward_transfer"] = backward_transfer(before_acc, per_class_accuracy(after_logits, test_keep.y))
    report["enroll.revoked_accuracy"] = accuracy_on(model, test_gone)
    report["enroll.trainable_params"] = enroll_params
    report["enroll.write_bits"] = bits + row_bits
    report["enroll.write_energy_j"] = ledger.joules("write") - before
    stage_readouts(report, "enroll", model, data.test.of_classes([*keep, new]), calibration)

    # energy, from the ledgers of this run
    report["energy.training_cost_ratio"] = report["baseline_full.trainable_params"] / report["revoke.trainable_params"]
    report["energy.write_energy_ratio"] = report["baseline_full.write_energy_j"] / report["revoke.write_energy_j"]
    current = data.test.of_classes([*keep, new])
    stages = {"pretrain": "pretrain", "revoke": "revoke (", "baseline_full": "baseline: full",
              "baseline_retrain": "baseline: retrain", "enroll": "enroll"}
    report |= demo_energy(stages, model, current.x, report["revoke.write_bits"], full_ledger, "revoke", "baseline_full",
                          gpu_model=digital)
    report["energy.inference_energy_ratio"] = report["energy.inference_energy_ratio_vs_gpu"]
    report["energy.rm_write_cycles_lora"] = 0
    return report


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
) -> dict[str, object]:
    """Run the face lifecycle for one model on every fold and return a flat, JSON-ready report.

    Figures are means over the folds (``per_fold.*`` lists the headline ones), so every photo of the
    six persons is a test photo once.  ``config`` replaces the model's preset (``seed`` still
    applies); ``faces`` replaces the bundled Olivetti set; ``ideal`` reads the crossbars through the ideal
    periphery and ``device`` replaces the cell preset.  With ``out_dir`` the report is also
    written there as ``face_demo_<model>.json``.
    """
    start = time.perf_counter()
    if model_name not in PRESETS:
        raise ValueError(f"unknown model {model_name!r}; choose one of {MODELS}")
    config = replace(config or PRESETS[model_name], model=model_name, seed=seed)
    if ideal:
        config = replace(config, crossbar=CrossbarConfig.ideal())
    if device is not None:
        config = replace(config, device=device)
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
    report["folds"] = config.split.folds
    report["split.clean_test_accuracy"] = report["pretrain.accuracy"]
    report.update(leaky_protocol(images, labels, config))
    report["split.train_images_per_person"] = config.split.train * (1 + config.augment.copies)
    report.update(PAPER)
    report["seconds"] = time.perf_counter() - start
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / f"face_demo_{model_name}.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    return report


def run_face_demos(model: str = "cnn", out_dir: Path | str | None = None, fast: bool = False, seed: int = 0,
                   progress: bool = True, ideal: bool = False, device: DeviceConfig | None = None) -> dict[str, object]:
    """``model`` is one of ``MODELS`` (its flat report) or ``both`` (reports keyed by model name)."""
    def run(name: str) -> dict[str, object]:
        return run_face_demo(name, out_dir, fast, seed, progress, ideal=ideal, device=device)

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
