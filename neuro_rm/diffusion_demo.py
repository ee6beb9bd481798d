"""Stylized image generation on the hybrid core: learn styles, forget some, learn new ones — on a CPU.

Pipeline: a generic autoencoder (digital, frozen) maps 32x32 images to 4x8x8 latents; a small
class-conditional DiT learns styles 0-5 digitally; every linear layer of the DiT is then written into
RM crossbars once (``analogize``).  After that the analogue weights never change: a LoRA branch
forgets styles (asking for them paints the anchor style instead), a second branch plus new digital
class-embedding rows learns new styles from their images and a small replay buffer.  A style
classifier trained on real images judges samples from each stage; KID on its features measures
distribution distance.  Baseline: forgetting by fine-tuning every weight, then rewriting the arrays.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from neuro_rm import layers as hybrid
from neuro_rm import work
from neuro_rm.data.styles import NUM_STYLES, STYLES, make_generic, make_styles, save_grid
from neuro_rm.device import DeviceConfig
from neuro_rm.energy import Ledger
from neuro_rm.energy_report import demo_energy, sampling_work
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.diffusion import (
    BranchConfig,
    DenoiseConfig,
    ForgetConfig,
    add_branch,
    encode,
    forget_styles,
    train_autoencoder,
    train_denoiser,
)
from neuro_rm.learning.loop import TrainConfig
from neuro_rm.learning.style_metrics import features, kid, mean_over, predict_styles, style_accuracy
from neuro_rm.learning.train import fit_classifier
from neuro_rm.models.autoencoder import AutoencoderConfig, LatentAutoencoder
from neuro_rm.models.diffusion import ScheduleConfig, generate
from neuro_rm.models.dit import DiT, DiTConfig
from neuro_rm.models.style_classifier import StyleClassifier, StyleClassifierConfig

PAPER = {"paper.training_cost_ratio": 147.76}
STAGES = ("prepare", "pretrain", "deploy", "forget", "baseline", "learn")
# Training stages for the energy figures: stage → description prefix of its optimisation loops.
STAGE_LOOPS = {"pretrain": "pretrain", "forget": "forget styles", "baseline_full": "baseline: full", "learn": "learn styles"}


@dataclass(frozen=True)
class DataConfig:
    train_per: int = 40  # images per (style, content) for training
    val_per: int = 10  # for the classifier's model selection
    ref_per: int = 20  # held out: the real images KID compares samples with
    generic_styles: int = 200  # random styles in the autoencoder's generic corpus
    generic_per: int = 4


@dataclass(frozen=True)
class DiffusionDemoConfig:
    styles: tuple[int, ...] = (0, 1, 2, 3, 4, 5)  # learnt digitally before deployment
    forget: tuple[int, ...] = (1, 4)  # forgotten after deployment
    anchor: int = 0  # what a forgotten style paints instead
    new_styles: tuple[int, ...] = (6, 7, 8, 9)  # learnt after forgetting
    data: DataConfig = DataConfig()
    autoencoder: AutoencoderConfig = AutoencoderConfig()
    autoencoder_train: TrainConfig = TrainConfig(epochs=10, lr=3e-3, batch_size=64)
    classifier_train: TrainConfig = TrainConfig(epochs=8, lr=3e-3, batch_size=64)
    dit: DiTConfig = DiTConfig()  # n_classes is set to the number of styles learnt first
    schedule: ScheduleConfig = ScheduleConfig(sample_steps=20, guidance=3.0)
    pretrain: DenoiseConfig = DenoiseConfig()
    forget_branch: BranchConfig = BranchConfig(rank=2, alpha=4.0, layers=("modulation",))
    forget_train: ForgetConfig = ForgetConfig()
    learn_branch: BranchConfig = BranchConfig(rank=4, alpha=8.0)
    learn_train: DenoiseConfig = DenoiseConfig(TrainConfig(epochs=80, lr=3e-3, batch_size=64))
    replay_per_style: int = 40
    samples_per_style: int = 40
    device: DeviceConfig = field(default_factory=DeviceConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        everything = [*self.styles, *self.new_styles]
        if len(set(everything)) != len(everything) or not all(0 <= s < NUM_STYLES for s in everything):
            raise ValueError(f"styles {self.styles} and new styles {self.new_styles} must be distinct ids in 0..{NUM_STYLES - 1}")
        if not set(self.forget) <= set(self.styles) or not self.forget:
            raise ValueError(f"forgotten styles {self.forget} must be a non-empty subset of the learnt styles {self.styles}")
        if self.anchor not in self.styles or self.anchor in self.forget:
            raise ValueError(f"the anchor style {self.anchor} must be learnt and not forgotten")


def fast_config(config: DiffusionDemoConfig) -> DiffusionDemoConfig:
    """Tiny data and a few steps per stage: a smoke test of the whole path, not a result."""
    short = lambda c, n: replace(c, epochs=min(c.epochs, n))  # noqa: E731
    return replace(
        config,
        data=DataConfig(train_per=6, val_per=3, ref_per=3, generic_styles=20, generic_per=2),
        autoencoder_train=short(config.autoencoder_train, 2),
        classifier_train=short(config.classifier_train, 2),
        dit=replace(config.dit, dim=32, depth=1, heads=2),
        schedule=replace(config.schedule, sample_steps=4),
        pretrain=replace(config.pretrain, train=short(config.pretrain.train, 2)),
        forget_train=replace(config.forget_train, denoise=replace(config.forget_train.denoise,
                                                                  train=short(config.forget_train.denoise.train, 2))),
        learn_train=replace(config.learn_train, train=short(config.learn_train.train, 2)),
        replay_per_style=4,
        samples_per_style=4,
    )


@dataclass
class StyleData:
    """Real images by split, and the training images' latents."""

    train: LabelledSet
    val: LabelledSet
    ref: LabelledSet
    train_latents: torch.Tensor


