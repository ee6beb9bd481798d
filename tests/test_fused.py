"""The compiled periphery (neuro_rm/fused.py) reads exactly what the eager torch periphery reads."""

import pytest
import torch

from neuro_rm import crossbar as crossbar_module
from neuro_rm import fused
from neuro_rm.crossbar import Crossbar, CrossbarConfig
from neuro_rm.device import DeviceConfig

if fused.kernel() is None:
    pytest.skip("no compiler for the fused periphery kernel (the eager periphery is used)", allow_module_level=True)

CONFIGS = {
    "realistic": CrossbarConfig(),
    "differential": CrossbarConfig(mapping="differential"),
    "noise only": CrossbarConfig.ideal(read_noise=True),
    "ADC only": CrossbarConfig.ideal(adc_bits=6),
    "column compensation": CrossbarConfig(drift_compensation="column"),
}


def _crossbar(config, in_features=300, out_features=150):
    """Two full 128-row tiles and a partly filled one; 150 outputs (more than one block of a vector loop);
    calibrated on counts so that some tiles saturate later."""
    bar = Crossbar(out_features, in_features, DeviceConfig(), config, seed=3)
    bar.program(torch.randn(out_features, in_features, generator=torch.Generator().manual_seed(1)) * 0.1)
    bar.set_time(3600.0)
    if config.adc_bits is not None:
        bar.calibrate((torch.rand(64, in_features, generator=torch.Generator().manual_seed(2)) < 0.1).float())
    return bar


def _inputs(kind, vectors=700, in_features=300):
    generator = torch.Generator().manual_seed(4)
    spikes = (torch.rand(vectors, in_features, generator=generator) < 0.15).float()
    spikes[torch.rand(vectors, generator=generator) < 0.2] = 0.0  # silent vectors, not aligned with the chunks
    return spikes if kind == "spikes" else spikes * torch.randint(1, 6, spikes.shape, generator=generator).float()


def _read_both(bar, x, bias, monkeypatch):
    """The same read, same random draws, through the compiled and the eager periphery."""
    state = bar.cells.generator.get_state()
    with torch.no_grad():
        compiled = bar.matmul(x, bias)
        after = bar.cells.generator.get_state()
        bar.cells.generator.set_state(state)
        monkeypatch.setattr(fused, "enabled", False)
        eager = bar.matmul(x, bias)
        monkeypatch.setattr(fused, "enabled", True)
    assert torch.equal(after, bar.cells.generator.get_state())  # the same draws were taken
    return compiled, eager


