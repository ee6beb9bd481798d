"""``neuro-rm data FILE`` checks a file as the loader would and lists every kind of problem it finds."""

import h5py
import numpy as np
import pytest
from conftest import tiny_spike_file

from neuro_rm import cli
from neuro_rm.data import load_speakers, validate_file


def _write(path, times, units, n_channels=40, n_labels=None):
    """An SSC-layout file written field by field, so that it can be broken in ways write_spike_file refuses."""
    with h5py.File(path, "w") as f:
        for key, values, dtype in (("spikes/times", times, np.float32), ("spikes/units", units, np.int32)):
            data = np.empty(len(values), dtype=object)
            for i, v in enumerate(values):
                data[i] = np.asarray(v, dtype=dtype)
            f.create_dataset(key, data=data, dtype=h5py.vlen_dtype(dtype))
        n = len(times) if n_labels is None else n_labels
        f.create_dataset("labels", data=np.zeros(n, np.uint16))
        f.create_dataset("extra/speaker", data=np.zeros(n, np.uint16))
        f.attrs["n_channels"] = n_channels
    return path


GOOD_T, GOOD_U = [0.1, 0.2, 0.3], [1, 2, 3]
DEFECTS = {  # kind: (times of sample 1, units of sample 1, words the reason must contain)
    "ragged": ([0.1, 0.2, 0.3], [1, 2], "3 times but 2 units (ragged)"),
    "negative": ([-0.5, 0.2, 0.3], GOOD_U, "negative spike time -0.5 s"),
    "unsorted": ([0.1, 0.3, 0.2], GOOD_U, "spike times not sorted (0.2 s after 0.3 s); this package bins them anyway"),
    "nan": ([0.1, np.nan, 0.3], GOOD_U, "non-finite spike time"),
    "channel": (GOOD_T, [1, 40, 3], "channel 40 outside 0..39"),
    "negative channel": (GOOD_T, [1, -2, 3], "channel -2 outside 0..39"),
}


def _data(path, capsys):
    code = cli.main(["data", str(path)])
    return code, capsys.readouterr()


@pytest.mark.parametrize("kind", DEFECTS)
def test_each_defect_is_named_and_fails(tmp_path, capsys, kind):
    times, units, words = DEFECTS[kind]
    path = _write(tmp_path / "bad.h5", [GOOD_T, times, GOOD_T], [GOOD_U, units, GOOD_U])
    code, out = _data(path, capsys)
    lines = out.err.splitlines()
    assert code == 2 and out.out == ""
    assert len(lines) == 1 and f"bad.h5: sample 1: {words}" in lines[0], out.err
    if kind == "unsorted":  # binning does not depend on order: the loader accepts it, `data` still flags it
        assert len(load_speakers(path, cache=False).train) > 0
        return
    with pytest.raises(ValueError, match=f"sample 1: {words.split(' (')[0]}"):  # the loader refuses it alike
        load_speakers(path, cache=False)


def test_every_problem_gets_its_line_and_repeats_are_counted(tmp_path, capsys):
    samples = [(GOOD_T, GOOD_U)] * 2 + [([-1.0, 0.2], [1, 2])] * 5 + [(GOOD_T, [1, 2, 99])] + [([0.1, 0.3, 0.2], [1, 2])]
    path = _write(tmp_path / "bad.h5", [t for t, _ in samples], [u for _, u in samples])
    code, out = _data(path, capsys)
    lines = out.err.splitlines()
    assert code == 2
    assert [ln.split("sample ")[1].split(":")[0] for ln in lines[:3]] == ["2", "3", "4"]  # first 3 of 5 negatives
    assert "2 more sample(s) with the problem 'negative time'" in lines[3]
    assert any("sample 7: channel 99" in ln for ln in lines)
    assert any("sample 8: 3 times but 2 units" in ln for ln in lines) and any("sample 8: spike times not sorted" in ln for ln in lines)
    assert len(lines) == 7 and all(ln.startswith("neuro-rm data: error: ") for ln in lines)


@pytest.mark.parametrize("case, words", [
    ("no samples", "holds no samples"),
    ("zero bytes", "not a readable HDF5 file"),
    ("keys of different length", "keys differ in length"),
])
def test_empty_or_broken_files_fail_with_one_line(tmp_path, capsys, case, words):
    path = tmp_path / "bad.h5"
    if case == "no samples":
        _write(path, [], [])
    elif case == "zero bytes":
        path.write_bytes(b"")
    else:
        _write(path, [GOOD_T, GOOD_T], [GOOD_U, GOOD_U], n_labels=3)
    code, out = _data(path, capsys)
    assert code == 2 and words in out.err and len(out.err.splitlines()) == 1, out.err


def test_a_good_file_is_summarised(tmp_path, capsys):
    path = tiny_spike_file(tmp_path / "good.h5")
    code, out = _data(path, capsys)
    assert code == 0 and out.err == "" and "samples 160" in out.out
    assert len(validate_file(path)) == 160
