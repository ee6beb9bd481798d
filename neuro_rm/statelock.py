"""One writer at a time per state folder: an ``flock`` on ``<state>/LOCK``.

The kernel drops an ``flock`` when its holder exits, however it exits (SIGKILL included), so a crash
never leaves a stale lock behind.  A process already holding a folder's lock may take it again
(``SpeakerAuthenticator.save`` inside a locked CLI command).
"""

from __future__ import annotations

import fcntl
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK = "LOCK"
_held = threading.local()


class StateBusyError(RuntimeError):
    """Another process holds the state folder's lock."""


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


@contextmanager
def state_lock(folder: Path | str, wait: float = 0.0, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold ``folder``'s lock, waiting up to ``wait`` seconds for another holder to finish.

    The folder must exist; raises ``StateBusyError`` when the lock stays taken.  ``on_wait`` hears once
    that this call is waiting (who for), so a user is not left looking at a silent command.
    """
    folder = Path(folder)
    held = getattr(_held, "folders", None)
    if held is None:
        held = _held.folders = set()
    key = str(folder.resolve())
    if key in held:  # re-entry from the same thread
        yield
        return
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)  # never through a link
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:  # a hard link would have its other name overwritten
            raise StateBusyError(f"{folder / LOCK} is not a plain file of its own (a FIFO, a device or a hard link to "
                                 "another file): remove it and try again")
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StateBusyError(f"busy: another neuro-rm holds this state{_holder(fd)}: {folder}; "
                                         "try again when it has finished, or pass --wait SECONDS") from None
                if on_wait is not None:
                    on_wait(f"waiting for another neuro-rm{_holder(fd)} to finish with {folder}")
                    on_wait = None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
    finally:
        os.close(fd)  # releases the flock
