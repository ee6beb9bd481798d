"""The main job: train → deploy → revoke → enroll → restore → verify, with baselines and energy.

Every number in the returned report is measured in this run.  Model selection uses validation data
only; the test split is read for reporting, never for choosing.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm import viz, work
from neuro_rm.auth import REVOKE_MODES, REVOKED, SpeakerAuthenticator
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.device import DeviceConfig, preset_name
from neuro_rm.energy import Ledger
from neuro_rm.learning.attacks import AuditConfig, RelearnConfig, VoiceData, audit_forgetting
from neuro_rm.learning.baseline import linear_baseline
from neuro_rm.learning.continual import ENROLL
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.erase import ERASE_IMPOSTOR_SD
from neuro_rm.learning.loop import TrainConfig
from neuro_rm.learning.metrics import (
    accuracy,
    backward_transfer,
    det_curve,
    eer_interval,
    equal_error_rate,
    min_dcf,
    per_class_accuracy,
    predict_logits,
    s_norm,
    verification_trials,
)
from neuro_rm.learning.report import accuracy_among, accuracy_on
from neuro_rm.learning.seeds import markdown_table as seeds_table
from neuro_rm.learning.seeds import over_seeds
from neuro_rm.learning.train import PRETRAIN, FitResult, fit_classifier
from neuro_rm.learning.unlearn import MASK_IMPOSTOR_SD, UnlearnConfig, unlearn
from neuro_rm.models.rsnn import SYNAPSES, RSNNConfig, SpeakerRSNN
from neuro_rm.readout import (
    DRIFT_TIMES_S,
    ArrayClock,
    Schedule,
    drift_sweep,
    readout_settings,
    stage_readouts,
)
from neuro_rm.reliability import endurance_budget
from neuro_rm.tasks.runner import BASELINE, Task, n_params, run_lifecycle, settings_digest, write_report

# Reference figures (public reference implementation, SSC top-5 speakers) and the paper; ARCHITECTURE.md gives the sources.
REFERENCE = {
    "pretrain.accuracy": 0.9832,
    "revoke.forget_accuracy": 0.0,
    "revoke.retain_accuracy": 0.9842,
    "baseline_full.retain_accuracy": 0.9684,
    "enroll.new_accuracy": 0.9143,
    "enroll.old_accuracy": 0.9684,
    "restore.noisy_accuracy": 0.903,
    "restore.accuracy": 0.9832,
    "energy.training_cost_ratio": 25.16,
    "energy.write_energy_ratio": 63.74,
    "energy.inference_energy_ratio_vs_gpu": 12.03,
}
# Training stages for the energy figures: stage → description prefix of its optimisation loops.
STAGES = {"pretrain": "pretrain", "revoke_suspend": "revoke ", "revoke_erase": "erase ", "baseline_full": "baseline: full",
          "baseline_retrain": "baseline: retrain", "enroll": "enroll ", "restore": "restore"}


@dataclass(frozen=True)
class DemoConfig:
    revoke_label: int = 1  # as the reference: forget speaker 1
    pretrain: TrainConfig = PRETRAIN
    unlearn: UnlearnConfig = UnlearnConfig()
    enroll: TrainConfig = ENROLL
    restore: TrainConfig = TrainConfig(epochs=8, lr=2e-3, batch_size=64)
    write_noise_us: float = 5.0  # the restore step's fault: costs points, as the reference's (98.3 -> 90.3 %)
    device: DeviceConfig = DeviceConfig()
    crossbar: CrossbarConfig = CrossbarConfig()  # the periphery: realistic by default, CrossbarConfig.ideal() for none
    schedule: Schedule = Schedule()  # the array's age at each step
    revoke_mode: str = "erase"
    audit: AuditConfig = AuditConfig()
    audit_cohort: int = 32  # other speakers' test samples per speaker the attacks may use
    seed: int = 0

    def __post_init__(self) -> None:
        if self.revoke_mode not in REVOKE_MODES:
            raise ValueError(f"DemoConfig.revoke_mode must be one of {REVOKE_MODES}, got {self.revoke_mode!r}")


@dataclass
class SpeakerData:
    """Frames of every speaker, split; label k is speaker ``names[k]``; the last one is enrolled later."""

    names: list[str]
    train: LabelledSet
    val: LabelledSet
    test: LabelledSet


def _share_accepted(scores: torch.Tensor, threshold: float) -> float:
    return float((scores >= threshold).float().mean())


def _accept_rate(auth: SpeakerAuthenticator, x: torch.Tensor) -> float:
    """Share of trials accepted when every sample claims every enrolled speaker."""
    return _share_accepted(auth.scores(x)[:, auth.active_labels], auth.threshold)


def train_speaker_model(
    data: SpeakerData, classes: list[int], rsnn: RSNNConfig, pretrain: TrainConfig, seed: int,
    device: DeviceConfig | None = None, description: str = "train", crossbar: CrossbarConfig | None = None,
) -> tuple[SpeakerRSNN, FitResult]:
    """A model of the pretraining recipe on ``classes``, written into crossbars of ``device`` if given and read
    through ``crossbar`` (the gold standard retrained without a speaker, shadow models of the membership
    attack: read as the audited array is read), and its training (the learning rate validation chose)."""
    torch.manual_seed(seed)
    model = SpeakerRSNN(rsnn)
    fit = fit_classifier(model, data.train.of_classes(classes), data.val.of_classes(classes), replace(pretrain, seed=seed),
                   description=description)
    if device is not None:
        hybrid.analogize(model, device, SYNAPSES, crossbar=crossbar, seed=seed)
    model.eval()
    return model, fit


def _trial_figures(prefix: str, trials: dict[str, torch.Tensor], seed: int) -> dict[str, object]:
    """EER, its 95 % bootstrap interval over test utterances, and minDCF at p_target 0.01, as ``<prefix>.*``."""
    genuine, impostor = trials["genuine"], trials["impostor"]
    return {f"{prefix}.eer": equal_error_rate(genuine, impostor)[0],
            f"{prefix}.eer_ci": list(eer_interval(**trials, seed=seed)),
            f"{prefix}.min_dcf": min_dcf(genuine, impostor, p_target=0.01)[0]}


# an audit's models are seeded from AUDIT_SEED_STRIDE * seed up: far from every run's own seeds (pretraining k, the
# gold standard k + 1), so an attack's shadow model is never the audited model itself
AUDIT_SEED_STRIDE = 10_000


def audit_revocation(
    data: SpeakerData, targets: dict[str, nn.Module], gone: int, keep: list[int], rsnn: RSNNConfig,
    voiceprint: tuple[torch.Tensor, torch.Tensor] | None, pretrain: TrainConfig, device: DeviceConfig,
    audit: AuditConfig = AuditConfig(), cohort: int = 32, seed: int = 0, crossbar: CrossbarConfig | None = None,
) -> dict[str, float]:
    """Every attack of ``learning.attacks`` on ``targets``, with shadow models of the pretraining recipe
    of shape ``rsnn`` trained with and without speaker ``gone``.  The attacker holds the voice's training recordings, its
    test samples as probes and ``cohort`` test samples of each other speaker; never the other training data.
    ``seed`` draws the attack as well (its shadow and reference models, its relearning picks): over a ``--seeds``
    run the membership figures then hold the attack's own variance, not one draw of it."""
    start = AUDIT_SEED_STRIDE * seed  # seed 0's attack as before it followed the seed; seeds never share a model
    groups = (("with", sorted(keep + [gone]), 1000, audit.shadows), ("without", keep, 2000, audit.shadows),
              ("reference", keep, 3000, audit.references))
    models = {name: [train_speaker_model(data, classes, rsnn, pretrain, start + first + i, device, f"shadow {name}", crossbar)[0]
                     for i in range(count)] for name, classes, first, count in groups}
    voice = VoiceData(gone, voiceprint, data.train.of_classes([gone]).x, data.test.of_classes([gone]).x,
                      data.test.of_classes(keep).subsample(cohort, seed))
    return audit_forgetting(targets, voice, models["with"], models["without"], models["reference"], audit, seed)


