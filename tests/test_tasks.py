"""The shared lifecycle runner: a fourth task is one small class, and the runner does the rest."""

import copy
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm import work
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.device import DeviceConfig
from neuro_rm.energy import DEFAULT_NODE, Ledger
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.loop import TrainConfig
from neuro_rm.learning.metrics import predict_logits
from neuro_rm.learning.report import accuracy_on
from neuro_rm.learning.train import fit_classifier
from neuro_rm.learning.unlearn import UnlearnConfig, unlearn
from neuro_rm.lora import AdapterConfig
from neuro_rm.tasks import runner
from neuro_rm.tasks.runner import BASELINE, Task, commit_branch, n_params, run_lifecycle, write_report

QUICK = TrainConfig(epochs=15, lr=2e-2, batch_size=32)
FORGET = UnlearnConfig(method="ascent", train=TrainConfig(epochs=10, lr=2e-2, batch_size=32))


def blobs(n: int, seed: int) -> LabelledSet:
    """Four Gaussian blobs in 8 dimensions: a task any small network learns in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(4).repeat(n)
    centres = torch.eye(4, 8) * 3
    return LabelledSet(centres[y] + torch.randn(len(y), 8, generator=g) * 0.5, y)


def mlp() -> nn.Module:
    """Its first layer goes into the array; the digital tail holds over 8 KB, so the SRAM is sized above its floor."""
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 4))


class ToyTask(Task):
    """Pretrain an MLP on four classes, deploy its first layer, forget class 1 with a LoRA branch; the baselines
    run in the revoke stage's timing group, the retrained network is written into the array as deployed."""

    stages = ("pretrain", "deploy", ("revoke", BASELINE))
    timing = "nested"
    loops = {"pretrain": "pretrain", "revoke": "revoke", "baseline_full": "baseline: full", "baseline_retrain": "retrain"}

    def __init__(self) -> None:
        super().__init__()
        self.train, self.val, self.test = blobs(40, 0), blobs(10, 1), blobs(10, 2)
        self.keep = [0, 2, 3]
        self.measured: dict[str, nn.Module] = {}  # what each measure() call judged
        self.finetuned: nn.Module | None = None  # the full baseline's digital network, and its steps
        self.full_steps = 0

    def pretrain(self) -> None:
        torch.manual_seed(0)
        self.model = mlp()
        fit_classifier(self.model, self.train, self.val, QUICK)
        self.digital = copy.deepcopy(self.model)
        self.pretrained = copy.deepcopy(self.model.state_dict())

    def deploy(self) -> None:
        self.ledger = Ledger()
        hybrid.analogize(self.model, DeviceConfig(), targets=["0"], crossbar=CrossbarConfig.ideal(), ledger=self.ledger)
        self.snapshot = copy.deepcopy(self.model)
        self.deployed_weight = self.model[0].effective_weight().clone()

    def revoke(self) -> None:
        params = hybrid.add_adapter(self.model, "revoke", AdapterConfig(rank=2, alpha=4.0))
        hybrid.set_adapter(self.model, "revoke")
        steps = self.forget(self.model, params, "revoke")
        self.report["revoke.trainable_params"] = n_params(params)
        self.report["revoke.steps"] = steps
        commit_branch(self, self.model, "revoke", "revoke", "depress", n_params(params), steps)
        self.measure("revoke", self.model)

    def forget(self, model: nn.Module, params: list, description: str) -> int:
        return unlearn(model, params, [1], self.train, self.val, self.keep, FORGET, description).steps

    def finetune_all(self, model: nn.Module, params: list) -> int:
        self.finetuned = model
        self.full_steps = self.forget(model, params, "baseline: full fine-tune")
        return self.full_steps

    def retrain(self) -> nn.Module:
        torch.manual_seed(1)
        model = mlp()
        fit_classifier(model, self.train.of_classes(self.keep), self.val.of_classes(self.keep), QUICK, description="retrain")
        return model

    def retrain_array(self) -> nn.Module:
        return self.snapshot

    def measure(self, prefix: str, model: nn.Module) -> None:
        self.measured[prefix] = model
        self.report[f"{prefix}.forget_accuracy"] = accuracy_on(model, self.test.of_classes([1]))
        self.report[f"{prefix}.retain_accuracy"] = accuracy_on(model, self.test.of_classes(self.keep))

    def inference(self) -> tuple:
        return None, self.test.x, self.digital  # the pass is the task's own (inference_work)

    def inference_work(self) -> work.PassWork:
        return work.measure(lambda: predict_logits(self.model, self.test.x))

    def energy_extras(self) -> dict[str, object]:
        return {"energy.toy.full_rewrite_pulses": self.full_ledger.count("write.rm_pulse")}


