"""Persistence of the speaker authenticator: a complete, signed, crash-safe snapshot with no pickles,
and a load that refuses any state that is unsigned, edited, malformed or rolled back."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from neuro_rm import layers as hybrid
from neuro_rm import stateanchor
from neuro_rm.audit import AuditLog, AuditTamperedError
from neuro_rm.auth.fingerprint import fingerprint
from neuro_rm.auth.registry import ENROLLED, REVOKED, Buffers, SpeakerRecord
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.device import DeviceConfig
from neuro_rm.learning.consolidation import BranchBudget, ConsolidationPolicy
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.placement import resolve_device
from neuro_rm.lora import AdapterConfig
from neuro_rm.models.rsnn import SYNAPSES, RSNNConfig, SpeakerRSNN
from neuro_rm.state_schema import check_state
from neuro_rm.statekey import KeyFileError, read_key
from neuro_rm.store import (
    CorruptStateError,
    current_pointer,
    decode_json,
    decode_tensors,
    encode_json,
    encode_tensors,
    has_state,
    load_snapshot,
    save_snapshot,
)

if TYPE_CHECKING:  # load builds the whole authenticator this half belongs to
    from neuro_rm.auth.lifecycle import SpeakerAuthenticator

STATE_FORMAT = 1
_STANDING = object()  # _record_policy's default: the authenticator's standing policy


class Persistence:
    """The persistence half of ``SpeakerAuthenticator``: ``save`` and the ``load`` constructor."""

    def save(self, folder: Path | str, overwrite: bool = False, key_file: Path | str | None = None,
             discard_revocations: bool = False) -> Path:
        """Write a complete, signed snapshot; the previous one stays valid until the switch.

        Refused when ``folder`` holds a state this object did not load (unless ``overwrite``) or one that
        changed since it was loaded; ``key_file`` defaults as in ``neuro_rm.statekey.key_path``.  Refused too
        where it would bring back a revoked voice: a speaker revoked in a state saved at ``folder`` before
        (recorded beside the key, so the record outlives the folder; with ``overwrite``, also as the replaced
        state's log says) whom this state holds enrolled, or only suspended where it had been erased (an old
        backup saved over the folder or in its place), unless ``discard_revocations``: then the new log names
        the revocations it discards (``replace``).
        """
        pointer = current_pointer(Path(folder))  # where the store refuses anyway (another state, no overwrite), it says why
        refused = pointer is not None and not overwrite and not self._continues(folder, pointer)
        back = [] if refused else self._returning(revocations_at(folder, key_file))
        replaced = self._revocations_replaced(folder, key_file) if overwrite else []
        unreadable = replaced is None
        discarded = sorted({*back, *(replaced or [])})
        if (discarded or unreadable) and not discard_revocations:
            said = ("holds a state that cannot be read, so which voices it revoked is unknown" if unreadable
                    else f"had {', '.join(discarded)} revoked (in a state saved there, or being saved when a save was "
                    "cut short: redo that revocation), enrolled (or only suspended, where erased) in the state being saved")
            raise ValueError(f"{folder} {said}: saving it could bring revoked voices back with no record of their "
                             "revocation; pass discard_revocations=True (--discard-revocations) to save it anyway, on the record")
        entry = {"revocations_discarded": discarded, **({"replaced_state": "unreadable"} if unreadable else {})}
        last = self.audit.entries[-1] if self.audit.entries else {}
        if (discarded or unreadable) and not (last.get("action") == "replace" and last.get("details") == entry):
            self.audit.append("replace", None, **entry)  # kept if the save fails: a retry after its switch must log it
        logged = len(self.audit.entries)
        self._record_policy()
        try:
            return self._write(folder, overwrite, key_file, set(back))
        except BaseException:
            del self.audit.entries[logged:]  # a refused save records no policy: nothing was saved under it
            raise

    def _continues(self, folder: Path | str, pointer: dict | str | None) -> bool:
        """Whether ``pointer`` (``CURRENT``, unverified, as the save's own check reads it) names the snapshot this
        object loaded from ``folder``."""
        return isinstance(pointer, dict) and pointer["nonce"] == self._snapshots.get(str(Path(folder).resolve()))

    def _revocation_modes(self) -> dict[str, str]:
        """Each revoked speaker and how, by the last revocation entry of the log (none: ``suspend``, the weaker)."""
        modes = {e["speaker"]: e["details"].get("mode") for e in self.audit.entries if e.get("action") == "revoke"}
        return {r.name: "erase" if modes.get(r.name) == "erase" else "suspend" for r in self.registry.values() if r.status == REVOKED}

    def _returning(self, recorded: dict[str, str]) -> list[str]:
        """Of the speakers ``recorded`` as revoked (name → how), those this state holds enrolled, or only
        suspended where they were erased."""
        modes = self._revocation_modes()
        return sorted(name for name, how in recorded.items() if name in self.registry
                      and (self.registry[name].status == ENROLLED or (how == "erase" and modes.get(name) != "erase")))

    def _revocations_replaced(self, folder: Path | str, key_file: Path | str | None) -> list[str] | None:
        """Speakers that the state ``folder`` holds (if it is not the one this object loaded) revoked, and that
        this authenticator holds enrolled; None for a state that cannot be read."""
        if self._continues(folder, current_pointer(Path(folder))):
            return []  # the state this object continues (under whatever key it is saved with): its log extends that one
        revoked = revoked_in(folder, key_file)
        if revoked is None:
            return None
        return sorted(name for name in revoked if name in self.registry and self.registry[name].status == ENROLLED)

    def _write(self, folder: Path | str, overwrite: bool, key_file: Path | str | None, discarded: set[str]) -> Path:
        state = {
            "format": STATE_FORMAT,
            "rsnn": asdict(self.model.config),
            "device": asdict(self.device_config) if self.device_config else None,
            "crossbar": asdict(self.crossbar_config) if self.crossbar_config else None,
            "speakers": [asdict(r) for r in self.registry.values()],
            "head_classes": self.model.head.n_classes,
            "adapters": hybrid.adapter_specs(self.model) if self.deployed else {},
            "active": {n: layer.active for n, layer in hybrid.hybrid_layers(self.model)},
            "fused": {n: layer.fused for n, layer in hybrid.hybrid_layers(self.model)},
            "threshold": self.threshold,
            "metadata": self.metadata,
            "buffer_caps": {"replay": self.buffers.max_replay, "holdout": self.buffers.max_holdout},
            "consolidation": policy_record(self),
        }
        tensors = self.model.state_dict()
        try:  # refuse to write what no load would accept (an operation interrupted half-way, say)
            check_state(state, stored_values=sum(t.numel() for t in tensors.values()))
            _check_registry_against_audit(self.registry, self.audit)
        except CorruptStateError as error:
            raise ValueError(f"cannot save this authenticator: {error}") from None
        buffers = {f"{name}_{part}": getattr(self.buffers.held(name), part) for name in Buffers.NAMES for part in "xy"}
        where = str(Path(folder).resolve())
        self._snapshots[where] = save_snapshot(folder, {
            "state.json": encode_json(state),
            "model.safetensors": encode_tensors(tensors),
            "buffers.safetensors": encode_tensors(buffers),
            "audit.jsonl": self.audit.to_jsonl(),
        }, expected=self._snapshots.get(where), overwrite=overwrite, extra={"audit": self.audit.head},
            key_file=key_file, revocations=lambda recorded: self._recorded_after(recorded, discarded)).nonce
        return Path(folder)

    def _recorded_after(self, recorded: dict[str, str], discarded: set[str]) -> dict[str, str]:
        """The folder's revocations once this state is saved there (under its lock): those recorded, less the
        ``discarded`` on this state's record, plus this state's own; refused if one came back since the check."""
        back = set(self._returning(recorded)) - discarded
        if back:
            raise ValueError(f"{', '.join(sorted(back))} revoked at this folder while the save was being made, and "
                             "enrolled in the state being saved; nothing was saved: load the folder again")
        return {**{name: how for name, how in recorded.items() if name not in discarded}, **self._revocation_modes()}

    @classmethod
    def load(cls, folder: Path | str, key_file: Path | str | None = None, anchored: bool = True,
             device: str | torch.device | None = None) -> SpeakerAuthenticator:
        """Load a state, refusing any that is unsigned, edited, malformed or whose registry and audit log disagree,
        and (``anchored``) any that is not the state and snapshot last saved in this folder (a swap or rollback);
        ``anchored=False`` loads an old copy as it is, for an audit; ``device`` as in ``pretrain``."""
        where = resolve_device(device)
        snapshot = load_snapshot(folder, key_file, anchored)
        files = snapshot.files
        missing = {"state.json", "model.safetensors", "buffers.safetensors", "audit.jsonl"} - set(files)
        if missing:
            raise CorruptStateError(f"state in {folder} lacks {sorted(missing)}")
        state = decode_json(files["state.json"], "state.json")
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise CorruptStateError(f"state.json in {folder} has an unknown format")
        tensors = decode_tensors(files["model.safetensors"], "model.safetensors")
        check_state(state, stored_values=sum(t.numel() for t in tensors.values()))
        try:
            with torch.random.fork_rng():  # a fixed start, so a loaded state's later random draws reproduce
                torch.manual_seed(0)
                model = SpeakerRSNN(RSNNConfig(**state["rsnn"]))
            model.head.resize(state["head_classes"])
            records = [SpeakerRecord(**r) for r in state["speakers"]]
            buffers_t = decode_tensors(files["buffers.safetensors"], "buffers.safetensors")
            caps = state.get("buffer_caps", {})  # absent in states saved before the caps were kept: the defaults
            buffers = Buffers(*(LabelledSet(buffers_t[f"{name}_x"], buffers_t[f"{name}_y"]) for name in Buffers.NAMES),
                              **{f"max_{name}": caps[name] for name in caps})
            auth = cls(model, [r.name for r in records], buffers)
            auth.registry = {r.name: r for r in records}
            if state["device"] is not None:
                auth.device_config = DeviceConfig(**state["device"])
                # a state saved before the DAC existed was read without one
                auth.crossbar_config = CrossbarConfig(**{"dac_bits": None, **state["crossbar"]})
                hybrid.analogize(model, auth.device_config, SYNAPSES, auth.crossbar_config)
                for name, spec in state["adapters"].items():
                    config = AdapterConfig(spec["rank"], spec["alpha"], spec["precision"], spec.get("full_rank", False))
                    hybrid.add_adapter(model, name, config, spec["layers"])
                for layer_name, layer in hybrid.hybrid_layers(model):
                    layer.set_adapter(state["active"][layer_name])
                    layer.fuse(state.get("fused", {}).get(layer_name, False))  # as the policy left it
                hybrid.set_ledger(model, auth.ledger)  # later writes (erasure) are costed like the first ones
            model.load_state_dict(tensors, strict=True)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            what = f"no entry {error}" if isinstance(error, KeyError) else error
            raise CorruptStateError(f"state in {folder} does not describe a valid model: {what}") from None
        model.to(where).eval()
        auth.buffers = auth.buffers.to(where)
        auth.threshold = state["threshold"]
        auth.metadata = state.get("metadata", {})
        auth.consolidation, auth.unset_custom_policy = _policy_from_record(state.get("consolidation", _ABSENT), folder)
        auth.audit = AuditLog.from_jsonl(files["audit.jsonl"])
        if snapshot.extra.get("audit") != auth.audit.head:
            raise CorruptStateError(f"the audit log in {folder} does not end at its signed head (shortened or replaced)")
        _check_registry_against_audit(auth.registry, auth.audit)
        auth._snapshots[str(Path(folder).resolve())] = snapshot.version.nonce
        return auth

    def _record_policy(self, policy: ConsolidationPolicy | None | object = _STANDING) -> None:
        """Put a consolidation policy on the audit record when it differs from the last one recorded (from the
        default a state is made with, where none is: a state saved before policies were logged has its policy
        recorded at its next save or consolidation).  ``policy``: the one about to run (default: the standing
        one, ``consolidation``).  Called before a policy runs and at a save, so that a policy set from the
        command line or from Python, or passed once to ``consolidate``, is on the record before anything it
        allows is done: when merges into the cells became possible, or stopped, is part of the state's history."""
        if policy is _STANDING:
            record = audit_policy_record(self.consolidation, self.unset_custom_policy)
        else:
            record = audit_policy_record(policy, None)
        logged = [e["details"] for e in self.audit.entries if e.get("action") == "policy"]
        if record != (logged[-1] if logged else audit_policy_record(BranchBudget(), None)):
            self.audit.append("policy", None, **record)


def revocations_at(folder: Path | str, key_file: Path | str | None = None) -> dict[str, str]:
    """Every speaker revoked in a state saved at ``folder`` (resolved) under this key, by how, as recorded beside
    the key (``stateanchor``); none where no key exists yet."""
    try:
        key = read_key(key_file)
    except KeyFileError:
        return {}
    try:
        return stateanchor.revocations(Path(folder).resolve(), key, key_file)
    except stateanchor.AnchorError as error:
        raise CorruptStateError(str(error)) from None


def revoked_in(folder: Path | str, key_file: Path | str | None = None) -> set[str] | None:
    """The speakers the audit log of the state ``folder`` holds revoked (none where it holds no state; None
    where it cannot be read): what replacing it would discard."""
    if not has_state(folder):
        return set()
    try:  # anchored: an older copy put back says nothing of what the folder's state revoked since
        snapshot = load_snapshot(folder, key_file)
        entries = AuditLog.from_jsonl(snapshot.files["audit.jsonl"]).entries
    except (CorruptStateError, AuditTamperedError, KeyError):
        return None
    return {e["speaker"] for e in entries if e.get("action") == "revoke"}


def _check_registry_against_audit(registry: dict[str, SpeakerRecord], audit: AuditLog) -> None:
    """Each speaker's status must be what its last pretrain / enroll / revoke entry in the audit log says."""
    last: dict[str, str] = {}
    for entry in audit.entries:
        details = entry.get("details")
        if entry.get("action") == "pretrain" and isinstance(details, dict) and isinstance(details.get("speakers"), list):
            last.update({name: ENROLLED for name in details["speakers"] if isinstance(name, str)})
        elif entry.get("action") in ("enroll", "revoke") and isinstance(entry.get("speaker"), str):
            last[entry["speaker"]] = ENROLLED if entry["action"] == "enroll" else REVOKED
    for record in registry.values():
        logged = last.get(record.name)
        if logged != record.status:
            said = f"last {'revoked' if logged == REVOKED else 'enrolled'}" if logged else "never enrolled"
            raise CorruptStateError(f"speaker {record.name!r} is {record.status} in the registry but {said} "
                                    "in the audit log: the registry was edited")
        if record.status == REVOKED and record.adapter is not None:  # a revocation deletes the voice's branch
            raise CorruptStateError(f"speaker {record.name!r} is revoked but still holds branch {record.adapter!r}, "
                                    "trained on the voice: its deletion did not finish")


class UnsetPolicyWarning(UserWarning):
    """A loaded state's consolidation policy was a custom one, whose code is not saved: none runs until set."""


_ABSENT = object()  # no consolidation entry: a state saved before policies were kept
_POLICY_NAME_CHARS = 200  # a custom policy's name as kept: enough for a qualified class name
_MAX_BRANCHES = 10**6


def _state_record(policy: ConsolidationPolicy | None, unset_custom: str | None) -> dict[str, object]:
    if policy is None:
        return {"kind": "custom", "name": unset_custom} if unset_custom else {"kind": "none"}
    if type(policy) is BranchBudget:
        return {"kind": "branch_budget", **{k: v.item() if hasattr(v, "item") else v for k, v in asdict(policy).items()}}
    return {"kind": "custom", "name": type(policy).__qualname__[:_POLICY_NAME_CHARS]}


def policy_record(auth: SpeakerAuthenticator) -> dict[str, object]:
    """The consolidation policy as the state keeps it: none, the default ``BranchBudget``'s settings, or the name
    of any other (its code is never saved; a subclass of ``BranchBudget`` counts as another).  A state loaded
    with a custom policy not set again keeps that name.  Checked as a load will read it, before anything is
    written, so that a save never leaves a state no load accepts."""
    record = _state_record(auth.consolidation, auth.unset_custom_policy)
    try:
        _policy_from_record(record, "the state to save", quiet=True)
    except CorruptStateError as error:
        raise ValueError(f"cannot save the consolidation policy {auth.consolidation!r}: {error}") from None
    return record


def audit_policy_record(policy: ConsolidationPolicy | None, unset_custom: str | None) -> dict[str, object]:
    """The policy as the audit log records it: the state's record, and for a custom policy what tells two apart
    (``fingerprint``) and whether it runs (a loaded custom policy does not until its owner sets it again)."""
    record = _state_record(policy, unset_custom)
    if record["kind"] == "custom":
        record |= {"identity": fingerprint(policy) if policy is not None else None, "runs": policy is not None}
    return record


def _policy_from_record(record: object, folder: Path | str, quiet: bool = False) -> tuple[ConsolidationPolicy | None, str | None]:
    """The saved policy back, with the name of a custom one: a state saved before policies were kept gets the
    default; a custom one is not run until its owner sets it again (with a warning), rather than replaced by
    the default, which would fold branches (suspended voices' masks among them) its owner chose to keep apart."""
    def refuse(what: str) -> CorruptStateError:
        return CorruptStateError(f"state.json in {folder}: consolidation {what}")

    if record is _ABSENT:
        return BranchBudget(), None
    kind = record.get("kind") if isinstance(record, dict) else None
    if kind == "none" and set(record) == {"kind"}:
        return None, None
    if kind == "custom" and set(record) == {"kind", "name"}:
        name = record["name"]
        if not (isinstance(name, str) and 0 < len(name) <= _POLICY_NAME_CHARS):
            raise refuse(f"name must be a string of 1 to {_POLICY_NAME_CHARS} characters")
        if not quiet:
            warnings.warn(f"state in {folder} was saved with a custom consolidation policy ({name!r}), which is not "
                          "saved: set auth.consolidation again (from the command line: neuro-rm consolidate); until then "
                          "no branch is folded", UnsetPolicyWarning, stacklevel=3)
        return None, name
    if kind != "branch_budget" or set(record) != {"kind", "max_branches", "horizon_inferences", "wear_budget"}:
        raise refuse("must be none, a branch_budget with max_branches, horizon_inferences and wear_budget, or a "
                     "custom policy's name")
    branches, horizon, wear = record["max_branches"], record["horizon_inferences"], record["wear_budget"]
    if not (type(branches) is int and 0 <= branches <= _MAX_BRANCHES):
        raise refuse(f"max_branches must be an integer from 0 to {_MAX_BRANCHES}, got {branches!r}")
    if horizon is not None and not (type(horizon) in (int, float) and math.isfinite(horizon)):
        raise refuse(f"horizon_inferences must be null or a finite number, got {horizon!r}")
    if not (type(wear) in (int, float) and 0 < wear <= 1):
        raise refuse(f"wear_budget must be a number in (0, 1], got {wear!r}")
    return BranchBudget(branches, horizon, wear), None
