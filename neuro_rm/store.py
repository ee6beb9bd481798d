"""Crash-safe, signed state folders: each save is a complete snapshot, switched in by one atomic rename.

Layout::

    state/
      CURRENT                  JSON: {"snapshot": "000007", "files": {name: sha256}, "extra": {...},
                                      "state_id": ..., "seq": 7, "nonce": ..., "mac": hmac}
      LOCK                     flock'ed by the one process allowed to write (``neuro_rm.statelock``)
      snapshots/000007/...     the files of the live snapshot

A save takes the folder's lock, checks that ``CURRENT`` still carries the nonce of the snapshot the caller
loaded (compare-and-swap: an update made meanwhile is never overwritten, even one that reuses the snapshot's
name after the folder was deleted and remade), writes a new snapshot folder, fsyncs
it, then replaces ``CURRENT`` with ``os.replace`` (atomic on POSIX).  A crash at any point leaves the
previous ``CURRENT`` and its snapshot intact; a half-written snapshot is removed the next time the lock
is taken.  Older snapshots are deleted after the switch, so data that a save dropped (a revoked
speaker's adapter) does not linger on disk, and a deletion that fails is reported.  ``CURRENT`` carries
an HMAC under a key kept outside the folder (``neuro_rm.statekey``), so re-hashing edited files is not
enough to make them load.  ``CURRENT`` also names its state (a random id given at creation) and the
snapshot's number in it; beside the key, ``neuro_rm.stateanchor`` records which state each folder holds
and its latest snapshot, so another state or an older copy of this one put in its place is refused too.
Nothing is ever unpickled: tensors go through safetensors, the rest is JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors_bytes
from safetensors.torch import save as save_tensors_bytes

from neuro_rm import stateanchor
from neuro_rm.stateanchor import AnchorError, Version
from neuro_rm.statekey import read_key, refuse_inside, sign, signature_matches
from neuro_rm.statelock import LOCK, state_lock

CURRENT = "CURRENT"
SNAPSHOTS = "snapshots"
_UNREADABLE = "<unreadable>"
MAX_POINTER_BYTES = 1 << 20
_HEX = re.compile(r"[0-9a-f]{32}")


class CorruptStateError(ValueError):
    """A state folder is missing, incomplete, unsigned or does not match its checksums or signature."""


class StateExistsError(ValueError):
    """A save would replace a state it did not load, and was not told to."""


class StateChangedError(ValueError):
    """The state changed on disk after it was loaded; saving would lose that change."""


class StaleSnapshotWarning(UserWarning):
    """An old snapshot could not be deleted and may still hold data a later save dropped."""


@dataclass(frozen=True)
class Snapshot:
    name: str
    files: dict[str, bytes]
    extra: dict  # signed facts kept beside the checksums (the audit log's head)
    version: Version  # which state, which snapshot of it; ``version.nonce`` is what a later save compares


def _fsync_write(path: Path, data: bytes) -> None:
    """Create ``path`` (never through a link or over an existing file) holding ``data``, on disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _read_plain(path: Path, limit: int | None = None) -> bytes:
    """A plain file's bytes; a link, FIFO or device is refused before it is read (it could hang or lead out)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except OSError as error:
        raise CorruptStateError(f"{path} cannot be read as a plain file ({error.strerror}): refused") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CorruptStateError(f"{path} is not a plain file: refused")
        if limit is not None and info.st_size > limit:
            raise CorruptStateError(f"{path} holds {info.st_size} bytes, more than a state file's {limit}: refused")
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read()
    finally:
        os.close(fd)


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


def _signed_bytes(pointer: dict) -> bytes:
    body = {k: v for k, v in pointer.items() if k != "mac"}
    return b"neuro_rm state\n" + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _parse_pointer(raw: bytes, path: Path) -> dict:
    try:
        pointer = json.loads(raw)
        snapshot, expected = pointer["snapshot"], pointer["files"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, RecursionError) as error:
        raise CorruptStateError(f"{path} is unreadable: {type(error).__name__ if isinstance(error, RecursionError) else error}") from None
    if not (isinstance(snapshot, str) and snapshot.isdigit() and snapshot.isascii() and isinstance(expected, dict)
            and all(isinstance(k, str) and _plain(k) and isinstance(v, str) for k, v in expected.items())):
        raise CorruptStateError(f"{path} is unreadable: it does not name a snapshot and its files' checksums")
    if not isinstance(pointer.get("mac"), str) or not isinstance(pointer.get("extra", {}), dict):
        raise CorruptStateError(f"{path} carries no signature (written before states were signed, or stripped); "
                                "it cannot be trusted: train a new state")
    seq, ids = pointer.get("seq"), (pointer.get("state_id"), pointer.get("nonce"))
    if not (isinstance(seq, int) and 1 <= seq < 2**62 and all(isinstance(v, str) and _HEX.fullmatch(v) for v in ids)):
        raise CorruptStateError(f"{path} names no state id, snapshot number and nonce (written by an older "
                                "neuro-rm, or stripped): train a new state")
    return pointer


def _version(pointer: dict) -> Version:
    audit = pointer.get("extra", {}).get("audit", {})
    return Version(pointer["state_id"], pointer["seq"], pointer["nonce"], audit if isinstance(audit, dict) else {})


def current_pointer(folder: Path) -> dict | str | None:
    """``CURRENT`` as it stands, unverified; None when there is no state, ``_UNREADABLE`` when it is not one."""
    path = folder / CURRENT
    try:
        return _parse_pointer(_read_plain(path, MAX_POINTER_BYTES), path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except CorruptStateError:
        return _UNREADABLE


def _current_name(folder: Path) -> str | None:
    """The live snapshot's name as CURRENT states it, unverified; None when there is no state."""
    pointer = current_pointer(folder)
    return pointer if not isinstance(pointer, dict) else pointer["snapshot"]


