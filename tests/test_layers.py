import copy
import io

import pytest
import snntorch as snn
import torch
from torch import nn

import neuro_rm
from neuro_rm import layers as L
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.lora import AdapterConfig
from neuro_rm.plasticity import Recorder

IDEAL = CrossbarConfig.ideal()


def _branch(model, name, rank=2, alpha=4.0, precision="fp32"):
    """Add adapter ``name`` and switch it on beside those already on; returns its parameters."""
    params = L.add_adapter(model, name, AdapterConfig(rank, alpha, precision))
    L.activate_adapter(model, name)
    return params


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 3 * 3, 5)
    )


def test_public_imports():
    from neuro_rm import Crossbar, DeviceConfig, EnergyModel, HybridConv2d, HybridLinear, Ledger, analogize  # noqa: F401


def test_analogize_converts_every_target_layer_of_a_cnn():
    model = L.analogize(_cnn())
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["HybridConv2d", "ReLU", "HybridConv2d", "ReLU", "Flatten", "HybridLinear"]
    assert not any(isinstance(m, (nn.Linear, nn.Conv2d)) for m in model.modules())
    assert sum(p.numel() for p in model.parameters()) == 0  # the analogue base has no parameters


def test_analogize_converts_an_snntorch_rleaky_network():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(10, 16)
            self.lif = snn.RLeaky(beta=0.5, linear_features=16, threshold=0.3)

        def forward(self, x):
            spk, mem = self.lif.init_rleaky()
            out = []
            for t in range(x.shape[0]):
                spk, mem = self.lif(self.fc(x[t]), spk, mem)
                out.append(spk)
            return torch.stack(out)

    net = Net()
    L.analogize(net)
    assert isinstance(net.fc, neuro_rm.HybridLinear) and isinstance(net.lif.recurrent, neuro_rm.HybridLinear)
    assert net(torch.rand(5, 3, 10)).shape == (5, 3, 16)


def test_analogize_by_name_and_unknown_name():
    model = L.analogize(_cnn(), targets=["5"])
    assert isinstance(model[5], neuro_rm.HybridLinear) and isinstance(model[0], nn.Conv2d)
    with pytest.raises(ValueError, match="no module named"):
        L.analogize(_cnn(), targets=["nope"])


def test_hybrid_output_equals_decoded_crossbar_product():
    lin = nn.Linear(12, 7)
    hybrid = neuro_rm.HybridLinear.from_linear(lin, crossbar=IDEAL)  # the ideal readout: exactly the decoded product
    hybrid.program(lin.weight.detach())
    x = torch.randn(4, 12)
    expected = x @ hybrid.crossbar.weight().T + lin.bias.detach()
    assert torch.allclose(hybrid(x), expected, atol=1e-6)
    conv = neuro_rm.HybridConv2d(2, 3, 3, padding=1, crossbar=IDEAL)
    img = torch.randn(1, 2, 5, 5)
    ref = nn.functional.conv2d(img, conv.effective_weight(), conv.bias, padding=1)
    assert torch.allclose(conv(img), ref, atol=1e-6)


def test_add_then_delete_adapter_restores_outputs_bit_for_bit():
    model = L.analogize(_cnn(), crossbar=IDEAL)  # noise-free readout, so outputs can match bit for bit
    x = torch.rand(2, 1, 8, 8)
    before = model(x)
    params = _branch(model, "alice", 2, 4)
    assert torch.equal(model(x), before)  # B starts at zero
    with torch.no_grad():
        for p in params:
            p.add_(0.3)
    assert not torch.equal(model(x), before)
    kept = [p for p in params]
    L.delete_adapter(model, "alice")
    assert torch.equal(model(x), before)
    assert L.adapter_names(model) == []
    assert all(p.numel() == 0 for p in kept)  # storage freed
    assert not any("alice" in k for k in model.state_dict())


def test_only_adapters_learn_and_gradients_reach_the_input():
    model = L.analogize(_cnn())
    params = _branch(model, "bob", 2, 4)
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    model(x).sum().backward()
    assert {id(p) for p in model.parameters() if p.requires_grad} == {id(p) for p in params}
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in params)
    assert not any(b.requires_grad for b in model.buffers())


def test_set_adapter_and_delta_weight():
    layer = neuro_rm.HybridLinear(6, 4, crossbar=IDEAL)
    a = layer.add_adapter("a", AdapterConfig(2, 2.0))
    layer.add_adapter("b", AdapterConfig(2, 2.0))
    with torch.no_grad():
        a.b.fill_(0.5)
    x = torch.randn(3, 6)
    base = layer(x)
    layer.set_adapter("a")
    assert layer.active == ["a"]
    assert torch.allclose(layer(x) - base, x @ a.delta_weight().T, atol=1e-6)
    with pytest.raises(KeyError, match="no adapter named"):
        layer.set_adapter(["zzz"])


def test_merge_reprograms_costs_and_drops_the_adapter():
    ledger = neuro_rm.Ledger()
    model = L.analogize(nn.Sequential(nn.Linear(16, 8)), ledger=ledger)
    deploy_pulses = ledger.count("write.rm_pulse")
    params = _branch(model, "new", 2, 4)
    with torch.no_grad():
        params[1].normal_(0, 0.02)  # a change the conductance window can hold
    x = torch.randn(5, 16)
    with_adapter = model(x)
    L.merge_adapter(model, "new")
    assert L.adapter_names(model) == []
    assert ledger.count("write.rm_pulse") > deploy_pulses
    # the merged base computes what base + adapter did, within programming error
    assert torch.corrcoef(torch.stack([model(x).flatten(), with_adapter.flatten()]))[0, 1] > 0.98


