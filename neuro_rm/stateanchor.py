"""Which state each folder holds, and its latest snapshot, recorded beside the key where a folder's writer
cannot reach.

A signature on ``CURRENT`` says a key holder wrote the state, not that it is the latest one written
there: an older genuine copy (from before a revocation) or another state signed by the same key passes
it.  So beside the key, in ``<key file>.anchors/`` (mode 0700), neuro-rm keeps signed records:

- ``state-<id>.json``, one per state id: the folder the state lives in, its latest snapshot (sequence
  number, nonce, audit-log head) and the one being switched in (``pending``), so that a crash between a
  switch and the record's update is not taken for a rollback;
- ``path-<sha256 of the folder>.json``, one per folder: the state id last written there (and one being
  switched in by ``train --overwrite``), and every speaker ever revoked in a state saved there, with how
  (``erase`` or ``suspend``): it outlives the folder, so a state saved there later (over it, after it was
  deleted, from an older copy) can be checked against it.

A folder with a path record must hold that state at its latest snapshot.  A folder without one (a copy
made elsewhere, a state from another machine) is trusted on the key alone, and a save there starts a new
state id, so a copy never moves its original's record.  Records are written whole (a private temporary
file, then a rename), by the writer holding the folder's lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from neuro_rm.statekey import key_path, sign, signature_matches

MAX_RECORD_BYTES = 1 << 16
_DOMAIN = b"neuro_rm anchor\n"  # a record's MAC can never pass for a CURRENT's, nor the reverse


class AnchorError(ValueError):
    """An anchor record is unreadable, unsigned or signed with another key."""


@dataclass(frozen=True)
class Version:
    """What a signed ``CURRENT`` says about itself: which state, which snapshot of it, its audit head."""

    state_id: str
    seq: int
    nonce: str
    audit: dict


def new_state_id() -> str:
    return secrets.token_hex(16)


def new_nonce() -> str:
    return secrets.token_hex(16)


def anchor_dir(key_file: Path | str | None = None) -> Path:
    """Beside the key, named after its real path, so that a link to the key finds the same records (review64);
    where only records named after the path as given exist (written before), those, so that none is lost."""
    given = Path(key_path(key_file))
    real = given.resolve()
    folder, earlier = real.with_name(f"{real.name}.anchors"), given.with_name(f"{given.name}.anchors")
    return earlier if not folder.exists() and earlier.exists() else folder


def _state_file(key_file: Path | str | None, state_id: str) -> Path:
    return anchor_dir(key_file) / f"state-{state_id}.json"


def _path_file(key_file: Path | str | None, folder: Path) -> Path:
    return anchor_dir(key_file) / f"path-{hashlib.sha256(str(folder).encode()).hexdigest()}.json"


def _payload(record: dict) -> bytes:
    return _DOMAIN + json.dumps({k: v for k, v in record.items() if k != "mac"}, sort_keys=True, separators=(",", ":")).encode()


def _read(path: Path, key: bytes) -> dict | None:
    """A signed record, or None when there is none; never follows a link nor blocks on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise AnchorError(f"anchor record {path} cannot be opened ({error.strerror}); it must be a plain file") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_RECORD_BYTES:
            raise AnchorError(f"anchor record {path} is not a plain file of at most {MAX_RECORD_BYTES} bytes")
        raw = os.read(fd, MAX_RECORD_BYTES + 1)
    finally:
        os.close(fd)
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        record = None
    if not (isinstance(record, dict) and isinstance(record.get("mac"), str)
            and signature_matches(key, _payload(record), record["mac"])):
        raise AnchorError(f"anchor record {path} does not match its signature (edited, or made with another key)")
    return record


