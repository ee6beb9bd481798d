"""The bundled Olivetti faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_script

from neuro_rm.data import bundled_faces_path, load_faces

ROOT = Path(__file__).resolve().parents[1]
MAT = ROOT.parent / "shared/data/faces/olivettifaces.mat"


def test_forty_people_ten_images_in_unit_range() -> None:
    faces = load_faces()
    assert faces.images.shape == (400, 64, 64) and faces.images.dtype == torch.float32
    assert 0 <= faces.images.min() and faces.images.max() <= 1 and faces.images.max() > 0.9
    assert torch.equal(faces.labels, torch.arange(40).repeat_interleave(10))


def test_images_stand_upright() -> None:
    mean = load_faces().images.mean(0).numpy()
    corr = lambda a, b: np.corrcoef(a.ravel(), b.ravel())[0, 1]  # noqa: E731
    # a face is mirror-symmetric left-right, not top-bottom; a transposed image would be the other way round
    assert corr(mean, mean[:, ::-1]) > 0.9 > corr(mean, mean[::-1, :])


@pytest.mark.skipif(not MAT.is_file(), reason=f"{MAT} not present")
def test_build_script_reproduces_the_committed_file(tmp_path: Path) -> None:
    load_script("build_faces").convert(MAT, tmp_path / "faces.npz")
    assert (tmp_path / "faces.npz").read_bytes() == bundled_faces_path().read_bytes()


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_faces(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        load_faces(tmp_path / "junk.npz")
    np.savez(tmp_path / "nolabels.npz", images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="'images' and 'labels'"):
        load_faces(tmp_path / "nolabels.npz")
    np.savez(tmp_path / "float.npz", images=np.zeros((2, 4, 4)), labels=np.zeros(2))
    with pytest.raises(ValueError, match="uint8"):
        load_faces(tmp_path / "float.npz")