def _layer_with_adapter(columns_moved: dict[int, float], crossbar: CrossbarConfig | None = None):
    """A 16→8 crossbar layer (ideal readout unless told) with a rank-1 adapter whose ΔW has, in input
    column 3, the given multiples of the write threshold on the given output rows, and nothing else."""
    torch.manual_seed(0)
    linear = nn.Linear(16, 8)
    with torch.no_grad():
        linear.weight[:, 3] = 0.0  # column 3 sits mid-window, so every move stays inside it
    model = L.analogize(nn.Sequential(linear), crossbar=crossbar or CrossbarConfig.ideal(), ledger=neuro_rm.Ledger())
    layer = model[0]
    adapter = layer.add_adapter("d", AdapterConfig(1, 1.0))
    layer.set_adapter("d")
    threshold = layer.crossbar.write_threshold
    with torch.no_grad():
        adapter.a.zero_()
        adapter.a[0, 3] = 1.0
        adapter.b.zero_()
        for row, multiple in columns_moved.items():
            adapter.b[row, 0] = multiple * threshold
    return model, layer


def test_merge_pulses_only_the_cells_whose_target_moves_beyond_the_tolerance():
    model, layer = _layer_with_adapter({0: 3.0, 1: -2.5, 2: 0.4, 5: -0.6})  # rows 0, 1 beyond; 2, 5 below
    before = layer.crossbar.cells.conductance().clone()
    result = L.merge_adapter(model, "d")[0]
    pulsed = result.pulses[0] > 0
    assert pulsed[0, 3] and pulsed[1, 3] and int(pulsed.sum()) == 2  # exactly the two cells that had to move
    untouched = torch.ones_like(pulsed)
    untouched[0, 3] = untouched[1, 3] = False
    assert torch.equal(layer.crossbar.cells.conductance()[0][untouched], before[0][untouched])  # not rewritten
    moved = (layer.crossbar.cells.conductance() - before)[0]  # 1 threshold = the 2 µS tolerance
    assert abs(float(moved[0, 3]) - 3.0 * 2.0) <= 2.0 + 1e-3 and abs(float(moved[1, 3]) + 2.5 * 2.0) <= 2.0 + 1e-3
    assert L.adapter_names(model) == []


def test_a_write_aware_branch_computes_what_its_merge_will_hold():
    model, layer = _layer_with_adapter({0: 3.0, 1: -2.5, 2: 0.4, 5: -0.6, 6: 0.8, 7: -0.9})
    x = torch.zeros(4, 16)
    x[:, 3] = torch.tensor([1.0, 2.0, -1.0, 0.5])
    plain = model(x)
    L.set_write_aware(model, "d")
    aware = model(x)
    params = L.adapter_parameters(model, "d")
    aware.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)  # still trainable (straight through)
    L.merge_adapter(model, "d")
    merged = model(x)
    # rows whose change is below the tolerance are not written: the aware branch already left them out
    for row in (2, 5, 6, 7):
        assert not torch.allclose(plain[:, row], merged[:, row], atol=1e-6)
        assert torch.allclose(aware[:, row], merged[:, row], atol=1e-5)
    # rows written land within the write tolerance of their target
    threshold = layer.crossbar.write_threshold
    assert torch.allclose(aware[:, :2], merged[:, :2], atol=float(threshold * x.abs().max()) + 1e-5)


def test_the_realistic_readout_computes_with_the_merged_cells():
    periphery = CrossbarConfig(read_noise=False)  # DAC and a calibrated ADC; noise off to compare exactly
    model, layer = _layer_with_adapter({0: 6.0, 1: -6.0}, periphery)
    x = torch.zeros(4, 16)
    x[:, 3] = 1.0
    x[:, 5] = 1.0
    L.set_adapter(model, [])
    before = model(x)  # also calibrates the ADC
    expected = before[:, :2] + torch.tensor([6.0, -6.0]) * layer.crossbar.write_threshold
    L.merge_adapter(model, "d")
    L.calibrate(model, x)  # writing cells clears the calibration, as programming does
    after = model(x)
    lsb = float(layer.crossbar.adc_full_scale.max()) / 127
    tolerance = layer.crossbar.write_threshold + 2 * lsb  # the write lands within tolerance; codes round
    assert torch.allclose(after[:, :2], expected, atol=tolerance)
    assert torch.allclose(after[:, 2:], before[:, 2:], atol=2 * lsb)


def test_recorder_sees_lifecycle_events():
    rec = Recorder()
    model = L.analogize(nn.Sequential(nn.Linear(4, 3)), hooks=[rec])
    _branch(model, "s", 1, 1)
    L.commit_adapter(model, "s", "potentiate")
    L.set_time(model, 3600)
    assert rec.latest("potentiate", "0", "s").data["delta_weight"].shape == (3, 4)
    L.delete_adapter(model, "s")
    assert [e.kind for e in rec.events] == ["program", "potentiate", "drift", "forget"]
    assert all("delta_weight" not in e.data for e in rec.events)  # an erased branch leaves no recorded copy
    assert rec.latest("program", "0").data["conductance_us"].shape == (1, 3, 4)


