"""Speaker authentication on a hybrid RSNN: a registry of speakers and their lifecycle.

The backbone is trained once (digitally), written into crossbars once, and never rewritten: enrolling
and revoking speakers and repairing the array all happen in named LoRA branches.  Every operation is
recorded in a hash-chained audit log; state is saved as crash-safe snapshots with no pickles.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm.audit import AuditLog
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.device import DeviceConfig
from neuro_rm.energy import Ledger
from neuro_rm.learning.consolidation import BranchBudget, ConsolidationPolicy, apply_plan
from neuro_rm.learning.continual import ENROLL, learn_new_classes
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.erase import EraseConfig, erase_classes
from neuro_rm.learning.loop import TrainConfig
from neuro_rm.learning.metrics import accuracy, equal_error_rate, predict_logits
from neuro_rm.learning.placement import model_device, resolve_device
from neuro_rm.learning.train import PRETRAIN, FitResult, fit_classifier
from neuro_rm.learning.unlearn import UnlearnConfig, unlearn
from neuro_rm.lora import AdapterConfig
from neuro_rm.models.rsnn import ERASE_SYNAPSES, SYNAPSES, RSNNConfig, SpeakerRSNN
from neuro_rm.state_schema import check_state
from neuro_rm.store import (
    CorruptStateError,
    decode_json,
    decode_tensors,
    encode_json,
    encode_tensors,
    load_snapshot,
    save_snapshot,
)

STATE_FORMAT = 1
ENROLLED, REVOKED = "enrolled", "revoked"
# How a revocation forgets (README, Security): ``erase`` writes the forgetting into the cells and leaves
# nothing digital to switch off; ``suspend`` masks the voice with a digital branch, reversible by design.
REVOKE_MODES = ("erase", "suspend")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@+-]{0,63}$")


@dataclass
class SpeakerRecord:
    name: str
    label: int
    status: str = ENROLLED
    adapter: str | None = None  # the branch that enrolled this speaker, if not the backbone


@dataclass
class Buffers:
    """Small per-speaker sample buffers kept on the device: replay for training, holdout for selection.

    Each holds at most ``max_replay`` / ``max_holdout`` samples in all, shared evenly by the speakers, so
    memory and the work of every later enrolment stay flat however many voices are enrolled.
    """

    replay: LabelledSet
    holdout: LabelledSet
    max_replay: int = 4096
    max_holdout: int = 2048

    def drop(self, label: int) -> None:
        self.replay = self.replay.without_classes([label])
        self.holdout = self.holdout.without_classes([label])

    def bound(self) -> None:
        """Thin both buffers evenly over their speakers down to their caps."""
        for name, cap in (("replay", self.max_replay), ("holdout", self.max_holdout)):
            held = getattr(self, name)
            speakers = len(torch.unique(held.y))
            if len(held) > cap and speakers:
                setattr(self, name, held.subsample(max(1, cap // speakers)))


@dataclass
class OperationReport:
    action: str
    speaker: str | None
    fit: FitResult | None
    trainable_params: int
    holdout_accuracy: float
    extra: dict = field(default_factory=dict)


class SpeakerAuthenticator:
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
        # called after every enrolment; None keeps every branch live (see learning/consolidation.py)
        self.consolidation: ConsolidationPolicy | None = BranchBudget()
        self.device_config: DeviceConfig | None = None
        self.crossbar_config: CrossbarConfig | None = None
        self.metadata: dict = {}  # JSON-ready facts the caller wants kept (data source, frame settings)
        self._snapshots: dict[str, str] = {}  # state folder → nonce of the snapshot this object loaded or saved there

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

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def pretrain(
        cls,
        speakers: list[str],
        train: LabelledSet,
        val: LabelledSet,
        rsnn: RSNNConfig | None = None,
        config: TrainConfig = PRETRAIN,
        replay_per_speaker: int = 128,
        holdout_per_speaker: int = 64,
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> tuple[SpeakerAuthenticator, FitResult]:
        """Digital training of the backbone on the first speakers; validation picks the epoch.

        ``device`` (``auto``, ``cpu``, ``cuda``; default CPU) holds the model, its data and, after
        ``deploy``, the simulated crossbars."""
        rsnn = rsnn or RSNNConfig(n_inputs=train.x.shape[-1], n_outputs=len(speakers))
        torch.manual_seed(seed)
        where = resolve_device(device)
        model = SpeakerRSNN(rsnn).to(where)
        train, val = train.to(where), val.to(where)
        buffers = Buffers(train.subsample(replay_per_speaker, seed), val.subsample(holdout_per_speaker, seed))
        auth = cls(model, speakers, buffers)
        auth.check_frames(train.x, "training frames")
        result = fit_classifier(model, train, val, replace(config, seed=seed))  # the seed shuffles and augments too
        auth.ledger.post_training(result.trainable_params, result.steps, note="pretrain")
        auth.audit.append("pretrain", None, speakers=speakers, val_accuracy=result.best_score, steps=result.steps)
        return auth, result

    def deploy(self, device: DeviceConfig | None = None, crossbar: CrossbarConfig | None = None, seed: int = 0) -> dict:
        """Write the backbone's synapses into crossbars (write-and-verify), once."""
        if self.deployed:
            raise ValueError("the backbone is deployed already; it is never rewritten (use merge to consolidate)")
        self.device_config, self.crossbar_config = device or DeviceConfig(), crossbar or CrossbarConfig()
        before = self.ledger.joules("write")
        hybrid.analogize(self.model, self.device_config, SYNAPSES, self.crossbar_config, self.ledger, seed=seed)
        self.model.eval()
        hybrid.calibrate(self.model, self.buffers.replay.x)  # the ADC full scale, once, on training frames
        report = {
            "write_pulses": self.ledger.count("write.rm_pulse"),
            "write_energy_j": self.ledger.joules("write") - before,
            "programming_seconds": self.ledger.seconds("write"),
            "cells": sum(layer.crossbar.n_cells for _, layer in hybrid.hybrid_layers(self.model)),
            "holdout_accuracy": self.holdout_accuracy(),
        }
        self.audit.append("deploy", None, **report)
        return report

    def _new_adapter(self, name: str, config: AdapterConfig) -> list[nn.Parameter]:
        params = hybrid.add_adapter(self.model, name, config)
        hybrid.activate_adapter(self.model, name)
        return params

    def _finish(self, action: str, speaker: str | None, adapter: str, kind: str, result: FitResult, trainable: int,
                row_bits: int = 0, **extra: object) -> OperationReport:
        """Commit the branch (its bits at its precision) beside ``row_bits`` of readout rows already posted."""
        bits = hybrid.commit_adapter(self.model, adapter, kind) + row_bits
        extra = {"write_bits": bits, "write_energy_j": bits * self.ledger.energy.sram_write_bit_j, **extra}
        self.ledger.post_training(trainable, result.steps, note=f"{action} {speaker or ''}".strip())
        report = OperationReport(action, speaker, result, trainable, self.holdout_accuracy(), dict(extra))
        self.audit.append(action, speaker, adapter=adapter, trainable_params=trainable, steps=result.steps,
                          holdout_accuracy=report.holdout_accuracy, **extra)
        return report

    def revoke(
        self,
        name: str,
        forget_x: torch.Tensor,
        retain: LabelledSet | None = None,
        config: UnlearnConfig = UnlearnConfig(),
        adapter: AdapterConfig = AdapterConfig(),
        mode: str = "erase",
        erase: EraseConfig | None = None,
    ) -> OperationReport:
        """Forget a speaker; the speaker is then rejected and their data, readout row and branch dropped.

        ``mode="erase"`` (default) writes the forgetting into the crossbar cells (only cells that must move
        are pulsed) and re-learns the other speakers' readout rows without the voice: switching digital
        branches off cannot bring it back.  ``mode="suspend"`` keeps a digital LoRA branch that masks the
        voice: cheap and reversible by design, since the cells still hold it.  ``forget_x`` are the
        speaker's samples to unlearn; ``retain`` defaults to the replay buffer.
        """
        if mode not in REVOKE_MODES:
            raise ValueError(f"revoke mode must be one of {REVOKE_MODES}, got {mode!r}")
        self._require_deployed("revoke")
        rec = self.require_enrolled(name)
        if len(self.enrolled) < 2:
            raise ValueError("cannot revoke the last enrolled speaker")
        forget_x = self.check_frames(forget_x, f"samples of {name!r}")
        retain = (retain or self.buffers.replay).without_classes([rec.label])
        if rec.adapter is not None:  # a branch trained on this speaker is erased outright
            hybrid.delete_adapter(self.model, rec.adapter)
            rec.adapter = None
        train = LabelledSet.concat(self._labelled(forget_x, rec.label), retain.to(forget_x.device))
        val = self.buffers.holdout.of_classes(self.active_labels)
        keep = [label for label in self.active_labels if label != rec.label]
        if mode == "suspend":
            branch = f"revoke_{rec.label}"
            params = self._new_adapter(branch, adapter)
            result = unlearn(self.model, params, [rec.label], train, val, keep, config, f"revoke {name}")
            self._forget_record(rec)
            report = self._finish("revoke", name, branch, "depress", result, sum(p.numel() for p in params),
                                  method=config.method, mode=mode)
        else:
            erase = erase or EraseConfig(unlearn=config, rank=adapter.rank, alpha=adapter.alpha, layers=ERASE_SYNAPSES)
            joules_before = self.ledger.joules("write")
            erased = erase_classes(self.model, [rec.label], train, val, keep, self.buffers.holdout, erase,
                                   f"erase_{rec.label}", f"erase {name}")
            self._forget_record(rec)
            head_bits = self.ledger.post_row_write(len(keep), self.model.head.in_features + 1, note=f"erase {name}: readout rows")
            steps = sum(f.steps for f in erased.fits)
            self.ledger.post_training(erased.trainable_params, steps + erased.readout.steps, note=f"erase {name}")
            report = OperationReport("revoke", name, erased.fits[-1], erased.trainable_params, self.holdout_accuracy(), {
                "method": erase.unlearn.method, "mode": mode, "write_pulses": erased.write_pulses,
                "cells_written": erased.cells_written, "rounds": len(erased.fits), "residual": erased.residual,
                "write_bits": head_bits, "write_energy_j": self.ledger.joules("write") - joules_before})
            self.audit.append("revoke", name, trainable_params=erased.trainable_params, steps=steps,
                              holdout_accuracy=report.holdout_accuracy, **report.extra)
        return report

    def _forget_record(self, rec: SpeakerRecord) -> None:
        """What every revocation drops: the voiceprint (readout row) and the buffered samples."""
        self.model.head.erase_row(rec.label)
        rec.status = REVOKED
        self.buffers.drop(rec.label)

    def enroll(
        self,
        name: str,
        train_x: torch.Tensor,
        val_x: torch.Tensor,
        config: TrainConfig = ENROLL,
        adapter: AdapterConfig = AdapterConfig(),
        replay_per_speaker: int = 128,
        holdout_per_speaker: int = 64,
    ) -> OperationReport:
        """Learn a new speaker: a new LoRA branch and a new, trained readout row, with replay."""
        self._require_deployed("enroll")
        self._check_name(name)
        if name in self.registry:
            raise ValueError(f"speaker {name!r} exists already ({self.registry[name].status}); pick a new name")
        train_x = self.check_frames(train_x, f"training samples of {name!r}")
        val_x = self.check_frames(val_x, f"validation samples of {name!r}")
        label = self.model.head.n_classes
        branch = f"enroll_{label}"
        self.model.head.grow(1, seed=label)
        self.model.head.train_rows([label])
        params = self._new_adapter(branch, adapter) + [self.model.head.weight, self.model.head.bias]
        new, new_val = self._labelled(train_x, label), self._labelled(val_x, label)
        val = LabelledSet.concat(self.buffers.holdout.of_classes(self.active_labels), new_val)
        try:
            result = learn_new_classes(self.model, params, new, self.buffers.replay, val, config, f"enroll {name}")
        finally:
            self.model.head.train_rows(None)
        self.registry[name] = SpeakerRecord(name, label, ENROLLED, branch)
        self.buffers.replay = LabelledSet.concat(self.buffers.replay, new.subsample(replay_per_speaker))
        self.buffers.holdout = LabelledSet.concat(self.buffers.holdout, new_val.subsample(holdout_per_speaker))
        self.buffers.bound()
        trainable = sum(p.numel() for p in params[:-2]) + self.model.head.in_features + 1
        row_bits = self.ledger.post_row_write(1, self.model.head.in_features + 1, note=f"enroll {name}: readout row")
        report = self._finish("enroll", name, branch, "potentiate", result, trainable, row_bits)
        if self.consolidation is not None:
            report.extra["consolidation"] = self.consolidate(self.consolidation)
        return report

    def consolidate(self, policy: ConsolidationPolicy) -> dict:
        """Run a consolidation policy on the enrolled speakers' branches (oldest first): after each
        enrolment, or whenever the device is idle.  Folded speakers keep their voice in ``store`` (or,
        once merged, in the cells); revoking them then works as for a backbone speaker."""
        branches = [r.adapter for r in self.registry.values() if r.status == ENROLLED and r.adapter]
        plan = policy(self.model, branches, self.ledger)
        done = apply_plan(self.model, plan)
        for record in self.registry.values():
            if record.adapter in plan.fold:
                record.adapter = None
        if done["folded"] or done["merged"]:
            self.audit.append("consolidate", None, **done)
        return done

    def restore(
        self,
        config: TrainConfig = TrainConfig(epochs=8, lr=2e-3, batch_size=64),
        adapter: AdapterConfig = AdapterConfig(),
        data: LabelledSet | None = None,
    ) -> OperationReport:
        """Win back accuracy lost to write noise, drift or stuck cells with the restore branch (created
        on first use, refined afterwards), trained on ``data`` (default: the replay buffer) and selected
        on the holdout buffer, so a refinement that does not help leaves the branch as it was."""
        self._require_deployed("restore")
        if "restore" in hybrid.adapter_names(self.model):  # refine the repair branch there is
            params = hybrid.adapter_parameters(self.model, "restore")
        else:
            params = self._new_adapter("restore", adapter)
        train = (data or self.buffers.replay).of_classes(self.active_labels)
        val = self.buffers.holdout.of_classes(self.active_labels)
        result = fit_classifier(self.model, train, val, config, params, "restore")
        return self._finish("restore", None, "restore", "potentiate", result, sum(p.numel() for p in params))

    # ------------------------------------------------------------------ inference
    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Verification scores: each enrolled speaker's logit (revoked ones can never be claimed: -inf).

        Logits, not log-softmax: a softmax over the enrolled speakers hands all of a stranger's (or a
        revoked speaker's) evidence to the nearest enrolled voice, while a logit stays low when the voice
        matches nobody; ``scripts/compare_unlearning.py`` measures both on validation.
        """
        logits = predict_logits(self.model, x)
        inactive = torch.ones(logits.shape[1], dtype=torch.bool)
        inactive[self.active_labels] = False
        return logits.masked_fill(inactive, float("-inf"))

    def holdout_accuracy(self) -> float:
        holdout = self.buffers.holdout.of_classes(self.active_labels)
        return accuracy(predict_logits(self.model, holdout.x), holdout.y) if len(holdout) else float("nan")

    def trial_scores(self, data: LabelledSet) -> tuple[torch.Tensor, torch.Tensor]:
        """(genuine, impostor) scores: every sample claims every enrolled speaker once.

        Samples of revoked or unknown speakers only ever make impostor claims.
        """
        scores = self.scores(data.x)
        genuine, impostor = [], []
        for label in self.active_labels:
            own = data.y == label
            genuine.append(scores[own, label])
            impostor.append(scores[~own, label])
        return torch.cat(genuine), torch.cat(impostor)

    def calibrate(self) -> dict:
        """Set the acceptance threshold at the equal-error point of the holdout buffer."""
        holdout = self.buffers.holdout.of_classes(self.active_labels)
        eer, threshold = equal_error_rate(*self.trial_scores(holdout))
        self.threshold = threshold
        self.audit.append("calibrate", None, holdout_eer=eer, threshold=threshold)
        return {"holdout_eer": eer, "threshold": threshold}

    def verify(self, sample: torch.Tensor, claim: str) -> dict:
        """Accept or reject one sample's claim to be ``claim``."""
        rec = self.record(claim)
        if self.threshold is None:
            raise ValueError("no acceptance threshold yet; call calibrate() first")
        x = self.check_frames(sample)
        if len(x) != 1:
            raise ValueError(f"verify takes one sample, got {len(x)}")
        if rec.status == REVOKED:
            return {"claim": claim, "accept": False, "score": float("-inf"), "threshold": self.threshold, "reason": "revoked"}
        score = float(self.scores(x)[0, rec.label])
        return {"claim": claim, "accept": score >= self.threshold, "score": score, "threshold": self.threshold}

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path | str, overwrite: bool = False, key_file: Path | str | None = None) -> Path:
        """Write a complete, signed snapshot; the previous one stays valid until the switch.

        Refused when ``folder`` holds a state this object did not load (unless ``overwrite``) or one that
        changed since it was loaded; ``key_file`` defaults as in ``neuro_rm.statekey.key_path``.
        """
        state = {
            "format": STATE_FORMAT,
            "rsnn": asdict(self.model.config),
            "device": asdict(self.device_config) if self.device_config else None,
            "crossbar": asdict(self.crossbar_config) if self.crossbar_config else None,
            "speakers": [asdict(r) for r in self.registry.values()],
            "head_classes": self.model.head.n_classes,
            "adapters": hybrid.adapter_specs(self.model) if self.deployed else {},
            "active": {n: layer.active for n, layer in hybrid.hybrid_layers(self.model)},
            "threshold": self.threshold,
            "metadata": self.metadata,
        }
        buffers = {"replay_x": self.buffers.replay.x, "replay_y": self.buffers.replay.y,
                   "holdout_x": self.buffers.holdout.x, "holdout_y": self.buffers.holdout.y}
        where = str(Path(folder).resolve())
        self._snapshots[where] = save_snapshot(folder, {
            "state.json": encode_json(state),
            "model.safetensors": encode_tensors(self.model.state_dict()),
            "buffers.safetensors": encode_tensors(buffers),
            "audit.jsonl": self.audit.to_jsonl(),
        }, expected=self._snapshots.get(where), overwrite=overwrite, extra={"audit": self.audit.head},
            key_file=key_file).nonce
        return Path(folder)

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
            buffers = Buffers(LabelledSet(buffers_t["replay_x"], buffers_t["replay_y"]),
                              LabelledSet(buffers_t["holdout_x"], buffers_t["holdout_y"]))
            auth = cls(model, [r.name for r in records], buffers)
            auth.registry = {r.name: r for r in records}
            if state["device"] is not None:
                auth.device_config = DeviceConfig(**state["device"])
                # a state saved before the DAC existed was read without one
                auth.crossbar_config = CrossbarConfig(**{"dac_bits": None, **state["crossbar"]})
                hybrid.analogize(model, auth.device_config, SYNAPSES, auth.crossbar_config)
                for name, spec in state["adapters"].items():
                    hybrid.add_adapter(model, name, AdapterConfig(spec["rank"], spec["alpha"], spec["precision"]), spec["layers"])
                for layer_name, layer in hybrid.hybrid_layers(model):
                    layer.set_adapter(state["active"][layer_name])
                hybrid.set_ledger(model, auth.ledger)  # later writes (erasure) are costed like the first ones
            model.load_state_dict(tensors, strict=True)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            what = f"no entry {error}" if isinstance(error, KeyError) else error
            raise CorruptStateError(f"state in {folder} does not describe a valid model: {what}") from None
        model.to(where).eval()
        auth.buffers = Buffers(auth.buffers.replay.to(where), auth.buffers.holdout.to(where))
        auth.threshold = state["threshold"]
        auth.metadata = state.get("metadata", {})
        auth.audit = AuditLog.from_jsonl(files["audit.jsonl"])
        if snapshot.extra.get("audit") != auth.audit.head:
            raise CorruptStateError(f"the audit log in {folder} does not end at its signed head (shortened or replaced)")
        _check_registry_against_audit(auth.registry, auth.audit)
        auth._snapshots[str(Path(folder).resolve())] = snapshot.version.nonce
        return auth


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
