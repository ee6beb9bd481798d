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


def check_samples(info: SpikeFileInfo, indices: Iterable[int]) -> None:
    """Check the spikes of the given samples: equal lengths, finite non-negative times, channels in range."""
    with h5py.File(info.path, "r") as file:
        times_ds, units_ds = file["spikes/times"], file["spikes/units"]
        for i in indices:
            times = np.asarray(times_ds[i])  # its bytes are in the file, so this read is bounded by the file size
            where = f"{info.path}: sample {i}"
            if len(times) > MAX_EVENTS_PER_SAMPLE:  # before tonic turns them into ~5x larger event records
                raise ValueError(f"{where}: {len(times)} events, more than {MAX_EVENTS_PER_SAMPLE} (MAX_EVENTS_PER_SAMPLE)")
            units = np.asarray(units_ds[i])
            if len(times) != len(units):
                raise ValueError(f"{where}: {len(times)} times but {len(units)} units (ragged)")
            if not np.isfinite(times).all():
                raise ValueError(f"{where}: non-finite spike time")
            if len(times) and times.min() < 0:
                raise ValueError(f"{where}: negative spike time {times.min()}")
            outside = units[(units < 0) | (units >= info.n_channels)]
            if len(outside):
                raise ValueError(f"{where}: channel {outside[0]} outside 0..{info.n_channels - 1}")


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
    string = h5py.string_dtype()
    with h5py.File(path, "w", libver=("earliest", "v110"), track_order=False) as file:
        spikes, more = file.create_group("spikes"), file.create_group("extra")
        columns = {
            spikes: {"times": _ragged(times, np.float16), "units": _ragged(units, np.uint16)},
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