def test_precision_rounds_adapter_factors():
    layer = neuro_rm.HybridLinear(8, 8)
    adapter = layer.add_adapter("q", AdapterConfig(2, 2.0, "int8"))
    with torch.no_grad():
        adapter.a.copy_(torch.linspace(-1, 1, 16).view(2, 8) + 0.0013)
    a_held, _ = adapter.factors()
    assert len(torch.unique(a_held)) <= 255 and not torch.equal(a_held, adapter.a)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m: L.add_adapter(m, "x", AdapterConfig(rank=0)), ValueError, "rank"),
        (lambda m: L.add_adapter(m, "x", AdapterConfig(precision="fp7")), ValueError, "precision"),
        (lambda m: (L.add_adapter(m, "x"), L.add_adapter(m, "x")), ValueError, "exists already"),
        (lambda m: L.delete_adapter(m, "ghost"), KeyError, "no adapter named"),
        (lambda m: L.merge_adapter(m, "ghost"), KeyError, "no adapter named"),
        (lambda m: L.set_adapter(m, "ghost"), KeyError, "no adapter named"),
        (lambda m: m(torch.randn(2, 5)), ValueError, "expected input with 4 features"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, message):
    model = L.analogize(nn.Sequential(nn.Linear(4, 3)))
    with pytest.raises(error, match=message):
        call(model)


def test_non_finite_weights_are_refused():
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        L.analogize(nn.Sequential(lin))


def test_op_counts_and_inference_posting():
    model = L.analogize(nn.Sequential(nn.Linear(10, 4)))
    _branch(model, "a", 2, 2)
    L.reset_counts(model)
    model(torch.randn(3, 10))
    counts = L.collect_counts(model)
    assert counts.logical_macs == 3 * 10 * 4
    assert counts.digital_macs == {"fp32": 3 * 2 * (10 + 4)}
    hybrid, gpu = neuro_rm.Ledger(), neuro_rm.Ledger()
    L.post_inference(hybrid, counts, "hybrid")
    L.post_inference(gpu, counts, "gpu")
    assert gpu.count("infer.gpu_mac") == 3 * 10 * 4 + 3 * 2 * 14
    assert hybrid.joules("infer") > 0


def test_fused_adapters_match_separate_ones_at_inference():
    model = L.analogize(_cnn(), crossbar=IDEAL)  # noise-free readout: the two passes compare exactly
    for name in ("a", "b", "c"):
        for p in _branch(model, name)[1::2]:
            with torch.no_grad():
                p.normal_(0, 0.1)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        separate = model(x)
        L.fuse_adapters(model)
        L.reset_counts(model)
        fused = model(x)
    assert torch.allclose(fused, separate, atol=1e-5)
    per_vector = sum(layer.crossbar.counts.vectors * layer.crossbar.in_features * layer.crossbar.out_features for _, layer in L.hybrid_layers(model))
    fold = sum(3 * 2 * layer.crossbar.in_features * layer.crossbar.out_features for _, layer in L.hybrid_layers(model))  # Σ B·A, built once
    assert L.collect_counts(model).adapter_macs == per_vector + fold
    L.set_adapter(model, ["a"])  # a change of the active set rebuilds the fused ΔW
    with torch.no_grad():
        assert not torch.allclose(model(x), fused, atol=1e-5)
        L.fuse_adapters(model, False)
        only_a = model(x)
        L.fuse_adapters(model)
        assert torch.allclose(model(x), only_a, atol=1e-5)


def _trained(model, name, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in L.adapter_parameters(model, name):
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)


def test_add_adapter_does_not_activate_it():
    model = L.analogize(nn.Sequential(nn.Linear(6, 4)), crossbar=IDEAL)
    x = torch.randn(3, 6)
    base = model(x)
    L.add_adapter(model, "a")
    _trained(model, "a", 0)
    assert L.active_adapters(model) == [] and torch.equal(model(x), base)  # trained, but off
    L.add_adapter(model, "b")
    L.set_adapter(model, "a")
    assert L.active_adapters(model) == ["a"] and not torch.equal(model(x), base)
    L.activate_adapter(model, "b")
    assert L.active_adapters(model) == ["a", "b"]


def test_the_old_adapter_calls_still_work_and_warn():
    model = L.analogize(nn.Sequential(nn.Linear(6, 4)), crossbar=IDEAL)
    with pytest.warns(DeprecationWarning, match="add_adapter"):
        L.add_adapter(model, "a", rank=2, alpha=4.0)
    assert L.active_adapters(model) == ["a"]  # the old call activated, and still does
    with pytest.warns(DeprecationWarning, match="set_adapter"):
        L.set_active(model, [])
    with pytest.warns(DeprecationWarning, match="delete_adapter"):
        L.remove_adapter(model, "a")
    assert L.adapter_names(model) == []
    with pytest.raises(TypeError, match="AdapterConfig"):
        L.add_adapter(model, "b", AdapterConfig(), rank=2)


def test_disable_adapters_runs_the_base_alone_and_restores_the_previous_set():
    model = L.analogize(nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)), crossbar=IDEAL)
    x = torch.randn(5, 6)
    base = model(x)
    for name in ("a", "b", "c"):
        L.add_adapter(model, name)
        _trained(model, name, ord(name))
    L.set_adapter(model, ["c", "a"])
    with_branches = model(x)
    with L.disable_adapters(model):
        assert torch.equal(model(x), base)
        assert L.active_adapters(model) == ["c", "a"]  # the set is kept, only switched off
    assert L.active_adapters(model) == ["c", "a"] and torch.equal(model(x), with_branches)
    with pytest.raises(RuntimeError, match="inside"), L.disable_adapters(model):
        raise RuntimeError("inside")
    assert all(layer.disabled == 0 for _, layer in L.hybrid_layers(model))  # the branches are back on error too
    assert L.active_adapters(model) == ["c", "a"] and torch.equal(model(x), with_branches)


