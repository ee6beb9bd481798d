import json
import math
from dataclasses import replace

import h5py
import numpy as np
import pytest
import sklearn
import torch

from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.learning import TrainConfig
from neuro_rm.learning.unlearn import UnlearnConfig
from neuro_rm.tasks.runner import code_digest, sources_digest
from neuro_rm.tasks.speaker import DemoConfig, SpeakerData, fast, recipe, run_speaker_demo

KEYS = (
    "pretrain.accuracy", "deploy.accuracy", "deploy.write_pulses", "deploy.write_energy_j", "revoke.forget_accuracy",
    "revoke.retain_accuracy", "enroll.new_accuracy", "enroll.old_accuracy", "revoke.erase.write_energy_j",
    "revoke.erase.write_pulses", "baseline_retrain.write_pulses",
    *(f"revoke.{target}.{measure}" for target in ("suspend", "erase", "original", "retrain")
      for measure in ("branch_off_accuracy", "membership_auc", "relearn_steps.1", "relearn_steps.5", "relearn_steps.10")),
    "restore.accuracy", "verify.eer", "energy.training_cost_ratio", "energy.write_energy_ratio",
    "energy.inference_energy_ratio_vs_gpu", "baseline_full.retain_accuracy", "seconds", "baseline_linear.accuracy",
    "pretrain.margin_over_linear", "verify.min_dcf", "revoke.retain_before", "revoke.erase.retain_change",
    "revoke.suspend.retain_change", "pretrain.retain_accuracy", "revoke.erase.retain_change_from_pretrain",
)


TRAINING_STAGES = ("pretrain", "revoke_suspend", "revoke_erase", "baseline_full", "baseline_retrain", "enroll", "restore")


def _tiny(tiny_speech) -> SpeakerData:
    return SpeakerData(["s0", "s1", "s2", "s3"], tiny_speech["train"], tiny_speech["val"], tiny_speech["test"])


@pytest.fixture(scope="module")
def demo_run(tiny_speech, tmp_path_factory):
    """One realistic-readout demo on the tiny set and its output folder, read by every test below that needs
    a whole lifecycle of the default configuration (each run takes most of a minute on 2 cores)."""
    out = tmp_path_factory.mktemp("demo")
    # the revocation keeps its step budget: two epochs of these few samples are too few steps to erase a voice,
    # and the tests below would then only see the failed-erasure path
    config = replace(fast(DemoConfig(pretrain=TrainConfig(epochs=6, lr=5e-3, batch_size=32))), unlearn=UnlearnConfig())
    return run_speaker_demo(_tiny(tiny_speech), config, out_dir=out, progress=False), out


def test_a_smoke_run_reports_a_recipe_of_its_own():
    """A ``--fast`` report must not pass for a full one: every step's length differs, or the audit's."""
    full, smoke = recipe(DemoConfig()), recipe(fast(DemoConfig()))
    assert full.keys() == smoke.keys()
    assert all(full[f"recipe.{step}_epochs"] > smoke[f"recipe.{step}_epochs"] for step in ("pretrain", "unlearn", "enroll", "restore"))
    assert all(full[f"recipe.audit_{part}"] > smoke[f"recipe.audit_{part}"] for part in ("shadows", "references", "relearn_seeds", "relearn_steps"))


def test_each_recipe_key_reports_its_own_setting():
    """Review (session 30): keys read from the wrong step or field passed the test above."""
    base = DemoConfig()
    numbered = {step: replace(getattr(base, step), epochs=10 + i, min_steps=20 + i) for i, step in enumerate(("pretrain", "enroll", "restore"))}
    numbered["pretrain"] = replace(numbered["pretrain"], lr_candidates=(1e-3, 3e-4, 1e-4, 3e-5, 1e-5))
    audit = replace(base.audit, shadows=31, references=32, relearn_seeds=33, relearn=replace(base.audit.relearn, steps=34))
    config = replace(base, **numbered, audit=audit, unlearn=replace(base.unlearn, train=replace(base.unlearn.train, epochs=13, min_steps=23)))
    assert {k: v for k, v in recipe(config).items() if k != "recipe.config"} == {
        "recipe.pretrain_epochs": 10, "recipe.enroll_epochs": 11, "recipe.restore_epochs": 12, "recipe.unlearn_epochs": 13,
        "recipe.pretrain_min_steps": 20, "recipe.enroll_min_steps": 21, "recipe.restore_min_steps": 22, "recipe.unlearn_min_steps": 23,
        "recipe.pretrain_lr_candidates": 5, "recipe.audit_shadows": 31, "recipe.audit_references": 32,
        "recipe.audit_relearn_seeds": 33, "recipe.audit_relearn_steps": 34,
        "recipe.suspend_impostor_sd": 0.0, "recipe.erase_impostor_sd": 1.0}  # each mode's own depth, none named
    named = recipe(replace(config, unlearn=replace(config.unlearn, impostor_sd=2.5)))
    assert (named["recipe.suspend_impostor_sd"], named["recipe.erase_impostor_sd"]) == (2.5, 2.5)


