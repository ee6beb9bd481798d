"""An append-only audit log whose entries are hash-chained, so edits and deletions show."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field


class AuditTamperedError(ValueError):
    """The audit chain does not verify: an entry was changed, removed or reordered."""


def _digest(entry: dict) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass
class AuditLog:
    entries: list[dict] = field(default_factory=list)

    def append(self, action: str, speaker: str | None = None, **details: object) -> dict:
        entry = {
            "index": len(self.entries),
            "time": time.time(),
            "action": action,
            "speaker": speaker,
            "details": details,
            "prev_hash": self.entries[-1]["hash"] if self.entries else "",
        }
        entry["hash"] = _digest(entry)
        self.entries.append(entry)
        return entry

    @property
    def head(self) -> dict:
        """Length and last hash: enough to tell a shortened log from a whole one."""
        return {"entries": len(self.entries), "head": self.entries[-1]["hash"] if self.entries else ""}

    def verify(self) -> None:
        previous = ""
        for position, entry in enumerate(self.entries):
            if not isinstance(entry, dict):
                raise AuditTamperedError(f"audit log entry {position} is not a JSON object: the log was tampered with")
            if entry.get("index") != position or entry.get("prev_hash") != previous or entry.get("hash") != _digest(entry):
                raise AuditTamperedError(f"audit log entry {position} does not verify: the log was tampered with")
            previous = entry["hash"]

    def to_jsonl(self) -> bytes:
        return "".join(json.dumps(e, sort_keys=True) + "\n" for e in self.entries).encode()

    @classmethod
    def from_jsonl(cls, data: bytes) -> AuditLog:
        try:
            entries = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise AuditTamperedError(f"audit log is unreadable: {error}") from None
        log = cls(entries)
        log.verify()
        return log