def test_a_copy_or_pickle_made_inside_disable_adapters_computes_with_its_branches():
    """The context switches off the model it was opened on, not copies of it: they would stay off for good."""
    model = L.analogize(nn.Sequential(nn.Linear(6, 4)), crossbar=IDEAL)
    x = torch.randn(5, 6)
    L.add_adapter(model, "a")
    _trained(model, "a", 5)
    L.set_adapter(model, "a")
    with_branch, buffer = model(x), io.BytesIO()
    with L.disable_adapters(model):
        twin = copy.deepcopy(model)
        torch.save(model, buffer)
        assert model[0].disabled == 1  # the original is still switched off inside
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    for copied in (twin, loaded):
        assert copied[0].disabled == 0 and L.active_adapters(copied) == ["a"]
        assert torch.equal(copied(x), with_branch)
    assert torch.equal(model(x), with_branch)


def test_delete_adapter_erases_its_bytes_and_tells_the_hooks():
    rec = Recorder()
    model = L.analogize(nn.Sequential(nn.Linear(6, 4)), crossbar=IDEAL, hooks=[rec])
    L.add_adapter(model, "a")
    L.set_adapter(model, "a")
    _trained(model, "a", 1)
    adapter = model[0].adapters["a"]
    factors = [adapter.a, adapter.b]
    L.delete_adapter(model, "a")
    assert all(p.numel() == 0 for p in factors)  # the tensors kept by a caller hold nothing
    assert "a" not in model[0].adapters and L.active_adapters(model) == []
    assert not any(k.startswith("0.adapters") for k in model.state_dict())
    assert rec.events[-1].kind == "forget" and rec.events[-1].adapter == "a"


def _fused_pair():
    model = L.analogize(nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)), crossbar=IDEAL)
    for name in ("a", "b"):
        L.add_adapter(model, name)
        _trained(model, name, len(name) + ord(name))
    L.set_adapter(model, ["a", "b"])
    L.fuse_adapters(model)
    return model


def _unfused(model, x):
    L.fuse_adapters(model, False)
    out = model(x)
    L.fuse_adapters(model)
    return out


def test_fused_output_follows_in_place_updates_of_the_adapters():
    model = _fused_pair()
    x = torch.randn(5, 6)
    with torch.no_grad():
        before = model(x)  # builds the fused ΔW
        L.adapter_parameters(model, "a")[1].mul_(-3.0)  # an optimiser step is in place, like this
        after = model(x)
        assert not torch.allclose(after, before, atol=1e-4)
        assert torch.allclose(after, _unfused(model, x), atol=1e-5)


def test_fused_output_follows_load_state_dict():
    model, other = _fused_pair(), _fused_pair()
    _trained(other, "a", 7)
    x = torch.randn(5, 6)
    with torch.no_grad():
        stale = model(x)
        model.load_state_dict(other.state_dict())
        loaded = model(x)
        assert not torch.allclose(loaded, stale, atol=1e-4)
        assert torch.allclose(loaded, _unfused(model, x), atol=1e-5)


def test_the_fused_delta_is_held_and_charged_at_the_adapters_precision():
    ledger = neuro_rm.Ledger()
    model = L.analogize(nn.Sequential(nn.Linear(16, 8)), crossbar=IDEAL, ledger=ledger)
    for name in ("a", "b"):
        L.add_adapter(model, name, AdapterConfig(2, 4.0, "int8"))
        _trained(model, name, ord(name))
    with torch.no_grad():  # a branch a hundred times smaller than the other on rows 4-7: int8 per row keeps it
        model[0].adapters["b"].b[4:] *= 0.01
    L.set_adapter(model, ["a", "b"])
    L.fuse_adapters(model)
    x = torch.randn(3, 16)
    L.reset_counts(model)
    layer = model[0]
    with torch.no_grad():
        fused = model(x)
        fold = (2 + 2) * 16 * 8  # building ΔW = Σ B·A once, then one ΔW product per vector, at int8
        assert layer.digital_macs == {"int8": fold + 3 * 16 * 8}
        assert layer.sram_bits_read == 3 * 16 * 8 * 8
        model(x)
        assert layer.digital_macs == {"int8": fold + 6 * 16 * 8}  # built once, not per call
        separate = _unfused(model, x)
    assert ledger.count("write.sram") == 8 * 16 * 8  # the fold itself was written to SRAM, at int8
    rows = layer.delta_weight(["a", "b"]).abs().amax(dim=1)  # each output row has its own int8 step
    bound = rows / 127 / 2 * x.abs().sum(dim=1, keepdim=True) + 1e-6
    error = (fused - separate).abs()
    assert (error <= bound).all() and error.max() > 0  # rounded once more, within half a step per weight


@pytest.fixture(params=["compiled check", "torch check"])
def fused_check(request, monkeypatch):
    """Run a fused-ΔW test with the compiled byte compare and with the torch compare it falls back to."""
    if request.param == "torch check":
        monkeypatch.setattr(L.fused_kernel, "module", lambda: None)
    elif L.fused_kernel.module() is None:
        pytest.skip("no compiler for the compiled check")


def test_fused_output_follows_writes_that_bypass_version_counters(fused_check):
    model = _fused_pair()
    x = torch.randn(5, 6)
    params = L.adapter_parameters(model, "a") + L.adapter_parameters(model, "b")
    optimizer = torch.optim.Adam(params, lr=0.05, fused=True)  # its kernel does not bump tensor versions
    for _ in range(2):
        optimizer.zero_grad()
        model(x).pow(2).sum().backward()
        optimizer.step()
        with torch.no_grad():
            assert torch.allclose(model(x), _unfused(model, x), atol=1e-5)
    with torch.no_grad():
        before = model(x)
        params[1].data.mul_(-2.0)  # through .data: a tensor with a counter of its own
        assert not torch.allclose(model(x), before, atol=1e-4)
        assert torch.allclose(model(x), _unfused(model, x), atol=1e-5)