@pytest.mark.parametrize("change", [
    lambda c: replace(c, enroll=replace(c.enroll, batch_size=32)),
    lambda c: replace(c, pretrain=replace(c.pretrain, lr_candidates=(1e-4,))),
    lambda c: replace(c, unlearn=replace(c.unlearn, method="relabel")),
    lambda c: replace(c, audit_cohort=16),
    lambda c: replace(c, crossbar=CrossbarConfig.ideal()),
    lambda c: replace(c, audit=replace(c.audit, relearn=replace(c.audit.relearn, lr=1e-3))),
])
def test_the_settings_digest_tells_apart_what_no_recipe_number_shows(change):
    """Review (session 30): two parts differing only in a batch size, a learning rate, the unlearning method or
    the audit cohort showed the same recipe keys and pooled as seeds of one run."""
    base = DemoConfig()
    assert recipe(change(base))["recipe.config"] != recipe(base)["recipe.config"]


def test_the_code_digest_follows_every_source_byte_and_path(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "notes.txt").write_text("not code")
    before = sources_digest(tmp_path)
    (tmp_path / "pkg" / "notes.txt").write_text("still not code")
    assert sources_digest(tmp_path) == before
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    changed = sources_digest(tmp_path)
    (tmp_path / "pkg" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "pkg" / ".ipynb_checkpoints" / "a-checkpoint.py").write_text("x = 3\n")
    assert sources_digest(tmp_path) == changed  # a hidden folder's copy is not the package's code
    (tmp_path / "pkg" / "a.py").rename(tmp_path / "pkg" / "b.py")
    assert len({before, changed, sources_digest(tmp_path)}) == 3


def test_the_settings_digest_leaves_out_what_each_run_replaces_and_the_progress_bar():
    base, config = recipe(DemoConfig())["recipe.config"], DemoConfig()
    assert recipe(DemoConfig(seed=7))["recipe.config"] == base
    assert recipe(replace(config, pretrain=replace(config.pretrain, progress=True, seed=3)))["recipe.config"] == base
    assert recipe(replace(config, write_noise_us=5))["recipe.config"] == base  # 5 and 5.0: one setting
    # review (session 31): the other steps' seeds are settings (the demo runs them as given: their shuffle order)
    assert recipe(replace(config, enroll=replace(config.enroll, seed=5)))["recipe.config"] != base
    assert recipe(replace(config, unlearn=replace(config.unlearn, train=replace(config.unlearn.train, seed=5))))["recipe.config"] != base