@dataclass
class Samples:
    """One stage's generated images as the judge saw them."""

    requested: torch.Tensor  # style asked for, per image
    predicted: torch.Tensor  # style the classifier saw
    features: torch.Tensor  # classifier features, scaled like the reference's

    def accuracy(self) -> dict[int, float]:
        return style_accuracy(self.predicted, self.requested)

    def share_seen_as(self, styles: list[int], seen: int) -> float:
        """Among images asked for ``styles``, the share the classifier saw as style ``seen``."""
        asked = torch.isin(self.requested, torch.tensor(styles))
        return float((self.predicted[asked] == seen).float().mean())


class Judge:
    """Generates a stage's samples and scores them against real images with the style classifier."""

    def __init__(self, classifier: StyleClassifier, autoencoder: LatentAutoencoder, ref: LabelledSet,
                 config: DiffusionDemoConfig, out_dir: Path | None) -> None:
        self.classifier, self.autoencoder, self.config, self.out_dir = classifier, autoencoder, config, out_dir
        raw = features(classifier, ref.x)
        self.scale = raw.pow(2).mean().sqrt().clamp_min(1e-12)
        self.ref_features, self.ref_styles = raw / self.scale, ref.y
        self.grids: list[str] = []  # file names in out_dir

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return features(self.classifier, images) / self.scale

    def stage(self, name: str, model: nn.Module, classes: list[int]) -> Samples:
        """Sample ``samples_per_style`` images of each class (class i paints style ``classes[i]``) and
        judge them.  Same noise seed at every stage, so grids compare like with like."""
        n = self.config.samples_per_style
        labels = torch.arange(len(classes)).repeat_interleave(n)
        images = generate(model, self.autoencoder, labels, self.config.schedule, seed=self.config.seed + 1)
        if self.out_dir is not None:
            path = self.out_dir / f"samples_{name}.png"
            shown = images.view(len(classes), n, *images.shape[1:])[:, : min(n, 8)].reshape(-1, *images.shape[1:])
            save_grid(shown, str(path), min(n, 8), [f"{s} {STYLES[s].name}" for s in classes], title=f"stage: {name}")
            self.grids.append(path.name)
        return Samples(torch.tensor(classes)[labels], predict_styles(self.classifier, images), self.features(images))

    def kid(self, samples: Samples, styles: list[int], against: list[int] | None = None) -> float:
        """KID between samples asked for ``styles`` and real images of ``against`` (default: the same)."""
        chosen = torch.isin(samples.requested, torch.tensor(styles))
        real = torch.isin(self.ref_styles, torch.tensor(styles if against is None else against))
        return kid(samples.features[chosen], self.ref_features[real])


