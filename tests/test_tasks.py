"""The shared lifecycle runner: a fourth task is one small class, and the runner does the rest."""

import copy

import pytest
import torch
from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.device import DeviceConfig
from neuro_rm.energy import Ledger
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.loop import TrainConfig
from neuro_rm.learning.report import accuracy_on
from neuro_rm.learning.train import fit_classifier
from neuro_rm.learning.unlearn import UnlearnConfig, unlearn
from neuro_rm.lora import AdapterConfig
from neuro_rm.tasks.runner import BASELINE, Task, commit_branch, run_lifecycle

QUICK = TrainConfig(epochs=15, lr=2e-2, batch_size=32)
FORGET = UnlearnConfig(method="ascent", train=TrainConfig(epochs=10, lr=2e-2, batch_size=32))


def blobs(n: int, seed: int) -> LabelledSet:
    """Four Gaussian blobs in 8 dimensions: a task any small network learns in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(4).repeat(n)
    centres = torch.eye(4, 8) * 3
    return LabelledSet(centres[y] + torch.randn(len(y), 8, generator=g) * 0.5, y)


class ToyTask(Task):
    """Pretrain an MLP on four classes, deploy it, forget class 1 with a LoRA branch."""

    stages = ("pretrain", "deploy", "revoke", BASELINE)
    loops = {"pretrain": "pretrain", "revoke": "revoke", "baseline_full": "baseline: full", "baseline_retrain": "retrain"}

    def __init__(self) -> None:
        super().__init__()
        self.train, self.val, self.test = blobs(40, 0), blobs(10, 1), blobs(10, 2)
        self.keep = [0, 2, 3]

    def pretrain(self) -> None:
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        fit_classifier(self.model, self.train, self.val, QUICK)
        self.digital = copy.deepcopy(self.model)

    def deploy(self) -> None:
        self.ledger = Ledger()
        hybrid.analogize(self.model, DeviceConfig(), targets=["0"], crossbar=CrossbarConfig.ideal(), ledger=self.ledger)
        self.snapshot = copy.deepcopy(self.model)

    def revoke(self) -> None:
        params = hybrid.add_adapter(self.model, "revoke", AdapterConfig(rank=2, alpha=4.0))
        hybrid.set_adapter(self.model, "revoke")
        steps = self.finetune_all(self.model, params, "revoke")
        self.report["revoke.write_bits"] = hybrid.commit_adapter(self.model, "revoke", "depress")
        self.report["revoke.write_energy_j"] = self.report["revoke.write_bits"] * self.ledger.energy.sram_write_bit_j
        self.report["revoke.trainable_params"] = sum(p.numel() for p in params)
        self.report["revoke.steps"] = steps
        self.measure("revoke", self.model)

    def finetune_all(self, model: nn.Module, params: list, description: str = "baseline: full fine-tune") -> int:
        return unlearn(model, params, [1], self.train, self.val, self.keep, FORGET, description).steps

    def retrain(self) -> nn.Module:
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        fit_classifier(model, self.train.of_classes(self.keep), self.val.of_classes(self.keep), QUICK, description="retrain")
        return model

    def measure(self, prefix: str, model: nn.Module) -> None:
        self.report[f"{prefix}.forget_accuracy"] = accuracy_on(model, self.test.of_classes([1]))
        self.report[f"{prefix}.retain_accuracy"] = accuracy_on(model, self.test.of_classes(self.keep))

    def inference(self) -> tuple:
        return self.model, self.test.x, self.digital


def test_a_fourth_task_runs_the_whole_lifecycle_through_the_runner():
    report = run_lifecycle(ToyTask(), progress=False)
    assert set(f"seconds.{s}" for s in ("pretrain", "deploy", "revoke", "baseline")) <= set(report)
    assert report["revoke.forget_accuracy"] < 0.3 < 0.9 < report["revoke.retain_accuracy"]  # the LoRA step forgot
    for baseline in ("baseline_full", "baseline_retrain"):  # both baselines ran and were judged
        assert report[f"{baseline}.forget_accuracy"] < 0.3 and report[f"{baseline}.retain_accuracy"] > 0.9
    assert report["baseline_full.write_pulses"] > 0 and report["baseline_full.trainable_params"] == 8 * 16 + 16 + 16 * 4 + 4
    assert report["energy.training_cost_ratio"] == report["baseline_full.trainable_params"] / report["revoke.trainable_params"]
    assert report["energy.write_energy_ratio"] > 1  # rewriting the cells costs more than writing the branch to SRAM
    assert report["energy.training_steps.revoke"] == report["revoke.steps"]


def test_the_runner_refuses_a_task_without_its_lora_step():
    """Positive control of the energy keys: a task that never ran its LoRA step cannot produce ratios."""
    task = ToyTask()
    task.stages = ("pretrain", "deploy")
    with pytest.raises(KeyError, match="baseline_full.trainable_params"):
        run_lifecycle(task, progress=False)


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