def _write(path: Path, record: dict, key: bytes) -> None:
    """Replace ``path`` by ``record``, signed: a private temporary file (never through a link), then a rename."""
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise AnchorError(f"anchor folder {directory} must be a folder of yours that only you can write")
    record = {**record, "mac": sign(key, _payload(record))}
    tmp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(json.dumps(record, sort_keys=True).encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _matches(version: Version, entry: dict | None) -> bool:
    return entry is not None and entry == {"seq": version.seq, "nonce": version.nonce, "audit": version.audit}


def problem(folder: Path, version: Version, key: bytes, key_file: Path | str | None = None) -> str | None:
    """Why ``folder`` (resolved) holding ``version`` is not what neuro-rm last wrote there; None when it is,
    or when nothing was ever written there under this key."""
    at = _read(_path_file(key_file, folder), key)
    if at is None:
        return None
    if at.get("path") != str(folder):
        return f"anchor record for {folder} names another folder: the anchor folder {anchor_dir(key_file)} was edited"
    if version.state_id not in (at.get("state_id"), at.get("pending")):
        return (f"{folder} holds state {version.state_id[:12]}, but the state neuro-rm last wrote there is "
                f"{str(at.get('state_id'))[:12]}: the folder was replaced by another state or a copy of one "
                "(`train --overwrite` starts a new state there)")
    record = _read(_state_file(key_file, version.state_id), key)
    if record is None or record.get("state_id") != version.state_id or record.get("path") != str(folder):
        return f"the anchor record of state {version.state_id[:12]} is missing or names another folder"
    latest, pending = record.get("latest"), record.get("pending")
    if _matches(version, latest) or _matches(version, pending):
        return None
    newest = latest or pending or {}
    seq, entries = newest.get("seq", 0), newest.get("audit", {}).get("entries", 0)
    if version.seq < seq or version.audit.get("entries", 0) < entries:
        return (f"{folder} holds snapshot {version.seq} of its state with an audit log of "
                f"{version.audit.get('entries', 0)} entries, but neuro-rm last wrote snapshot {seq} with {entries} entries "
                "there: an older copy was put back or the audit log was cut (rollback refused)")
    return f"{folder} holds snapshot {version.seq} of its state, which diverges from snapshot {seq} neuro-rm last wrote there"


def revocations(folder: Path, key: bytes, key_file: Path | str | None = None) -> dict[str, str]:
    """Every speaker revoked in a state saved at ``folder`` under this key, by how: the path record's list."""
    at = _read(_path_file(key_file, folder), key)
    revoked = at.get("revoked") if at is not None and at.get("path") == str(folder) else None
    return {str(k): str(v) for k, v in revoked.items()} if isinstance(revoked, dict) else {}


def latest_seq(folder: Path, state_id: str, key: bytes, key_file: Path | str | None = None) -> int | None:
    """The latest snapshot number of ``state_id`` when it is the state anchored at ``folder``, else None
    (a copy, a state from elsewhere: a save there starts a new state id)."""
    at = _read(_path_file(key_file, folder), key)
    if at is None or at.get("state_id") != state_id or at.get("path") != str(folder):
        return None
    record = _read(_state_file(key_file, state_id), key)
    if record is None or record.get("path") != str(folder) or not record.get("latest"):
        return None
    return int(record["latest"]["seq"])


def begin(folder: Path, version: Version, key: bytes, key_file: Path | str | None = None,
          revoked: dict[str, str] | None = None) -> None:
    """Record ``version`` as being switched in at ``folder``, and the folder's revocations grown by ``revoked``
    (what the version holds: a crash after the switch must not leave them off the record; an erasure stays
    one); call before replacing ``CURRENT``."""
    state_file = _state_file(key_file, version.state_id)
    record = _read(state_file, key) or {"state_id": version.state_id, "path": str(folder), "latest": None}
    entry = {"seq": version.seq, "nonce": version.nonce, "audit": version.audit}
    _write(state_file, {**record, "path": str(folder), "pending": entry}, key)
    path_file = _path_file(key_file, folder)
    at = _read(path_file, key) or {"path": str(folder), "state_id": None}
    known = revocations(folder, key, key_file)
    grown = {**known, **{name: "erase" if known.get(name) == "erase" else how for name, how in (revoked or {}).items()}}
    if at.get("state_id") != version.state_id or grown != known:
        pending = version.state_id if at.get("state_id") != version.state_id else at.get("pending")
        _write(path_file, {**at, "path": str(folder), "pending": pending, "revoked": dict(sorted(grown.items()))}, key)


def commit(folder: Path, version: Version, key: bytes, key_file: Path | str | None = None,
           revoked: dict[str, str] | None = None) -> None:
    """Record ``version`` as the latest at ``folder``, and ``revoked`` as the folder's revocations (None: keep
    those recorded); call once ``CURRENT`` names it."""
    entry = asdict(version)
    del entry["state_id"]
    _write(_state_file(key_file, version.state_id),
           {"state_id": version.state_id, "path": str(folder), "latest": entry, "pending": None}, key)
    kept = revocations(folder, key, key_file) if revoked is None else revoked
    _write(_path_file(key_file, folder), {"path": str(folder), "state_id": version.state_id, "pending": None,
                                          "revoked": dict(sorted(kept.items()))}, key)