def test_fused_output_follows_a_swapped_storage_and_a_copy_follows_its_own_factors(fused_check):
    """A parameter given new storage (``.data = ...``) and a deep copy (new storages, same values): the
    check must read each factor where it lives now."""
    import copy

    model = _fused_pair()
    x = torch.randn(5, 6)
    with torch.no_grad():
        before = model(x)
        twin = copy.deepcopy(model)
        assert torch.equal(twin(x), before)
        first = L.adapter_parameters(model, "a")[0]
        first.data = first.data * -2.0  # new storage behind the same parameter
        swapped = model(x)
        assert not torch.allclose(swapped, before, atol=1e-4)
        assert torch.allclose(swapped, _unfused(model, x), atol=1e-5)
        assert torch.equal(twin(x), before)  # the copy's factors did not change
        L.adapter_parameters(twin, "b")[1].mul_(0.5)
        assert not torch.allclose(twin(x), before, atol=1e-4)
        assert torch.allclose(twin(x), _unfused(twin, x), atol=1e-5)


def test_a_full_rank_branch_adds_its_matrix_read_alone_or_fused_and_is_charged_in_times_out():
    model = L.analogize(nn.Sequential(nn.Linear(6, 4)), crossbar=IDEAL)
    layer = model[0]
    L.add_adapter(model, "full", AdapterConfig(precision="fp32", full_rank=True))
    assert L.adapter_parameters(model, "full")[0].shape == (4, 6)  # no factor A: the matrix itself
    with torch.no_grad():
        layer.adapters["full"].b.copy_(torch.randn(4, 6, generator=torch.Generator().manual_seed(3)))
    L.set_adapter(model, "full")
    x = torch.randn(3, 6)
    with torch.no_grad():
        with L.disable_adapters(model):
            base = model(x)
        L.reset_counts(model)
        alone = model(x)
        assert layer.digital_macs["fp32"] == 3 * 6 * 4
        L.fuse_adapters(model)
        fused = model(x)
        assert layer.digital_macs["fp32"] == 2 * 3 * 6 * 4 + 6 * 4  # and folding it costs in·out once
    assert torch.allclose(alone, base + x @ layer.adapters["full"].b.T, atol=1e-5)
    assert torch.allclose(fused, alone, atol=1e-5)
    events = []  # what a hook is handed (the Recorder keeps no copy of a forget event's ΔW)
    L.add_hook(model, lambda event: events.append(event))
    held = layer.adapters["full"].delta_weight().detach().clone()
    L.commit_adapter(model, "full", "potentiate")
    with torch.no_grad():
        layer.adapters["full"].b.mul_(3.0)  # trained further after the commit
    assert torch.equal(events[-1].data["delta_weight"], held)  # the event keeps what was committed
    held = layer.adapters["full"].delta_weight().detach().clone()
    L.delete_adapter(model, "full")
    forgotten = [e.data["delta_weight"] for e in events if e.kind == "forget"]
    assert len(forgotten) == 1 and torch.equal(forgotten[0], held) and bool(held.any())  # not the zeroed storage


def test_a_deleted_adapter_forms_no_delta_unless_a_hook_listens(monkeypatch):
    """Review41 F5: with no hook listening, deleting a branch never forms its ΔW (whose copy and temporaries
    would be freed unwiped); with a hook it does, and hands it over (the control that the probe sees the call)."""
    formed = []
    real = L.LoRAAdapter.delta_weight
    monkeypatch.setattr(L.LoRAAdapter, "delta_weight", lambda self: formed.append(1) or real(self))
    quiet = _fused_pair()
    L.delete_adapter(quiet, "a")
    assert formed == []
    heard = _fused_pair()
    events = []
    L.add_hook(heard, lambda event: events.append(event))
    L.delete_adapter(heard, "a")
    assert formed and any(e.kind == "forget" and e.data["delta_weight"] is not None for e in events)


def _branch_copies(cache):
    """What a fused cache holds of the branches' values: the copy where it keeps one (torch check), plus its ΔW."""
    return [cache.delta] + ([] if cache.values is None else [cache.values])


def test_a_deleted_adapter_leaves_nothing_in_the_fused_delta(fused_check):
    model = _fused_pair()
    with torch.no_grad():
        model(torch.randn(2, 6))  # builds the fold of a and b
    caches = [layer._fused_cache for _, layer in L.hybrid_layers(model)]
    assert all(all(bool(t.any()) for t in _branch_copies(cache)) for cache in caches)
    L.delete_adapter(model, "a")
    assert all(layer._fused_cache is None for _, layer in L.hybrid_layers(model))
    assert not any(bool(t.any()) for cache in caches for t in _branch_copies(cache))  # wiped, not just dropped


def test_a_replaced_or_unfused_cache_is_wiped(fused_check):
    model = _fused_pair()
    x = torch.randn(2, 6)
    with torch.no_grad():
        model(x)
        first = model[0]._fused_cache
        L.adapter_parameters(model, "a")[1].mul_(2.0)  # a rewrite: the next read rebuilds
        model(x)
        second = model[0]._fused_cache
    assert second is not first and not any(bool(t.any()) for t in _branch_copies(first))
    L.fuse_adapters(model, False)
    assert not any(bool(t.any()) for t in _branch_copies(second))


def test_with_the_compiled_digest_a_fused_cache_keeps_no_copy_of_the_branches():
    """The memory a fused layer holds beside its model is its ΔW alone; the digest is drawn under a key of
    its own per build, so two caches of the same factors do not share a record."""
    if L.fused_kernel.module() is None:
        pytest.skip("no compiler for the compiled check")
    model = _fused_pair()
    with torch.no_grad():
        model(torch.randn(2, 6))
        twin = _fused_pair()
        twin(torch.randn(2, 6))
    for (_, layer), (_, other) in zip(L.hybrid_layers(model), L.hybrid_layers(twin), strict=True):
        cache = layer._fused_cache
        assert cache.values is None and cache.digest is not None
        assert cache.nbytes() == cache.delta.numel() * cache.delta.element_size()
        assert cache._secret != other._fused_cache._secret


