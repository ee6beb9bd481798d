"""SSC-layout files through the same path as a real SSC download: tonic datasets, checks, frames, splits."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import tonic
import torch

from neuro_rm.data import (
    SSC,
    FrameConfig,
    SplitConfig,
    format_summary,
    load_folder_speakers,
    load_speakers,
    open_folder,
    summarize,
)
from neuro_rm.data import speakers as speakers_module

# speaker id → samples: 7 has the most, then 3, 9, 1 (spread over the three SSC files)
COUNTS = {7: 42, 3: 30, 9: 21, 1: 5}
FILES = ("ssc_train.h5", "ssc_valid.h5", "ssc_test.h5")


def write_ssc(
    path: Path, times: list, units: list, labels: list, speakers: list, drop: str | None = None
) -> None:
    """An SSC-layout file as the Heidelberg sets store it (float16 seconds, uint16 units, word keys)."""
    ragged = {"spikes/times": (times, np.float16), "spikes/units": (units, np.uint16)}
    plain = {
        "labels": np.asarray(labels, np.uint16),
        "extra/speaker": np.asarray(speakers, np.uint16),
        "extra/keys": np.array([b"yes", b"no", b"up"]),
    }
    with h5py.File(path, "w") as f:
        for key, (values, dtype) in ragged.items():
            if key != drop:
                arr = np.empty(len(values), dtype=object)
                for i, v in enumerate(values):
                    arr[i] = np.asarray(v, dtype=dtype)
                f.create_dataset(key, data=arr, dtype=h5py.vlen_dtype(dtype))
        for key, values in plain.items():
            if key != drop:
                f.create_dataset(key, data=values)


def samples(rng: np.random.Generator) -> tuple[list, list, list, list]:
    """Every sample: a few random spikes, plus one at 0.5 s on channel 5·speaker (a speaker marker)."""
    times, units, labels, speakers = [], [], [], []
    for speaker, n in COUNTS.items():
        for k in range(n):
            t = np.sort(np.append(rng.uniform(0, 1.3, 6), 0.5))
            u = rng.integers(0, 700, 7)
            u[np.flatnonzero(t == 0.5)[0]] = 5 * speaker
            times.append(t)
            units.append(u)
            labels.append(k % 3)
            speakers.append(speaker)
    return times, units, labels, speakers


@pytest.fixture
def ssc_root(tmp_path: Path) -> Path:
    """A fake SSC download: the samples dealt round-robin into train / valid / test files."""
    times, units, labels, speakers = samples(np.random.default_rng(0))
    for part, name in enumerate(FILES):
        pick = slice(part, None, 3)
        write_ssc(tmp_path / name, times[pick], units[pick], labels[pick], speakers[pick])
    return tmp_path


@pytest.fixture(autouse=True)
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", refuse)


def test_folder_goes_through_tonic_ssc(ssc_root: Path) -> None:
    datasets = open_folder(ssc_root)
    assert [type(d) for d in datasets] == [SSC] * 3 and all(
        isinstance(d, tonic.datasets.SSC) for d in datasets
    )
    events, label = datasets[0][0]
    assert events.dtype.names == ("t", "x", "p") and label in (0, 1, 2)


def test_speaker_split_top_n_proportions_and_no_overlap(ssc_root: Path) -> None:
    s = load_folder_speakers(ssc_root, n_speakers=3, cache=False)
    assert s.speaker_ids == [7, 3, 9] and s.speaker_names == ["speaker 7", "speaker 3", "speaker 9"]
    assert s.word_names == ["yes", "no", "up"] and s.n_channels == 700
    for label, speaker in enumerate(s.speaker_ids):
        n = COUNTS[speaker]
        n_train_all = int(n * 17 / 21)
        n_val = round(n_train_all * 0.15)
        got = [int((part.y == label).sum()) for part in (s.train, s.val, s.test)]
        assert got == [n_train_all - n_val, n_val, n - n_train_all]
    rows = [set(p.sample.tolist()) for p in (s.train, s.val, s.test)]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    assert len(set.union(*rows)) == sum(COUNTS[i] for i in s.speaker_ids)
    # the marker spike at 0.5 s on channel 5·speaker → group = speaker id: labels really follow speakers
    for part in (s.train, s.val, s.test):
        groups = torch.tensor(s.speaker_ids)[part.y]
        assert (part.x[torch.arange(len(part)), 3, groups] >= 1).all()


def test_split_is_reproducible_seeded_and_stable_when_adding_speakers(ssc_root: Path) -> None:
    a = load_folder_speakers(ssc_root, n_speakers=3, cache=False)
    b = load_folder_speakers(ssc_root, n_speakers=3, cache=False)
    c = load_folder_speakers(ssc_root, n_speakers=3, split=SplitConfig(seed=1), cache=False)
    two = load_folder_speakers(ssc_root, n_speakers=2, cache=False)
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(a, name).sample, getattr(b, name).sample)
        assert torch.equal(getattr(a, name).x, getattr(b, name).x)
        assert torch.equal(getattr(a, name).select([0, 1]).sample, getattr(two, name).sample)
    assert not torch.equal(a.test.sample, c.test.sample)
    enrol = a.select([2])
    assert set(enrol.train.y.tolist()) == {2} and enrol.speaker_names == a.speaker_names


def test_tonic_layout_and_single_file_give_the_same_frames(ssc_root: Path, tmp_path_factory) -> None:
    nested = tmp_path_factory.mktemp("data")
    (nested / "SSC").mkdir()
    for name in FILES:
        (nested / "SSC" / name).write_bytes((ssc_root / name).read_bytes())
    flat = load_folder_speakers(ssc_root, n_speakers=3, cache=False)
    tonic_layout = load_folder_speakers(nested, n_speakers=3, cache=False)
    assert torch.equal(flat.train.x, tonic_layout.train.x)
    times, units, labels, speakers = samples(np.random.default_rng(0))
    write_ssc(nested / "one.h5", times, units, labels, speakers)
    single = load_speakers(nested / "one.h5", n_speakers=3, cache=False)
    assert single.frames == FrameConfig() and single.speaker_ids == flat.speaker_ids
    assert single.train.x.sum() == flat.train.x.sum() == 7 * len(flat.train)  # same data, other sample order


def test_binning_known_spikes(tmp_path: Path) -> None:
    path = tmp_path / "one.h5"
    # unsorted on purpose; 1.45 s lies past max_time (1.4 s) and is dropped
    times = [np.array([1.0, 0.5, 1.45, 0.0, 0.25])]
    units = [np.array([699, 12, 3, 0, 14])]
    write_ssc(path, times, units, [0], [4])
    s = load_speakers(path, split=SplitConfig(train_fraction=0.5, val_fraction=0), cache=False)
    x = torch.cat([s.train.x, s.test.x])
    assert x.shape == (1, 10, 140)
    expected = torch.zeros(10, 140)
    for t, c in ((1.0, 699), (0.5, 12), (0.0, 0), (0.25, 14)):
        expected[int(float(np.float16(t)) * 1e6) // 140_000, c // 5] += 1
    assert torch.equal(x[0], expected)
    assert expected[7, 139] == 1 and expected[3, 2] == 1 and expected[1, 2] == 1 and expected[0, 0] == 1
    other = load_speakers(
        path, frames=FrameConfig(n_bins=4, max_time=2.0, group=7), split=SplitConfig(0.5, 0), cache=False
    )
    x = torch.cat([other.train.x, other.test.x])[0]
    assert x.shape == (4, 100) and x[2, 0] == 1 and x[2, 99] == 1 and x[1, 1] == 1 and x.sum() == 5


def test_cache_is_used_and_holds_no_pickle(
    ssc_root: Path, tmp_path_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path_factory.mktemp("cache")
    first = load_folder_speakers(ssc_root, n_speakers=3, cache_dir=cache)
    entries = list(cache.glob("*.npz"))
    assert len(entries) == 3  # one per file (each file's samples fit one chunk)
    for entry in entries:
        with np.load(entry, allow_pickle=False) as stored:
            assert stored.files == ["x"] and stored["x"].dtype == np.uint16

    def no_binning(*args, **kwargs):
        raise AssertionError("frames were recomputed")

    monkeypatch.setattr(speakers_module, "to_frames", no_binning)
    second = load_folder_speakers(ssc_root, n_speakers=3, cache_dir=cache)
    assert torch.equal(first.train.x, second.train.x) and torch.equal(first.test.y, second.test.y)


def test_missing_files_name_what_to_get(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"ssc_train\.h5, ssc_valid\.h5, ssc_test\.h5.*zenkelab"):
        load_folder_speakers(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"shd_train\.h5, shd_test\.h5"):
        load_folder_speakers(tmp_path, kind="SHD")
    with pytest.raises(FileNotFoundError, match="zenkelab"):
        SSC(str(tmp_path), split="train")  # tonic itself would download here
    with pytest.raises(FileNotFoundError, match="no SSC-layout file"):
        load_speakers(tmp_path / "absent.h5")


GOOD = ([np.array([0.1, 0.2])], [np.array([1, 2])])


@pytest.mark.parametrize(
    ("times", "units", "drop", "message"),
    [
        (*GOOD, "extra/speaker", r"missing key\(s\) \['extra/speaker'\]"),
        (*GOOD, "spikes/units", r"missing key\(s\) \['spikes/units'\]"),
        ([np.array([0.1, 0.2, 0.3])], [np.array([1, 2])], None, "3 times but 2 units"),
        ([np.array([-0.1, 0.2])], [np.array([1, 2])], None, "negative spike time"),
        ([np.array([np.nan, 0.2])], [np.array([1, 2])], None, "non-finite"),
        ([np.array([0.1, 0.2])], [np.array([1, 700])], None, "channel 700 outside 0..699"),
        ([], [], None, "holds no samples"),
    ],
)
def test_malformed_files_raise_clear_errors(tmp_path: Path, times, units, drop, message) -> None:
    path = tmp_path / "bad.h5"
    n = len(times)
    write_ssc(path, times, units, [0] * n, [0] * n, drop=drop)
    with pytest.raises(ValueError, match=message) as err:
        load_speakers(path, cache=False)
    assert "bad.h5" in str(err.value)


def test_malformed_file_in_a_folder_is_reported_before_tonic_opens_it(ssc_root: Path) -> None:
    write_ssc(ssc_root / "ssc_valid.h5", *GOOD, [0], [0], drop="extra/keys")
    with pytest.raises(ValueError, match=r"ssc_valid\.h5.*extra/keys"):
        load_folder_speakers(ssc_root, cache=False)


def test_declared_channel_count_is_used(tmp_path: Path) -> None:
    path = tmp_path / "wide.h5"
    write_ssc(path, [np.array([0.1])], [np.array([900])], [0], [0])
    with pytest.raises(ValueError, match="outside 0..699"):
        load_speakers(path, cache=False)
    with h5py.File(path, "a") as f:
        f.attrs["n_channels"] = 1000
    s = load_speakers(path, split=SplitConfig(0.5, 0), cache=False)
    assert s.n_channels == 1000 and torch.cat([s.train.x, s.test.x])[0, 0, 180] == 1


def test_summary_of_a_file(ssc_root: Path) -> None:
    d = summarize(ssc_root / "ssc_train.h5")
    json.dumps(d)
    n = sum(COUNTS.values())
    assert d["samples"] == len(range(0, n, 3)) and d["n_channels"] == 700
    assert d["events_per_sample"]["mean"] == 7 and d["max_time_s"] <= 1.31
    assert sum(d["speakers"].values()) == d["samples"] and list(d["speakers"])[0] == "speaker 7"
    assert d["labels"] == {"yes": 33} and "speaker 7" in format_summary(d)  # every 3rd sample: k % 3 == 0
    folder = summarize(ssc_root)
    assert list(folder) == sorted(FILES) and sum(f["samples"] for f in folder.values()) == n


def test_shd_folder_in_tonic_layout(tmp_path: Path) -> None:
    times, units, labels, speakers = samples(np.random.default_rng(1))
    (tmp_path / "SHD").mkdir()
    write_ssc(tmp_path / "SHD" / "shd_train.h5", times[::2], units[::2], labels[::2], speakers[::2])
    write_ssc(tmp_path / "SHD" / "shd_test.h5", times[1::2], units[1::2], labels[1::2], speakers[1::2])
    s = load_folder_speakers(tmp_path, kind="SHD", n_speakers=2, cache=False)
    assert s.speaker_ids == [7, 3] and len(s.sources) == 2 and s.sources[0].endswith("SHD/shd_train.h5")
    assert len(s.train) + len(s.val) + len(s.test) == COUNTS[7] + COUNTS[3]
