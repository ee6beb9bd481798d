"""A small on-disk cache of numpy arrays (.npz, never pickle) keyed by source-file hashes and parameters."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

VERSION = 1  # bump when the cached computation changes


def default_cache_dir() -> Path:
    """$NEURO_RM_CACHE, else $XDG_CACHE_HOME/neuro_rm, else ~/.cache/neuro_rm."""
    if "NEURO_RM_CACHE" in os.environ:
        return Path(os.environ["NEURO_RM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neuro_rm"


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes: the cache follows content, not names or times."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached(
    key: dict[str, object], compute: Callable[[], dict[str, np.ndarray]], cache_dir: Path | None
) -> dict[str, np.ndarray]:
    """``compute()``'s arrays, read from ``cache_dir`` when an entry for ``key`` exists (None: no cache)."""
    if cache_dir is None:
        return compute()
    name = hashlib.sha256(json.dumps({"v": VERSION, **key}, sort_keys=True).encode()).hexdigest()[:32]
    path = Path(cache_dir) / f"{name}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {k: stored[k] for k in stored.files}
        except (OSError, ValueError, zipfile.BadZipFile):
            pass  # damaged entry (writes are atomic, so only disk trouble or a foreign file): rebuild it
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as tmp:
        np.savez(tmp, **arrays)
    os.replace(tmp.name, path)  # atomic: readers never see half a file
    return arrays