def test_each_rebuild_draws_a_fresh_key_from_the_whole_field():
    """A key reused across builds, or drawn from a small range, could be learnt once and fitted by a writer."""
    if L.fused_kernel.module() is None:
        pytest.skip("no compiler for the compiled check")
    model = _fused_pair()
    factor = L.adapter_parameters(model, "a")[1]
    keys = []
    with torch.no_grad():
        for _ in range(8):
            factor.mul_(1.5)  # a rewrite: the next read rebuilds
            model(torch.randn(2, 6))
            keys.append(model[0]._fused_cache._secret)
    assert len(set(keys)) == len(keys)
    assert all(0 < k < L._MERSENNE_61 for k in keys) and max(keys) > 2**56  # all 8 below: odds 2^-40


def test_a_factor_the_digest_cannot_read_after_the_build_forces_a_rebuild():
    """A factor given non-contiguous storage after the build has no digest; the check must rebuild, not
    take the missing digest for an unchanged one."""
    if L.fused_kernel.module() is None:
        pytest.skip("no compiler for the compiled check")
    model = _fused_pair()
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(x)
        factor = L.adapter_parameters(model, "a")[0]
        factor.data = (factor.data * -2.0).t().contiguous().t()
        assert not factor.is_contiguous()
        after = model(x)
    assert not torch.allclose(after, before, atol=1e-4)
    assert torch.allclose(after, _unfused(model, x), atol=1e-5)


def test_a_copy_or_pickle_of_a_fused_layer_carries_no_fused_cache():
    """The cache (its ΔW, and the digest's key) stays with the live layer: a checkpoint of the whole module
    or a deep copy rebuilds its own at its first read."""
    model = _fused_pair()
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = model(x)
    assert model[0]._fused_cache is not None
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    for twin in (copy.deepcopy(model), torch.load(buffer, weights_only=False)):
        assert all(layer._fused_cache is None for _, layer in L.hybrid_layers(twin))
        with torch.no_grad():
            assert torch.equal(twin(x), before)
        assert twin[0]._fused_cache is not None
    assert model[0]._fused_cache is not None  # the original keeps its own


def test_fused_output_follows_a_branch_setting_changed_in_place():
    """``alpha`` and ``precision`` set on a branch directly (no model function told of it): the fused ΔW is
    rebuilt from the settings as they are now."""
    model = _fused_pair()
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(3))
    branch = model[0].adapters["a"]
    with torch.no_grad():
        before = model(x)
        branch.alpha = branch.alpha * 3.0
        scaled = model(x)
        assert not torch.allclose(scaled, before, atol=1e-4)
        assert torch.allclose(scaled, _unfused(model, x), atol=1e-5)
        L.fuse_adapters(model)
        model(x)
        assert model[0]._fused_cache.precision == "fp32"
        for held in model[0].adapters.values():
            held.precision = "int8"
        fused = model(x)
        assert model[0]._fused_cache.precision == "int8"
        assert torch.allclose(fused, _unfused(model, x), atol=1e-2)  # int8 sums round once more


def test_a_parametrised_factor_is_checked_and_erased_through_its_original(fused_check):
    """``torch.nn.utils.parametrize`` moves a factor's stored tensor into a submodule: the fused check must
    still see a write to it, and deleting the branch must still zero it."""
    import torch.nn.utils.parametrize as parametrize

    class Same(nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return t

    model = _fused_pair()
    branch = model[0].adapters["a"]
    parametrize.register_parametrization(branch, "a", Same())
    stored = branch.parametrizations.a.original
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        before = model(x)
        stored.mul_(-3.0)
        after = model(x)
    assert not torch.allclose(after, before, atol=1e-4)
    assert torch.allclose(after, _unfused(model, x), atol=1e-5)
    view = stored.detach()
    L.delete_adapter(model, "a")
    assert not bool(view.any())


def test_a_parametrisation_s_own_state_is_part_of_the_check(fused_check):
    """A parametrisation that keeps a buffer (a mask): zeroing the mask changes the factor, and the fused ΔW
    must follow."""
    import torch.nn.utils.parametrize as parametrize

    class Masked(nn.Module):
        def __init__(self, shape: torch.Size) -> None:
            super().__init__()
            self.register_buffer("mask", torch.ones(shape))

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return t * self.mask

    model = _fused_pair()
    branch = model[0].adapters["a"]
    parametrize.register_parametrization(branch, "b", Masked(branch.b.shape))
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        before = model(x)
        branch.parametrizations.b[0].mask.zero_()  # the branch's product, gone
        after = model(x)
    assert not torch.allclose(after, before, atol=1e-4)
    assert torch.allclose(after, _unfused(model, x), atol=1e-5)


def test_set_adapter_refuses_a_name_twice_and_names_of_the_wrong_type():
    model = L.analogize(nn.Sequential(nn.Linear(6, 4)))
    L.add_adapter(model, "a")
    with pytest.raises(ValueError, match="more than once"):
        L.set_adapter(model, ["a", "a"])
    with pytest.raises(TypeError, match="adapter name"):
        L.set_adapter(model, None)
    with pytest.raises(TypeError, match="True or False"):
        L.fuse_adapters(model, "off")
    with pytest.raises(TypeError, match="AdapterConfig"):
        L.add_adapter(model, "b", 8)
    with pytest.raises(TypeError, match="list of layer names"):
        L.add_adapter(model, "b", AdapterConfig(), "0")


def test_disable_adapters_holds_against_activation_inside_and_nests():
    model = L.analogize(nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)), crossbar=IDEAL)
    x = torch.randn(5, 6)
    base = model(x)
    L.add_adapter(model, "a")
    _trained(model, "a", 3)
    with L.disable_adapters(model):
        L.activate_adapter(model, "a")  # switched on inside: still off until the context ends
        assert torch.equal(model(x), base)
        with L.disable_adapters(model):
            assert torch.equal(model(x), base)
        assert torch.equal(model(x), base)  # the inner exit does not end the outer context
    assert L.active_adapters(model) == ["a"] and not torch.equal(model(x), base)


