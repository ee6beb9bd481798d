"""The Olivetti faces (40 people × 10 grayscale 64×64 images) from the bundled .npz, and their splits.

Splitting is done per source image before any augmentation, so augmented copies of one photograph
never sit on both sides of a split.  The reference augments first and splits afterwards; that
protocol (``leaky_split``) is kept only to show how much it flatters the test accuracy.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from neuro_rm.data.labelled import LabelledSet

MAX_FACES_BYTES = 1 << 30  # uncompressed size of a faces .npz (the bundled Olivetti set is 1.6 MB)


OLIVETTI_PERSONS = 40  # people in the bundled set


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


# ---------------------------------------------------------------------- splits and augmentation
@dataclass(frozen=True)
class AugmentConfig:
    """Label-preserving changes a face photo can plausibly undergo."""

    copies: int = 10  # augmented copies per training photo, besides the photo itself
    val_copies: int = 10  # likewise per validation photo: a smoother signal for choosing epochs
    max_shift: float = 3.0  # pixels
    max_rotation_deg: float = 10.0
    brightness: float = 0.2  # gain drawn from 1 ± brightness
    flip: bool = True

    def __post_init__(self) -> None:
        if min(self.copies, self.val_copies) < 0 or self.max_shift < 0 or self.max_rotation_deg < 0 or not 0 <= self.brightness < 1:
            raise ValueError(f"AugmentConfig needs copies, shift, rotation >= 0 and brightness in [0, 1), got {self}")


@dataclass(frozen=True)
class FaceSplitConfig:
    """How each person's source images are shared out; the rest of them are the test images."""

    train: int = 6
    val: int = 2
    folds: int = 5  # the split is rotated so that each photo is a test photo in one fold

    def __post_init__(self) -> None:
        if self.train < 1 or self.val < 1 or self.folds < 1:
            raise ValueError(f"FaceSplitConfig needs at least one training and one validation image and fold, got {self}")


@dataclass
class FaceSplits:
    """Labelled splits; ``origin[name][i]`` is the index in the face set of the photo sample i came from.

    ``train`` and ``val`` hold their photos followed by augmented copies; ``photos`` holds each split's
    photos alone (membership inference compares real photos only).
    """

    train: LabelledSet
    val: LabelledSet
    test: LabelledSet
    origin: dict[str, torch.Tensor]
    photos: dict[str, LabelledSet]


def class_labels(labels: torch.Tensor, persons: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices of the persons' photos, their class: position of the person in ``persons``)."""
    known = sorted(int(p) for p in torch.unique(labels))
    unknown = [p for p in persons if p not in known]
    if unknown:
        raise ValueError(f"unknown person id(s) {unknown}; the face set has persons {known[0]}..{known[-1]}")
    if len(set(persons)) != len(persons):
        raise ValueError(f"person ids must be distinct, got {persons}")
    index = torch.cat([torch.nonzero(labels == p).flatten() for p in persons])
    classes = torch.cat([torch.full(((labels == p).sum(),), c) for c, p in enumerate(persons)])
    return index, classes


def augment(images: torch.Tensor, copies: int, config: AugmentConfig, seed: int) -> torch.Tensor:
    """``copies`` random variants of every image (N, 1, H, W), grouped by source image."""
    x = images.repeat_interleave(copies, dim=0)
    if len(x) == 0:
        return x
    g = torch.Generator().manual_seed(seed)
    uniform = lambda *shape: torch.rand(*shape, generator=g) * 2 - 1  # noqa: E731
    angle = uniform(len(x)) * math.radians(config.max_rotation_deg)
    shift = uniform(len(x), 2) * config.max_shift * 2 / images.shape[-1]  # grid units span 2 per image
    mirror = torch.where(torch.rand(len(x), generator=g) < 0.5, -1.0, 1.0) if config.flip else torch.ones(len(x))
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * mirror, -sin, shift[:, 0]], 1), torch.stack([sin * mirror, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    moved = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    gain = 1 + uniform(len(x)) * config.brightness
    return (moved * gain.view(-1, 1, 1, 1)).clamp(0, 1)


def _with_copies(photos: LabelledSet, origin: torch.Tensor, copies: int, config: AugmentConfig,
                 seed: int) -> tuple[LabelledSet, torch.Tensor]:
    """Photos followed by their augmented copies, with labels and origins carried along."""
    extra = LabelledSet(augment(photos.x, copies, config, seed), photos.y.repeat_interleave(copies))
    return LabelledSet.concat(photos, extra), torch.cat([origin, origin.repeat_interleave(copies)])


def clean_split(images: torch.Tensor, labels: torch.Tensor, persons: list[int], split: FaceSplitConfig,
                aug: AugmentConfig, seed: int = 0, fold: int = 0) -> FaceSplits:
    """Split every person's photos into train / val / test first, then augment the training photos only.

    Each person's photos are shuffled once (by ``seed``); fold f rotates them by f test-sets' worth,
    so over ``split.folds`` folds every photo is tested once (when the folds fit).
    """
    if not 0 <= fold < split.folds:
        raise ValueError(f"fold must be in 0..{split.folds - 1}, got {fold}")
    index, classes = class_labels(labels, persons)
    g = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
    tags: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
    ends = (split.train, split.train + split.val)
    for c in range(len(persons)):
        own = index[classes == c]
        n_test = len(own) - ends[1]
        if n_test < 1 or n_test * split.folds > len(own):
            raise ValueError(f"person {persons[c]} has {len(own)} photos: too few for {split.train} train + "
                             f"{split.val} val + test photos in {split.folds} disjoint folds")
        own = own[torch.randperm(len(own), generator=g)].roll(fold * n_test)
        for name, chosen in zip(parts, (own[: ends[0]], own[ends[0] : ends[1]], own[ends[1] :]), strict=True):
            parts[name].append(chosen)
            tags[name].append(torch.full((len(chosen),), c))
    origin = {name: torch.cat(chunks) for name, chunks in parts.items()}
    sets = {name: LabelledSet(images[idx].unsqueeze(1), torch.cat(tags[name])) for name, idx in origin.items()}
    photos = dict(sets)
    sets["train"], origin["train"] = _with_copies(photos["train"], origin["train"], aug.copies, aug, seed)
    sets["val"], origin["val"] = _with_copies(photos["val"], origin["val"], aug.val_copies, aug, seed + 1)
    return FaceSplits(sets["train"], sets["val"], sets["test"], origin, photos)


def leaky_split(images: torch.Tensor, labels: torch.Tensor, persons: list[int], split: FaceSplitConfig,
                aug: AugmentConfig, seed: int = 0) -> FaceSplits:
    """The reference's protocol, kept only to measure it: augment every photo, then split at random.

    Copies of one photo land in train and test alike, so the test set shows the network faces it has
    nearly seen.
    """
    index, classes = class_labels(labels, persons)
    data, origin = _with_copies(LabelledSet(images[index].unsqueeze(1), classes), index, aug.copies, aug, seed)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    per_person = len(index) // len(persons)
    n_train = len(order) * split.train // per_person
    n_val = len(order) * split.val // per_person
    picks = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    sets = {name: data.where(idx) for name, idx in picks.items()}
    return FaceSplits(sets["train"], sets["val"], sets["test"], {k: origin[v] for k, v in picks.items()}, sets)
