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
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.data.styles import NUM_STYLES, STYLES, make_generic, make_styles, save_grid
from neuro_rm.device import DeviceConfig
from neuro_rm.energy import Ledger
from neuro_rm.energy_report import sampling_work
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.diffusion import (
    BranchConfig,
    DenoiseConfig,
    ForgetConfig,
    add_branch,
    calibrate_adc,
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
from neuro_rm.readout import peripheries, readout_of, readout_settings
from neuro_rm.tasks import runner
from neuro_rm.tasks.runner import BASELINE, Task, commit_branch, deploy_figures, n_params, write_report
from neuro_rm.work import PassWork

PAPER = {"paper.training_cost_ratio": 147.76}
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
    calibration_per_style: int = 8  # samples per class whose whole sampling trajectory calibrates the ADCs
    device: DeviceConfig = field(default_factory=DeviceConfig)
    crossbar: CrossbarConfig = CrossbarConfig()  # the periphery: realistic by default, CrossbarConfig.ideal() for none
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
        calibration_per_style=2,
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

    def stage(self, name: str | None, model: nn.Module, classes: list[int]) -> Samples:
        """Sample ``samples_per_style`` images of each class (class i paints style ``classes[i]``) and
        judge them.  Same noise seed at every stage, so grids compare like with like; a grid is saved
        under ``name`` (none without one)."""
        n = self.config.samples_per_style
        labels = torch.arange(len(classes)).repeat_interleave(n)
        images = generate(model, self.autoencoder, labels, self.config.schedule, seed=self.config.seed + 1)
        if self.out_dir is not None and name is not None:
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


class DiffusionTask(Task):
    """Prepare → pretrain → deploy → forget (and its full baseline) → learn."""

    stages = ("prepare", "pretrain", "deploy", "forget", BASELINE, "learn")
    timing, title = "nested", "diffusion demo"
    lora_prefix, lora_stage, loops = "forget", "forget", STAGE_LOOPS

    def __init__(self, config: DiffusionDemoConfig, out_dir: Path | None = None, progress: bool = True) -> None:
        super().__init__()
        self.config, self.out_dir, self.progress = config, out_dir, progress
        self.report.update({"styles.learnt": list(config.styles), "styles.forgotten": list(config.forget),
                            "styles.anchor": config.anchor, "styles.new": list(config.new_styles),
                            "styles.chance_accuracy": 1 / NUM_STYLES})
        self.styles, self.forgotten, self.new = list(config.styles), list(config.forget), list(config.new_styles)
        self.keep = [s for s in self.styles if s not in self.forgotten]
        self.cls = {s: i for i, s in enumerate(self.styles)}

    def _tc(self, c: DenoiseConfig) -> DenoiseConfig:
        return replace(c, train=replace(c.train, seed=self.config.seed, progress=self.progress))

    def _judge(self, prefix: str, samples: Samples, groups: dict[str, list[int]]) -> dict[int, float]:
        """Report a stage's style accuracy, per style and averaged over each group of styles."""
        acc = samples.accuracy()
        self.report[f"{prefix}.per_style"] = _per_style(acc)
        for group, members in groups.items():
            self.report[f"{prefix}.{group}_accuracy"] = mean_over(acc, members)
        return acc

    def _calibrate(self, model: nn.Module, n_classes: int) -> None:
        """Every crossbar's ADC full scale over whole sampling trajectories of every class the model knows, on a
        noise seed apart from the judge's (a periphery setting: no cell is written)."""
        ac, config = self.judge.autoencoder.config, self.config
        calibrate_adc(model, n_classes, config.calibration_per_style, (ac.latent_channels, ac.latent_size, ac.latent_size),
                      config.schedule, config.seed + 2)

    def _judge_on_chip(self, prefix: str, grid: str, model: nn.Module, classes: list[int],
                       groups: dict[str, list[int]]) -> tuple[Samples, dict[int, float]]:
        """``_judge`` through the model's own periphery, with the share of ADC conversions that saturate
        (``<prefix>.adc_clipped_share``), and each group's accuracy of the same cells read through the ideal and
        the realistic periphery (``<prefix>.readout.<periphery>.<group>_accuracy``)."""
        with hybrid.adc_clipping(model) as clipping:
            samples = self.judge.stage(grid, model, classes)
        acc = self._judge(prefix, samples, groups)
        own = readout_of(model)
        if own.adc_bits is not None:
            self.report[f"{prefix}.adc_clipped_share"] = clipping.share
        compared = peripheries(own)
        for name, config in (("ideal", compared["ideal"]), ("realistic", own if not own.is_ideal else compared["realistic"])):
            read = acc if config == own else self._read_through(config, model, classes)
            for group, members in groups.items():
                self.report[f"{prefix}.readout.{name}.{group}_accuracy"] = mean_over(read, members)
        return samples, acc

    def _read_through(self, config: CrossbarConfig, model: nn.Module, classes: list[int]) -> dict[int, float]:
        """Style accuracy of samples from the same cells read through ``config``; the own periphery is put back."""
        own = readout_of(model)
        hybrid.set_readout(model, config)
        try:
            return self.judge.stage(None, model, classes).accuracy()
        finally:
            hybrid.set_readout(model, own)

    def prepare(self) -> None:
        self.data, autoencoder, classifier, prepared = prepare(self.config, self.progress)
        self.report.update(prepared)
        self.judge = Judge(classifier, autoencoder, self.data.ref, self.config, self.out_dir)
        self.report["grids"] = self.judge.grids  # file names, filled in as the stages draw their samples
        self.report["kid.real_floor"] = kid(self.judge.features(self.data.val.x), self.judge.ref_features)  # the noise floor

    def pretrain(self) -> None:
        """Digital pretraining on the first styles."""
        config, styles = self.config, self.styles
        torch.manual_seed(config.seed)
        self.model = model = DiT(replace(config.dit, n_classes=len(styles)))
        self.latents, self.labels = _class_set(self.data, styles)
        self.steps = train_denoiser(model, list(model.parameters()), self.latents, self.labels, config.schedule,
                                    self._tc(config.pretrain), "pretrain")
        self.report["params.denoiser"] = n_params(model)
        samples = self.judge.stage("1_pretrain", model, styles)
        self._judge("pretrain", samples, {"style": styles})
        self.report["kid.pretrain"] = self.judge.kid(samples, styles)
        self.digital = copy.deepcopy(model)

    def deploy(self) -> None:
        """Every linear layer of the DiT into crossbars, once."""
        report, model = self.report, self.model
        self.ledger = ledger = Ledger()
        ledger.post_training(n_params(model), self.steps, note="pretrain")
        hybrid.analogize(model, self.config.device, targets=(nn.Linear,), crossbar=self.config.crossbar, ledger=ledger,
                         seed=self.config.seed)
        _freeze(model)  # the deployed digital state (class embedding) is fixed too; only branches learn
        self._calibrate(model, len(self.styles))  # not from whichever batch (one timestep) comes first
        deploy_figures(report, ledger, model)
        report["deploy.hybrid_layers"] = len(hybrid.hybrid_layers(model))
        report["readout"] = readout_settings(model)
        samples, acc = self._judge_on_chip("deploy", "2_deploy", model, self.styles, {"style": self.styles})
        report["forget.retained_before"] = mean_over(acc, self.keep)
        report["kid.deploy.retained"] = self.judge.kid(samples, self.keep)
        report["kid.deploy.forgotten"] = self.judge.kid(samples, self.forgotten)
        self.snapshot = copy.deepcopy(model)  # the arrays as deployed, for the reprogramming baseline

    def forget(self) -> None:
        """A LoRA branch pulls the forgotten styles onto the anchor's prediction."""
        config, report, ledger, model, forget, keep = self.config, self.report, self.ledger, self.model, self.forgotten, self.keep
        self.forget_config = replace(config.forget_train, denoise=self._tc(config.forget_train.denoise), anchor=self.cls[config.anchor])
        params = add_branch(model, "forget", config.forget_branch)
        forget_steps = forget_styles(model, params, self.latents, self.labels, [self.cls[s] for s in forget], config.schedule,
                                     self.forget_config)
        lora_params = n_params(params)
        updates = ledger.count("train.updates")
        commit_branch(self, model, "forget", "forget", "depress", lora_params, forget_steps)
        self.forget_updates = ledger.count("train.updates") - updates
        _freeze(model)
        samples, _ = self._judge_on_chip("forget", "3_forget", model, self.styles,
                                         {"forgotten_style": forget, "retained_style": keep})
        report["forget.forgotten_seen_as_anchor"] = samples.share_seen_as(forget, config.anchor)
        report["forget.trainable_params"] = lora_params
        report["forget.steps"] = forget_steps
        report["kid.forget.retained"] = self.judge.kid(samples, keep)
        report["kid.forget.forgotten_vs_real_forgotten"] = self.judge.kid(samples, forget)
        report["kid.forget.forgotten_vs_real_anchor"] = self.judge.kid(samples, forget, [config.anchor])

    def finetune_all(self, model: nn.Module, params: list[nn.Parameter]) -> int:
        """The same forgetting on every weight, distilled from the digital model; its samples judged before rewriting."""
        teacher = copy.deepcopy(self.digital).eval()
        steps = forget_styles(model, params, self.latents, self.labels, [self.cls[s] for s in self.forgotten],
                              self.config.schedule, self.forget_config, teacher=teacher, description="baseline: full fine-tune")
        self.measure("baseline_full.digital", model, "baseline_full_digital")
        return steps

    def measure(self, prefix: str, model: nn.Module, grid: str = "baseline_full_forget") -> None:
        groups = {"forgotten_style": self.forgotten, "retained_style": self.keep}
        if not hybrid.hybrid_layers(model):
            self._judge(prefix, self.judge.stage(grid, model, self.styles), groups)
            return
        self._calibrate(model, len(self.styles))  # rewriting the arrays cleared their ADC calibration
        self._judge_on_chip(prefix, grid, model, self.styles, groups)

    def learn(self) -> None:
        """New styles: a second branch and new embedding rows, with replay of the retained styles."""
        config, report, model, styles, new, keep = self.config, self.report, self.model, self.styles, self.new, self.keep
        classes = [*styles, *new]
        rows = model.class_embed.grow(len(new))
        params = add_branch(model, "learn", config.learn_branch)
        every = LabelledSet(*_class_set(self.data, classes))
        replay = every.of_classes([self.cls[s] for s in keep]).subsample(config.replay_per_style, config.seed)
        learn_set = LabelledSet.concat(every.of_classes(range(len(styles), len(classes))), replay)
        learn_steps = train_denoiser(model, [*params, rows], learn_set.x, learn_set.y, config.schedule,
                                     self._tc(config.learn_train), "learn styles")
        self.learn_params = n_params(params) + rows.numel()
        commit_branch(self, model, "learn", "learn", "potentiate", self.learn_params, learn_steps,
                      (rows.shape[0], rows[0].numel()), "class-embedding rows")
        # The new class-embedding rows drive the arrays with inputs the deployment calibration never saw: the
        # ADCs are recalibrated over every class, old and new (a periphery setting, not a cell write).
        self._calibrate(model, len(classes))
        samples, _ = self._judge_on_chip("learn", "4_learn", model, classes,
                                         {"new_style": new, "retained_style": keep, "forgotten_style": self.forgotten})
        report["learn.trainable_params"] = self.learn_params
        report["learn.steps"] = learn_steps
        report["learn.replay_images"] = len(replay)
        report["kid.learn.new"] = self.judge.kid(samples, new)
        report["kid.learn.retained"] = self.judge.kid(samples, keep)

    def inference_work(self) -> PassWork:
        """Generating one image of every style known at the end (guided DDIM, every step)."""
        return sampling_work(self.model, torch.arange(len(self.styles) + len(self.new)), self.latents.shape[1:],
                             self.config.schedule)

    def energy_extras(self) -> dict[str, object]:
        report = self.report
        return {"energy.learn_training_cost_ratio": report["params.denoiser"] / self.learn_params,
                "energy.parameter_update_ratio": self.full_ledger.count("train.updates") / self.forget_updates,
                "energy.rm_write_pulses_after_deploy": self.ledger.count("write.rm_pulse") - report["deploy.write_pulses"],
                "energy.ledger": self.ledger.report()["categories"]}


def run_lifecycle(config: DiffusionDemoConfig, out_dir: Path | None = None, progress: bool = True) -> dict[str, object]:
    """Prepare → pretrain → deploy → forget (and its full baseline) → learn; a flat, JSON-ready report."""
    return runner.run_lifecycle(DiffusionTask(config, out_dir, progress), progress)


def run_diffusion_demo(out_dir: Path | str | None = None, fast: bool = False, seed: int = 0, progress: bool = True,
                       config: DiffusionDemoConfig | None = None, ideal: bool = False) -> dict[str, object]:
    """Run the whole diffusion lifecycle and return a flat, JSON-ready report.

    With ``out_dir`` a sample grid per stage (``samples_<stage>.png``) and the report
    (``diffusion_demo.json``) are written there.  ``fast`` shrinks everything for a smoke test; ``ideal`` reads
    the crossbars without read noise, DAC or ADC (each stage still reports both readouts).
    """
    start = time.perf_counter()
    config = replace(config or DiffusionDemoConfig(), seed=seed)
    if ideal:
        config = replace(config, crossbar=CrossbarConfig.ideal())
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
        write_report(report, out / "diffusion_demo.json")
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
    own = "ideal" if report["readout"]["is_ideal"] else "realistic"
    pairs = ", ".join(f"{report[f'{key}.readout.realistic.{group}']:.1%} / {report[f'{key}.readout.ideal.{group}']:.1%}"
                      f" {name}" for key, group, name in (("deploy", "style_accuracy", "deployed"),
                                                          ("forget", "forgotten_style_accuracy", "forgotten"),
                                                          ("learn", "new_style_accuracy", "new")))
    lines.insert(-1, f"readout: {own} (realistic / ideal readout of the same cells: {pairs})")
    return "\n".join(lines)