def _revocation(
    auth: SpeakerAuthenticator, mode: str, data: SpeakerData, gone: int, keep: list[int], unseen: int, config: UnlearnConfig
) -> dict[str, object]:
    """Revoke speaker ``gone`` in ``mode``; accuracies, and acceptance at the holdout's equal-error
    threshold of the revoked voice, of impostor trials and of a voice never enrolled (``unseen``)."""
    forget_test = data.test.of_classes([gone])
    revoked = auth.revoke(data.names[gone], data.train.of_classes([gone]).x, retain=data.train.of_classes(keep),
                          config=config, mode=mode)
    auth.calibrate()
    figures = {
        "forget_accuracy": accuracy_on(auth.model, forget_test),
        "retain_accuracy": accuracy_on(auth.model, data.test.of_classes(keep)),
        "trainable_params": revoked.trainable_params,
        "write_energy_j": revoked.extra["write_energy_j"],
        "write_bits": revoked.extra["write_bits"],
        "revoked_accept_rate": _accept_rate(auth, forget_test.x),
        "impostor_accept_rate": _share_accepted(auth.trial_scores(data.test.of_classes(keep))[1], auth.threshold),
        "unseen_accept_rate": _accept_rate(auth, data.test.of_classes([unseen]).x),
    }
    if mode == "erase":
        figures["write_pulses"] = revoked.extra["write_pulses"]
        figures["cells_written"] = revoked.extra["cells_written"]
    return figures