def _per_style(acc: dict[int, float]) -> dict[str, float]:
    return {str(k): v for k, v in sorted(acc.items())}


def _freeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def _mean_accuracy(classifier: StyleClassifier, images: torch.Tensor, styles: torch.Tensor) -> float:
    """Style accuracy of the classifier on labelled images, each style weighing the same."""
    return mean_over(style_accuracy(predict_styles(classifier, images), styles), torch.unique(styles).tolist())


def prepare(config: DiffusionDemoConfig, progress: bool) -> tuple[StyleData, LatentAutoencoder, StyleClassifier, dict]:
    """Draw the data, train the generic autoencoder and the style classifier (all digital)."""
    d, seed = config.data, config.seed
    sets = {name: LabelledSet(*make_styles(per, seed, name)[:2])
            for name, per in (("train", d.train_per), ("val", d.val_per), ("ref", d.ref_per))}
    generic = make_generic(d.generic_styles, d.generic_per, seed)
    torch.manual_seed(seed)
    autoencoder = LatentAutoencoder(config.autoencoder)
    train_autoencoder(autoencoder, generic, replace(config.autoencoder_train, seed=seed, progress=progress))
    data = StyleData(**sets, train_latents=encode(autoencoder, sets["train"].x))
    classifier = StyleClassifier(StyleClassifierConfig(n_classes=NUM_STYLES))
    fit = fit_classifier(classifier, data.train, data.val, replace(config.classifier_train, seed=seed, progress=progress),
                         description="style classifier")
    with torch.no_grad():
        rebuilt = autoencoder.decode(encode(autoencoder, data.ref.x))
    report = {
        "data.train_images": len(data.train), "data.val_images": len(data.val), "data.ref_images": len(data.ref),
        "data.generic_images": len(generic),
        "classifier.val_accuracy": fit.best_score,
        "classifier.ref_accuracy": _mean_accuracy(classifier, data.ref.x, data.ref.y),
        "autoencoder.reconstruction_mse": float(((rebuilt - data.ref.x) ** 2).mean()),
        "autoencoder.reconstruction_style_accuracy": _mean_accuracy(classifier, rebuilt, data.ref.y),
        "params.autoencoder": sum(p.numel() for p in autoencoder.parameters()),
    }
    return data, autoencoder, classifier, report