def test_demo_runs_every_stage_on_a_tiny_set(demo_run):
    report, tmp_path = demo_run
    json.dumps(report)  # JSON-ready

    def refuse(constant):
        raise ValueError(f"report.json holds {constant}, which strict JSON readers refuse")

    saved = json.loads((tmp_path / "report.json").read_text(), parse_constant=refuse)
    assert saved["code.digest"] == code_digest() and len(saved["recipe.config"]) == 16  # which code, which settings
    assert saved["code.torch"] == torch.__version__ and saved["code.noise_stream"].startswith(("compiled", "torch.randn"))
    assert saved["code.numpy"] == np.__version__ and saved["code.scikit-learn"] == sklearn.__version__
    assert saved["code.h5py"] == h5py.__version__  # what read the data file
    assert saved["baseline_retrain.lr"] == 5e-3  # the gold standard's rate (a smoke run has one candidate)
    assert saved["revoke.membership.null_sd"] is None  # fewer than 3 reference models: not measured, null
    # the recipe run is in the report: this one's smoke-run pretraining beside the revocation's full budget
    assert (report["recipe.pretrain_epochs"], report["recipe.pretrain_min_steps"], report["recipe.audit_shadows"]) == (2, 0, 1)
    assert report["recipe.unlearn_min_steps"] == UnlearnConfig().train.min_steps > 0
    for key in KEYS:
        assert key in report and not (isinstance(report[key], float) and math.isnan(report[key])), key
    assert report["deploy.write_pulses"] > 0 and report["deploy.write_energy_j"] > 0
    assert report["energy.write_energy_ratio"] > 1  # rewriting the array costs more than an SRAM branch
    assert report["energy.training_cost_ratio"] > 1
    assert all(report[f"energy.training_j.{stage}"] > 0 and report[f"energy.training_steps.{stage}"] > 0
               for stage in TRAINING_STAGES)
    assert report["energy.gpu_nvml"].startswith(("skipped", "measured"))
    # the erasure worked: the attack that reads the old voice off the original model finds nothing after it
    assert report["revoke.original.branch_off_accuracy"] >= 0.9 and report["revoke.erase.branch_off_accuracy"] <= 0.1
    assert (tmp_path / "state" / "CURRENT").is_file()
    assert report["pretrain.lr"] == 5e-3
    smoke = fast(DemoConfig())
    assert smoke.pretrain.lr_candidates == ()  # a smoke run makes no choice among rates ...
    for stage in (smoke.pretrain, smoke.enroll, smoke.restore, smoke.unlearn.train):  # ... and has no step budget
        assert stage.epochs <= 2 and stage.min_steps == 0, stage
    assert report["baseline_linear.accuracy"] > 0.9  # the synthetic speakers are linearly separable
    assert report["pretrain.margin_over_linear"] == report["pretrain.accuracy"] - report["baseline_linear.accuracy"]
    assert report["revoke.erase.retain_change"] == report["revoke.erase.retain_accuracy"] - report["revoke.retain_before"]
    for mode in ("erase", "suspend"):  # the retained speakers after revocation against their own digital accuracy
        assert report[f"revoke.{mode}.retain_change_from_pretrain"] == (report[f"revoke.{mode}.retain_accuracy"]
                                                                         - report["pretrain.retain_accuracy"])
    assert 0 < report["pretrain.retain_accuracy"] <= 1
    # masking the revoked voice's score can only remove mistakes: the like-for-like reference is never lower
    assert report["pretrain.retain_accuracy"] <= report["pretrain.retain_accuracy_masked"] <= 1
    for mode in ("erase", "suspend"):
        assert report[f"revoke.{mode}.retain_change_from_masked_pretrain"] == (
            report[f"revoke.{mode}.retain_accuracy"] - report["pretrain.retain_accuracy_masked"])
    lo, hi = report["verify.eer_ci"]
    assert 0 <= lo <= report["verify.eer"] <= hi <= 1 and 0 <= report["verify.min_dcf"] <= 1
    lo, hi = report["verify.snorm.eer_ci"]  # the same trials, s-normed against the holdout buffer
    assert 0 <= lo <= report["verify.snorm.eer"] <= hi <= 1 and 0 <= report["verify.snorm.min_dcf"] <= 1
    table = (tmp_path / "report.md").read_text()
    assert (tmp_path / "det.png").stat().st_size > 0 and "minDCF" in table
    erase_row = next(line for line in table.splitlines() if line.startswith("| erase |"))  # the attack beside its control
    assert f"| {report['revoke.erase.branch_off_auc']:.3f} | {report['revoke.erase.branch_off_auc_zero_row']:.3f} |" in erase_row


STAGES = ("deploy", "revoke", "enroll", "restore")
READOUTS = ("ideal", "realistic", "compensated_global", "compensated_column", "compensated_offset")


def test_demo_reports_both_readouts_the_schedule_and_repair_net_of_a_control(demo_run):
    report, _ = demo_run
    assert report["readout"]["read_noise"] and report["readout"]["adc_bits"] == 8 and not report["readout"]["is_ideal"]
    assert report["device_preset"] == "taox_1t1r"
    assert report["schedule"] == {"deploy_s": 0.0, "revoke_s": 86400.0, "enroll_s": 604800.0, "restore_s": 2592000.0}
    for stage in STAGES:
        for readout in READOUTS:
            assert 0.5 <= report[f"{stage}.readout.{readout}"] <= 1, (stage, readout)  # 4 easy speakers: far above chance
            if stage != "deploy":  # the array alone, every branch off: the drift-compensation figures
                assert 0 <= report[f"{stage}.array.{readout}"] <= 1, (stage, readout)
    # at 0 s a gain compensation is exactly 1, and every periphery reads the same draws: no sampling difference
    assert report["deploy.readout.realistic"] == report["deploy.readout.compensated_global"]
    assert report["deploy.readout.realistic"] == report["deploy.readout.compensated_column"]
    for mode in ("", "global.", "column.", "offset."):  # the drift that compensation is for, measured at deploy
        for t in ("3600s", "86400s", "1e+06s"):
            assert 0 <= report[f"deploy.drift_accuracy.{mode}{t}"] <= 1, (mode, t)
    assert report["restore.repair"] == report["restore.accuracy"] - report["restore.control_accuracy"]
    assert report["restore.net_repair"] == pytest.approx((report["restore.accuracy"] - report["restore.noisy_accuracy"])
                                                         - (report["restore.control_accuracy"] - report["restore.clean_accuracy"]))
    assert 0.5 <= report["restore.control_accuracy"] <= 1