class SpeakerTask(Task):
    """The speaker lifecycle on ``data``: the last speaker is enrolled later, ``config.revoke_label`` revoked."""

    stages = ("pretrain", "deploy", ("revoke", BASELINE), "audit", "enroll", "restore", "verify")
    title = "demo"
    lora_prefix, lora_stage, loops = "revoke.suspend", "revoke_suspend", STAGES

    def __init__(self, data: SpeakerData, config: DemoConfig) -> None:
        super().__init__()
        k = len(data.names)
        if k < 3:
            raise ValueError(f"the demo needs at least 3 speakers (2 to keep, 1 to enroll), got {k}")
        if not 0 <= config.revoke_label < k - 1:
            raise ValueError(f"revoke_label must be one of the first {k - 1} speakers, got {config.revoke_label}")
        self.data, self.config = data, per_run(config)
        self.old, self.new_label, self.gone = list(range(k - 1)), k - 1, config.revoke_label
        self.keep = [c for c in self.old if c != self.gone]
        self.report.update(speakers=data.names, revoked_speaker=data.names[self.gone], enrolled_speaker=data.names[self.new_label])
        self.report.update(recipe(config))
        self.det: tuple[torch.Tensor, torch.Tensor] | None = None

    def pretrain(self) -> None:
        """Digital pretraining on the first k-1 speakers, and the logistic-regression floor beside it."""
        data, config, report, old = self.data, self.config, self.report, self.old
        torch.manual_seed(config.seed)
        self.auth, fit = SpeakerAuthenticator.pretrain(
            data.names[:-1], data.train.of_classes(old), data.val.of_classes(old),
            RSNNConfig(n_inputs=data.train.x.shape[-1], n_outputs=len(old)), config.pretrain, seed=config.seed,
        )
        report["pretrain.accuracy"] = accuracy_on(self.auth.model, data.test.of_classes(old))
        # the speakers a revocation keeps, digitally: what their accuracy after revocation is compared with (same clips)
        report["pretrain.retain_accuracy"] = accuracy_on(self.auth.model, data.test.of_classes(self.keep))
        # like for like: the revoked voice's score masked, as its erased row is after a revocation
        report["pretrain.retain_accuracy_masked"] = accuracy_among(self.auth.model, data.test.of_classes(self.keep), self.keep)
        report["pretrain.best_epoch"] = fit.best_epoch
        report["pretrain.averaged_epochs"] = fit.averaged_epochs  # 0: the best validation epoch kept as it was
        report["pretrain.lr"] = fit.lr  # the rate validation chose among the recipe's candidates
        # the floor: logistic regression on the same frames (C picked on validation); a negative margin is reported as is
        linear = linear_baseline(data.train.of_classes(old), data.val.of_classes(old), data.test.of_classes(old))
        report["baseline_linear.accuracy"] = linear.accuracy
        report["baseline_linear.val_accuracy"] = linear.val_accuracy
        report["baseline_linear.c"] = linear.c
        report["pretrain.margin_over_linear"] = report["pretrain.accuracy"] - linear.accuracy
        report["params.total"] = n_params(self.auth.model)
        self.digital = copy.deepcopy(self.auth.model)

    def deploy(self) -> None:
        """Write-verify the synapses once; accuracy after programming, and after drift without and with each
        drift compensation (at deploy the array is 0 s old: the stage readouts measure no drift)."""
        auth, config, report, test_old = self.auth, self.config, self.report, self.data.test.of_classes(self.old)
        deployed = auth.deploy(config.device, config.crossbar, seed=config.seed)
        self.ledger = auth.ledger
        report["deploy.accuracy"] = accuracy_on(auth.model, test_old)
        report["device_preset"], report["readout"] = preset_name(config.device), readout_settings(auth.model)
        report["schedule"], self.aging = config.schedule.as_dict(), ArrayClock(config.schedule)
        stage_readouts(report, "deploy", auth.model, test_old, auth.buffers.replay.x)
        for key in ("write_pulses", "write_energy_j", "programming_seconds", "cells"):
            report[f"deploy.{key}"] = deployed[key]
        for key, value in drift_sweep(auth.model, test_old, auth.buffers.replay.x, DRIFT_TIMES_S).items():
            report[f"deploy.drift_accuracy.{key}"] = value
        self.snapshot = copy.deepcopy(auth.model)  # the array as deployed, for the reprogramming baseline

    def revoke(self) -> None:
        """Revoke speaker ``gone`` in the chosen mode, and in the other mode on a twin, side by side."""
        auth, config, report, data = self.auth, self.config, self.report, self.data
        self.aging.advance(auth.model, "revoke")
        self.original = copy.deepcopy(auth.model)  # before revocation: the attacks' positive control
        self.voiceprint = auth.model.head.copy_row(self.gone)
        self.other_mode = next(m for m in REVOKE_MODES if m != config.revoke_mode)
        self.twin = copy.deepcopy(auth)
        report["revoke.mode"] = config.revoke_mode
        report["revoke.retain_before"] = accuracy_on(auth.model, data.test.of_classes(self.keep))  # the same speakers, deployed
        for mode, who in ((config.revoke_mode, auth), (self.other_mode, self.twin)):
            for key, value in _revocation(who, mode, data, self.gone, self.keep, self.new_label, config.unlearn).items():
                report[f"revoke.{mode}.{key}"] = value
                if mode == config.revoke_mode:
                    report[f"revoke.{key}"] = value
            report[f"revoke.{mode}.retain_change"] = report[f"revoke.{mode}.retain_accuracy"] - report["revoke.retain_before"]
            report[f"revoke.{mode}.retain_change_from_pretrain"] = (report[f"revoke.{mode}.retain_accuracy"]
                                                                     - report["pretrain.retain_accuracy"])
            report[f"revoke.{mode}.retain_change_from_masked_pretrain"] = (report[f"revoke.{mode}.retain_accuracy"]
                                                                            - report["pretrain.retain_accuracy_masked"])
        stage_readouts(report, "revoke", auth.model, data.test.of_classes(self.keep), auth.buffers.replay.x,
                       data.test.of_classes(self.keep))

    def finetune_all(self, model: nn.Module, params: list[nn.Parameter]) -> int:
        data, gone = self.data, self.gone
        fit = unlearn(model, params, [gone], LabelledSet.concat(data.train.of_classes([gone]), data.train.of_classes(self.keep)),
                      data.val.of_classes(self.old), self.keep, self.config.unlearn.at_depth(ERASE_IMPOSTOR_SD),  # erasure's target
                      "baseline: full fine-tune")
        return fit.steps

    def retrain(self) -> nn.Module:
        model, fit = train_speaker_model(self.data, self.keep, self.auth.model.config, self.config.pretrain,
                                         self.config.seed + 1, description="baseline: retrain")
        self.report["baseline_retrain.lr"] = fit.lr  # the rate its validation chose, as pretrain.lr
        return model

    def retrain_array(self) -> nn.Module:
        return self.original  # the same array, rewritten with the retrained weights

    def calibration_batch(self) -> torch.Tensor:
        return self.auth.buffers.replay.x  # the retained speakers' training frames, as the live array uses

    def measure(self, prefix: str, model: nn.Module) -> None:
        test = self.data.test
        self.report[f"{prefix}.forget_accuracy"] = accuracy_on(model, test.of_classes([self.gone]))
        self.report[f"{prefix}.retain_accuracy"] = accuracy_on(model, test.of_classes(self.keep))

    def baseline(self) -> None:
        """The runner's baselines; how much of the cells' endurance the full rewrite spends; whether the
        retrained array, behind the same holdout and threshold rule, accepts the revoked voice."""
        super().baseline()
        for key, value in endurance_budget(self.rewrites, self.config.device.endurance_cycles).items():
            self.report[f"endurance.{key}"] = value
        gold = SpeakerAuthenticator(self.retrained, self.data.names[:-1], self.auth.buffers)  # same holdout, revoked dropped
        gold.registry[self.data.names[self.gone]].status = REVOKED
        gold.calibrate()
        self.report["baseline_retrain.revoked_accept_rate"] = _accept_rate(gold, self.data.test.of_classes([self.gone]).x)

    def audit(self) -> None:
        """Attacks on the revocation: original (positive control), retrained (gold standard), both modes."""
        config, report = self.config, self.report
        targets = {"original": self.original, "retrain": self.retrained, config.revoke_mode: self.auth.model,
                   self.other_mode: self.twin.model}
        audit = audit_revocation(self.data, targets, self.gone, self.keep, self.auth.model.config, self.voiceprint,
                                 config.pretrain, config.device, config.audit, config.audit_cohort, config.seed,
                                 config.crossbar)
        for key, value in audit.items():
            report[f"revoke.{key}"] = value

    def enroll(self) -> None:
        """Enroll the held-back speaker with a new branch and readout row."""
        auth, data, report, new_label = self.auth, self.data, self.report, self.new_label
        test_keep = data.test.of_classes(self.keep)
        self.aging.advance(auth.model, "enroll")
        before = per_class_accuracy(predict_logits(auth.model, test_keep.x), test_keep.y)
        enrolled = auth.enroll(data.names[new_label], data.train.of_classes([new_label]).x,
                               data.val.of_classes([new_label]).x, self.config.enroll)
        after_logits = predict_logits(auth.model, test_keep.x)
        report["enroll.new_accuracy"] = accuracy_on(auth.model, data.test.of_classes([new_label]))
        report["enroll.old_accuracy"] = accuracy(after_logits, test_keep.y)
        report["enroll.backward_transfer"] = backward_transfer(before, per_class_accuracy(after_logits, test_keep.y))
        report["enroll.revoked_accuracy"] = accuracy_on(auth.model, data.test.of_classes([self.gone]))
        report["enroll.trainable_params"] = enrolled.trainable_params
        stage_readouts(report, "enroll", auth.model, data.test.of_classes(auth.active_labels),
                       auth.buffers.replay.x, test_keep)

    def restore(self) -> None:
        """Extra write noise on the cells, then a restore branch wins accuracy back (net of a control)."""
        auth, config, report, data = self.auth, self.config, self.report, self.data
        self.aging.advance(auth.model, "restore")
        self.current = current = data.test.of_classes(auth.active_labels)
        report["restore.clean_accuracy"] = accuracy_on(auth.model, current)
        control = copy.deepcopy(auth)  # the same restore on the healthy array: what extra fine-tuning alone wins
        with work.unmetered():  # a control, not a cost of the lifecycle
            control.restore(config.restore, data=data.train.of_classes(auth.active_labels))
        report["restore.control_accuracy"] = accuracy_on(control.model, current)
        del control
        hybrid.add_write_noise(auth.model, config.write_noise_us)
        report["restore.write_noise_us"] = config.write_noise_us
        report["restore.noisy_accuracy"] = accuracy_on(auth.model, current)
        restored = auth.restore(config.restore, data=data.train.of_classes(auth.active_labels))
        report["restore.accuracy"] = accuracy_on(auth.model, current)
        report["restore.repair"] = report["restore.accuracy"] - report["restore.control_accuracy"]
        report["restore.net_repair"] = ((report["restore.accuracy"] - report["restore.noisy_accuracy"])
                                        - (report["restore.control_accuracy"] - report["restore.clean_accuracy"]))
        stage_readouts(report, "restore", auth.model, current, auth.buffers.replay.x,
                       data.test.of_classes(self.keep))
        report["restore.trainable_params"] = restored.trainable_params

    def verify(self) -> None:
        """Threshold from the holdout buffer; EER over test trials, the revoked speaker as impostor; the same
        scores s-normed against the holdout buffer (never the test set) beside them."""
        auth, report, data = self.auth, self.report, self.data
        calibration = auth.calibrate()
        scores = auth.scores(data.test.x)  # one noisy read of the test set serves the raw and the s-normed trials
        trials = verification_trials(scores, data.test.y, auth.active_labels)
        report.update(_trial_figures("verify", trials, self.config.seed))
        self.det = det_curve(trials["genuine"], trials["impostor"])
        report["verify.threshold"] = calibration["threshold"]
        report["verify.revoked_accept_rate"] = _accept_rate(auth, data.test.of_classes([self.gone]).x)
        report["verify.impostor_accept_rate"] = _share_accepted(trials["impostor"], auth.threshold)
        if len(auth.active_labels) >= 3:
            cohort = auth.buffers.holdout.of_classes(auth.active_labels)
            normed = s_norm(scores, auth.active_labels, auth.scores(cohort.x), cohort.y)
            report.update(_trial_figures("verify.snorm", verification_trials(normed, data.test.y, auth.active_labels),
                                         self.config.seed))

    def inference(self) -> tuple[nn.Module, torch.Tensor, nn.Module]:
        return self.auth.model, self.current.x, self.digital

    def energy_extras(self) -> dict[str, object]:
        """Erase set beside the paper's measures (which compare the suspend branch with the full baseline)."""
        report = self.report
        return {"energy.erase_write_energy_ratio": report["baseline_full.write_energy_j"] / report["revoke.erase.write_energy_j"],
                "energy.erase_write_pulse_ratio": report["baseline_full.write_pulses"] / max(report["revoke.erase.write_pulses"], 1)}