def test_activate_adapter_keeps_each_layers_own_active_set():
    model = L.analogize(nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3)))
    L.add_adapter(model, "first_only", layers=["0"])
    L.add_adapter(model, "both")
    L.add_adapter(model, "second", layers=["2"])
    model[0].set_adapter("first_only")
    L.activate_adapter(model, "both")
    assert model[0].active == ["first_only", "both"] and model[2].active == ["both"]


def test_a_merge_beyond_the_window_is_reported_not_hidden():
    model, layer = _layer_with_adapter({0: 1e4})  # asks cell (0, 3) to move far past g_max
    with pytest.warns(RuntimeWarning, match="beyond the window"):
        result = L.merge_adapter(model, "d")[0]
    assert result.clipped[0, 0, 3] and int(result.clipped.sum()) == 1
    assert not result.within_tolerance[0, 0, 3]  # not counted as placed where it was asked to go


def test_a_fused_recurrent_network_checks_its_branches_once_a_sample_batch_and_sees_a_change_between_batches(monkeypatch):
    """The recurrent layer is read at every time step; inside one forward its fused ΔW is checked at the first
    step only, and a branch written between two forwards (through .data, which bumps no version) is seen."""
    from neuro_rm.models import RSNNConfig
    from neuro_rm.models.rsnn import SYNAPSES, SpeakerRSNN

    torch.manual_seed(0)
    model = L.analogize(SpeakerRSNN(RSNNConfig(n_inputs=12, n_hidden=16, n_outputs=3)), targets=SYNAPSES, crossbar=IDEAL)
    for name in ("a", "b"):
        L.add_adapter(model, name, AdapterConfig(rank=2))
        _trained(model, name, seed=ord(name))
    L.set_adapter(model, ["a", "b"])
    recurrent = model.lif.recurrent
    x = (torch.rand(2, 7, 12, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    checks = []
    original = L.FusedDelta.holds
    monkeypatch.setattr(L.FusedDelta, "holds", lambda self, *args: checks.append(1) or original(self, *args))
    with torch.no_grad():
        L.fuse_adapters(model)
        model(x)  # builds the fused ΔW of both layers
        checks.clear()
        fused = model(x)
        assert len(checks) == 2  # two layers, each checked once (the recurrent one is read at 7 time steps)
        recurrent.adapters["b"].b.data.mul_(-3.0)
        changed = model(x)
        L.fuse_adapters(model, False)
        reference = model(x)
    assert recurrent.steady == 0 and not recurrent._fused_checked
    assert not torch.allclose(changed, fused, atol=1e-4)
    assert torch.allclose(changed, reference, atol=1e-5)


def _training_pass(model, x, fused):
    """Output, the trained branch's gradients and the input's gradient of one training pass."""
    L.fuse_adapters(model, fused)
    L.reset_counts(model)
    x = x.clone().requires_grad_(True)
    y = model(x)
    y.square().sum().backward()
    trained = [p.grad.clone() for p in L.adapter_parameters(model, "t")]
    for p in L.adapter_parameters(model, "t"):
        p.grad = None
    return y.detach(), trained, x.grad


def _frozen_beside_trained(frozen, aware=()):
    """A 16 -> 8 layer with rank-2 branches ``frozen`` (no gradients; those in ``aware`` write-aware) and ``t``."""
    torch.manual_seed(0)
    model = L.analogize(nn.Sequential(nn.Linear(16, 8)), crossbar=IDEAL)
    for seed, name in enumerate((*frozen, "t")):
        _branch(model, name)
        _trained(model, name, seed + 1)
    for name in frozen:
        for p in L.adapter_parameters(model, name):
            p.requires_grad_(False)
    for name in aware:
        L.set_write_aware(model, name)
    return model


@pytest.mark.parametrize("frozen", [("a", "b", "c"), ("a", "b")])
def test_training_reads_the_frozen_branches_as_one_fused_delta_where_that_pays(frozen):
    """With gradients on, a fused layer folds the branches that do not train (when reading them one by one
    costs more MACs) and reads the training branch on its own: the same outputs and gradients as reading
    each branch alone, and the trained branch still learns."""
    model = _frozen_beside_trained(frozen)
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(3))
    y_alone, grads_alone, x_grad_alone = _training_pass(model, x, fused=False)
    y, grads, x_grad = _training_pass(model, x, fused=True)
    layer = model[0]
    assert torch.allclose(y, y_alone, atol=1e-5)
    assert all(g.abs().sum() > 0 and torch.allclose(g, h, atol=1e-5) for g, h in zip(grads, grads_alone, strict=True))
    assert torch.allclose(x_grad, x_grad_alone, atol=1e-5)
    branch = 2 * (16 + 8)  # one rank-2 branch read on its own, per vector
    if len(frozen) * branch > 16 * 8:  # 3 x 48 > 128: one dense product (and its fold) instead of three
        assert layer._fused_cache.key[0] == frozen
        assert layer.digital_macs == {"fp32": len(frozen) * 2 * 16 * 8 + 4 * 16 * 8 + 4 * branch}
    else:  # 2 x 48 < 128: folding would cost more, so each is read alone
        assert layer._fused_cache is None
        assert layer.digital_macs == {"fp32": 4 * (len(frozen) + 1) * branch}


def test_a_read_between_a_fused_training_pass_and_its_backward_leaves_its_gradients_intact():
    """Review45 F1: a read with gradients off folds another set of branches and wipes the cached fold; the
    training pass's graph holds its own copy of the fold, so its backward still runs, with the same gradients."""
    model = _frozen_beside_trained(("a", "b", "c"))
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(3))
    _, alone, _ = _training_pass(model, x, fused=False)
    L.fuse_adapters(model)
    y = model(x.clone().requires_grad_(True))  # as a recurrent layer's input: its gradient needs the fold
    with torch.no_grad():
        model(x)  # folds a, b, c and t: the training fold is replaced and wiped
    assert model[0]._fused_cache.key[0] == ("a", "b", "c", "t")
    y.square().sum().backward()
    grads = [p.grad for p in L.adapter_parameters(model, "t")]
    assert all(torch.allclose(g, h, atol=1e-5) for g, h in zip(grads, alone, strict=True))


