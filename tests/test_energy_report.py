"""Energy figures from counted work: node presets, training joules, DAC and row charges, GPU baselines."""

import dataclasses
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from neuro_rm import energy_report, work
from neuro_rm import layers as L
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.energy import (
    ADAM_MACS,
    CMOS_FIELDS,
    NODES,
    SUPPLY_FIELDS,
    EnergyModel,
    Ledger,
    sram_size_factor,
)
from neuro_rm.learning.loop import TrainConfig, optimize
from neuro_rm.lora import AdapterConfig
from neuro_rm.models.diffusion import ScheduleConfig

# Constants set by device physics or a datasheet, not by the chip's CMOS node.
NOT_CMOS = {"rm_write_pulse_j", "rm_write_pulse_s", "rm_cell_read_j", "rm_read_s", "adc_bits", "gpu_mac_j", "node",
            "verify_decisions", "verify_sensing", "sram_bytes"}


def _on(model, name, **config):
    """Add adapter ``name`` and switch it on (adding alone does not activate it)."""
    params = L.add_adapter(model, name, AdapterConfig(**config))
    L.activate_adapter(model, name)
    return params


def _model(seed=0):
    torch.manual_seed(seed)
    return L.analogize(nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)))


def _train(model, params, n_samples, batch, epochs=1):
    x, y = torch.rand(n_samples, 12), torch.randint(0, 3, (n_samples,))
    loss = lambda idx: nn.functional.cross_entropy(model(x[idx]), y[idx])  # noqa: E731
    with work.WorkMeter() as meter:
        optimize(params, loss, n_samples, TrainConfig(epochs=epochs, batch_size=batch), description="stage")
    (record,) = meter.records
    return record


def _train_and_evaluate(model, params, n_samples, batch, epochs=2):
    """A loop with a validation pass after every epoch (as the lifecycle's model selection does)."""
    x, y = torch.rand(n_samples, 12), torch.randint(0, 3, (n_samples,))
    loss = lambda idx: nn.functional.cross_entropy(model(x[idx]), y[idx])  # noqa: E731

    def evaluate(epoch):
        with torch.no_grad():
            model(x[:5])

    with work.WorkMeter() as meter:
        optimize(params, loss, n_samples, TrainConfig(epochs=epochs, batch_size=batch), evaluate, description="stage")
    (record,) = meter.records
    return record


def _train_ledger(part, energy):
    """One pass's training joules, priced through the same ledger calls as inference."""
    ledger = Ledger(energy)
    L.post_inference(ledger, part.hybrid, "hybrid", extra_digital_macs=part.digital_macs, phase="train")
    ledger.post_inference(sram_bits_read=part.digital_sram_bits, phase="train")
    return ledger.joules("train")


def test_training_joules_are_forward_plus_backward_plus_evaluation_plus_adam():
    model = nn.Sequential(_model(), nn.Linear(3, 3))  # arrays with a branch, and a digital head that trains
    params = [*_on(model, "a", rank=2), *model[1].parameters()]
    record = _train_and_evaluate(model, params, 32, 8)
    assert record.steps == 8 and record.evaluation.calls == 2 and record.forward.calls == 8
    energy = replace(EnergyModel(), sram_bytes=record.sram_bytes)
    backward = work.backward_of(record.forward, error_bits=energy.adc_bits)
    assert backward.hybrid.dac_by_bits == {8: record.forward.hybrid.analog.adc_conversions}  # errors enter 8-bit
    updates = record.optimizer_updates
    adam = updates * 4 * 32 * (energy.sram_read_bit_j + energy.sram_write_bit_j) + updates * 8 * energy.mac_fp32_j
    parts = [_train_ledger(p, energy) for p in (record.forward, backward, record.evaluation)]
    assert all(p > 0 for p in parts)
    assert math.isclose(energy_report.chip_training_j(record, EnergyModel()), math.fsum([*parts, adam]))
    ledger = Ledger(energy)
    ledger.post_optimizer(updates)
    assert ledger.count("train.sram_write") == ledger.count("train.sram_read") == updates * 128


