"""The main job: train → deploy → revoke → enroll → restore → verify, with baselines and energy.

Every number in the returned report is measured in this run.  Model selection uses validation data
only; the test split is read for reporting, never for choosing.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from neuro_rm import layers as hybrid
from neuro_rm import viz, work
from neuro_rm.auth import REVOKE_MODES, REVOKED, SpeakerAuthenticator
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.device import DeviceConfig, preset_name
from neuro_rm.energy import Ledger
from neuro_rm.energy_report import demo_energy
from neuro_rm.learning.attacks import AuditConfig, RelearnConfig, VoiceData, audit_forgetting
from neuro_rm.learning.baseline import linear_baseline
from neuro_rm.learning.continual import ENROLL
from neuro_rm.learning.data import LabelledSet
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
    verification_trials,
)
from neuro_rm.learning.report import accuracy_on
from neuro_rm.learning.seeds import markdown_table as seeds_table
from neuro_rm.learning.seeds import over_seeds
from neuro_rm.learning.train import PRETRAIN, fit_classifier
from neuro_rm.learning.unlearn import UnlearnConfig, unlearn
from neuro_rm.models.rsnn import SYNAPSES, RSNNConfig, SpeakerRSNN
from neuro_rm.readout import ArrayClock, Schedule, readout_settings, stage_readouts
from neuro_rm.reliability import endurance_budget

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
DRIFT_TIMES_S = (3600.0, 86400.0, 1e6)
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
    write_noise_us: float = 1.0
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
    device: DeviceConfig | None = None, description: str = "train",
) -> SpeakerRSNN:
    """A model of the pretraining recipe on ``classes``, written into crossbars of ``device`` if given
    (the gold standard retrained without a speaker, shadow models of the membership attack)."""
    torch.manual_seed(seed)
    model = SpeakerRSNN(rsnn)
    fit_classifier(model, data.train.of_classes(classes), data.val.of_classes(classes), replace(pretrain, seed=seed),
                   description=description)
    if device is not None:
        hybrid.analogize(model, device, SYNAPSES, seed=seed)
    model.eval()
    return model


def audit_revocation(
    data: SpeakerData, targets: dict[str, nn.Module], gone: int, keep: list[int], rsnn: RSNNConfig,
    voiceprint: tuple[torch.Tensor, torch.Tensor] | None, pretrain: TrainConfig, device: DeviceConfig,
    audit: AuditConfig = AuditConfig(), cohort: int = 32, seed: int = 0,
) -> dict[str, float]:
    """Every attack of ``learning.attacks`` on ``targets``, with shadow models of the pretraining recipe
    of shape ``rsnn`` trained with and without speaker ``gone``.  The attacker holds the voice's training recordings, its
    test samples as probes and ``cohort`` test samples of each other speaker; never the other training data."""
    groups = (("with", sorted(keep + [gone]), 1000, audit.shadows), ("without", keep, 2000, audit.shadows),
              ("reference", keep, 3000, audit.references))
    models = {name: [train_speaker_model(data, classes, rsnn, pretrain, start + i, device, f"shadow {name}")
                     for i in range(count)] for name, classes, start, count in groups}
    voice = VoiceData(gone, voiceprint, data.train.of_classes([gone]).x, data.test.of_classes([gone]).x,
                      data.test.of_classes(keep).subsample(cohort, seed))
    return audit_forgetting(targets, voice, models["with"], models["without"], models["reference"], audit)


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


@work.metered
def run_speaker_demo(
    data: SpeakerData,
    config: DemoConfig = DemoConfig(),
    out_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, object]:
    """Run the whole lifecycle on ``data`` and return a flat, JSON-ready report."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    k = len(data.names)
    if k < 3:
        raise ValueError(f"the demo needs at least 3 speakers (2 to keep, 1 to enroll), got {k}")
    if not 0 <= config.revoke_label < k - 1:
        raise ValueError(f"revoke_label must be one of the first {k - 1} speakers, got {config.revoke_label}")
    old = list(range(k - 1))
    new_label, gone = k - 1, config.revoke_label
    keep = [c for c in old if c != gone]
    n_inputs = data.train.x.shape[-1]
    report: dict[str, object] = {"speakers": data.names, "revoked_speaker": data.names[gone], "enrolled_speaker": data.names[new_label]}
    stages = tqdm(total=7, desc="demo", disable=not progress)
    clock = {"name": None, "start": time.perf_counter()}

    def stage(name: str | None) -> None:
        now = time.perf_counter()
        if clock["name"] is not None:
            report[f"seconds.{clock['name']}"] = now - clock["start"]
            stages.update()
        clock.update(name=name, start=now)
        if name is not None:
            stages.set_postfix_str(name)

    # 1. digital pretraining on the first k-1 speakers
    stage("pretrain")
    auth, fit = SpeakerAuthenticator.pretrain(
        data.names[:-1], data.train.of_classes(old), data.val.of_classes(old),
        RSNNConfig(n_inputs=n_inputs, n_outputs=k - 1), config.pretrain, seed=config.seed,
    )
    report["pretrain.accuracy"] = accuracy_on(auth.model, data.test.of_classes(old))
    report["pretrain.best_epoch"] = fit.best_epoch
    # the floor: logistic regression on the same frames (C picked on validation); a negative margin is reported as is
    linear = linear_baseline(data.train.of_classes(old), data.val.of_classes(old), data.test.of_classes(old))
    report["baseline_linear.accuracy"] = linear.accuracy
    report["baseline_linear.val_accuracy"] = linear.val_accuracy
    report["baseline_linear.c"] = linear.c
    report["pretrain.margin_over_linear"] = report["pretrain.accuracy"] - linear.accuracy
    report["params.total"] = sum(p.numel() for p in auth.model.parameters())
    digital = copy.deepcopy(auth.model)

    # 2. deploy: write-verify the synapses once; accuracy after programming and after drift
    stage("deploy")
    deployed = auth.deploy(config.device, config.crossbar, seed=config.seed)
    report["deploy.accuracy"] = accuracy_on(auth.model, data.test.of_classes(old))
    report["device_preset"], report["readout"] = preset_name(config.device), readout_settings(auth.model)
    report["schedule"], aging = config.schedule.as_dict(), ArrayClock(config.schedule)
    stage_readouts(report, "deploy", auth.model, data.test.of_classes(old), auth.buffers.replay.x)
    report["deploy.write_pulses"] = deployed["write_pulses"]
    report["deploy.write_energy_j"] = deployed["write_energy_j"]
    report["deploy.programming_seconds"] = deployed["programming_seconds"]
    report["deploy.cells"] = deployed["cells"]
    for t in DRIFT_TIMES_S:
        hybrid.set_time(auth.model, t)
        report[f"deploy.drift_accuracy.{t:g}s"] = accuracy_on(auth.model, data.test.of_classes(old))
    hybrid.set_time(auth.model, 0.0)
    snapshot = copy.deepcopy(auth.model)  # the array as deployed, for the reprogramming baseline

    # 3. revoke speaker `gone` in the chosen mode (the other mode on a twin, side by side);
    #    baselines: full fine-tune + reprogram, retrain from scratch + reprogram
    stage("revoke")
    forget_train, forget_test = data.train.of_classes([gone]), data.test.of_classes([gone])
    retain_train = data.train.of_classes(keep)
    aging.advance(auth.model, "revoke")
    original = copy.deepcopy(auth.model)  # before revocation: the attacks' positive control
    voiceprint = (auth.model.head.weight[gone].detach().clone(), auth.model.head.bias[gone].detach().clone())
    other_mode = next(m for m in REVOKE_MODES if m != config.revoke_mode)
    twin = copy.deepcopy(auth)
    report["revoke.mode"] = config.revoke_mode
    report["revoke.retain_before"] = accuracy_on(auth.model, data.test.of_classes(keep))  # the same speakers, deployed
    for mode, who in ((config.revoke_mode, auth), (other_mode, twin)):
        for key, value in _revocation(who, mode, data, gone, keep, new_label, config.unlearn).items():
            report[f"revoke.{mode}.{key}"] = value
            if mode == config.revoke_mode:
                report[f"revoke.{key}"] = value
        report[f"revoke.{mode}.retain_change"] = report[f"revoke.{mode}.retain_accuracy"] - report["revoke.retain_before"]
    stage_readouts(report, "revoke", auth.model, data.test.of_classes(keep), auth.buffers.replay.x)

    full = copy.deepcopy(digital)  # fine-tune every weight, then rewrite the crossbar
    full_params = list(full.parameters())
    full_fit = unlearn(full, full_params, [gone], LabelledSet.concat(forget_train, retain_train),
                       data.val.of_classes(old), keep, config.unlearn, "baseline: full fine-tune")
    full_ledger = Ledger(auth.ledger.energy)
    rewrites = hybrid.reprogram_from(snapshot, full, full_ledger)
    full_ledger.post_training(sum(p.numel() for p in full_params), full_fit.steps, note="baseline full")
    report["baseline_full.forget_accuracy"] = accuracy_on(snapshot, forget_test)
    report["baseline_full.retain_accuracy"] = accuracy_on(snapshot, data.test.of_classes(keep))
    report["baseline_full.write_pulses"] = full_ledger.count("write.rm_pulse")
    report["baseline_full.write_energy_j"] = full_ledger.joules("write")
    report["baseline_full.trainable_params"] = sum(p.numel() for p in full_params)
    for key, value in endurance_budget(rewrites, config.device.endurance_cycles).items():
        report[f"endurance.{key}"] = value

    retrained = train_speaker_model(data, keep, auth.model.config, config.pretrain, config.seed + 1, description="baseline: retrain")
    retrain_ledger = Ledger(auth.ledger.energy)
    gold_model = copy.deepcopy(original)  # the same array, rewritten with the retrained weights
    hybrid.reprogram_from(gold_model, retrained, retrain_ledger)
    report["baseline_retrain.forget_accuracy"] = accuracy_on(gold_model, forget_test)
    report["baseline_retrain.retain_accuracy"] = accuracy_on(gold_model, data.test.of_classes(keep))
    report["baseline_retrain.write_pulses"] = retrain_ledger.count("write.rm_pulse")
    report["baseline_retrain.write_energy_j"] = retrain_ledger.joules("write")
    gold = SpeakerAuthenticator(gold_model, data.names[:-1], auth.buffers)  # same holdout, revoked speaker dropped
    gold.registry[data.names[gone]].status = REVOKED
    gold.calibrate()
    report["baseline_retrain.revoked_accept_rate"] = _accept_rate(gold, forget_test.x)

    # 4. attacks on the revocation: original (positive control), retrained (gold standard), both modes
    stage("audit")
    targets = {"original": original, "retrain": gold_model, config.revoke_mode: auth.model, other_mode: twin.model}
    audit = audit_revocation(data, targets, gone, keep, auth.model.config, voiceprint, config.pretrain, config.device, config.audit,
                             config.audit_cohort, config.seed)
    for key, value in audit.items():
        report[f"revoke.{key}"] = value

    # 5. enroll the held-back speaker with a new branch and readout row
    stage("enroll")
    aging.advance(auth.model, "enroll")
    before = per_class_accuracy(predict_logits(auth.model, data.test.of_classes(keep).x), data.test.of_classes(keep).y)
    enrolled = auth.enroll(data.names[new_label], data.train.of_classes([new_label]).x,
                           data.val.of_classes([new_label]).x, config.enroll)
    after_logits = predict_logits(auth.model, data.test.of_classes(keep).x)
    report["enroll.new_accuracy"] = accuracy_on(auth.model, data.test.of_classes([new_label]))
    report["enroll.old_accuracy"] = accuracy(after_logits, data.test.of_classes(keep).y)
    report["enroll.backward_transfer"] = backward_transfer(before, per_class_accuracy(after_logits, data.test.of_classes(keep).y))
    report["enroll.revoked_accuracy"] = accuracy_on(auth.model, forget_test)
    report["enroll.trainable_params"] = enrolled.trainable_params
    stage_readouts(report, "enroll", auth.model, data.test.of_classes(auth.active_labels), auth.buffers.replay.x)

    # 6. restore: extra write noise on the cells, then a restore branch wins accuracy back
    stage("restore")
    aging.advance(auth.model, "restore")
    current = data.test.of_classes(auth.active_labels)
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
    stage_readouts(report, "restore", auth.model, current, auth.buffers.replay.x)
    report["restore.trainable_params"] = restored.trainable_params

    # 7. verify: threshold from the holdout buffer; EER over test trials, revoked speaker as impostor
    stage("verify")
    calibration = auth.calibrate()
    trials = verification_trials(auth.scores(data.test.x), data.test.y, auth.active_labels)
    genuine, impostor = trials["genuine"], trials["impostor"]
    report["verify.eer"], _ = equal_error_rate(genuine, impostor)
    report["verify.eer_ci"] = list(eer_interval(**trials, seed=config.seed))  # 95 %, utterances resampled
    report["verify.min_dcf"], _ = min_dcf(genuine, impostor, p_target=0.01)
    det = det_curve(genuine, impostor)
    report["verify.threshold"] = calibration["threshold"]
    report["verify.revoked_accept_rate"] = _accept_rate(auth, forget_test.x)
    report["verify.impostor_accept_rate"] = _share_accepted(impostor, auth.threshold)
    stage(None)
    stages.close()

    # energy, from the ledgers of this run
    # the paper's measures compare a LoRA branch (suspend) with a full fine-tune + reprogram; erase is set beside them
    report["energy.training_cost_ratio"] = report["baseline_full.trainable_params"] / report["revoke.suspend.trainable_params"]
    report["energy.write_energy_ratio"] = report["baseline_full.write_energy_j"] / report["revoke.suspend.write_energy_j"]
    report["energy.erase_write_energy_ratio"] = report["baseline_full.write_energy_j"] / report["revoke.erase.write_energy_j"]
    report["energy.erase_write_pulse_ratio"] = report["baseline_full.write_pulses"] / max(report["revoke.erase.write_pulses"], 1)
    report |= demo_energy(STAGES, auth.model, current.x, report["revoke.suspend.write_bits"], full_ledger,
                          "revoke_suspend", "baseline_full", gpu_model=digital)
    report["seconds"] = time.perf_counter() - start
    report["reference"] = REFERENCE
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        auth.metadata = {**auth.metadata, "origin": "demo"}  # what `neuro-rm demo` may replace without --overwrite
        auth.save(out / "state", overwrite=True)  # the demo's own output folder: each run replaces it
        write_figures(report, full_ledger, out, det)
        (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
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
        (Path(out_dir) / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
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
    ("restore.noisy_accuracy", "restore: accuracy after σ = 1 µS write noise", "{:.2%}"),
    ("restore.accuracy", "restore: accuracy with restore branch", "{:.2%}"),
    ("restore.control_accuracy", "restore: the same restore on the healthy array (control)", "{:.2%}"),
    ("restore.repair", "restore: repair net of the control (points)", "{:+.2%}"),
    ("verify.eer", "verify: equal-error rate (revoked = impostor)", "{:.2%}"),
    ("verify.eer_ci", "verify: EER 95% interval (bootstrap over test utterances)", "{0[0]:.2%} – {0[1]:.2%}"),
    ("verify.min_dcf", "verify: minDCF (p_target = 0.01)", "{:.3f}"),
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
        ref = reference.get(key)
        lines.append(f"| {label} | {fmt.format(report[key])} | {'' if ref is None else fmt.format(ref)} |")
    return "\n".join(lines) + "\n"


def audit_table(report: dict) -> str:
    """The attacks on the revocation, one row per model, as a Markdown table."""
    ks = sorted({int(key.rsplit(".", 1)[1]) for key in report if key.startswith("revoke.original.relearn_steps.")})
    head = ["model", "branch-off accuracy", "membership AUC"] + [f"relearn steps, k = {k}" for k in ks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for target in AUDIT_TARGETS:
        cells = [target, f"{report[f'revoke.{target}.branch_off_accuracy']:.1%}", f"{report[f'revoke.{target}.membership_auc']:.3f}"]
        cells += [f"{report[f'revoke.{target}.relearn_steps.{k}']:.1f} ± {report[f'revoke.{target}.relearn_steps_sd.{k}']:.1f}" for k in ks]
        lines.append("| " + " | ".join(cells) + " |")
    null = f"{report['revoke.membership.null_mean']:.3f} ± {report['revoke.membership.null_sd']:.3f}"
    return "\n".join(lines) + f"\n\nMembership AUC of models that never heard the voice, against each other: {null}.\n"


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


def fast(config: DemoConfig) -> DemoConfig:
    """A few epochs of everything: for smoke tests, not for results."""
    short = lambda c: replace(c, epochs=min(c.epochs, 2))  # noqa: E731
    audit = AuditConfig(shadows=1, references=1, relearn=RelearnConfig(steps=3), relearn_seeds=1)
    return replace(config, pretrain=short(config.pretrain), enroll=short(config.enroll), audit=audit,
                   restore=short(config.restore), unlearn=replace(config.unlearn, train=short(config.unlearn.train)))