def test_a_fourth_task_runs_the_whole_lifecycle_through_the_runner(tmp_path):
    task = ToyTask()
    report = run_lifecycle(task, progress=False)
    assert set(report["seconds_per_stage"]) == {"pretrain", "deploy", "revoke"}  # nested timing, one key per group
    assert not any(key.startswith("seconds.") for key in report)
    assert report["revoke.forget_accuracy"] < 0.3 < 0.9 < report["revoke.retain_accuracy"]  # the LoRA step forgot
    for baseline in ("baseline_full", "baseline_retrain"):  # both baselines ran (the tuple stage), were judged
        assert report[f"{baseline}.forget_accuracy"] < 0.3 and report[f"{baseline}.retain_accuracy"] > 0.9
        assert report[f"{baseline}.write_pulses"] > 0  # ... on the array they were written into
        judged = task.measured[baseline]
        assert isinstance(judged[0], hybrid.HybridLayer) and judged[0] is not task.snapshot[0]
    assert torch.equal(task.snapshot[0].effective_weight(), task.deployed_weight)  # the array as deployed, kept
    # the full baseline is judged on the rewritten array: the cells hold the fine-tuned weights, not the deployed ones
    full, tuned = task.measured["baseline_full"], task.finetuned
    assert (full[0].effective_weight() - tuned[0].weight).abs().max() < (task.deployed_weight - tuned[0].weight).abs().max() / 2
    assert torch.equal(full[2].weight, tuned[2].weight) and torch.equal(full[4].bias, tuned[4].bias)  # digital tail copied
    pretrained = task.digital.state_dict()  # the baseline fine-tuned a copy: the pretrained network is intact
    assert all(torch.equal(pretrained[key], value) for key, value in task.pretrained.items())
    assert report["baseline_full.write_pulses"] > 0 and report["baseline_full.trainable_params"] == n_params(mlp())
    # training charged: the LoRA step through commit_branch to the task's ledger, the full fine-tune to its own
    assert task.ledger.count("train.updates") == report["revoke.trainable_params"] * report["revoke.steps"]
    assert task.full_ledger.count("train.updates") == n_params(mlp()) * task.full_steps > 0
    assert report["revoke.write_bits"] == task.ledger.count("write.sram") > 0
    assert report["revoke.write_energy_j"] == task.ledger.joules("write.sram")
    assert report["energy.training_cost_ratio"] == report["baseline_full.trainable_params"] / report["revoke.trainable_params"]
    # the headline write ratio: full reprogramming over the branch's write, both at the default node with the SRAM
    # sized to what is stored; the ledger's ratio is that of the report's own joule keys (8 KB SRAM price)
    node = f"energy.{DEFAULT_NODE}"
    assert report["energy.write_energy_ratio"] == report[f"{node}.write_j.full_reprogram"] / report[f"{node}.write_j.lora"]
    assert report["energy.write_energy_ratio_ledger"] == report["baseline_full.write_energy_j"] / report["revoke.write_energy_j"]
    assert report["energy.write_energy_ratio"] != report["energy.write_energy_ratio_ledger"]  # the toy tells them apart
    assert report["energy.write_energy_ratio"] > 1 and report["energy.write_energy_ratio_ledger"] > 1  # cells cost more
    assert report["energy.training_steps.revoke"] == report["revoke.steps"]
    assert report["energy.toy.full_rewrite_pulses"] == report["baseline_full.write_pulses"]  # the task's extras
    assert report["energy.inference_j_per_sample"]["hybrid"] > 0  # the task's own inference pass was priced
    saved = json.loads(write_report(report, tmp_path / "out" / "toy.json").read_text())
    assert saved == json.loads(json.dumps(report, default=str)) and set(saved) == set(report)


@pytest.mark.parametrize("stages, problem", [
    (("pretrain", "deploy"), "lists 'baseline' 0 times"),
    (("pretrain", "deploy", "revoke", BASELINE, BASELINE), "lists 'baseline' 2 times"),  # would rewrite the rewritten array
    (("pretrain", "deploy", ("revke", BASELINE)), r"no stage method \['revke'\]"),
])
def test_the_runner_refuses_a_stage_list_it_cannot_run(stages, problem):
    task = ToyTask()
    task.stages = stages
    with pytest.raises(ValueError, match=problem) as error:
        run_lifecycle(task, progress=False)
    assert "\n" not in str(error.value) and task.report == {}  # one line, before any stage ran