def test_write_aware_frozen_branches_are_priced_as_the_dense_products_they_are_read_as():
    """Review45 F3: a write-aware branch is read as its dense ΔW (in·out MACs a vector), so two of them frozen
    cost more than one fold and are folded, where two plain rank-2 branches (96 < 128 MACs) are not."""
    model = _frozen_beside_trained(("a", "b"), aware=("a", "b"))
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(3))
    y_alone, grads_alone, _ = _training_pass(model, x, fused=False)
    y, grads, _ = _training_pass(model, x, fused=True)
    assert model[0]._fused_cache.key[0] == ("a", "b")
    assert model[0].digital_macs == {"fp32": 2 * 2 * 16 * 8 + 4 * 16 * 8 + 4 * 2 * (16 + 8)}
    assert torch.allclose(y, y_alone, atol=1e-5)
    assert all(torch.allclose(g, h, atol=1e-5) for g, h in zip(grads, grads_alone, strict=True))


def test_a_fused_recurrent_network_trains_with_its_frozen_branches_checked_once_a_sample_batch(monkeypatch):
    """In training too the recurrent layer's fold of the frozen branches is checked once per forward, and a
    frozen branch written between two training passes is seen."""
    from neuro_rm.models import RSNNConfig
    from neuro_rm.models.rsnn import SYNAPSES, SpeakerRSNN

    torch.manual_seed(0)
    model = L.analogize(SpeakerRSNN(RSNNConfig(n_inputs=12, n_hidden=16, n_outputs=3)), targets=SYNAPSES, crossbar=IDEAL)
    for name in ("a", "b", "c", "t"):
        L.add_adapter(model, name, AdapterConfig(rank=4))
        _trained(model, name, seed=ord(name))
    L.set_adapter(model, ["a", "b", "c", "t"])
    for name in ("a", "b", "c"):
        for p in L.adapter_parameters(model, name):
            p.requires_grad_(False)
    x = (torch.rand(2, 7, 12, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    checks = []
    original = L.FusedDelta.holds
    monkeypatch.setattr(L.FusedDelta, "holds", lambda self, *args: checks.append(1) or original(self, *args))
    L.fuse_adapters(model)
    model(x).sum().backward()  # builds the fold of a, b, c in both layers
    checks.clear()
    fused = model(x)
    assert len(checks) == 2  # two layers, each checked once (the recurrent one is read at 7 time steps)
    model.lif.recurrent.adapters["b"].b.data.mul_(-3.0)
    changed = model(x).detach()
    L.fuse_adapters(model, False)
    reference = model(x).detach()
    assert not torch.allclose(changed, fused.detach(), atol=1e-4)
    assert torch.allclose(changed, reference, atol=1e-5)


def test_inside_steady_reads_a_new_active_set_is_seen():
    model = L.analogize(nn.Sequential(nn.Linear(6, 4)), crossbar=IDEAL)
    for name, seed in (("a", 1), ("b", 2)):
        L.add_adapter(model, name, AdapterConfig(rank=2))
        _trained(model, name, seed)
    L.set_adapter(model, ["a", "b"])
    L.fuse_adapters(model)
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), model[0].steady_reads():
        both = model(x)
        L.set_adapter(model, ["a"])
        only_a = model(x)
    L.fuse_adapters(model, False)
    with torch.no_grad():
        reference = model(x)
    assert not torch.allclose(both, only_a, atol=1e-4)
    assert torch.allclose(only_a, reference, atol=1e-5)


def test_inside_steady_reads_a_change_of_write_awareness_is_seen():
    model, layer = _layer_with_adapter({0: 3.0, 2: 0.4})  # row 2's change is below the write threshold
    L.fuse_adapters(model)
    x = torch.zeros(2, 16)
    x[:, 3] = 1.0
    with torch.no_grad(), layer.steady_reads():
        plain = model(x)
        L.set_write_aware(model, "d")  # now row 2's change is dropped, as a merge would drop it
        aware = model(x)
    assert not torch.allclose(plain[:, 2], aware[:, 2], atol=1e-6)
    assert torch.allclose(plain[:, 0], aware[:, 0], atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_the_fused_check_compares_values_of_every_float_type(dtype):
    a = torch.tensor([1.0, -0.0, 2.5], dtype=dtype)
    assert L._same_values(a, a.clone()) and L._same_values(a, torch.tensor([1.0, 0.0, 2.5], dtype=dtype))
    assert not L._same_values(a, torch.tensor([1.0, 0.0, 2.0], dtype=dtype))
