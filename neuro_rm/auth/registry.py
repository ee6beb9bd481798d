"""The speaker registry and its policy: who is enrolled or revoked, under which label and branch, which
samples the device keeps (replay and holdout buffers, bounded), and the checks every operation makes on
names and frames before it touches the model."""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, field

import torch

from neuro_rm.audit import AuditLog
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.data.labelled import PACKED_DTYPES, LabelledSet, pack_frames
from neuro_rm.device import DeviceConfig
from neuro_rm.energy import Ledger
from neuro_rm.learning.consolidation import BranchBudget, ConsolidationPolicy
from neuro_rm.learning.placement import model_device
from neuro_rm.learning.train import FitResult
from neuro_rm.memory import storages
from neuro_rm.models.rsnn import SpeakerRSNN
from neuro_rm.state_schema import MAX_BUFFER_CAP

ENROLLED, REVOKED = "enrolled", "revoked"
# How a revocation forgets (README, Security): ``erase`` writes the forgetting into the cells and leaves
# nothing digital to switch off; ``suspend`` masks the voice with a digital branch, reversible by design (until a
# merging policy writes it into the cells).
REVOKE_MODES = ("erase", "suspend")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@+-]{0,63}$")


@dataclass
class SpeakerRecord:
    name: str
    label: int
    status: str = ENROLLED
    adapter: str | None = None  # the branch that enrolled this speaker, if not the backbone


