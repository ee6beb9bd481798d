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
    """Two full 128-row tiles and a partly filled one; 150 outputs, so that the kernel's blocks of 128 outputs
    and the remainder are both read; calibrated on counts so that some tiles saturate later."""
    bar = Crossbar(out_features, in_features, DeviceConfig(), config, seed=3)
    bar.program(torch.randn(out_features, in_features, generator=torch.Generator().manual_seed(1)) * 0.1)
    bar.set_time(3600.0)
    if config.adc_bits is not None:
        bar.calibrate((torch.rand(64, in_features, generator=torch.Generator().manual_seed(2)) < 0.1).float())
    return bar


def _inputs(kind, vectors=700, in_features=300):
    generator = torch.Generator().manual_seed(4)
    spikes = (torch.rand(vectors, in_features, generator=generator) < 0.15).float()
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


def test_fingerprint_tells_any_changed_byte_and_declines_what_it_cannot_read():
    compiled = fused.module()
    parts = [torch.randn(3, 4), torch.randn(5)]
    (digest,) = compiled.fingerprint(parts)
    assert compiled.fingerprint([p.clone() for p in parts]) == [digest]  # the bytes, not where they live
    for which, index in ((0, 0), (0, 11), (1, 4)):  # the first word, a lane's last, the odd tail word
        changed = [p.clone() for p in parts]
        changed[which].view(-1)[index] = torch.nextafter(changed[which].view(-1)[index], torch.tensor(1e9))  # one ulp
        assert compiled.fingerprint(changed) != [digest]
    zero = [torch.zeros(4)]
    assert compiled.fingerprint(zero) != compiled.fingerprint([-zero[0]])  # -0.0 is another value's bytes
    assert compiled.fingerprint([parts[0], parts[1][:2]]) != [digest]  # fewer values
    assert compiled.fingerprint([*parts, torch.zeros(1)]) != [digest]  # more
    assert compiled.fingerprint([torch.cat([parts[0].reshape(-1), parts[1][:1]]), parts[1][1:]]) != [digest]  # split elsewhere
    assert compiled.fingerprint([parts[0].double(), parts[1]]) != [digest]  # another dtype
    swapped = [parts[0].reshape(-1).roll(1).reshape(3, 4), parts[1]]  # the same values in another order
    assert compiled.fingerprint(swapped) != [digest]
    assert compiled.fingerprint([parts[0].t(), parts[1]]) == []  # not contiguous: the caller compares values
    assert compiled.fingerprint([parts[0], torch._neg_view(parts[1])]) == []  # its bytes are not its values
    assert compiled.fingerprint([parts[0], torch._efficientzerotensor(5)]) == []  # no bytes at all


def test_a_random_change_never_collides_in_many_tries():
    """Positive control of the digest's spread: 20,000 single-value changes of a 3,000-value factor (each
    a fresh random value at a random place) give 20,000 distinct digests, none equal to the original's."""
    compiled = fused.module()
    generator = torch.Generator().manual_seed(9)
    factor = torch.randn(3000, generator=generator)
    (original,) = compiled.fingerprint([factor])
    seen = set()
    places = torch.randint(3000, (20_000,), generator=generator)
    values = torch.randn(20_000, generator=generator)
    for place, value in zip(places.tolist(), values.tolist(), strict=True):
        old = float(factor[place])
        factor[place] = value
        seen.add(compiled.fingerprint([factor])[0])
        factor[place] = old
    assert original not in seen and len(seen) == 20_000


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
