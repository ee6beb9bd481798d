"""The SSC/SHD HDF5 layout: read and check a file's header and samples, and write one reproducibly.

Layout (as the Heidelberg spiking data sets): ``spikes/times`` (one variable-length float array of seconds
per sample), ``spikes/units`` (matching channel ids), ``labels`` (word / digit class), ``extra/speaker``
(speaker id); optional ``extra/keys`` (label names), ``extra/speaker_names`` (indexed by speaker id) and
file attributes (``n_channels``, and for files we build: ``encoder``, ``default_frames``, ``source``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

REQUIRED_KEYS = ("spikes/times", "spikes/units", "labels", "extra/speaker")
DEFAULT_CHANNELS = 700  # the cochlea model of SSC and SHD
# Limits on what a file may declare, checked before anything of that size is read or allocated (an HDF5
# file of a few KB can declare billions of unwritten samples).  SSC, the largest set, has ~100k samples
# of at most a few 10k events; units are uint16, so no file can address more than 2**16 channels.
MAX_SAMPLES = 10_000_000
MAX_EVENTS_PER_SAMPLE = 5_000_000
MAX_CHANNELS = 1 << 16


@dataclass
class SpikeFileInfo:
    """Everything about a file except its spikes (those stay on disk until binned)."""

    path: Path
    n_channels: int
    labels: np.ndarray  # int64, one per sample
    speakers: np.ndarray  # int64 speaker ids, one per sample
    label_names: list[str]  # index = label
    speaker_names: dict[int, str]  # speaker id → name
    attrs: dict[str, object]  # JSON-decoded file attributes

    def __len__(self) -> int:
        return len(self.labels)


def _names(file: h5py.File, key: str, count: int) -> list[str] | None:
    if key not in file:
        return None
    raw = file[key][()]
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.atleast_1d(raw)]
    return names if len(names) >= count else None


def _attr(value: object) -> object:
    value = value.decode() if isinstance(value, bytes) else value
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value.item() if isinstance(value, np.generic) else value


def read_info(path: str | Path, also_require: Sequence[str] = ()) -> SpikeFileInfo:
    """Open ``path`` and check its structure; ValueError names the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no SSC-layout file at {path}")
    try:
        file = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from err
    with file:
        needed = [*REQUIRED_KEYS, *also_require]
        missing = [k for k in needed if k not in file]
        if missing:
            raise ValueError(f"{path}: missing key(s) {missing}; this reader needs {needed}")
        lengths = {k: len(file[k]) for k in REQUIRED_KEYS}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"{path}: keys differ in length {lengths}")
        if lengths["labels"] == 0:
            raise ValueError(f"{path}: the file holds no samples")
        if lengths["labels"] > MAX_SAMPLES:
            raise ValueError(f"{path}: the file declares {lengths['labels']} samples, more than {MAX_SAMPLES} (MAX_SAMPLES)")
        labels, speakers = file["labels"][()], file["extra/speaker"][()]
        for name, values in (("labels", labels), ("extra/speaker", speakers)):
            if not np.issubdtype(values.dtype, np.integer) or values.min() < 0:
                raise ValueError(f"{path}: {name} must be non-negative integers, got dtype {values.dtype}")
        attrs = {k: _attr(v) for k, v in file.attrs.items()}
        n_channels = attrs.get("n_channels", DEFAULT_CHANNELS)
        if isinstance(n_channels, bool) or not isinstance(n_channels, int) or not 1 <= n_channels <= MAX_CHANNELS:
            raise ValueError(f"{path}: n_channels must be an integer in 1..{MAX_CHANNELS}, got {n_channels!r}")
        label_names = _names(file, "extra/keys", int(labels.max()) + 1) or [
            str(i) for i in range(labels.max() + 1)
        ]
        speaker_names = _names(file, "extra/speaker_names", int(speakers.max()) + 1)
    ids = np.unique(speakers).tolist()
    return SpikeFileInfo(
        path=path,
        n_channels=n_channels,
        labels=labels.astype(np.int64),
        speakers=speakers.astype(np.int64),
        label_names=label_names,
        speaker_names={i: speaker_names[i] if speaker_names else f"speaker {i}" for i in ids},
        attrs=attrs,
    )