def test_a_cited_per_launch_gpu_figure_is_charged_per_step_not_per_sample():
    model = _model()
    record = _train_and_evaluate(model, _on(model, "a", rank=2), 64, 16)
    cited = energy_report.GPU_ASSUMPTIONS["gpu_cited_b1"]
    assert "cited" in cited.source and "another network" in cited.source
    launches = 3 * record.forward.calls + record.evaluation.calls  # forward + backward per step, one per evaluation
    assert record.forward.calls == record.steps == 8
    assert math.isclose(cited.training_j(record, EnergyModel()), launches * cited.j_per_inference)
    with torch.no_grad():
        inference = work.measure(lambda: model(torch.rand(7, 12)))
    assert math.isclose(cited.inference_j(inference, EnergyModel()), 7 * cited.j_per_inference)  # batch 1: one per sample


def test_sram_is_sized_by_the_digital_weights_a_pass_reads():
    torch.manual_seed(0)
    model = L.analogize(nn.Sequential(nn.Linear(256, 256)))
    _on(model, "big", rank=16)  # 16·(256 + 256) fp32 values: 32 KB, twice Horowitz's 8 KB price per access
    with torch.no_grad():
        measured = work.measure(lambda: model(torch.rand(4, 256)))
    assert measured.stored_bits == 16 * 512 * 32
    energy = EnergyModel()
    unsized = Ledger(energy)
    L.post_inference(unsized, measured.hybrid, "hybrid", extra_digital_macs=measured.digital_macs)
    sram = measured.hybrid.sram_bits_read * energy.sram_read_j_per_bit
    assert sram > 0
    assert math.isclose(energy_report.inference_j(measured, energy, "hybrid"), unsized.joules("infer") + sram)
    x, y = torch.rand(16, 256), torch.randint(0, 3, (16,))
    with work.WorkMeter() as meter:
        optimize(L.adapter_parameters(model, "big"), lambda i: nn.functional.cross_entropy(model(x[i]), y[i]), 16,
                 TrainConfig(epochs=1, batch_size=8), description="stage")
    (record,) = meter.records
    assert record.sram_bytes == (16 * 512 * 32 + 16 * 512 * 3 * 32) / 8  # the branch, and Adam's g, m, v
    backward = work.backward_of(record.forward)

    def total(e):
        updates = record.optimizer_updates
        adam = updates * 128 * (e.sram_read_bit_j + e.sram_write_bit_j) + updates * 8 * e.mac_fp32_j
        return math.fsum([*(_train_ledger(p, e) for p in (record.forward, backward, record.evaluation)), adam])

    sized = replace(energy, sram_bytes=record.sram_bytes)
    assert math.isclose(energy_report.chip_training_j(record, energy), total(sized))
    assert total(sized) > 1.2 * total(energy)