@pytest.mark.parametrize("stages, unset", [
    (("pretrain", BASELINE, "deploy", "revoke"), "snapshot, ledger, revoke.trainable_params, revoke.write_energy_j"),
    (("pretrain", "deploy", BASELINE, "revoke"), "not set yet: revoke.trainable_params, revoke.write_energy_j"),
])
def test_the_baselines_refuse_to_run_before_the_deployment_and_the_lora_step(stages, unset):
    task = ToyTask()
    task.stages, task.timing = stages, "flat"
    with pytest.raises(ValueError, match=unset) as error:
        run_lifecycle(task, progress=False)
    assert "\n" not in str(error.value) and "baseline_full.forget_accuracy" not in task.report
    assert "seconds.pretrain" in task.report and "seconds_per_stage" not in task.report  # flat timing, per stage


def test_commit_branch_refuses_a_copy_whose_layers_post_to_another_ledger():
    """A deep copy's layers post to a copy of the ledger, so its write would be priced at 0 J: refused until the
    copy posts to the task's ledger, then priced at the branch's SRAM write."""
    task = ToyTask()
    task.pretrain()
    task.deploy()
    model = copy.deepcopy(task.model)
    hybrid.add_adapter(model, "revoke", AdapterConfig(rank=2, alpha=4.0))
    with pytest.raises(ValueError, match="another ledger than task.ledger"):
        commit_branch(task, model, "revoke", "revoke", "depress", 1, 1)
    hybrid.set_ledger(model, task.ledger)
    commit_branch(task, model, "revoke", "revoke", "depress", 1, 1)
    bits = task.report["revoke.write_bits"]
    assert bits > 0 and task.report["revoke.write_energy_j"] == pytest.approx(bits * task.ledger.energy.sram_write_bit_j, rel=1e-9)


def test_every_task_hook_and_runner_helper_named_in_architecture_md_exists():
    """The new-task recipe in ARCHITECTURE.md names hooks and helpers; a renamed one fails here."""
    text = (Path(__file__).parents[1] / "ARCHITECTURE.md").read_text()
    section = text.split("## A new task", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(Task|runner)\.(\w+)`", section)
    assert len(named) >= 15  # the recipe is there and names its parts
    missing = [f"{owner}.{name}" for owner, name in named if not hasattr(Task() if owner == "Task" else runner, name)]
    assert missing == []


def test_commit_branch_charges_the_adapter_at_its_precision_and_new_rows_in_fp32():
    """What the face enrolment and the diffusion forgetting call: the branch at its storage precision, each new
    digital row (weights and bias) at fp32, both priced as SRAM writes on the task's ledger."""
    task = ToyTask()
    task.pretrain()
    task.deploy()
    params = hybrid.add_adapter(task.model, "enroll", AdapterConfig(rank=2, precision="int8"))
    sram_before = task.ledger.count("write.sram")
    commit_branch(task, task.model, "enroll", "enroll", "potentiate", 99, 5, rows=(1, 16 + 1), row_note="readout row")
    written = sum(p.numel() for p in params) * 8 + 1 * (16 + 1) * 32  # int8 branch, one fp32 row with its bias
    assert task.report["enroll.write_bits"] == written
    assert task.ledger.count("write.sram") - sram_before == written
    assert task.report["enroll.write_energy_j"] == pytest.approx(written * task.ledger.energy.sram_write_bit_j, rel=1e-12)


class CalibratedToyTask(ToyTask):
    """The toy task on a realistic array (ADCs that need a calibrated full scale), calibrated on training inputs."""

    def deploy(self) -> None:
        self.ledger = Ledger()
        hybrid.analogize(self.model, DeviceConfig(), targets=["0"], crossbar=CrossbarConfig(), ledger=self.ledger)
        hybrid.calibrate(self.model, self.train.x)
        self.snapshot = copy.deepcopy(self.model)
        self.deployed_weight = self.model[0].effective_weight().clone()
        self.full_scale_at_measure: dict[str, torch.Tensor] = {}

    def calibration_batch(self) -> torch.Tensor:
        return self.train.x

    def measure(self, prefix: str, model: nn.Module) -> None:
        self.full_scale_at_measure[prefix] = model[0].crossbar.adc_full_scale.clone()
        super().measure(prefix, model)


def test_a_rewritten_array_is_calibrated_on_training_inputs_before_it_is_judged():
    """Rewriting an array clears its ADC full scale; judged uncalibrated, it would calibrate on the first test
    batch (in the face task: the forgotten person's two photos, and retained accuracy fell to 57.5 %)."""
    task = CalibratedToyTask()
    for stage in ("pretrain", "deploy", "revoke"):
        getattr(task, stage)()
    runner.full_finetune_baseline(task)
    runner.retrain_baseline(task)
    for prefix, model in (("baseline_full", task.rewritten), ("baseline_retrain", task.retrained)):
        reference = copy.deepcopy(model)
        hybrid.calibrate(reference, task.train.x)
        assert torch.equal(task.full_scale_at_measure[prefix], reference[0].crossbar.adc_full_scale), prefix