SHOWN_PER_KIND = 3  # problems of one kind listed by validate_file before it only counts them
BLOCK = 4096  # samples read at a time by validate_file, so a multi-GB file stays within memory
# Problems the loader can live with: binning does not depend on event order, but SSC/SHD files are written
# sorted and other tools (e.g. tonic's own frame transforms) assume it, so ``neuro-rm data`` still flags them.
LOADER_TOLERATES = frozenset({"unsorted"})


class SpikeFileError(ValueError):
    """A file whose samples have problems; the message is one line per problem (the first few of each kind)."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.path, self.problems = path, problems


def sample_problems(times: np.ndarray, units: np.ndarray, n_channels: int) -> list[tuple[str, str]]:
    """Every defect of one sample as (kind, reason): the one definition of a valid sample, used both by
    the loader (which stops at the first) and by ``neuro-rm data`` (which lists them)."""
    if len(times) > MAX_EVENTS_PER_SAMPLE:  # before tonic turns them into ~5x larger event records
        return [("too many events", f"{len(times)} events, more than {MAX_EVENTS_PER_SAMPLE} (MAX_EVENTS_PER_SAMPLE)")]
    found = []
    if len(times) != len(units):
        found.append(("ragged", f"{len(times)} times but {len(units)} units (ragged)"))
    finite = np.isfinite(times)
    if not finite.all():
        found.append(("non-finite time", f"non-finite spike time ({int((~finite).sum())} of {len(times)})"))
    if finite.any() and times[finite].min() < 0:
        found.append(("negative time", f"negative spike time {float(times[finite].min()):g} s"))
    steps = np.diff(times[finite].astype(np.float64))  # order of the finite times (NaN is reported above)
    if (steps < 0).any():
        at = int(np.flatnonzero(steps < 0)[0])
        later, earlier = times[finite][at + 1], times[finite][at]
        found.append(("unsorted", f"spike times not sorted ({float(later):g} s after {float(earlier):g} s); "
                                  "this package bins them anyway, other SSC tools may not"))
    outside = units[(units < 0) | (units >= n_channels)]
    if len(outside):
        found.append(("channel", f"channel {outside[0]} outside 0..{n_channels - 1} ({len(outside)} of {len(units)} events)"))
    return found


def check_samples(info: SpikeFileInfo, indices: Iterable[int]) -> None:
    """Check the spikes of the given samples; ValueError names the file, the sample and its first problem
    (except those in LOADER_TOLERATES)."""
    with h5py.File(info.path, "r") as file:
        times_ds, units_ds = file["spikes/times"], file["spikes/units"]
        for i in indices:
            times = np.asarray(times_ds[i])  # its bytes are in the file, so this read is bounded by the file size
            units = np.asarray(units_ds[i]) if len(times) <= MAX_EVENTS_PER_SAMPLE else times[:0]
            found = [reason for kind, reason in sample_problems(times, units, info.n_channels) if kind not in LOADER_TOLERATES]
            if found:
                raise ValueError(f"{info.path}: sample {i}: {found[0]}")


def validate_file(path: str | Path, shown_per_kind: int = SHOWN_PER_KIND) -> SpikeFileInfo:
    """Check a whole file (structure, then every sample); SpikeFileError lists the first problems of each kind."""
    info = read_info(path)
    shown: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    with h5py.File(info.path, "r") as file:
        times_ds, units_ds = file["spikes/times"], file["spikes/units"]
        for start in range(0, len(info), BLOCK):
            block = zip(times_ds[start : start + BLOCK], units_ds[start : start + BLOCK], strict=True)
            for i, (times, units) in enumerate(block, start):
                for kind, reason in sample_problems(np.asarray(times), np.asarray(units), info.n_channels):
                    counts[kind] = counts.get(kind, 0) + 1
                    if counts[kind] <= shown_per_kind:
                        shown.setdefault(kind, []).append(f"{info.path}: sample {i}: {reason}")
    problems = []
    for kind, lines in shown.items():
        problems += lines
        if counts[kind] > len(lines):
            problems.append(f"{info.path}: ... {counts[kind] - len(lines)} more sample(s) with the problem '{kind}'")
    if problems:
        raise SpikeFileError(info.path, problems)
    return info


def write_spike_file(
    path: str | Path,
    times: Sequence[np.ndarray],
    units: Sequence[np.ndarray],
    labels: Sequence[int],
    speakers: Sequence[int],
    *,
    n_channels: int,
    label_names: Sequence[str],
    speaker_names: Sequence[str],
    attrs: dict[str, object],
    extra: dict[str, Sequence[str]] | None = None,
) -> None:
    """Write an SSC-layout file whose bytes depend only on the arguments (no timestamps).

    Times are stored as float16 seconds and units as uint16 (as in SSC/SHD); ``attrs`` values are stored as
    JSON (strings as they are); ``extra`` adds string datasets under ``extra/`` (e.g. source file names).  No compression filter:
    HDF5 filters never reach variable-length data (it lives in the global heap), and a filtered pointer
    array only slows the one-sample-at-a-time reads tonic makes.
    """
    with h5py.File(path, "w", libver=("earliest", "v110"), track_order=False) as file:
        spikes, more = file.create_group("spikes"), file.create_group("extra")
        for key, data in (("times", _ragged(times, np.float16)), ("units", _ragged(units, np.uint16))):
            spikes.create_dataset(key, data=data, track_times=False)
        _write_columns(file, more, labels, speakers, n_channels, label_names, speaker_names, attrs, extra)


def write_spike_chunks(
    path: str | Path,
    chunks: Iterable[tuple[Sequence[np.ndarray], Sequence[np.ndarray]]],
    labels: Sequence[int],
    speakers: Sequence[int],
    *,
    n_channels: int,
    label_names: Sequence[str],
    speaker_names: Sequence[str],
    attrs: dict[str, object],
    extra: dict[str, Sequence[str]] | None = None,
) -> None:
    """``write_spike_file`` with the spikes given as consecutive chunks of samples (``(times, units)``
    lists), so a corpus-size file is written holding one chunk in memory; the chunks must cover
    ``labels`` exactly."""
    n = len(labels)
    with h5py.File(path, "w", libver=("earliest", "v110"), track_order=False) as file:
        spikes, more = file.create_group("spikes"), file.create_group("extra")
        ragged = {key: spikes.create_dataset(key, (n,), dtype=h5py.vlen_dtype(dtype), track_times=False)
                  for key, dtype in (("times", np.float16), ("units", np.uint16))}
        written = 0
        for times, units in chunks:
            if len(times) != len(units) or written + len(times) > n:
                raise ValueError(f"{path}: chunk of {len(times)} times / {len(units)} units after {written} of {n} samples")
            for key, arrays, dtype in (("times", times, np.float16), ("units", units, np.uint16)):
                for row, values in enumerate(arrays, written):  # one by one: equal lengths must not broadcast
                    ragged[key][row] = np.asarray(values, dtype=dtype)
            written += len(times)
        if written != n:
            raise ValueError(f"{path}: the chunks hold {written} samples for {n} labels")
        _write_columns(file, more, labels, speakers, n_channels, label_names, speaker_names, attrs, extra)


def _write_columns(
    file: h5py.File,
    more: h5py.Group,
    labels: Sequence[int],
    speakers: Sequence[int],
    n_channels: int,
    label_names: Sequence[str],
    speaker_names: Sequence[str],
    attrs: dict[str, object],
    extra: dict[str, Sequence[str]] | None,
) -> None:
    string = h5py.string_dtype()
    columns = {
        file: {"labels": np.asarray(labels, dtype=np.uint16)},
        more: {
            "speaker": np.asarray(speakers, dtype=np.uint16),
            "keys": np.array(list(label_names), dtype=string),
            "speaker_names": np.array(list(speaker_names), dtype=string),
            **{key: np.array(list(values), dtype=string) for key, values in (extra or {}).items()},
        },
    }
    for group, datasets in columns.items():
        for key, data in datasets.items():
            group.create_dataset(key, data=data, track_times=False)
    file.attrs["n_channels"] = n_channels
    for key, value in attrs.items():  # plain text stays readable in other HDF5 tools
        file.attrs[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _ragged(arrays: Sequence[np.ndarray], dtype: type) -> np.ndarray:
    out = np.empty(len(arrays), dtype=h5py.vlen_dtype(dtype))  # h5py reads the vlen type off the array
    for i, a in enumerate(arrays):  # element-wise: equal-length arrays must not become a 2-D block
        out[i] = np.asarray(a, dtype=dtype)
    return out