@pytest.mark.parametrize("kind", ["spikes", "counts"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_compiled_periphery_reads_what_eager_torch_reads(name, kind, monkeypatch):
    bar = _crossbar(CONFIGS[name])
    x, bias = _inputs(kind), torch.linspace(-1, 1, 150)
    compiled, eager = _read_both(bar, x, bias, monkeypatch)
    if not bar.config.read_noise:
        assert torch.equal(compiled, eager)  # ADC codes, tile sum, gain, bias: the same operations, bit for bit
    else:  # torch's vectorised sqrt is within an ulp; the kernel's is correctly rounded
        torch.testing.assert_close(compiled, eager, rtol=1e-6, atol=1e-6)
    assert bar.config.adc_bits is None or (eager.abs() > 0).any()


def test_a_changed_periphery_is_detected(monkeypatch):
    """Positive control: the comparison above fails when the compiled read's ADC range is one code short."""
    bar = _crossbar(CrossbarConfig.ideal(adc_bits=6))
    x = _inputs("counts")
    real_levels = Crossbar._levels
    calls = []

    def short_once(self):  # the first call (the compiled read) gets one code less, later ones the real range
        calls.append(1)
        return real_levels(self) - (len(calls) == 1)

    monkeypatch.setattr(Crossbar, "_levels", short_once)
    compiled, eager = _read_both(bar, x, None, monkeypatch)
    assert not torch.equal(compiled, eager)
    monkeypatch.setattr(Crossbar, "_levels", real_levels)
    assert torch.equal(*_read_both(bar, x, None, monkeypatch))


@pytest.mark.parametrize("values, binary", [((0.0, 1.0), True), ((0.0, 1.0, 2.0), False), ((0.0, 0.5, 1.0), False),
                                            ((0.0, -1.0, 1.0), False)])
def test_spike_check_agrees_with_the_eager_one(values, binary, monkeypatch):
    choice = torch.randint(len(values), (50, 40), generator=torch.Generator().manual_seed(5))
    x = torch.tensor(values)[choice]
    compiled = crossbar_module._spike_rows(x)
    monkeypatch.setattr(fused, "enabled", False)
    eager = crossbar_module._spike_rows(x)
    assert (compiled is None) == (eager is None) == (not binary)
    if binary:
        assert torch.equal(compiled, eager) and torch.equal(compiled, x.sum(dim=-1, keepdim=True))


def test_the_kernel_is_cached_under_a_name_that_follows_its_source(monkeypatch):
    """Two checkouts sharing one build cache must not load each other's binary."""
    tag = fused._source_tag()
    monkeypatch.setattr(fused, "_SOURCE", fused._SOURCE + "// changed\n")
    assert fused._source_tag() != tag


_P61 = (1 << 61) - 1


def _digest_by_hand(parts, key):
    """The keyed digest written out: per part a header ((dtype code + 1) << 40 | byte count), then the bytes as
    little-endian 32-bit words (the last one zero-filled), zeros to a multiple of 8 coefficients; coefficient t
    of n is multiplied by key^(n + 7 - t) modulo 2^61 - 1."""
    codes = {torch.float16: 5, torch.float32: 6, torch.float64: 7}
    elements = []
    for part in parts:
        data = part.numpy().tobytes()
        elements.append(((codes[part.dtype] + 1) << 40) | len(data))
        elements += [int.from_bytes(data[i:i + 4].ljust(4, b"\0"), "little") for i in range(0, len(data), 4)]
    elements += [0] * (-len(elements) % 8)
    n = len(elements)
    return sum(e * pow(key, n + 7 - t, _P61) for t, e in enumerate(elements)) % _P61


def test_the_keyed_digest_is_the_polynomial_it_documents():
    compiled = fused.module()
    generator = torch.Generator().manual_seed(0)
    for trial in range(24):
        dtype = (torch.float32, torch.float16, torch.float64)[trial % 3]
        sizes = torch.randint(0, 40, (1 + trial % 4,), generator=generator).tolist()  # odd byte counts included
        parts = [torch.randn(size, generator=generator).to(dtype) for size in sizes]
        key = int(torch.randint(1, 2**62, (1,), generator=generator)) % (_P61 - 1) + 1
        assert compiled.keyed_digest(parts, key) == _digest_by_hand(parts, key)


def test_the_keyed_digest_sees_every_single_bit_flip_and_every_regrouping():
    """A change within one 32-bit word moves the digest for any key (the difference is d * key^e, never zero
    modulo the prime): every one of the 32 bits of every value is flipped in turn."""
    compiled = fused.module()
    parts = [torch.randn(3, 4), torch.randn(5)]
    key = 0x1234_5678_9ABC_DEF % _P61
    reference = compiled.keyed_digest(parts, key)
    assert compiled.keyed_digest([p.clone() for p in parts], key) == reference  # the bytes, not the storage
    assert compiled.keyed_digest(parts, key + 1) != reference  # keyed
    for which, part in enumerate(parts):
        words = part.reshape(-1).view(torch.int32)
        for index in range(words.numel()):
            for bit in range(32):
                flipped = [p.clone() for p in parts]
                flipped[which].reshape(-1).view(torch.int32)[index] ^= (1 << bit) - (1 << 32 if bit == 31 else 0)
                assert compiled.keyed_digest(flipped, key) != reference, (which, index, bit)
    joined = torch.cat([p.reshape(-1) for p in parts])
    assert compiled.keyed_digest([joined], key) != reference  # the same values split otherwise
    assert compiled.keyed_digest([parts[1], parts[0]], key) != reference
    assert compiled.keyed_digest([*parts, torch.zeros(0)], key) != reference  # an empty part more
    assert compiled.keyed_digest([parts[0], parts[1].double()], key) != reference  # another dtype


def test_the_keyed_digest_declines_what_it_cannot_read_and_refuses_a_bad_key():
    compiled = fused.module()
    parts = [torch.randn(3, 4), torch.randn(5)]
    assert compiled.keyed_digest([parts[0].t(), parts[1]], 7) == -1  # not contiguous: the caller keeps a copy
    assert compiled.keyed_digest([parts[0], torch._neg_view(parts[1])], 7) == -1  # its bytes are not its values
    assert compiled.keyed_digest([parts[0], torch._efficientzerotensor(5)], 7) == -1  # no bytes at all
    for bad in (0, -3, _P61, 2**62):
        with pytest.raises(RuntimeError, match="key must lie"):
            compiled.keyed_digest(parts, bad)


@pytest.mark.parametrize("kind", ["spikes", "counts"])
def test_a_vector_with_no_input_reads_no_noise(kind):
    """A silent input vector applies no voltage: it reads exactly zero (no bias added, so that even a
    1e-15 noise would show), while the vectors beside it that carry input are noisy (the control that noise
    is on)."""
    bar = _crossbar(CrossbarConfig())
    x = _inputs(kind)
    x[::3] = 0.0
    with torch.no_grad():
        noisy = bar.matmul(x)
        bar.set_config(CrossbarConfig(read_noise=False))
        clean = bar.matmul(x)
    assert torch.equal(noisy[::3], torch.zeros_like(noisy[::3]))
    live = x.any(dim=1)
    assert (noisy[live] != clean[live]).float().mean() > 0.9


@pytest.mark.parametrize("bits, bound", [(8, 16.0), (6, 0.7), (4, 3.0)])
def test_the_compiled_dac_gives_the_eager_levels(bits, bound, monkeypatch):
    """Value for value, on a step that is not a power of two too (0.7 / 32): halfway points (round half to
    even), both saturations, negatives, NaN and infinities."""
    bar = Crossbar(4, 300, DeviceConfig(), CrossbarConfig(dac_bits=bits, input_bound=bound), seed=3)
    step = bound / 2 ** (bits - 1)
    special = torch.cat([(torch.arange(-40, 41) + 0.5) * step,
                         torch.tensor([float("nan"), float("inf"), -float("inf"), 2 * bound, -2 * bound])])
    x = torch.randn(7, 300, generator=torch.Generator().manual_seed(6)) * bound
    x.view(-1)[: special.numel()] = special
    compiled = bar.dac(x)
    monkeypatch.setattr(fused, "enabled", False)
    eager = bar.dac(x)
    assert torch.equal(compiled.isnan(), eager.isnan())
    assert torch.equal(compiled.nan_to_num(), eager.nan_to_num())
    assert compiled.isnan().sum() == 1 and compiled.nan_to_num(0.0).abs().max() == step * 2 ** (bits - 1)  # saturated
