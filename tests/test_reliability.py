import copy

import pytest
import torch

from neuro_rm import layers as hybrid
from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.device import DeviceConfig
from neuro_rm.learning import TrainConfig, accuracy, predict_logits
from neuro_rm.models import RSNNConfig
from neuro_rm.reliability import Fault, endurance_budget, fault_sweep, preset_sweeps


@pytest.fixture(scope="module")
def deployed(tiny_speech):
    train, val = tiny_speech["train"], tiny_speech["val"]
    auth, _ = SpeakerAuthenticator.pretrain(
        ["ann", "bob", "cy", "dee"], train, val, RSNNConfig(n_inputs=20, n_hidden=32, n_outputs=4),
        TrainConfig(epochs=8, lr=5e-3, batch_size=32),
    )
    auth.deploy()
    return auth


def test_each_fault_changes_the_cells(deployed):
    for fault in (Fault("stuck", 0.1), Fault("write_noise", 3.0), Fault("drift", 1e6), Fault("worn", 0.1)):
        model = copy.deepcopy(deployed.model)
        before = model.fc_in.effective_weight().clone()
        fault.apply(model)
        assert not torch.equal(before, model.fc_in.effective_weight()), fault
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("melted", 1.0).apply(copy.deepcopy(deployed.model))


def test_worn_cells_ignore_refresh(deployed):
    model = copy.deepcopy(deployed.model)
    Fault("worn", 0.2).apply(model)
    cells = model.fc_in.crossbar.cells
    assert cells.stuck.float().mean() > 0.15  # at endurance → stuck
    frozen = cells.conductance()[cells.stuck].clone()
    hybrid.reprogram(model)
    assert torch.equal(cells.conductance()[cells.stuck], frozen)


def test_restore_recovers_from_heavy_faults(deployed, tiny_speech):
    test = tiny_speech["test"]
    sweep = fault_sweep(deployed, test, [Fault("stuck", 0.3), Fault("write_noise", 15.0)],
                        TrainConfig(epochs=10, lr=5e-3, batch_size=32))
    assert sweep["clean_accuracy"] == accuracy(predict_logits(deployed.model, test.x), test.y)  # auth untouched
    for row in sweep["rows"]:
        assert row["restored_accuracy"] >= row["accuracy"]
        assert row["repair"] == pytest.approx(row["restored_accuracy"] - sweep["control_accuracy"])
        gained, healthy_gain = row["restored_accuracy"] - row["accuracy"], sweep["control_accuracy"] - sweep["clean_accuracy"]
        assert row["net_repair"] == pytest.approx(gained - healthy_gain)
    assert any(row["restored_accuracy"] > row["accuracy"] for row in sweep["rows"])
    assert 0 <= sweep["control_accuracy"] <= 1


def test_the_sweep_runs_on_each_preset_from_a_trained_state_with_its_control(deployed, tiny_speech):
    train, val = tiny_speech["train"], tiny_speech["val"]
    undeployed, _ = SpeakerAuthenticator.pretrain(
        ["ann", "bob", "cy", "dee"], train, val, RSNNConfig(n_inputs=20, n_hidden=32, n_outputs=4),
        TrainConfig(epochs=4, lr=5e-3, batch_size=32),
    )
    quick = TrainConfig(epochs=1, lr=5e-3, batch_size=32)
    sweeps = preset_sweeps(undeployed, tiny_speech["test"], ["taox_1t1r", "hfox_cmo"], faults=[Fault("drift", 1e6)],
                           restore=quick)
    assert list(sweeps) == ["taox_1t1r", "hfox_cmo"] and not undeployed.deployed  # deployed on copies only
    for sweep in sweeps.values():
        row = sweep["rows"][0]
        assert 0 <= sweep["control_accuracy"] <= 1 and row["repair"] == row["restored_accuracy"] - sweep["control_accuracy"]
    with pytest.raises(ValueError, match="deployed on taox_1t1r"):
        preset_sweeps(deployed, tiny_speech["test"], ["hfox_cmo"], faults=[], restore=quick)
    with pytest.raises(ValueError, match="unknown device preset"):
        preset_sweeps(undeployed, tiny_speech["test"], ["nope"])


def test_endurance_budget_from_recorded_wear(deployed):
    model = copy.deepcopy(deployed.model)
    weights = {name: -layer.effective_weight() for name, layer in hybrid.hybrid_layers(model)}
    results = hybrid.reprogram(model, weights)
    budget = endurance_budget(results, DeviceConfig().endurance_cycles)
    worst = max(int(r.pulses.max()) for r in results)
    assert budget["full_reprogram_ops_until_first_worn_cell"] == 30_000 // worst
    assert budget["full_reprogram_ops_until_1pct_worn"] >= budget["full_reprogram_ops_until_first_worn_cell"]
    assert budget["lora_rm_cycles_per_op"] == 0