def _class_set(data: StyleData, styles: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents of ``styles`` and their class indices (class i is ``styles[i]``)."""
    mask = torch.isin(data.train.y, torch.tensor(styles))
    index = {s: i for i, s in enumerate(styles)}
    return data.train_latents[mask], torch.tensor([index[int(s)] for s in data.train.y[mask]])


@work.metered
def run_lifecycle(config: DiffusionDemoConfig, out_dir: Path | None = None, progress: bool = True) -> dict[str, object]:
    """Prepare → pretrain → deploy → forget (and its full baseline) → learn; a flat, JSON-ready report."""
    report: dict[str, object] = {"styles.learnt": list(config.styles), "styles.forgotten": list(config.forget),
                                 "styles.anchor": config.anchor, "styles.new": list(config.new_styles),
                                 "styles.chance_accuracy": 1 / NUM_STYLES}
    seconds: dict[str, float] = {}
    bar = tqdm(total=len(STAGES), desc="diffusion demo", disable=not progress)
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        seconds[name] = time.perf_counter() - clock[0]
        clock[0] = time.perf_counter()
        bar.set_postfix_str(f"{name} done")
        bar.update()

    def stage(prefix: str, samples: Samples, groups: dict[str, list[int]]) -> dict[int, float]:
        acc = samples.accuracy()
        report[f"{prefix}.per_style"] = _per_style(acc)
        for group, members in groups.items():
            report[f"{prefix}.{group}_accuracy"] = mean_over(acc, members)
        return acc

    tc = lambda c: replace(c, train=replace(c.train, seed=config.seed, progress=progress))  # noqa: E731
    data, autoencoder, classifier, prepared = prepare(config, progress)
    report.update(prepared)
    judge = Judge(classifier, autoencoder, data.ref, config, out_dir)
    styles, forget, new = list(config.styles), list(config.forget), list(config.new_styles)
    keep = [s for s in styles if s not in forget]
    report["kid.real_floor"] = kid(judge.features(data.val.x), judge.ref_features)  # real vs real: the noise floor
    lap("prepare")

    # 1. digital pretraining on the first styles
    torch.manual_seed(config.seed)
    model = DiT(replace(config.dit, n_classes=len(styles)))
    latents, labels = _class_set(data, styles)
    steps = train_denoiser(model, list(model.parameters()), latents, labels, config.schedule, tc(config.pretrain), "pretrain")
    full_params = sum(p.numel() for p in model.parameters())
    report["params.denoiser"] = full_params
    samples = judge.stage("1_pretrain", model, styles)
    stage("pretrain", samples, {"style": styles})
    report["kid.pretrain"] = judge.kid(samples, styles)
    digital = copy.deepcopy(model)
    lap("pretrain")

    # 2. deploy: every linear layer of the DiT into crossbars, once
    ledger = Ledger()
    ledger.post_training(full_params, steps, note="pretrain")
    hybrid.analogize(model, config.device, targets=(nn.Linear,), ledger=ledger, seed=config.seed)
    _freeze(model)  # the deployed digital state (class embedding) is fixed too; only branches learn
    report["deploy.write_energy_j"] = ledger.joules("write")
    report["deploy.write_pulses"] = ledger.count("write.rm_pulse")
    report["deploy.programming_seconds"] = ledger.seconds("write")
    report["deploy.cells"] = sum(layer.crossbar.n_cells for _, layer in hybrid.hybrid_layers(model))
    report["deploy.hybrid_layers"] = len(hybrid.hybrid_layers(model))
    samples = judge.stage("2_deploy", model, styles)
    acc = stage("deploy", samples, {"style": styles})
    report["forget.retained_before"] = mean_over(acc, keep)
    report["kid.deploy.retained"] = judge.kid(samples, keep)
    report["kid.deploy.forgotten"] = judge.kid(samples, forget)
    snapshot = copy.deepcopy(model)  # the arrays as deployed, for the reprogramming baseline
    lap("deploy")

    # 3. forget: a LoRA branch pulls the forgotten styles onto the anchor's prediction
    cls = {s: i for i, s in enumerate(styles)}
    forget_config = replace(config.forget_train, denoise=tc(config.forget_train.denoise), anchor=cls[config.anchor])
    params = add_branch(model, "forget", config.forget_branch)
    forget_steps = forget_styles(model, params, latents, labels, [cls[s] for s in forget], config.schedule, forget_config)
    lora_params = sum(p.numel() for p in params)
    before = ledger.joules("write"), ledger.count("train.updates")
    report["forget.write_bits"] = hybrid.commit_adapter(model, "forget", "depress")
    report["forget.write_energy_j"] = ledger.joules("write") - before[0]
    ledger.post_training(lora_params, forget_steps, note="forget")
    forget_updates = ledger.count("train.updates") - before[1]
    _freeze(model)
    samples = judge.stage("3_forget", model, styles)
    stage("forget", samples, {"forgotten_style": forget, "retained_style": keep})
    report["forget.forgotten_seen_as_anchor"] = samples.share_seen_as(forget, config.anchor)
    report["forget.trainable_params"] = lora_params
    report["forget.steps"] = forget_steps
    report["kid.forget.retained"] = judge.kid(samples, keep)
    report["kid.forget.forgotten_vs_real_forgotten"] = judge.kid(samples, forget)
    report["kid.forget.forgotten_vs_real_anchor"] = judge.kid(samples, forget, [config.anchor])
    lap("forget")

    # baseline: forget by fine-tuning every weight of the digital model, then rewrite the arrays
    full = copy.deepcopy(digital)
    teacher = copy.deepcopy(digital).eval()
    full_steps = forget_styles(full, list(full.parameters()), latents, labels, [cls[s] for s in forget],
                               config.schedule, forget_config, teacher=teacher, description="baseline: full fine-tune")
    stage("baseline_full.digital", judge.stage("baseline_full_digital", full, styles),
          {"forgotten_style": forget, "retained_style": keep})
    full_ledger = Ledger(ledger.energy)
    hybrid.reprogram_from(snapshot, full, full_ledger)
    full_ledger.post_training(full_params, full_steps, note="baseline full fine-tune")
    stage("baseline_full", judge.stage("baseline_full_forget", snapshot, styles),
          {"forgotten_style": forget, "retained_style": keep})
    report["baseline_full.trainable_params"] = full_params
    report["baseline_full.write_energy_j"] = full_ledger.joules("write")
    report["baseline_full.write_pulses"] = full_ledger.count("write.rm_pulse")
    lap("baseline")

    # 4. learn new styles: a second branch and new embedding rows, with replay of the retained styles
    classes = [*styles, *new]
    rows = model.class_embed.grow(len(new))
    params = add_branch(model, "learn", config.learn_branch)
    every_latent, every_label = _class_set(data, classes)
    replay = LabelledSet(every_latent, every_label).of_classes([cls[s] for s in keep])
    replay = replay.subsample(config.replay_per_style, config.seed)
    learn_set = LabelledSet.concat(LabelledSet(every_latent, every_label).of_classes(range(len(styles), len(classes))), replay)
    learn_steps = train_denoiser(model, [*params, rows], learn_set.x, learn_set.y, config.schedule,
                                 tc(config.learn_train), "learn styles")
    learn_params = sum(p.numel() for p in params) + rows.numel()
    before = ledger.joules("write")
    bits = hybrid.commit_adapter(model, "learn", "potentiate")
    row_bits = ledger.post_row_write(rows.shape[0], rows[0].numel(), note="class-embedding rows")
    report["learn.write_bits"] = bits + row_bits
    report["learn.write_energy_j"] = ledger.joules("write") - before
    ledger.post_training(learn_params, learn_steps, note="learn")
    samples = judge.stage("4_learn", model, classes)
    stage("learn", samples, {"new_style": new, "retained_style": keep, "forgotten_style": forget})
    report["learn.trainable_params"] = learn_params
    report["learn.steps"] = learn_steps
    report["learn.replay_images"] = len(replay)
    report["kid.learn.new"] = judge.kid(samples, new)
    report["kid.learn.retained"] = judge.kid(samples, keep)
    lap("learn")

    # energy and training cost, from the ledgers of this run
    report["energy.training_cost_ratio"] = full_params / lora_params
    report["energy.learn_training_cost_ratio"] = full_params / learn_params
    report["energy.parameter_update_ratio"] = full_ledger.count("train.updates") / forget_updates
    report["energy.write_energy_ratio"] = full_ledger.joules("write") / report["forget.write_energy_j"]
    report["energy.rm_write_pulses_after_deploy"] = ledger.count("write.rm_pulse") - report["deploy.write_pulses"]
    report["energy.ledger"] = ledger.report()["categories"]
    report |= demo_energy(STAGE_LOOPS, None, None, report["forget.write_bits"], full_ledger, "forget", "baseline_full",
                          inference=sampling_work(model, torch.arange(len(classes)), latents.shape[1:], config.schedule))
    report["seconds_per_stage"] = seconds
    report["grids"] = judge.grids
    bar.close()
    return report


def run_diffusion_demo(out_dir: Path | str | None = None, fast: bool = False, seed: int = 0, progress: bool = True,
                       config: DiffusionDemoConfig | None = None) -> dict[str, object]:
    """Run the whole diffusion lifecycle and return a flat, JSON-ready report.

    With ``out_dir`` a sample grid per stage (``samples_<stage>.png``) and the report
    (``diffusion_demo.json``) are written there.  ``fast`` shrinks everything for a smoke test.
    """
    start = time.perf_counter()
    config = replace(config or DiffusionDemoConfig(), seed=seed)
    if fast:
        config = fast_config(config)
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    report = run_lifecycle(config, out, progress)
    report.update(PAPER)
    report["fast"] = fast
    report["seconds"] = time.perf_counter() - start
    if out is not None:
        (out / "diffusion_demo.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    return report


def render_report(report: dict[str, object]) -> str:
    """The headline figures of a report as a plain-text table, with the issue's targets beside them."""
    chance = report["styles.chance_accuracy"]
    rows = [
        ("pretrain (digital): style accuracy", report["pretrain.style_accuracy"], ""),
        ("deploy (crossbars): style accuracy", report["deploy.style_accuracy"], ""),
        ("forget: forgotten styles", report["forget.forgotten_style_accuracy"], f"<= {chance:.0%} (chance)"),
        ("forget: retained styles", report["forget.retained_style_accuracy"],
         f">= {max(report['forget.retained_before'] - 0.1, 0):.0%} (before - 10 pts)"),
        ("learn: new styles", report["learn.new_style_accuracy"], ">= 70%"),
        ("learn: retained styles", report["learn.retained_style_accuracy"], ""),
        ("learn: forgotten styles", report["learn.forgotten_style_accuracy"], f"<= {chance:.0%}"),
        ("baseline full fine-tune: forgotten", report["baseline_full.forgotten_style_accuracy"], ""),
        ("baseline full fine-tune: retained", report["baseline_full.retained_style_accuracy"], ""),
    ]
    lines = [f"{'generated samples classified as the requested style':<46} {'value':>8}  target"]
    lines += [f"{name:<46} {value:>8.1%}  {target}" for name, value, target in rows]
    kid = {key: 1000 * report[f"kid.{key}"] for key in ("real_floor", "deploy.retained", "forget.retained", "learn.retained",
                                                       "deploy.forgotten", "forget.forgotten_vs_real_forgotten", "learn.new")}
    lines += [
        "",
        f"KID x1000 (real vs real: {kid['real_floor']:.1f}) retained styles: deployed {kid['deploy.retained']:.1f}, "
        f"after forget {kid['forget.retained']:.1f}, after learn {kid['learn.retained']:.1f}; forgotten styles vs their real "
        f"images: {kid['deploy.forgotten']:.1f} -> {kid['forget.forgotten_vs_real_forgotten']:.1f}; new styles {kid['learn.new']:.1f}",
        f"training cost ratio (full / LoRA trainable params): forget {report['energy.training_cost_ratio']:.1f}x, "
        f"learn {report['energy.learn_training_cost_ratio']:.1f}x (paper: {report['paper.training_cost_ratio']}x)",
        f"write energy ratio (full reprogramming / LoRA SRAM write): {report['energy.write_energy_ratio']:.1f}x; "
        f"RM write pulses after deployment: {report['energy.rm_write_pulses_after_deploy']}",
        f"run time: {report['seconds']:.0f} s",
    ]
    return "\n".join(lines)