def has_state(folder: Path | str) -> bool:
    return (Path(folder) / CURRENT).exists()


def _refuse_linked_folder(folder: Path) -> None:
    """The state folder itself is no link: its anchor record is kept under the path the user gives, and a
    link to an older copy would otherwise load that copy under a path that has no record (a rollback)."""
    if folder.is_symlink():
        raise CorruptStateError(f"{folder} is a symbolic link; give the state folder itself: refused")


def _refuse_links(folder: Path) -> None:
    """A state folder holds plain files and folders only: a link (or a FIFO) planted by someone who can write
    the folder would make a writer write, or delete, outside it."""
    for name in (CURRENT, SNAPSHOTS, LOCK, f".{CURRENT}.tmp"):
        path = folder / name
        if path.is_symlink():
            raise CorruptStateError(f"{path} is a symbolic link; a state folder holds plain files only: refused")
    current = folder / CURRENT
    if current.exists() and not current.is_file():
        raise CorruptStateError(f"{current} is not a plain file: refused")


def _delete_snapshots(folder: Path, keep: str | None, newer_only: bool = False) -> None:
    """Delete every snapshot but ``keep`` (or, with ``newer_only``, the half-written ones after it).

    The snapshots folder is opened once without following links and everything is deleted relative to
    that handle: a link swapped in for it meanwhile cannot redirect the deletion outside the state."""
    try:
        snapshots = os.open(folder / SNAPSHOTS, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise CorruptStateError(f"{folder / SNAPSHOTS} is not a plain folder ({error.strerror}): refused") from None
    try:
        for name in sorted(os.listdir(snapshots)):
            if name == keep or not name.isdigit() or not stat.S_ISDIR(os.lstat(name, dir_fd=snapshots).st_mode):
                continue
            if newer_only and (keep is None or int(name) < int(keep)):
                continue
            _delete_one(folder / SNAPSHOTS / name, name, snapshots)
    finally:
        os.close(snapshots)


def _delete_one(path: Path, name: str, snapshots: int) -> None:
    try:
        shutil.rmtree(name, dir_fd=snapshots)
    except OSError as error:
            warnings.warn(StaleSnapshotWarning(
                f"could not delete old snapshot {path} ({error.strerror or error}); it may still hold data a later "
                "save dropped, such as a revoked speaker's branch: delete it by hand"), stacklevel=3)


@contextmanager
def writing(folder: Path | str, wait: float = 0.0, create: bool = False,
            on_wait: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the state folder's lock (creating the folder when ``create``) and clear half-written snapshots."""
    folder = Path(folder)
    _refuse_linked_folder(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    if not folder.exists():
        if not create:
            raise CorruptStateError(f"{folder} is not a neuro_rm state folder (no {CURRENT} file)")
        folder.mkdir(parents=True)
    _refuse_links(folder)
    with state_lock(folder, wait, on_wait):
        _refuse_links(folder)
        current = _current_name(folder)
        if current not in (_UNREADABLE, None) and (folder / SNAPSHOTS).is_dir():  # never guess which one is live
            _delete_snapshots(folder, keep=current, newer_only=True)  # CURRENT is not verified yet: older stay
        yield folder


def save_snapshot(folder: Path | str, files: dict[str, bytes], expected: str | None = None, overwrite: bool = False,
                  extra: dict | None = None, key_file: Path | str | None = None,
                  revocations: Callable[[dict[str, str]], dict[str, str]] | None = None) -> Version:
    """Write ``files`` (name → bytes) as a new, signed snapshot and make it current; returns its version.

    ``expected`` is the nonce of the snapshot the caller loaded (None: a new state).  The save is refused
    when ``CURRENT`` carries another one, unless ``overwrite``; the previous snapshot stays until the switch.
    A save continues the state it replaces only where that state is anchored (see ``neuro_rm.stateanchor``);
    anywhere else (a new state, an overwrite, a copy) it starts a new state id.  ``revocations``, given the
    speakers the folder's anchor records as revoked there, returns what to record once the save is done, or
    raises to refuse it: called under the folder's lock, before anything is written.
    """
    folder = Path(folder)
    for name in files:
        if not _plain(name):
            raise ValueError(f"state file names must be plain names, got {name!r}")
    refuse_inside(folder, key_file)
    key = read_key(key_file, create=True)
    with writing(folder, create=True):
        prior = current_pointer(folder)
        current = prior["nonce"] if isinstance(prior, dict) else prior
        if current != expected and not overwrite:
            if expected is None:
                raise StateExistsError(f"{folder} holds a state already; replacing it loses its registry, revocations "
                                       "and audit log: pass --overwrite (overwrite=True) to replace it")
            shown = prior["snapshot"] if isinstance(prior, dict) else current
            raise StateChangedError(f"{folder} changed since it was loaded (now snapshot {shown}, another than the one "
                                    "loaded); nothing was saved: load it again and redo the change")
        root = folder.resolve()
        continuing = isinstance(prior, dict) and current == expected
        try:  # an older copy put back and loaded as it was is no state to continue: that would launder the rollback
            issue = stateanchor.problem(root, _version(prior), key, key_file) if continuing else None
            seq = stateanchor.latest_seq(root, prior["state_id"], key, key_file) if continuing else None
        except AnchorError as error:
            raise CorruptStateError(str(error)) from None
        if issue:
            raise CorruptStateError(f"{issue}; nothing was saved")
        try:
            recorded = stateanchor.revocations(root, key, key_file)
        except AnchorError as error:
            raise CorruptStateError(str(error)) from None
        revoked = revocations(recorded) if revocations is not None else None
        audit = (extra or {}).get("audit", {})
        version = Version(prior["state_id"] if seq else stateanchor.new_state_id(), (seq or 0) + 1,
                          stateanchor.new_nonce(), audit if isinstance(audit, dict) else {})
        (folder / SNAPSHOTS).mkdir(exist_ok=True)
        existing = [int(p.name) for p in (folder / SNAPSHOTS).iterdir() if p.name.isdigit()]
        name = f"{max(existing, default=0) + 1:06d}"
        target = folder / SNAPSHOTS / name
        target.mkdir()
        for file_name, data in files.items():
            _fsync_write(target / file_name, data)
        _fsync_dir(target)
        pointer = {"snapshot": name, "files": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()},
                   "extra": extra or {}, "state_id": version.state_id, "seq": version.seq, "nonce": version.nonce}
        pointer["mac"] = sign(key, _signed_bytes(pointer))
        tmp = folder / f".{CURRENT}.tmp"
        tmp.unlink(missing_ok=True)  # never write through whatever was left there (created O_EXCL below)
        _fsync_write(tmp, encode_json(pointer))
        stateanchor.begin(root, version, key, key_file, revoked)  # a crash from here on leaves either version acceptable
        os.replace(tmp, folder / CURRENT)
        _fsync_dir(folder)
        stateanchor.commit(root, version, key, key_file, revoked)
        _delete_snapshots(folder, keep=name)
    return version


def _read_pointer(path: Path) -> bytes:
    try:
        return _read_plain(path, MAX_POINTER_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        raise CorruptStateError(f"{path.parent} is not a neuro_rm state folder (no {CURRENT} file)") from None


def load_snapshot(folder: Path | str, key_file: Path | str | None = None, anchored: bool = True) -> Snapshot:
    """Read the current snapshot, verifying its signature, checksums and (``anchored``) that it is the
    state and snapshot neuro-rm last wrote in this folder; raises ``CorruptStateError``.

    ``anchored=False`` is for a copy loaded on purpose as it was (an old state an audit attacks).
    """
    folder = Path(folder)
    if anchored:
        _refuse_linked_folder(folder)
    pointer_path = folder / CURRENT
    refuse_inside(folder, key_file)
    raw = _read_pointer(pointer_path)
    key = read_key(key_file)
    while True:
        pointer = _parse_pointer(raw, pointer_path)
        if not signature_matches(key, _signed_bytes(pointer), pointer["mac"]):
            raise CorruptStateError(f"{pointer_path} does not match its signature: the state was edited or copied "
                                    "from elsewhere, or signed with another key (see --key-file)")
        version = _version(pointer)
        if anchored:
            try:
                problem = stateanchor.problem(folder.resolve(), version, key, key_file)
            except AnchorError as error:
                raise CorruptStateError(str(error)) from None
            if problem:
                again = _read_pointer(pointer_path)
                if again == raw:  # not a save that moved the anchor on after we read CURRENT
                    raise CorruptStateError(problem)
                raw = again
                continue
        snapshot, files = pointer["snapshot"], {}
        for name, digest in pointer["files"].items():
            path = folder / SNAPSHOTS / snapshot / name
            try:
                data = _read_plain(path)
            except FileNotFoundError:
                break
            if hashlib.sha256(data).hexdigest() != digest:
                raise CorruptStateError(f"state file {path} does not match its checksum (corrupted or tampered)")
            files[name] = data
        else:
            return Snapshot(snapshot, files, pointer.get("extra", {}), version)
        again = _read_pointer(pointer_path)
        if again == raw:  # not a save switching snapshots under us: really missing
            raise CorruptStateError(f"state file {path} is missing")
        raw = again


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
    except RecursionError:
        raise CorruptStateError(f"{name} is nested too deeply to be a state file") from None