def test_demo_ideal_switch_reads_without_periphery_and_still_reports_realistic(tiny_speech):
    data = _tiny(tiny_speech)
    config = fast(DemoConfig(pretrain=TrainConfig(epochs=6, lr=5e-3, batch_size=32), crossbar=CrossbarConfig.ideal()))
    report = run_speaker_demo(data, config, progress=False)
    assert report["readout"]["is_ideal"] and report["readout"]["adc_bits"] is None
    assert report["deploy.readout.ideal"] == report["deploy.accuracy"]  # the ideal readout is noise-free: the same pass
    assert 0.5 <= report["deploy.readout.realistic"] <= 1


def test_demo_over_seeds_reports_mean_sd_and_interval(tiny_speech, tmp_path, monkeypatch):
    from neuro_rm.learning import attacks, train
    from neuro_rm.models.heads import GrowableHead
    from neuro_rm.tasks import speaker
    from neuro_rm.tasks.speaker import run_speaker_demo_seeds

    shuffles, optimize = [], train.optimize
    rows, grow, reset = [], GrowableHead.grow, GrowableHead.reset_rows
    models, train_model = [], speaker.train_speaker_model
    picks, relearn = [], attacks.relearn

    def seen(params, batch_loss, n_samples, config, *args, **kwargs):
        shuffles.append((kwargs.get("description", args[-1] if args else ""), config.seed))
        return optimize(params, batch_loss, n_samples, config, *args, **kwargs)

    def grown(head, n_new=1, seed=0):
        rows.append(("grow", seed))
        return grow(head, n_new, seed)

    def reset_(head, which, seed=0):
        rows.append(("reset", seed))
        return reset(head, which, seed)

    def trained(data, classes, rsnn, pretrain, seed, device=None, description="train", *args, **kwargs):
        models.append((description, seed))
        return train_model(data, classes, rsnn, pretrain, seed, device, description, *args, **kwargs)

    def relearnt(model, recordings, *args, **kwargs):
        picks.append(round(float(recordings.sum()), 3))  # which of the voice's recordings the attacker drew
        return relearn(model, recordings, *args, **kwargs)

    monkeypatch.setattr(train, "optimize", seen)
    monkeypatch.setattr(attacks, "relearn", relearnt)
    monkeypatch.setattr(GrowableHead, "grow", grown)
    monkeypatch.setattr(GrowableHead, "reset_rows", reset_)
    monkeypatch.setattr(speaker, "train_speaker_model", trained)
    data = _tiny(tiny_speech)
    config = fast(DemoConfig(pretrain=TrainConfig(epochs=3, lr=5e-3, batch_size=32), seed=5))
    # two of each of the audit's models and draws, as the default's three: neighbouring seeds must not share any
    config = replace(config, audit=replace(config.audit, shadows=2, references=2, relearn_seeds=2))
    report = run_speaker_demo_seeds(data, config, 2, out_dir=tmp_path, progress=False)
    # review (session 31): each seed's revocation (branch and re-learnt rows), enrolment and restore shuffle by that
    # seed, so the sd over seeds holds their variance too (they all shuffled by 0 in every seed before)
    lifecycle = [seed for what, seed in shuffles if what.startswith(("revoke", "erase", "enroll", "restore", "baseline: full"))]
    assert {what.split()[0] for what, _ in shuffles} >= {"revoke", "erase", "erase:", "enroll", "restore"}
    assert set(lifecycle) == {5, 6} and lifecycle == sorted(lifecycle)
    # review (session 34): the rows the lifecycle and the attack draw (the erasure's re-learnt rows, the enrolled
    # speaker's row, the relearning attacker's row) and the attack's shadow and reference models follow it too
    halves = len(rows) // 2, len(models) // 2
    assert {s for _, s in rows[: halves[0]]}.isdisjoint(s for _, s in rows[halves[0]:]), rows
    seeds = [seed for _, seed in models]
    assert set(seeds[: halves[1]]).isdisjoint(seeds[halves[1]:]) and len(set(seeds)) == len(seeds), models
    pretrained = {seed for what, seed in shuffles if what == "pretrain"}
    shadows = {seed for what, seed in models if what.startswith("shadow")}
    assert pretrained == {5, 6} and len(shadows) == 2 * 6 and shadows.isdisjoint(pretrained)
    assert shadows.isdisjoint(seed for what, seed in models if not what.startswith("shadow"))  # no shadow is a target
    assert picks[: len(picks) // 2] != picks[len(picks) // 2:], picks  # the attacker's recordings too
    json.dumps(report)
    assert report["seeds"] == [5, 6]
    for key in ("pretrain.accuracy", "revoke.retain_accuracy", "verify.eer", "baseline_linear.accuracy"):
        lo, hi = report[f"{key}.ci95"]
        assert lo <= report[f"{key}.mean"] <= hi and report[f"{key}.sd"] >= 0, key
    runs = [json.loads((tmp_path / f"seed_{s}" / "report.json").read_text()) for s in (5, 6)]
    assert report["verify.eer.mean"] == (runs[0]["verify.eer"] + runs[1]["verify.eer"]) / 2
    assert runs[0]["deploy.write_pulses"] != runs[1]["deploy.write_pulses"]  # each run has its own seed
    # the recipe's digest is the configured one in every seed, so a set run in parts pools (sets_table)
    assert runs[0]["recipe.config"] == runs[1]["recipe.config"] == recipe(config)["recipe.config"]
    assert "± " in (tmp_path / "report.md").read_text()


def test_the_attacks_own_models_are_read_as_the_audited_array(tiny_speech):
    """Shadow, reference and retrained models of the audit take the periphery of the array they are compared
    with (``--ideal``, ``--compensation``), not the default one."""
    from neuro_rm.device import DeviceConfig
    from neuro_rm.models.rsnn import RSNNConfig
    from neuro_rm.readout import readout_of
    from neuro_rm.tasks.speaker import train_speaker_model

    data = _tiny(tiny_speech)
    rsnn, quick = RSNNConfig(n_inputs=20, n_hidden=16, n_outputs=4), TrainConfig(epochs=1, lr=5e-3, batch_size=32)
    for readout in (CrossbarConfig(drift_compensation="offset"), CrossbarConfig.ideal()):
        model, _ = train_speaker_model(data, [0, 1], rsnn, quick, 0, DeviceConfig(), crossbar=readout)
        assert readout_of(model) == readout
    assert readout_of(train_speaker_model(data, [0, 1], rsnn, quick, 0, DeviceConfig())[0]) == CrossbarConfig()


class _Reached(Exception):
    """Raised by a spy where the baseline would start training: the depth is read, nothing is trained."""


@pytest.mark.parametrize(("named", "depth"), [(None, "erase"), (0.25, 0.25), (0.0, 0.0)])  # 0 is a depth, not "unset"
def test_the_full_fine_tune_baseline_trains_at_erasures_depth_or_the_one_named(tiny_speech, monkeypatch, named, depth):
    """The baseline is what erasure is compared with, so it chases erasure's target (session 37), not the mask's."""
    from neuro_rm.learning.erase import ERASE_IMPOSTOR_SD
    from neuro_rm.learning.unlearn import MASK_IMPOSTOR_SD
    from neuro_rm.tasks import speaker

    assert ERASE_IMPOSTOR_SD != MASK_IMPOSTOR_SD  # else the test could not tell the two apart
    seen = []

    def spy(*args, **kwargs):
        seen.append(args[6].impostor_sd)
        raise _Reached

    monkeypatch.setattr(speaker, "unlearn", spy)
    task = speaker.SpeakerTask(_tiny(tiny_speech), replace(DemoConfig(), unlearn=UnlearnConfig(impostor_sd=named)))
    model = torch.nn.Linear(2, 2)
    with pytest.raises(_Reached):
        task.finetune_all(model, list(model.parameters()))
    assert seen == [ERASE_IMPOSTOR_SD if depth == "erase" else depth]