def run_speaker_demo(
    data: SpeakerData,
    config: DemoConfig = DemoConfig(),
    out_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, object]:
    """Run the whole lifecycle on ``data`` and return a flat, JSON-ready report."""
    start = time.perf_counter()
    task = SpeakerTask(data, config)
    report = run_lifecycle(task, progress)
    report["seconds"] = time.perf_counter() - start
    report["reference"] = REFERENCE
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        auth = task.auth
        auth.metadata = {**auth.metadata, "origin": "demo"}  # what `neuro-rm demo` may replace without --overwrite
        # the demo's own output folder: each run replaces it (another state only with --overwrite: cli's
        # _demo_may_replace); never bringing back a voice revoked in a state saved there (review65)
        auth.save(out / "state", overwrite=True)
        write_figures(report, task.full_ledger, out, task.det)
        write_report(report, out / "report.json")
        (out / "report.md").write_text(markdown_table(report) + "\n" + audit_table(report))
    return report


def run_speaker_demo_seeds(
    data: SpeakerData, config: DemoConfig, seeds: int, out_dir: Path | None = None, progress: bool = True,
) -> dict[str, object]:
    """The lifecycle once per seed ``config.seed`` .. ``config.seed + seeds - 1`` (each run in its own folder
    ``seed_<k>``), every figure as ``<key>.mean``/``.sd``/``.ci95`` over them; ``report.md`` shows mean ± sd."""
    def one(seed: int) -> dict[str, object]:
        where = None if out_dir is None else Path(out_dir) / f"seed_{seed}"
        return run_speaker_demo(data, replace(config, seed=seed), where, progress)

    report = over_seeds(one, list(range(config.seed, config.seed + seeds)))
    if out_dir is not None:
        write_report(report, Path(out_dir) / "report.json")
        (Path(out_dir) / "report.md").write_text(seeds_table(report, TABLE_ROWS, REFERENCE))
    return report


