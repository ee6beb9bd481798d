"""Property-based checks of the public entry points: bad input gets a clear error, good input a right answer."""

import math
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.crossbar import Crossbar
from neuro_rm.data import FrameConfig, load_speakers
from neuro_rm.device import DeviceConfig
from neuro_rm.learning import TrainConfig
from neuro_rm.models import RSNNConfig

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=32)


def _write(path, times, units, n_channels=40):
    with h5py.File(path, "w") as f:
        for key, values, dtype in (("spikes/times", times, np.float32), ("spikes/units", units, np.uint16)):
            data = np.empty(len(values), dtype=object)
            for i, v in enumerate(values):
                data[i] = np.asarray(v, dtype=dtype)
            f.create_dataset(key, data=data, dtype=h5py.vlen_dtype(dtype))
        f.create_dataset("labels", data=np.zeros(len(times), np.uint16))
        f.create_dataset("extra/speaker", data=np.zeros(len(times), np.uint16))
        f.attrs["n_channels"] = n_channels


sample = st.integers(0, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.one_of(st.floats(-0.5, 2.0, width=32), st.sampled_from([math.nan, math.inf, -math.inf])),
                 min_size=n, max_size=n),
        st.lists(st.integers(0, 60), min_size=n, max_size=n),
    )
)


@SETTINGS
@given(st.lists(sample, min_size=1, max_size=4))
def test_spike_files_error_clearly_or_keep_every_spike(tmp_path, batch):
    """NaN/negative/unsorted times, out-of-range channels and empty samples: either a ValueError naming the
    file, or frames holding exactly the spikes inside [0, max_time), each in its time bin and channel group."""
    path = tmp_path / "prop.h5"
    _write(path, [t for t, _ in batch], [u for _, u in batch])
    frames = FrameConfig(n_bins=4, max_time=1.0, group=4)
    bad_time = any(not math.isfinite(t) or t < 0 for times, _ in batch for t in times)
    bad_unit = any(u >= 40 for _, units in batch for u in units)
    if bad_time or bad_unit:
        with pytest.raises(ValueError, match="prop.h5"):
            load_speakers(path, frames=frames, cache=False)
        return
    splits = load_speakers(path, frames=frames, split=None, cache=False)
    x = torch.cat([splits.train.x, splits.val.x, splits.test.x])
    order = torch.cat([splits.train.sample, splits.val.sample, splits.test.sample])
    for row, index in enumerate(order.tolist()):
        times, units = batch[index]
        expected = np.zeros((4, 10))
        for t, u in zip(np.float32(times), units, strict=True):
            bin_ = int(np.floor(float(t) / 0.25))
            if bin_ < 4:
                expected[bin_, u // 4] += 1
        assert np.array_equal(x[row].numpy(), expected), (times, units)


@SETTINGS
@given(st.fixed_dictionaries({}, optional={
    "g_min_us": ANY_FLOAT, "g_max_us": ANY_FLOAT, "levels": st.integers(-3, 300), "tolerance_us": ANY_FLOAT,
    "max_pulses": st.integers(-2, 60), "endurance_cycles": st.integers(-5, 10**6), "stuck_on_rate": ANY_FLOAT,
    "read_noise_us": ANY_FLOAT,
}))
def test_device_configs_are_valid_or_refused(kwargs):
    try:
        cfg = DeviceConfig(**kwargs)
    except ValueError as error:
        assert "DeviceConfig" in str(error)
        return
    assert 0 <= cfg.g_min_us < cfg.g_max_us and cfg.levels >= 2 and cfg.tolerance_us > 0
    assert all(math.isfinite(v) for v in (cfg.g_min_us, cfg.g_max_us, cfg.read_noise_us))


@SETTINGS
@given(arrays(np.float32, (3, 4), elements=ANY_FLOAT))
def test_crossbar_programs_finite_weights_and_refuses_others(weights):
    xbar = Crossbar(3, 4)
    if not np.isfinite(weights).all():
        with pytest.raises(ValueError, match="NaN or infinite"):
            xbar.program(torch.from_numpy(weights))
        return
    xbar.program(torch.from_numpy(weights))
    decoded = xbar.weight()
    assert torch.isfinite(decoded).all()
    scale = float(np.abs(weights).max())  # the ±2 µS tolerance (+ drift-free read) on a 30 µS half-window
    assert float((decoded - torch.from_numpy(weights)).abs().max()) <= 2.5 / 30 * scale + 1e-9


@pytest.fixture(scope="module")
def auth(tiny_speech):
    a, _ = SpeakerAuthenticator.pretrain(["a", "b", "c", "d"], tiny_speech["train"], tiny_speech["val"],
                                         RSNNConfig(n_inputs=20, n_hidden=16, n_outputs=4), TrainConfig(epochs=1))
    return a


@SETTINGS
@given(st.one_of(
    arrays(np.float32, st.tuples(st.integers(0, 3), st.integers(1, 6), st.sampled_from([19, 20, 21])), elements=ANY_FLOAT),
    arrays(np.float64, st.tuples(st.integers(1, 6), st.sampled_from([20, 7]))),
    arrays(np.int16, st.tuples(st.integers(1, 2), st.integers(1, 3), st.just(20)), elements=st.integers(-3, 3)),
))
def test_frames_given_to_the_authenticator_are_checked(auth, frames):
    tensor = torch.from_numpy(frames)
    t = (tensor.unsqueeze(0) if tensor.dim() == 2 else tensor).float()  # 2-D input is one sample
    valid = (t.shape[-1] == 20 and len(t) > 0 and bool(torch.isfinite(t).all()) and bool((t >= 0).all())
             and bool((t.flatten(1).sum(1) > 0).all()))
    try:
        checked = auth.check_frames(tensor)
    except ValueError as error:
        assert not valid, str(error)
        return
    assert valid and checked.dtype == torch.float32 and checked.dim() == 3


def test_a_warning_raised_by_a_command_is_shown_once_and_the_command_ends(monkeypatch):
    """A command that warns (e.g. a merge clipped at the conductance window) prints the warning once
    and exits normally; showing it must not feed the recorder it came from (that loop ate all memory)."""
    import warnings

    from neuro_rm import cli

    def warn_and_finish(args):
        warnings.warn("merging 'x' asked 3 cells for a conductance beyond the window", RuntimeWarning, stacklevel=1)

    monkeypatch.setattr(cli, "_run", warn_and_finish)
    with pytest.warns(RuntimeWarning) as shown:  # pytest stands in for stderr here
        assert cli.main(["device", "--json"]) == 0
    assert sum("beyond the window" in str(w.message) for w in shown) == 1


def test_a_reader_that_stops_early_is_not_an_error_of_the_command():
    """``neuro-rm data FILE | head``: the pipe closing under the command ends it quietly, exit 0."""
    stub = ("import sys, neuro_rm.cli as cli\n"
            "def _run(args):\n    raise BrokenPipeError(32, 'Broken pipe')\n"
            "cli._run = _run\nsys.exit(cli.main(['data']))\n")
    done = subprocess.run([sys.executable, "-c", stub], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "error" not in done.stderr, done.stderr
