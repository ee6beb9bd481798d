"""Tonic datasets over local SSC-layout files that never touch the network.

Tonic's ``SSC``/``SHD`` look for the downloaded ``.zip`` and fetch it when absent, even if the extracted
``.h5`` is there; the subclasses here read the ``.h5`` only and raise FileNotFoundError instead of
downloading.  :class:`SpikeFile` gives one SSC-layout file (such as the bundled spiking FSDD) the same
tonic interface, so every file goes through the same reading and framing code.
"""

from __future__ import annotations

import os
from pathlib import Path

import tonic
from tonic.datasets.hsd import HSD

from neuro_rm.data.spikefile import read_info

SOURCE_URL = "https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/"
FILES = {
    "SSC": {"train": "ssc_train.h5", "valid": "ssc_valid.h5", "test": "ssc_test.h5"},
    "SHD": {"train": "shd_train.h5", "test": "shd_test.h5"},
}


def missing_message(kind: str, root: Path) -> str:
    names = ", ".join(FILES[kind].values())
    return (
        f"{kind} files not found: expected {names} in {root} or {root / kind}. Nothing is downloaded "
        f"automatically; get them (unzipped) from {SOURCE_URL}"
    )


class _LocalOnly:
    """Accept ``<save_to>/<SSC|SHD>/x.h5`` (tonic's layout) or ``<save_to>/x.h5``; never download."""

    location_on_system: str
    data_filename: str

    def _check_exists(self) -> bool:
        for folder in (self.location_on_system, os.path.dirname(self.location_on_system)):
            if os.path.isfile(os.path.join(folder, self.data_filename)):
                self.location_on_system = folder
                return True
        return False

    def download(self) -> None:
        kind = type(self).__name__
        raise FileNotFoundError(missing_message(kind, Path(os.path.dirname(self.location_on_system))))


class SSC(_LocalOnly, tonic.datasets.SSC):
    """tonic's Spiking Speech Commands, read from a local folder only."""


class SHD(_LocalOnly, tonic.datasets.SHD):
    """tonic's Spiking Heidelberg Digits, read from a local folder only."""


class SpikeFile(HSD):
    """One SSC-layout HDF5 file as a tonic dataset: ``ds[i]`` is (events, label) exactly as tonic's SSC."""

    def __init__(
        self, path: str | Path, n_channels: int = HSD.sensor_size[0], transform=None, target_transform=None
    ):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no SSC-layout file at {path}")
        super().__init__(str(path.parent), transform=transform, target_transform=target_transform)
        self.location_on_system, self.data_filename = str(path.parent), path.name
        self.sensor_size = (n_channels, 1, 1)


def path_of(dataset: HSD) -> Path:
    """The .h5 file a tonic HSD dataset reads."""
    return Path(dataset.location_on_system, dataset.data_filename)


def open_folder(root: str | Path, kind: str = "SSC") -> list[HSD]:
    """All splits of a local SSC or SHD download as tonic datasets (train, valid, test order)."""
    if kind not in FILES:
        raise ValueError(f"kind must be one of {sorted(FILES)}, got {kind!r}")
    root = Path(root).expanduser()
    folder = next(
        (f for f in (root, root / kind) if all((f / n).is_file() for n in FILES[kind].values())), None
    )
    if folder is None:
        raise FileNotFoundError(missing_message(kind, root))
    for name in FILES[kind].values():  # clear errors before tonic opens them (tonic also reads extra/keys)
        read_info(folder / name, also_require=("extra/keys",))
    if kind == "SSC":
        return [SSC(str(root), split=split) for split in FILES[kind]]
    return [SHD(str(root), train=split == "train") for split in FILES[kind]]