TABLE_ROWS = (
    ("pretrain.accuracy", "pretrain: test accuracy (digital)", "{:.2%}"),
    ("baseline_linear.accuracy", "logistic regression on the same frames: test accuracy", "{:.2%}"),
    ("pretrain.margin_over_linear", "pretrain: RSNN minus logistic regression (points)", "{:+.2%}"),
    ("deploy.accuracy", "deploy: accuracy after write-verify", "{:.2%}"),
    ("deploy.drift_accuracy.1e+06s", "deploy: accuracy after 10^6 s drift", "{:.2%}"),
    ("deploy.write_pulses", "deploy: write pulses", "{:,}"),
    ("deploy.write_energy_j", "deploy: write energy (J)", "{:.3g}"),
    ("revoke.forget_accuracy", "revoke (default mode): forgotten speaker accuracy", "{:.2%}"),
    ("revoke.retain_accuracy", "revoke (default mode): retained speakers accuracy", "{:.2%}"),
    ("revoke.suspend.retain_accuracy", "revoke, suspend: retained speakers accuracy", "{:.2%}"),
    ("revoke.erase.retain_accuracy", "revoke, erase: retained speakers accuracy", "{:.2%}"),
    ("revoke.erase.retain_change", "revoke, erase: retained accuracy change from deployed (points)", "{:+.2%}"),
    ("revoke.suspend.retain_change", "revoke, suspend: retained accuracy change from deployed (points)", "{:+.2%}"),
    ("revoke.erase.retain_change_from_masked_pretrain", "revoke, erase: retained change from pretraining, revoked score masked there (points)", "{:+.2%}"),
    ("revoke.suspend.retain_change_from_masked_pretrain", "revoke, suspend: retained change from pretraining, revoked score masked there (points)", "{:+.2%}"),
    ("revoke.erase.write_pulses", "revoke, erase: write pulses (cells beyond tolerance)", "{:,}"),
    ("revoke.erase.write_energy_j", "revoke, erase: write energy (J)", "{:.3g}"),
    ("baseline_full.retain_accuracy", "full fine-tune + reprogram: retained accuracy", "{:.2%}"),
    ("baseline_full.write_pulses", "full fine-tune + reprogram: write pulses", "{:,}"),
    ("baseline_full.write_energy_j", "full fine-tune + reprogram: write energy (J)", "{:.3g}"),
    ("baseline_retrain.write_pulses", "retrain from scratch + reprogram: write pulses", "{:,}"),
    ("revoke.revoked_accept_rate", "revoked voice accepted as someone (after revoke)", "{:.2%}"),
    ("revoke.impostor_accept_rate", "impostor trials accepted (after revoke)", "{:.2%}"),
    ("revoke.unseen_accept_rate", "never-enrolled voice accepted as someone", "{:.2%}"),
    ("baseline_retrain.revoked_accept_rate", "retrain from scratch: revoked voice accepted", "{:.2%}"),
    ("enroll.new_accuracy", "enroll (LoRA + row): new speaker accuracy", "{:.2%}"),
    ("enroll.old_accuracy", "enroll: old speakers accuracy", "{:.2%}"),
    ("enroll.revoked_accuracy", "enroll: revoked speaker stays forgotten", "{:.2%}"),
    ("restore.write_noise_us", "restore: write noise added to every cell (µS)", "{:g}"),
    ("restore.noisy_accuracy", "restore: accuracy after that write noise", "{:.2%}"),
    ("restore.accuracy", "restore: accuracy with restore branch", "{:.2%}"),
    ("restore.control_accuracy", "restore: the same restore on the healthy array (control)", "{:.2%}"),
    ("restore.repair", "restore: gap to the control (restored − control, points)", "{:+.2%}"),
    ("restore.net_repair", "restore: repair net of the control ((restored − noisy) − (control − clean))", "{:+.2%}"),
    ("verify.eer", "verify: equal-error rate (revoked = impostor)", "{:.2%}"),
    ("verify.eer_ci", "verify: EER 95% interval (bootstrap over test utterances)", "{0[0]:.2%} – {0[1]:.2%}"),
    ("verify.min_dcf", "verify: minDCF (p_target = 0.01)", "{:.3f}"),
    ("verify.snorm.eer", "verify: EER after s-norm (cohort: the holdout buffer)", "{:.2%}"),
    ("verify.snorm.min_dcf", "verify: minDCF after s-norm", "{:.3f}"),
    ("verify.revoked_accept_rate", "verify: revoked voice accepted (final threshold)", "{:.2%}"),
    ("verify.impostor_accept_rate", "verify: impostor trials accepted", "{:.2%}"),
    ("energy.training_cost_ratio", "training cost ratio (full / LoRA parameters)", "{:.2f}×"),
    ("energy.write_energy_ratio", "write energy ratio (reprogram / LoRA SRAM, suspend)", "{:.1f}×"),
    ("energy.erase_write_energy_ratio", "write energy ratio (reprogram / erase)", "{:.1f}×"),
    ("energy.inference_energy_ratio_vs_gpu", "inference energy ratio (GPU / hybrid)", "{:.2f}×"),
    ("energy.180nm.gpu_peak.write_energy_ratio", "write energy ratio, chip at 180 nm (node assumed for the paper's)", "{:.1f}×"),
    ("energy.180nm.gpu_peak.inference_energy_ratio", "inference energy ratio (GPU / hybrid), chip at 180 nm", "{:.2f}×"),
    ("seconds", "wall time of the whole demo (s)", "{:.0f}"),
)


