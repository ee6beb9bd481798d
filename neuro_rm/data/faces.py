"""The Olivetti faces (40 people × 10 grayscale 64×64 images) from the bundled .npz."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

MAX_FACES_BYTES = 1 << 30  # uncompressed size of a faces .npz (the bundled Olivetti set is 1.6 MB)


@dataclass
class Faces:
    """``images`` (N, 64, 64) float32 in [0, 1], upright; ``labels`` (N,) person index."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def load_faces(path: str | Path | None = None) -> Faces:
    """Faces from ``path`` (default: the bundled datasets/olivetti_faces.npz); the .npz holds ``images``
    (uint8, N×H×W) and ``labels`` (N person ids)."""
    if path is None:
        from neuro_rm.data.bundled import bundled_faces_path

        path = bundled_faces_path()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no faces file at {path}")
    try:  # a compressed .npz can unpack to far more than it weighs: look before np.load allocates
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(item.file_size for item in archive.infolist())
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from err
    if unpacked > MAX_FACES_BYTES:
        raise ValueError(f"{path}: unpacks to {unpacked} bytes, more than {MAX_FACES_BYTES} (MAX_FACES_BYTES)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from err
    images, labels = arrays.get("images"), arrays.get("labels")
    if images is None or labels is None:
        raise ValueError(f"{path}: needs arrays 'images' and 'labels', found {sorted(arrays)}")
    if images.dtype != np.uint8 or images.ndim != 3 or labels.shape != (len(images),):
        raise ValueError(
            f"{path}: expected uint8 images (N, H, W) and N labels, got {images.dtype} {images.shape} and {labels.shape}"
        )
    return Faces(torch.from_numpy(images.astype(np.float32) / 255), torch.from_numpy(labels.astype(np.int64)))
