"""Data that ships with the project (under ``datasets/`` at the repository root): no download needed."""

from __future__ import annotations

from pathlib import Path

from neuro_rm.data.frames import FrameConfig
from neuro_rm.data.speakers import SpeakerSplits, SplitConfig, load_speakers

DATASETS = Path(__file__).resolve().parents[2] / "datasets"


def _bundled(name: str) -> Path:
    path = DATASETS / name
    if not path.is_file():
        raise FileNotFoundError(
            f"bundled data file {path} is missing; it ships in the repository's datasets/ folder "
            "(install neuro_rm from a clone with `pip install -e .`, or rebuild it with scripts/)"
        )
    return path


def bundled_speech_path() -> Path:
    """The spiking FSDD file: 6 real speakers × 500 spoken digits, cochlea-encoded, SSC layout."""
    return _bundled("spiking_fsdd.h5")


def bundled_faces_path() -> Path:
    """The Olivetti faces: 40 people × 10 grayscale 64×64 images."""
    return _bundled("olivetti_faces.npz")


def load_bundled_speakers(
    n_speakers: int | None = None,
    frames: FrameConfig | None = None,
    split: SplitConfig | None = None,
    cache: bool = True,
    cache_dir: Path | None = None,
) -> SpeakerSplits:
    """Speaker splits of the bundled spiking FSDD (all 6 speakers; 10 bins over 1.0 s, 700 → 140 inputs
    unless ``frames`` says otherwise)."""
    return load_speakers(bundled_speech_path(), n_speakers, frames, split, cache, cache_dir)