class _PackedSamples:
    """A ``LabelledSet`` attribute held with its frames packed (``pack_frames``: spike counts in a byte each)
    and handed out as a copy in the type they were given in (float32 for frames from ``check_frames``):
    change the buffer by assigning to it, never through what it hands out."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, buffers: Buffers | None, owner: type | None = None) -> LabelledSet | _PackedSamples:
        if buffers is None:
            return self
        held, given = getattr(buffers, self.slot), getattr(buffers, f"{self.slot}_dtype")
        return LabelledSet(held.x.to(given, copy=True), held.y.clone())

    def __set__(self, buffers: Buffers, samples: LabelledSet) -> None:
        packed_already = samples.x.dtype in PACKED_DTYPES  # a saved state's buffers: float32 frames, packed
        setattr(buffers, f"{self.slot}_dtype", torch.float32 if packed_already else samples.x.dtype)
        setattr(buffers, self.slot, LabelledSet(pack_frames(samples.x), samples.y))


class Buffers:
    """Small per-speaker sample buffers kept on the device: replay for training, holdout for selection.

    Each holds at most ``max_replay`` / ``max_holdout`` samples in all, shared evenly by the speakers, so
    memory and the work of every later enrolment stay flat however many voices are enrolled. The frames
    are kept packed (a byte per spike count) and read out as a copy, in the type they were given.
    """

    replay = _PackedSamples()
    holdout = _PackedSamples()
    NAMES = ("replay", "holdout")

    def __init__(self, replay: LabelledSet, holdout: LabelledSet, max_replay: int = 4096, max_holdout: int = 2048) -> None:
        self.replay, self.holdout = replay, holdout
        self.max_replay, self.max_holdout = max_replay, max_holdout

    def __setattr__(self, name: str, value: object) -> None:
        if name in ("max_replay", "max_holdout"):  # checked on every write: a saved state must load back
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= MAX_BUFFER_CAP:
                raise ValueError(f"{name} must be an integer from 1 to {MAX_BUFFER_CAP} (samples kept), got {value!r}")
            value = int(value)
        super().__setattr__(name, value)

    def held(self, name: str) -> LabelledSet:
        """The ``replay`` or ``holdout`` samples as they are kept (frames packed), for saving and sizing."""
        return getattr(self, f"_{name}")

    def nbytes(self) -> int:
        """Bytes the buffers hold."""
        return sum(storages(self).values())

    def to(self, device: torch.device | str) -> Buffers:
        """The same buffers, caps and the frames' types included, on ``device``."""
        moved = Buffers(*(self.held(name).to(device) for name in self.NAMES), self.max_replay, self.max_holdout)
        for name in self.NAMES:
            setattr(moved, f"_{name}_dtype", getattr(self, f"_{name}_dtype"))
        return moved

    def _keep(self, name: str, samples: LabelledSet) -> None:
        setattr(self, f"_{name}", samples)  # already packed: a subset of what is held

    def drop(self, label: int) -> None:
        for name in self.NAMES:
            self._keep(name, self.held(name).without_classes([label]))

    def bound(self) -> None:
        """Thin both buffers evenly over their speakers down to their caps."""
        for name, cap in zip(self.NAMES, (self.max_replay, self.max_holdout), strict=True):
            held = self.held(name)
            speakers = len(torch.unique(held.y))
            if len(held) > cap and speakers:
                self._keep(name, held.subsample(max(1, cap // speakers)))


@dataclass
class OperationReport:
    action: str
    speaker: str | None
    fit: FitResult | None
    trainable_params: int
    holdout_accuracy: float
    extra: dict = field(default_factory=dict)


class Registry:
    """The registry half of ``SpeakerAuthenticator``: its state, and the rules every operation checks."""

    def __init__(self, model: SpeakerRSNN, speakers: list[str], buffers: Buffers, ledger: Ledger | None = None) -> None:
        if len(set(speakers)) != len(speakers):
            raise ValueError("speaker names must be unique")
        for name in speakers:
            self._check_name(name)
        if len(speakers) != model.head.n_classes:
            raise ValueError(f"{len(speakers)} speaker names for a model with {model.head.n_classes} outputs")
        self.model = model
        self.registry = {name: SpeakerRecord(name, i) for i, name in enumerate(speakers)}
        self.buffers = buffers
        self.ledger = ledger or Ledger()
        self.audit = AuditLog()
        self.threshold: float | None = None
        # called after every enrolment and suspension; None keeps every branch live (see learning/consolidation.py)
        self.consolidation = BranchBudget()
        self.device_config: DeviceConfig | None = None
        self.crossbar_config: CrossbarConfig | None = None
        self.metadata: dict = {}  # JSON-ready facts the caller wants kept (data source, frame settings)
        self._snapshots: dict[str, str] = {}  # state folder → nonce of the snapshot this object loaded or saved there
        # suspended voices' stand-in rows from an erasure of their suspension that wrote cells and was not committed,
        # in memory only: a retry is judged by the same rows (see SpeakerAuthenticator._stand_in_rows)
        self._stand_ins: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def consolidation(self) -> ConsolidationPolicy | None:
        return self._consolidation

    @consolidation.setter
    def consolidation(self, policy: ConsolidationPolicy | None) -> None:
        self._consolidation = policy
        self.unset_custom_policy: str | None = None  # set by a load of a state saved with a custom policy

    # ------------------------------------------------------------------ registry
    @staticmethod
    def _check_name(name: str) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"speaker name {name!r} must be 1-64 letters, digits, spaces or _.@+- characters")

    @property
    def enrolled(self) -> list[str]:
        return [r.name for r in self.registry.values() if r.status == ENROLLED]

    @property
    def active_labels(self) -> list[int]:
        return [r.label for r in self.registry.values() if r.status == ENROLLED]

    def record(self, name: str) -> SpeakerRecord:
        if name not in self.registry:
            raise KeyError(f"unknown speaker {name!r} (enrolled: {self.enrolled})")
        return self.registry[name]

    def require_enrolled(self, name: str) -> SpeakerRecord:
        rec = self.record(name)
        if rec.status == REVOKED:
            raise ValueError(f"speaker {name!r} is already revoked")
        return rec

    def memory(self) -> dict[str, int]:
        """Bytes of tensor memory this authenticator keeps, by part: ``model`` (its state: weights, cells,
        branches, readout), ``buffers`` (as kept, packed), ``caches`` (everything else the model holds: the
        crossbars' read caches and work buffers, fused ΔWs and what their checks compare), and ``total``."""
        state = storages(list(self.model.state_dict(keep_vars=True).values()))
        buffers = storages(self.buffers)
        everything = storages(self.model, self.buffers)
        caches = sum(size for key, size in everything.items() if key not in state and key not in buffers)
        return {"model": sum(state.values()), "buffers": sum(buffers.values()), "caches": caches,
                "total": sum(everything.values())}

    @property
    def deployed(self) -> bool:
        return self.device_config is not None

    def _require_deployed(self, action: str) -> None:
        if not self.deployed:
            raise ValueError(f"{action} works on the deployed crossbar model; call deploy() first")

    def check_frames(self, x: torch.Tensor, what: str = "sample") -> torch.Tensor:
        """Validate spike-count frames (N, T, inputs): right channel count, finite, not empty of spikes."""
        n_inputs = self.model.config.n_inputs
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{what} must be a torch.Tensor of spike counts, got {type(x).__name__}")
        if x.dim() == 2:
            x = x.unsqueeze(0)
        if x.dim() != 3 or x.shape[-1] != n_inputs:
            raise ValueError(f"{what} must have shape (n, time, {n_inputs}) — {n_inputs} input channels — got {tuple(x.shape)}")
        if len(x) == 0:
            raise ValueError(f"{what} holds no samples")
        x = x.float()
        if not torch.isfinite(x).all() or (x < 0).any():
            raise ValueError(f"{what} must hold finite, non-negative spike counts")
        silent = (x.flatten(1).sum(dim=1) == 0).nonzero().flatten().tolist()
        if silent:
            raise ValueError(f"{what} has no spikes in sample(s) {silent[:5]}; nothing to recognise")
        return x.to(model_device(self.model))

    def _labelled(self, x: torch.Tensor, label: int) -> LabelledSet:
        return LabelledSet(x, torch.full((len(x),), label, device=x.device))