AUDIT_TARGETS = ("original", "retrain", "suspend", "erase")


def markdown_table(report: dict) -> str:
    """The demo's headline numbers next to the reference figures, as a Markdown table."""
    reference = report.get("reference", {})
    lines = ["| step | measured | reference |", "|---|---|---|"]
    for key, label, fmt in TABLE_ROWS:
        if key not in report:  # a figure this run could not make (s-norm with fewer than 3 speakers)
            continue
        ref = reference.get(key)
        lines.append(f"| {label} | {fmt.format(report[key])} | {'' if ref is None else fmt.format(ref)} |")
    return "\n".join(lines) + "\n"


def audit_table(report: dict) -> str:
    """The attacks on the revocation, one row per model, as a Markdown table."""
    ks = sorted({int(key.rsplit(".", 1)[1]) for key in report if key.startswith("revoke.original.relearn_steps.")})
    head = ["model", "branch-off accuracy", "branch-off AUC (bias free)", "the same, zero row (control)",
            "membership AUC"] + [f"relearn steps, k = {k}" for k in ks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for target in AUDIT_TARGETS:
        cells = [target] + [f"{report[f'revoke.{target}.{key}']:{fmt}}" for key, fmt in (
            ("branch_off_accuracy", ".1%"), ("branch_off_auc", ".3f"), ("branch_off_auc_zero_row", ".3f"), ("membership_auc", ".3f"))]
        cells += [f"{report[f'revoke.{target}.relearn_steps.{k}']:.1f} ± {report[f'revoke.{target}.relearn_steps_sd.{k}']:.1f}" for k in ks]
        lines.append("| " + " | ".join(cells) + " |")
    null = f"{report['revoke.membership.null_mean']:.3f} ± {report['revoke.membership.null_sd']:.3f}"
    return "\n".join(lines) + (f"\n\nMembership AUC of models that never heard the voice, against each other: {null} "
                               "(the mean is 0.5 but for read noise; the sd is the yardstick).\n")


ACCURACY_KEYS = ("pretrain.accuracy", "revoke.forget_accuracy", "revoke.retain_accuracy", "baseline_full.retain_accuracy",
                 "enroll.new_accuracy", "enroll.old_accuracy", "restore.noisy_accuracy", "restore.accuracy")


def write_figures(report: dict, full_ledger: Ledger, out: Path,
                  det: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[Path]:
    """The demo's pictures: accuracy per stage against the reference, write energy per revoke, and the
    final verification DET curve (``det``: false-accept and miss rates)."""
    paths = [out / "accuracy.png", out / "revoke_write_energy.png"]
    values = {k: float(report[k]) for k in ACCURACY_KEYS}
    figure = viz.plot_bars(values, "accuracy", "speaker lifecycle: measured vs reference", REFERENCE)
    figure.savefig(paths[0], dpi=120)
    lora = {"write.sram": float(report["revoke.suspend.write_energy_j"])}
    erase = {"write.erase (RM cells + readout rows)": float(report["revoke.erase.write_energy_j"])}
    rewrite = {c: v["joules"] for c, v in full_ledger.by_category().items() if c.startswith("write.")}
    bars = {"suspend\nLoRA (SRAM)": lora, "erase\ncells beyond tolerance": erase, "full fine-tune\nreprogram RM": rewrite}
    viz.plot_energy(bars, "write energy of one revoke").savefig(paths[1], dpi=120)
    if det is not None:
        paths.append(out / "det.png")
        label = "after the lifecycle (revoked voice = impostor)"
        viz.plot_det({label: det}, {label: float(report["verify.eer"])}).savefig(paths[-1], dpi=120)
    viz.plt.close("all")
    return paths


# what each run of the demo replaces with its own seed (``DemoConfig.seed``; pretraining is seeded with it too)
PER_RUN_SETTINGS = ("seed", "pretrain.seed")


def per_run(config: DemoConfig) -> DemoConfig:
    """``config`` as its run uses it: the revocation's, enrolment's and restore's shuffles offset by ``config.seed``
    as pretraining is seeded with it, so that the sd over a ``--seeds`` run holds their draws too, not only
    pretraining's.  Their configured seeds stay settings (``recipe`` digests ``config``, not this)."""
    def shifted(train: TrainConfig) -> TrainConfig:
        return replace(train, seed=train.seed + config.seed)

    return replace(config, unlearn=replace(config.unlearn, train=shifted(config.unlearn.train)),
                   enroll=shifted(config.enroll), restore=shifted(config.restore))


def recipe(config: DemoConfig) -> dict[str, int | str]:
    """How long each step trains and how hard the audit tries, in the report, and a digest of every setting
    (``recipe.config``: batch sizes, learning rates, unlearning method, audit cohort, device, periphery ...): a
    ``--fast`` smoke run's figures then say what they are, and parts of one set run with different settings are
    not pooled (sets_table)."""
    steps = {"pretrain": config.pretrain, "unlearn": config.unlearn.train, "enroll": config.enroll, "restore": config.restore}
    out = {f"recipe.{name}_epochs": train.epochs for name, train in steps.items()}
    out.update({f"recipe.{name}_min_steps": train.min_steps for name, train in steps.items()})
    out.update({"recipe.pretrain_lr_candidates": len(config.pretrain.lr_candidates), "recipe.audit_shadows": config.audit.shadows,
                "recipe.audit_references": config.audit.references, "recipe.audit_relearn_seeds": config.audit.relearn_seeds,
                "recipe.audit_relearn_steps": config.audit.relearn.steps,
                "recipe.suspend_impostor_sd": config.unlearn.at_depth(MASK_IMPOSTOR_SD).impostor_sd,
                "recipe.erase_impostor_sd": config.unlearn.at_depth(ERASE_IMPOSTOR_SD).impostor_sd, "recipe.config": settings_digest(config, per_run=PER_RUN_SETTINGS)})
    return out


def fast(config: DemoConfig) -> DemoConfig:
    """A few epochs of everything: for smoke tests, not for results (no step budget either: ``min_steps``
    would stretch two epochs of a small set back to the full recipe's length)."""
    short = lambda c: replace(c, epochs=min(c.epochs, 2), min_steps=0, lr_candidates=())  # noqa: E731
    audit = AuditConfig(shadows=1, references=1, relearn=RelearnConfig(steps=3), relearn_seeds=1)
    return replace(config, pretrain=short(config.pretrain), enroll=short(config.enroll), audit=audit,
                   restore=short(config.restore), unlearn=replace(config.unlearn, train=short(config.unlearn.train)))
