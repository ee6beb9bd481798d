"""Crash-safe state folders: each save is a complete snapshot, switched in by one atomic rename.

Layout::

    state/
      CURRENT                  JSON: {"snapshot": "000007", "files": {name: sha256}}
      snapshots/000007/...     the files of the live snapshot

A save writes a new snapshot folder, fsyncs it, then replaces ``CURRENT`` with ``os.replace`` (atomic
on POSIX).  A crash at any point leaves the previous ``CURRENT`` and its snapshot intact.  Older
snapshots are deleted after the switch, so data that a save dropped (a revoked speaker's adapter) does
not linger on disk.  Nothing is ever unpickled: tensors go through safetensors, the rest is JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors_bytes
from safetensors.torch import save as save_tensors_bytes

CURRENT = "CURRENT"
SNAPSHOTS = "snapshots"


class CorruptStateError(ValueError):
    """A state folder is missing, incomplete or does not match its checksums."""


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_tensors(tensors: dict[str, torch.Tensor]) -> bytes:
    return save_tensors_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def encode_json(value: object) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode()


def _plain(name: str) -> bool:
    """A file name that stays inside its snapshot folder."""
    return "/" not in name and "\\" not in name and name not in ("", ".", "..") and not name.startswith(".")


def save_snapshot(folder: Path | str, files: dict[str, bytes]) -> str:
    """Write ``files`` (name → bytes) as a new snapshot and make it current; returns its name."""
    folder = Path(folder)
    for name in files:
        if not _plain(name):
            raise ValueError(f"state file names must be plain names, got {name!r}")
    (folder / SNAPSHOTS).mkdir(parents=True, exist_ok=True)
    existing = sorted(p.name for p in (folder / SNAPSHOTS).iterdir() if p.name.isdigit())
    name = f"{int(existing[-1]) + 1 if existing else 1:06d}"
    target = folder / SNAPSHOTS / name
    target.mkdir()
    for file_name, data in files.items():
        _fsync_write(target / file_name, data)
    _fsync_dir(target)
    pointer = {"snapshot": name, "files": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}}
    tmp = folder / f".{CURRENT}.tmp"
    _fsync_write(tmp, encode_json(pointer))
    os.replace(tmp, folder / CURRENT)
    _fsync_dir(folder)
    for old in existing:
        shutil.rmtree(folder / SNAPSHOTS / old, ignore_errors=True)
    return name


def load_snapshot(folder: Path | str) -> dict[str, bytes]:
    """Read and checksum-verify the current snapshot; raises ``CorruptStateError`` if anything is off."""
    folder = Path(folder)
    pointer_path = folder / CURRENT
    if not pointer_path.is_file():
        raise CorruptStateError(f"{folder} is not a neuro_rm state folder (no {CURRENT} file)")
    try:
        pointer = json.loads(pointer_path.read_bytes())
        snapshot, expected = pointer["snapshot"], pointer["files"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise CorruptStateError(f"{pointer_path} is unreadable: {error}") from None
    if not (isinstance(snapshot, str) and snapshot.isdigit() and isinstance(expected, dict)
            and all(isinstance(k, str) and _plain(k) and isinstance(v, str) for k, v in expected.items())):
        raise CorruptStateError(f"{pointer_path} is unreadable: it does not name a snapshot and its files' checksums")
    files = {}
    for name, digest in expected.items():
        path = folder / SNAPSHOTS / snapshot / name
        if not path.is_file():
            raise CorruptStateError(f"state file {path} is missing")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise CorruptStateError(f"state file {path} does not match its checksum (corrupted or tampered)")
        files[name] = data
    return files


def decode_tensors(data: bytes, name: str) -> dict[str, torch.Tensor]:
    try:
        return load_tensors_bytes(data)
    except Exception as error:  # safetensors raises its own error types
        raise CorruptStateError(f"{name} is not a valid safetensors file: {error}") from None


def decode_json(data: bytes, name: str) -> object:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptStateError(f"{name} is not valid JSON: {error}") from None