def test_a_diffusion_sampler_is_priced_per_image():
    class Denoiser(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(4, 4)

        def forward(self, z, t, labels):
            return self.net(z.flatten(1)).view_as(z)

    torch.manual_seed(0)
    denoiser = L.analogize(Denoiser())
    schedule = ScheduleConfig(sample_steps=3, batch_size=2)
    measured = energy_report.sampling_work(denoiser, torch.arange(5), (1, 2, 2), schedule)
    assert measured.samples == 5 and measured.calls == 3 * 3  # 3 chunks of at most 2 images, 3 steps each
    assert measured.launches_per_sample == 3
    assert measured.hybrid.logical_macs == 3 * 2 * 5 * 16  # every step: conditional and null class, 4×4 MACs
    keys = energy_report.inference_keys(measured)
    cited = energy_report.GPU_ASSUMPTIONS["gpu_cited_b1"].j_per_inference
    assert math.isclose(keys["energy.gpu.gpu_cited_b1.inference_j_per_sample"], 3 * cited)
    for node in NODES:
        assert keys[f"energy.{node}.gpu_peak.inference_energy_ratio"] > 0


def test_a_control_run_beside_the_lifecycle_is_not_charged():
    model = _model()
    params = _on(model, "a")
    L.set_adapter(model, "a")
    x, y = torch.rand(32, 12), torch.randint(0, 3, (32,))
    loss = lambda idx: nn.functional.cross_entropy(model(x[idx]), y[idx])  # noqa: E731
    with work.WorkMeter() as meter:
        optimize(params, loss, 32, TrainConfig(epochs=1, batch_size=8), description="restore")
        with work.unmetered():
            optimize(params, loss, 32, TrainConfig(epochs=1, batch_size=8), description="restore")
    assert [r.description for r in meter.records] == ["restore"] and meter.records[0].steps == 4


@pytest.mark.parametrize("node", sorted(NODES))
def test_a_node_preset_scales_every_cmos_constant_by_one_factor(node):
    base, scaled = EnergyModel(), EnergyModel.for_node(node)
    factor = NODES[node].scale()
    cmos = {f.name for f in dataclasses.fields(EnergyModel)} - NOT_CMOS
    assert cmos == set(CMOS_FIELDS) | set(SUPPLY_FIELDS)  # a new CMOS constant must join a scaled set
    for name in CMOS_FIELDS:
        assert math.isclose(getattr(scaled, name), getattr(base, name) * factor), name
    for name in SUPPLY_FIELDS:  # capacitance fixed by matching or by the source's rule: V² only
        assert math.isclose(getattr(scaled, name), getattr(base, name) * (NODES[node].vdd / 0.9) ** 2), name
    for name in NOT_CMOS - {"node"}:
        assert getattr(scaled, name) == getattr(base, name), name
    assert scaled.node == node
    assert math.isclose(scaled.adc_conversion_j, base.adc_conversion_j * factor)


def test_the_180nm_preset_is_cv2_scaling():
    assert math.isclose(NODES["180nm"].scale(), (180 / 45) * (1.8 / 0.9) ** 2)
    old, base = EnergyModel.for_node("180nm"), EnergyModel()
    assert math.isclose(old.mac_fp32_j, 16 * base.mac_fp32_j)
    # a matching-limited DAC capacitor and NeuroSim's sense amplifier: V² alone, 4× from 0.9 V to 1.8 V
    assert math.isclose(old.dac_unit_j, 4 * base.dac_unit_j) and math.isclose(old.sense_amp_j, 4 * base.sense_amp_j)
    with pytest.raises(ValueError, match="node"):
        EnergyModel.for_node("7nm")


def test_write_events_reprice_under_another_node():
    ledger = Ledger()
    ledger.post_programming(pulses=10, verify_reads=30)
    ledger.post_sram_write(640)
    old = EnergyModel.for_node("180nm")
    expected = 10 * old.rm_write_pulse_j + 30 * (old.rm_cell_read_j + 2 * old.sense_amp_j) + 640 * old.sram_write_j_per_bit
    assert math.isclose(ledger.write_joules(old), expected)
    assert math.isclose(ledger.write_joules(EnergyModel()), ledger.joules("write"))


def test_training_joules_grow_with_steps():
    model = _model()
    params = _on(model, "a", rank=2)
    one, two = _train(model, params, 32, 8, epochs=1), _train(model, params, 32, 8, epochs=2)
    assert (one.steps, two.steps) == (4, 8)
    energy = EnergyModel()
    assert energy_report.chip_training_j(two, energy) > 1.9 * energy_report.chip_training_j(one, energy)
    assert two.optimizer_updates == 2 * one.optimizer_updates > 0


def test_training_joules_grow_with_batch_at_equal_steps():
    model = _model()
    params = _on(model, "a", rank=2)
    small, large = _train(model, params, 32, 8), _train(model, params, 64, 16)
    assert small.steps == large.steps == 4
    assert large.forward.samples == 2 * small.forward.samples
    assert large.forward.hybrid.analog.macs == 2 * small.forward.hybrid.analog.macs
    energy = EnergyModel()
    assert energy_report.chip_training_j(large, energy) > energy_report.chip_training_j(small, energy)


def test_no_training_posts_nothing():
    model = _model()
    with work.WorkMeter() as meter, torch.no_grad():
        model(torch.rand(5, 12))
    assert meter.records == []
    assert energy_report.chip_training_j(work.TrainingWork("idle", 0), EnergyModel()) == 0
    grouped = energy_report.stage_records(meter.records, {"revoke": "revoke"})
    assert grouped == {"revoke": []}


def test_backward_reads_the_arrays_once_more_and_trains_the_branches_twice():
    model = _model()
    params = _on(model, "a", rank=2)
    record = _train(model, params, 16, 8)
    forward, backward = record.forward, work.backward_of(record.forward)
    assert backward.hybrid.analog.macs == forward.hybrid.analog.macs
    assert backward.hybrid.analog.adc_conversions == forward.hybrid.analog.dac_conversions
    assert backward.hybrid.digital_macs["fp32"] == 2 * forward.hybrid.digital_macs["fp32"]  # input + weight gradient
    frozen = nn.Sequential(_model(), nn.Linear(3, 3))  # a digital head trains, the branch does not
    for p in _on(frozen, "b", rank=2):
        p.requires_grad_(False)
    still = _train(frozen, list(frozen[1].parameters()), 16, 8)
    back = work.backward_of(still.forward)
    assert back.hybrid.digital_macs["fp32"] == still.forward.hybrid.digital_macs["fp32"]  # input gradient only
    assert still.forward.trained_digital_macs == still.forward.digital_macs == 16 * 3 * 3
    assert back.digital_macs == 2 * still.forward.digital_macs


def test_a_frozen_branch_beside_a_training_one_gets_no_weight_gradient():
    """Two live branches in the same layers, one trained: the backward pass charges a weight gradient for the
    trained branch's MACs only (review40 F5: it used to charge every branch of a layer where one trained)."""
    model = _model()
    for p in _on(model, "old", rank=4):
        p.requires_grad_(False)
    params = _on(model, "new", rank=2)
    record = _train(model, params, 16, 8)
    forward, backward = record.forward, work.backward_of(record.forward)
    vectors = 16  # each sample passes each of the two layers once
    trained = vectors * (2 * (12 + 8) + 2 * (8 + 3))
    assert forward.hybrid.digital_macs["fp32"] == vectors * ((4 + 2) * (12 + 8) + (4 + 2) * (8 + 3))
    assert forward.trained_adapter_macs == {"fp32": trained}
    assert backward.hybrid.digital_macs["fp32"] == forward.hybrid.digital_macs["fp32"] + trained
    with L.disable_adapters(model):  # the bases alone: no branch is read, so none is charged a gradient
        bare = _train(nn.Sequential(model, nn.Linear(3, 3)), params, 16, 8)
    assert bare.forward.hybrid.digital_macs == {} and bare.forward.trained_adapter_macs == {}


def test_training_a_fused_layer_charges_the_fold_of_its_frozen_branches_once_and_no_backward_for_it():
    """A fused layer trains with its frozen branches read as one dense ΔW: the forward charges forming it
    (once: the branches do not change between steps) and one dense product per vector; the backward charges
    that product's input gradient and the trained branch's, not the forming again (review45 F2)."""
    model = _model()
    for name in ("f1", "f2", "f3"):
        for p in _on(model, name, rank=4):
            p.requires_grad_(False)
    params = _on(model, "new", rank=2)
    L.fuse_adapters(model)  # three rank-4 branches cost 240 and 132 MACs a vector one by one, 96 and 24 dense
    record = _train(model, params, 16, 8)
    forward, backward = record.forward, work.backward_of(record.forward)
    folds = 3 * 4 * (12 * 8 + 8 * 3)  # Σ B·A in each layer, formed once
    trained = 16 * (2 * (12 + 8) + 2 * (8 + 3))
    assert forward.fold_macs == {"fp32": folds}
    assert forward.hybrid.digital_macs["fp32"] == folds + 16 * (12 * 8 + 8 * 3) + trained
    assert forward.trained_adapter_macs == {"fp32": trained}
    assert backward.hybrid.digital_macs["fp32"] == forward.hybrid.digital_macs["fp32"] - folds + trained


def test_a_branch_with_one_factor_frozen_gets_the_other_factors_gradient_only():
    """Review41 F4: A frozen, B trained: the weight gradient is B's, out·r per vector, not r·(in+out)."""
    model = _model()
    params = _on(model, "b_only", rank=2)
    for p in L.adapter_parameters(model, "b_only"):
        if p.shape[0] == 2:  # A is (rank, fan_in)
            p.requires_grad_(False)
    record = _train(model, [p for p in params if p.requires_grad], 16, 8)
    assert record.forward.trained_adapter_macs == {"fp32": 16 * (8 * 2 + 3 * 2)}  # B of each layer: out × rank


def test_a_write_aware_branch_is_charged_its_dense_product():
    """Review41 F3: a write-aware branch is read as its dense ΔW: forming it (r·in·out per call) and in·out per
    vector, forward; its gradient in·out per vector and one ΔW-forming product per training factor, backward."""
    model = _model()
    params = _on(model, "e", rank=2)
    L.set_write_aware(model, "e")
    record = _train(model, params, 16, 8)
    calls, vectors = 2, 16  # two batches of 8, two layers each
    dense = vectors * (12 * 8 + 8 * 3)
    forming = calls * (2 * 12 * 8 + 2 * 8 * 3)
    assert record.forward.hybrid.digital_macs == {"fp32": dense + forming}
    assert record.forward.trained_adapter_macs == {"fp32": dense + 2 * forming}
    plain = _model()
    light = _train(plain, _on(plain, "e", rank=2), 16, 8).forward.hybrid.digital_macs["fp32"]
    assert light == vectors * (2 * (12 + 8) + 2 * (8 + 3)) < dense + forming  # read as factors it is cheaper here


def test_dac_energy_depends_on_input_bits():
    model = L.analogize(nn.Sequential(nn.Linear(16, 4)), crossbar=CrossbarConfig(dac_bits=8))
    spikes = (torch.rand(6, 16) > 0.5).float()
    graded = torch.rand(6, 16) * 3
    with torch.no_grad():
        binary = work.measure(lambda: model(spikes))
        multi = work.measure(lambda: model(graded))
    assert set(binary.hybrid.dac_by_bits) == {1} and set(multi.hybrid.dac_by_bits) == {8}
    energy = EnergyModel()
    assert energy_report.inference_j(multi, energy, "hybrid") > energy_report.inference_j(binary, energy, "hybrid")
    ledger = Ledger(energy)
    ledger.post_inference(dac_conversions={8: 10})
    assert math.isclose(ledger.joules("infer.dac"), 10 * energy.dac_unit_j * 2**8)


def test_fused_delta_w_is_charged_at_the_adapters_precision():
    for precision, bits in (("int8", 8), ("fp32", 32)):
        model = L.analogize(nn.Sequential(nn.Linear(10, 4)))
        _on(model, "a", rank=2, precision=precision)
        L.fuse_adapters(model)
        L.reset_counts(model)
        with torch.no_grad():
            model(torch.rand(3, 10))
        counts = L.collect_counts(model)
        assert counts.digital_macs == {precision: 3 * 40}
        assert counts.sram_bits_read == 3 * 40 * bits


def test_row_writes_and_adapter_bits_are_charged_the_same_way_in_every_task(tiny_speech):
    from neuro_rm.auth import SpeakerAuthenticator
    from neuro_rm.models.rsnn import RSNNConfig

    train, val = tiny_speech["train"], tiny_speech["val"]
    quick = TrainConfig(epochs=1, lr=5e-3, batch_size=32)
    auth, _ = SpeakerAuthenticator.pretrain(["ann", "bob", "cy"], train.of_classes([0, 1, 2]), val.of_classes([0, 1, 2]),
                                            RSNNConfig(n_inputs=20, n_hidden=16, n_outputs=3), quick)
    auth.deploy()
    sram_before = auth.ledger.count("write.sram")
    report = auth.enroll("dee", train.of_classes([3]).x, val.of_classes([3]).x, quick, AdapterConfig(rank=2, precision="int8"))
    adapter_bits = sum(p.numel() for p in L.adapter_parameters(auth.model, "enroll_3")) * 8  # int8: 8 bits per value
    row_bits = (auth.model.head.in_features + 1) * 32  # one readout row with its bias, fp32
    assert report.extra["write_bits"] == adapter_bits + row_bits
    assert auth.ledger.count("write.sram") - sram_before == adapter_bits + row_bits
    assert Ledger().post_row_write(1, auth.model.head.in_features + 1) == row_bits  # what face and diffusion call


def test_task_energy_keys_cover_every_node_gpu_and_stage():
    model = _model()
    params = _on(model, "a", rank=2)
    x, y = torch.rand(16, 12), torch.randint(0, 3, (16,))
    digital = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    with work.WorkMeter() as meter:
        optimize(params, lambda i: nn.functional.cross_entropy(model(x[i]), y[i]), 16, TrainConfig(epochs=1, batch_size=8),
                 description="revoke x")
        optimize(list(digital.parameters()), lambda i: nn.functional.cross_entropy(digital(x[i]), y[i]), 16,
                 TrainConfig(epochs=1, batch_size=8), description="baseline: full")
    head = nn.Linear(3, 1024)  # a digital head: 16 KB of fp32 weights, so the SRAM is sized past the 8 KB price
    with torch.no_grad():
        inference = work.measure(lambda: head(model(x)))
    lora, full = Ledger(), Ledger()
    lora.post_sram_write(100)
    full.post_programming(pulses=1000, verify_reads=3000)
    keys = energy_report.task_energy(meter.records, {"revoke": "revoke", "baseline_full": "baseline"}, inference,
                                     lora, full, "revoke", "baseline_full")
    # the SRAM holds what the deployed chip stores, and every node prices the LoRA write and training at its own node
    assert keys["energy.sram_bytes"] == inference.stored_bits / 8 > 2 * EnergyModel().sram_bytes
    revoke, baseline = meter.records
    for node in NODES:
        energy = EnergyModel.for_node(node)
        expected = 100 * energy.sram_write_j_per_bit * sram_size_factor(keys["energy.sram_bytes"])
        assert math.isclose(keys[f"energy.{node}.write_j.lora"], expected, rel_tol=1e-12)
        for stage, record in (("revoke", revoke), ("baseline_full", baseline)):
            assert math.isclose(keys[f"energy.{node}.training_j.{stage}"], energy_report.chip_training_j(record, energy))
        for gpu in energy_report.GPU_ASSUMPTIONS:
            gpu_j = keys[f"energy.gpu.{gpu}.inference_j_per_sample"]
            assert math.isclose(keys[f"energy.{node}.{gpu}.inference_energy_ratio"],
                                gpu_j / keys[f"energy.{node}.inference_j_per_sample.hybrid"])
            gpu_full, lora_j = keys[f"energy.gpu.{gpu}.training_j.baseline_full"], keys[f"energy.{node}.write_j.lora"]
            assert math.isclose(keys[f"energy.{node}.{gpu}.training_energy_ratio"],
                                (gpu_full + keys[f"energy.{node}.write_j.full_reprogram"])
                                / (keys[f"energy.{node}.training_j.revoke"] + lora_j))
    assert keys["energy.180nm.training_j.revoke"] > keys["energy.45nm.training_j.revoke"]
    assert keys["energy.180nm.write_j.lora"] > keys["energy.45nm.write_j.lora"]
    # at peak a GPU step is a forward and a backward of twice its work (Kaplan), plus Adam
    gpu_macs = 3 * baseline.forward.gpu_macs + baseline.optimizer_updates * ADAM_MACS
    assert math.isclose(keys["energy.gpu.gpu_peak.training_j.baseline_full"], gpu_macs * EnergyModel().gpu_mac_j)
    for node in NODES:
        for gpu in energy_report.GPU_ASSUMPTIONS:
            for ratio in ("write_energy_ratio", "inference_energy_ratio", "training_energy_ratio"):
                assert keys[f"energy.{node}.{gpu}.{ratio}"] > 0
    assert keys["energy.training_j.revoke"] > 0 and keys["energy.training_j.baseline_full"] > 0
    for node in NODES:  # the verify-read assumption the write ratio rests on, shown beside it
        sense, adc = keys[f"energy.{node}.gpu_peak.write_energy_ratio"], keys[f"energy.{node}.gpu_peak.write_energy_ratio_verify_adc"]
        assert adc > sense > 0
        assert keys[f"energy.{node}.write_j.full_reprogram_verify_adc"] > keys[f"energy.{node}.write_j.full_reprogram"]
    # the full fine-tune is all-digital: no array work; the LoRA stage reads the arrays
    full_record = meter.records[1]
    assert full_record.forward.hybrid.analog.macs == 0 and full_record.forward.trained_digital_macs > 0
    assert keys["energy.gpu.gpu_cited_b1.inference_j_per_sample"] == 0.0298
    table = energy_report.readme_table({"speaker": (keys, {"write_energy_ratio": 63.74})})
    assert "63.7×" in table and "45nm · gpu_peak" in table
    with pytest.raises(ValueError, match="no training record"):
        energy_report.task_energy([], {"revoke": "revoke", "baseline_full": "b"}, inference, lora, full, "revoke", "baseline_full")


def test_the_demo_headline_write_ratio_is_the_default_node_at_gpu_peak():
    model = _model()
    x, y = torch.rand(16, 12), torch.randint(0, 3, (16,))
    full = Ledger()
    full.post_programming(pulses=1000, verify_reads=3000)
    with work.WorkMeter():
        optimize(_on(model, "a", rank=2), lambda i: nn.functional.cross_entropy(model(x[i]), y[i]), 16,
                 TrainConfig(epochs=1, batch_size=8), description="revoke x")
        optimize(list(model.parameters()), lambda i: nn.functional.cross_entropy(model(x[i]), y[i]), 16,
                 TrainConfig(epochs=1, batch_size=8), description="baseline: full")
        keys = energy_report.demo_energy({"revoke": "revoke", "baseline_full": "baseline"}, model, x, 100, full,
                                         "revoke", "baseline_full")
    assert keys["energy.write_energy_ratio"] == keys["energy.45nm.gpu_peak.write_energy_ratio"]
    assert keys["energy.write_energy_ratio"] != keys["energy.180nm.gpu_peak.write_energy_ratio"]


def test_the_measured_gpu_path_is_skipped_cleanly_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: test_the_measured_gpu_path_measures_on_a_gpu covers it")
    found, status = energy_report.nvml_assumptions(nn.Linear(4, 2), torch.rand(3, 4))
    assert found == {} and status.startswith("skipped: ")


def test_an_nvml_failure_is_reported_as_skipped_not_raised(monkeypatch):
    import sys
    import types

    class NVMLError(Exception):
        pass

    def broken_init():
        raise NVMLError("Driver/library version mismatch")

    fake = types.SimpleNamespace(NVMLError=NVMLError, nvmlInit=broken_init)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    found, status = energy_report.nvml_assumptions(nn.Linear(4, 2), torch.rand(3, 4))
    assert found == {} and status == "skipped: NVML failed: Driver/library version mismatch"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_measured_gpu_path_measures_on_a_gpu():
    pytest.importorskip("pynvml")
    found, status = energy_report.nvml_assumptions(nn.Linear(64, 8), torch.rand(128, 64), batches=(1, 128))
    assert set(found) == {"gpu_nvml_b1", "gpu_nvml_b128"} and status.startswith("measured")
    assert all(g.j_per_inference > 0 for g in found.values())
