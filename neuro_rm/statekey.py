"""The secret that signs state folders: a key file kept outside every state folder.

Checksums alone let anyone who can write a state folder edit it and re-hash it.  An HMAC under a key
that lives elsewhere (default ``~/.config/neuro_rm/state.key``; ``--key-file`` or ``NEURO_RM_KEY_FILE``
to move it) means such an edit is refused unless the editor also holds the key.  The key is created,
readable by its owner only, the first time a state is saved.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

ENV = "NEURO_RM_KEY_FILE"
MIN_KEY_BYTES = 32


class KeyFileError(ValueError):
    """The key file is missing, unsafe or unreadable."""


def key_path(key_file: Path | str | None = None) -> Path:
    """Where the key lives: ``key_file``, else ``$NEURO_RM_KEY_FILE``, else ``~/.config/neuro_rm/state.key``."""
    if key_file is not None:
        return Path(key_file)
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    return Path.home() / ".config" / "neuro_rm" / "state.key"


def _create(path: Path) -> None:
    """Write a fresh random key readable by its owner only; link() makes the file appear whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(MIN_KEY_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process created it first: use theirs
            pass
    finally:
        tmp.unlink(missing_ok=True)


def read_key(key_file: Path | str | None = None, create: bool = False) -> bytes:
    """The signing key; created on first use when ``create`` (saving), never when only loading."""
    path = key_path(key_file)
    if create and not path.exists():
        _create(path)
    hint = f"pass --key-file or set {ENV} to the key this state was signed with"
    if not path.exists():
        raise KeyFileError(f"no state key at {path}; {hint}")
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"state key {path} is not a regular file")
    if info.st_mode & 0o077:
        raise KeyFileError(f"state key {path} is readable or writable by others; run: chmod 600 {path}")
    if info.st_uid != os.getuid():
        raise KeyFileError(f"state key {path} belongs to another user (uid {info.st_uid}); use a key of your own")
    for directory in {path.parent, path.resolve().parent}:  # whoever can write there can swap the key
        if directory.stat().st_mode & 0o022:
            raise KeyFileError(f"state key {path} sits in {directory}, which others can write (they could replace "
                               f"the key or its anchors); move it, or run: chmod go-w {directory}")
    key = path.read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(f"state key {path} holds {len(key)} bytes, fewer than {MIN_KEY_BYTES}; {hint}")
    return key


def sign(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def signature_matches(key: bytes, payload: bytes, mac: object) -> bool:
    """Whether ``mac`` signs ``payload``; anything but a string of ASCII characters (as a hex digest is) matches
    nothing (``hmac.compare_digest`` refuses non-ASCII strings with an error)."""
    return isinstance(mac, str) and mac.isascii() and hmac.compare_digest(sign(key, payload), mac)


def refuse_inside(folder: Path | str, key_file: Path | str | None = None) -> None:
    """A key inside the state folder it signs travels with every copy of the folder: refused."""
    path, root = key_path(key_file).resolve(), Path(folder).resolve()
    if path == root or root in path.parents:
        raise KeyFileError(f"state key {key_path(key_file)} lies inside the state folder {folder}; every copy of the "
                           "folder would carry it: keep the key elsewhere (--key-file)")
