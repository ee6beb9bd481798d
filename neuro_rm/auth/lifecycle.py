"""The speaker lifecycle on one hybrid RSNN: pretrain, deploy (once), revoke, enroll, consolidate, restore.

The backbone is never rewritten after deployment: every later change is a named LoRA branch (or, when a
revocation erases, a write of only the cells that must move), costed in the ledger and audited.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm.auth.persistence import Persistence
from neuro_rm.auth.registry import (
    ENROLLED,
    REVOKE_MODES,
    REVOKED,
    Buffers,
    OperationReport,
    Registry,
    SpeakerRecord,
)
from neuro_rm.auth.scoring import Scoring
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.device import DeviceConfig
from neuro_rm.learning.consolidation import STORE, ConsolidationPolicy, apply_plan
from neuro_rm.learning.continual import ENROLL, enroll_class, fit_rows, readout_inputs
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.erase import (
    ERASE_IMPOSTOR_SD,
    EraseConfig,
    EraseResult,
    erase_classes,
    relearn_readout,
)
from neuro_rm.learning.loop import TrainConfig
from neuro_rm.learning.metrics import predict_logits
from neuro_rm.learning.placement import resolve_device
from neuro_rm.learning.train import PRETRAIN, FitResult, fit_classifier, selection_score
from neuro_rm.learning.unlearn import MASK_IMPOSTOR_SD, UnlearnConfig, unlearn
from neuro_rm.lora import AdapterConfig
from neuro_rm.models.rsnn import ERASE_SYNAPSES, SYNAPSES, RSNNConfig, SpeakerRSNN


class SpeakerAuthenticator(Registry, Scoring, Persistence):
    """A registry of speakers (``auth.registry``) and their lifecycle on one hybrid RSNN: pretrain, deploy,
    revoke, enroll, consolidate, restore; scoring in ``auth.scoring``, save and load in ``auth.persistence``."""

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
        auth.audit.append("pretrain", None, speakers=list(speakers), val_accuracy=result.best_score, steps=result.steps,
                          lr=result.lr)
        return auth, result

    def deploy(self, device: DeviceConfig | None = None, crossbar: CrossbarConfig | None = None, seed: int = 0) -> dict:
        """Write the backbone's synapses into crossbars (write-and-verify), once."""
        if self.deployed:
            raise ValueError("the backbone is deployed already; it is never rewritten (use merge to consolidate)")
        device, crossbar = device or DeviceConfig(), crossbar or CrossbarConfig()
        before = self.ledger.joules("write")
        digital = {name: self.model.get_submodule(name) for name in SYNAPSES}
        try:
            hybrid.analogize(self.model, device, SYNAPSES, crossbar, self.ledger, seed=seed)
            self.model.eval()
            hybrid.calibrate(self.model, self.buffers.replay.x)  # the ADC full scale, once, on training frames
        except BaseException:  # interrupted: the pulses on record, the digital backbone as it was, still to deploy
            self._log_interrupted_writes(None, torch.zeros(2, dtype=torch.int64),
                                         note="deploy interrupted: the backbone stays digital; deploy again")
            for name, layer in digital.items():
                parent, _, child = name.rpartition(".")
                setattr(self.model.get_submodule(parent), child, layer)
            raise
        self.device_config, self.crossbar_config = device, crossbar
        report = {**hybrid.deployment_cost(self.model, self.ledger, before), "holdout_accuracy": self.holdout_accuracy()}
        self.audit.append("deploy", None, **report)
        return report

    def _new_adapter(self, name: str, config: AdapterConfig) -> list[nn.Parameter]:
        params = hybrid.add_adapter(self.model, name, config)
        hybrid.activate_adapter(self.model, name)
        return params

    def _finish(self, action: str, speaker: str | None, adapter: str | None, kind: str, result: FitResult, trainable: int,
                row_bits: int = 0, **extra: object) -> OperationReport:
        """Commit the branch (its bits at its precision) beside ``row_bits`` of readout rows already posted."""
        bits = (hybrid.commit_adapter(self.model, adapter, kind) if adapter is not None else 0) + row_bits
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
        voice: cheap and reversible by design, since the cells still hold it (until a merging policy writes a
        folded mask into the cells: ``consolidate``).  An erasure of an enrolled speaker is refused while a
        suspension is in force: re-learning the rows without the suspended voice among their negatives would
        let it back in, as a readout refit would (review61); erasing a suspended speaker turns the suspensions
        into erasures (``erase_suspended``).  ``forget_x`` are the speaker's samples to unlearn; ``retain``
        defaults to the replay buffer.
        """
        if mode not in REVOKE_MODES:
            raise ValueError(f"revoke mode must be one of {REVOKE_MODES}, got {mode!r}")
        self._require_deployed("revoke")
        if mode == "erase" and name in self.suspended():
            return self.erase_suspended({name: forget_x}, retain, config, adapter, erase)
        rec = self.require_enrolled(name)
        if len(self.enrolled) < 3:  # checked before any work: the calibration after it would refuse
            left = len(self.enrolled) - 1
            raise ValueError(f"revoking {name!r} would leave {left} enrolled speaker{'' if left == 1 else 's'}, and the acceptance "
                             "threshold is set on impostor trials between enrolled speakers: enroll another speaker first")
        suspended = self.suspended() if mode == "erase" else []
        if suspended:
            raise ValueError(f"an erasure is refused while a suspension is in force ({', '.join(suspended)}): it re-learns "
                             "the other speakers' readout rows from fresh without the suspended voices among their "
                             "negatives, and the masks trained against the present rows would no longer keep those voices "
                             f"out; revoke {name!r} with mode='suspend', or first erase the suspended voices "
                             "(erase_suspended, with their samples)")
        forget_x = self.check_frames(forget_x, f"samples of {name!r}")
        self._record_policy()  # the policy in force as the operation runs (a loaded custom one that does not run, too)
        retain = retain or self.buffers.replay
        if mode == "erase":
            own = [rec.adapter] if rec.adapter else []
            return self._erase([rec], self._labelled(forget_x, rec.label), None, retain, config, adapter, erase, own)
        retain = retain.without_classes([rec.label])
        train = LabelledSet.concat(self._labelled(forget_x, rec.label), retain.to(forget_x.device))
        val = self.buffers.holdout.of_classes(self.active_labels)
        keep = [label for label in self.active_labels if label != rec.label]
        branch, mute = _suspension(rec.label), [rec.adapter] if rec.adapter else []
        with self._undone_on_failure(branch):  # an interrupted suspension leaves the speaker as they were
            self._mute(mute)  # the mask trains without the speaker's own branch
            params = self._new_adapter(branch, adapter)
            config = config.at_depth(MASK_IMPOSTOR_SD)
            result = unlearn(self.model, params, [rec.label], train, val, keep, config, f"revoke {name}")
            self._forget_record(rec)
            row_bits = self._post_rows(1, f"revoke {name}: readout row erased")
            report = self._finish("revoke", name, branch, "depress", result, sum(p.numel() for p in params),
                                  row_bits, method=config.method, impostor_sd=config.impostor_sd, mode=mode)
        self._drop(mute, [rec])  # once committed: a deleted branch cannot be put back
        if self.consolidation is not None:  # a suspension adds a branch for good, as an enrolment does
            report.extra["consolidation"] = self.consolidate(self.consolidation)
        return report

    def erase_suspended(
        self,
        samples: Mapping[str, torch.Tensor],
        retain: LabelledSet | None = None,
        config: UnlearnConfig = UnlearnConfig(),
        adapter: AdapterConfig = AdapterConfig(),
        erase: EraseConfig | None = None,
    ) -> OperationReport:
        """Turn every suspension in force into an erasure, with each suspended voice's samples re-supplied
        (``samples``: name → frames; the suspension dropped the buffered ones).  All of them at once: an erasure
        re-learns the enrolled speakers' rows from fresh, and rows re-learnt without a voice still suspended
        among their negatives would let it back in.  The suspension erased each voice's row, which a normal
        erasure turns its forget branch away from; here the branch moves the voice, as the cells alone give it,
        to the retained speakers' mean instead (``erase_classes(guard_cells=True)``), and a stand-in row fitted
        on the cells alone (what someone holding them could fit) serves the erasure's self-check.  A quarter of
        each voice's samples is held out for that check.  Live masks are off while it runs and deleted once it
        is committed; a mask folded into ``store`` (or merged into the cells) stays, masking the voice further.
        Afterwards refits and erasures are allowed again."""
        self._require_deployed("erase_suspended")
        suspended = self.suspended()
        missing, extra = sorted(set(suspended) - set(samples)), sorted(set(samples) - set(suspended))
        if not suspended or missing or extra:
            raise ValueError(f"erase_suspended erases every suspended voice together, with their samples: suspended "
                             f"{suspended or 'none'}; samples missing for {missing or 'none'}, given for speakers not "
                             f"suspended {extra or 'none'}")
        records = [self.registry[name] for name in suspended]
        frames = {r.name: self.check_frames(samples[r.name], f"samples of {r.name!r}") for r in records}
        few = [f"{name} ({len(x)})" for name, x in frames.items() if len(x) < 8]
        if few:
            raise ValueError(f"erase_suspended needs at least 8 samples of each voice (a quarter, at least 2, is held out for "
                             f"the erasure's check), got {', '.join(few)}")
        self._record_policy()
        voices = [self._labelled(frames[r.name], r.label) for r in records]
        held = [torch.arange(len(v)).to(v.y.device) % 4 == 3 for v in voices]  # a quarter held out for the self-check
        forgotten = LabelledSet.concat(*(v.where(~h) for v, h in zip(voices, held, strict=True)))
        checked = LabelledSet.concat(*(v.where(h) for v, h in zip(voices, held, strict=True)))
        live = set(hybrid.adapter_names(self.model))
        masks = [_suspension(r.label) for r in records if _suspension(r.label) in live]
        return self._erase(records, forgotten, checked, retain or self.buffers.replay, config, adapter, erase, masks)

    def _erase(self, records: list[SpeakerRecord], forgotten: LabelledSet, checked: LabelledSet | None, retain: LabelledSet,
               config: UnlearnConfig, adapter: AdapterConfig, erase: EraseConfig | None, branches: list[str]) -> OperationReport:
        """Erase ``records``' voices (``erase_classes``) from ``forgotten`` and the retained samples; the held-out
        ``checked`` samples (besides the holdout buffer's) select and check it.  The voices' own ``branches`` are
        off while it runs and deleted once it is committed.  A revoked speaker's row was erased: a stand-in is
        fitted first, the erasure guards the cells' view, and it writes no cell until its check passes (a refusal
        then leaves the suspensions as they were)."""
        labels = [r.label for r in records]
        keep = [label for label in self.active_labels if label not in labels]
        retain = retain.without_classes(labels).to(forgotten.x.device)
        train = LabelledSet.concat(forgotten, retain)
        val = self.buffers.holdout.of_classes(self.active_labels)
        val = LabelledSet.concat(val, checked) if checked is not None else val
        # the target's depth is erasure's own unless the config names one; the unlearning's seed
        # shuffles the readout rows' re-learning too: one seed decides the whole revocation
        erase = erase or EraseConfig(unlearn=config, rank=adapter.rank, alpha=adapter.alpha, layers=ERASE_SYNAPSES,
                                     readout=replace(EraseConfig.readout, seed=config.train.seed))
        names, what = [r.name for r in records], f"erase {', '.join(r.name for r in records)}"
        # interrupted, the speakers stay as they were with their branches; cells already pulsed stay as written
        with self._undone_on_failure(f"erase_{labels[0]}"):
            self._mute(branches)
            joules_before = self.ledger.joules("write")
            stand_ins = [r for r in records if r.status == REVOKED]
            if stand_ins:
                self._stand_in_rows([r.label for r in stand_ins], train, val, erase.readout, what)
            erased = erase_classes(self.model, labels, train, val, keep, self.buffers.holdout, erase,
                                   f"erase_{labels[0]}", what, guard_cells=bool(stand_ins), defer_writes=bool(stand_ins))
            steps = sum(f.steps for f in erased.fits)  # work done, charged whether it is committed or not
            self.ledger.post_training(erased.branch_params, steps, note=f"{what}: forget branches")
            self.ledger.post_training(erased.row_params, sum(r.steps for r in erased.readouts), note=f"{what}: readout rows")
            # each check erases the voices' rows and re-learns the retained rows; rounds after the first put the voiceprints back
            rounds, checks = len(erased.fits), len(erased.readouts)
            head_bits = self._post_rows(checks * len(keep) + len(labels) * (checks + rounds - 1) + len(stand_ins), f"{what}: readout rows")
            if stand_ins and erased.residual > 1 / (len(keep) + len(labels)):  # the suspensions stay rather than a failed erasure
                raise ValueError(_refusal(what, erased))
            for rec in records:
                self._forget_record(rec)
            report = OperationReport("revoke", names[0], erased.fits[-1], erased.trainable_params, self.holdout_accuracy(), {
                "method": erase.unlearn.method, "impostor_sd": erase.unlearn.at_depth(ERASE_IMPOSTOR_SD).impostor_sd,
                "mode": "erase", "write_pulses": erased.write_pulses,
                "cells_written": erased.cells_written, "rounds": len(erased.fits), "residual": erased.residual,
                "write_bits": head_bits, "write_energy_j": self.ledger.joules("write") - joules_before,
                **({"erased_together": names} if len(names) > 1 else {}),
                **({"suspensions_erased": [r.name for r in stand_ins]} if stand_ins else {})})
            self.audit.append("revoke", names[0], trainable_params=erased.trainable_params, steps=steps,
                              holdout_accuracy=report.holdout_accuracy, **report.extra)
            for name in names[1:]:  # each voice's last revocation entry says it is erased; the costs are on the first
                self.audit.append("revoke", name, mode="erase", erased_with=names[0])
        self._drop(branches, records)
        for label in labels:  # once committed: the voices are erased, nothing of them is kept
            self._stand_ins.pop(label, None)
        return report

    def _stand_in_rows(self, labels: list[int], train: LabelledSet, val: LabelledSet, config: TrainConfig, what: str) -> None:
        """Put stand-in rows for the suspended voices ``labels`` into the readout, fitted on the cells alone (what
        someone holding them could fit; a mask folded into ``store`` stays on, hiding the voice the cells hold).
        A voice whose earlier attempt wrote cells and was not committed gets that attempt's row back instead (kept
        in memory): the cells may have moved the voice since, and a row fitted on them finds it wherever it now
        is, as a row fitted on any voice's samples finds that voice, so a refitted row could refuse any retry."""
        for label in labels:
            if label in self._stand_ins:
                self.model.head.write_row(label, self._stand_ins[label])
        fresh = [label for label in labels if label not in self._stand_ins]
        if fresh:
            with hybrid.disable_adapters(self.model):
                fit = relearn_readout(self.model, fresh, train, val, config, config.seed)
            self.ledger.post_training(len(fresh) * (self.model.head.in_features + 1), fit.steps, note=f"{what}: stand-in voiceprints")
            self._stand_ins.update({label: self.model.head.copy_row(label) for label in fresh})

    def _mute(self, branches: list[str]) -> None:
        """Switch ``branches`` off everywhere, kept until the operation is committed."""
        for _, layer in hybrid.hybrid_layers(self.model):
            layer.set_adapter([n for n in layer.active if n not in branches])

    def _drop(self, branches: list[str], records: list[SpeakerRecord]) -> None:
        """Branches trained on a revoked voice (its enrolment branch, a mask of it) are erased outright, once the
        revocation is committed (a folded one is part of ``store``)."""
        for branch in branches:
            hybrid.delete_adapter(self.model, branch)
        for rec in records:
            rec.adapter = None

    @contextmanager
    def _undone_on_failure(self, branch: str) -> Iterator[None]:
        """Within the block ``branch`` (and any other branch made there) is provisional and the operation
        uncommitted until its audit entry: an exception (an interrupt included) deletes those branches and puts back every layer's active set, the
        readout's rows (an enrolment grows one), the registry, the buffers and the audit log, and, where no cell
        was pulsed, the arrays as they were (their ADC calibration and records included) and no stand-in row
        fitted there (``_stand_in_rows``: with the cells unmoved a retry fits the same), so a failed
        operation leaves nothing the audit log does not know.  What cannot be taken back stays: cells an
        erasure has pulsed, and the energy the ledger has charged for work done; pulsed cells get an audit entry
        of their own (``interrupted``: the pulses and cells written), since the backbone then holds a partial
        erasure the readout rows put back were not trained for (run ``restore`` and ``calibrate``)."""
        saved = [(layer, list(layer.active)) for _, layer in hybrid.hybrid_layers(self.model)]
        existing = set(hybrid.adapter_names(self.model))
        written = hybrid.write_history(self.model)
        arrays = [(layer.crossbar, copy.deepcopy(layer.crossbar.state_dict())) for _, layer in hybrid.hybrid_layers(self.model)]
        rows = self.model.head.snapshot()
        registry, buffers, entries = copy.deepcopy(self.registry), copy.copy(self.buffers), len(self.audit.entries)
        stand_ins = set(self._stand_ins)
        try:
            yield
        except BaseException:
            for made in [n for n in hybrid.adapter_names(self.model) if n not in existing]:  # an erasure's round branches too
                hybrid.delete_adapter(self.model, made)
            for layer, active in saved:
                layer.set_adapter(active)
            self.model.head.revert(rows)
            for name in [n for n in self.registry if n not in registry]:
                del self.registry[name]
            for name, record in registry.items():  # in place: a caller may hold the record or the buffers
                if name in self.registry:
                    vars(self.registry[name]).update(vars(record))
                else:
                    self.registry[name] = record
            vars(self.buffers).update(vars(buffers))
            del self.audit.entries[entries:]
            if torch.equal(hybrid.write_history(self.model), written):  # no cell pulsed: the arrays' calibration and records too
                for crossbar, state in arrays:
                    crossbar.load_state_dict(state)
                for label in set(self._stand_ins) - stand_ins:
                    del self._stand_ins[label]
            self._log_interrupted_writes(branch, written)
            raise

    def _log_interrupted_writes(self, branch: str | None, written: torch.Tensor,
                                note: str = "cells written before the interrupt stay as written; restore and calibrate",
                                **done: object) -> None:
        """An ``interrupted`` audit entry for the cells pulsed since the write history read ``written`` and
        whatever else was ``done`` (folded branches and whose they were), if anything was."""
        pulses, cells = (int(v) for v in hybrid.write_history(self.model) - written)
        if pulses or any(done.values()):
            self.audit.append("interrupted", None, branch=branch, write_pulses=pulses, cells_written=cells, **done, note=note)

    def _post_rows(self, rows: int, note: str) -> int:
        """Charge ``rows`` readout rows (weights and bias) written to SRAM; returns the bits."""
        return self.ledger.post_row_write(rows, self.model.head.in_features + 1, note=note)

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
        warm_row: bool = False,
    ) -> OperationReport:
        """Learn a new speaker: a new LoRA branch and a new, trained readout row, with replay.  ``warm_row``: fit
        the row on the frozen features before the branch trains (``FAST_ENROLL`` runs with it)."""
        self._require_deployed("enroll")
        self._record_policy()  # the policy in force as the operation runs (a loaded custom one that does not run, too)
        self._check_name(name)
        if name in self.registry:
            raise ValueError(f"speaker {name!r} exists already ({self.registry[name].status}); pick a new name")
        train_x = self.check_frames(train_x, f"training samples of {name!r}")
        val_x = self.check_frames(val_x, f"validation samples of {name!r}")
        label = self.model.head.n_classes
        branch = f"enroll_{label}"
        new, new_val = self._labelled(train_x, label), self._labelled(val_x, label)
        val = LabelledSet.concat(self.buffers.holdout.of_classes(self.active_labels), new_val)
        with self._undone_on_failure(branch):  # an interrupted enrolment leaves the speakers as they were
            done = enroll_class(self.model, branch, adapter, new, self.buffers.replay, val, config, row_seed=label + config.seed,
                                description=f"enroll {name}", warm_row=warm_row)
            if not any(bool(layer.adapters[branch].delta_weight().any())
                       for _, layer in hybrid.hybrid_layers(self.model) if branch in layer.adapters):
                hybrid.delete_adapter(self.model, branch)  # validation kept the start: the voice is its row alone
                branch = None
            self.registry[name] = SpeakerRecord(name, label, ENROLLED, branch)
            self.buffers.replay = LabelledSet.concat(self.buffers.replay, new.subsample(replay_per_speaker))
            self.buffers.holdout = LabelledSet.concat(self.buffers.holdout, new_val.subsample(holdout_per_speaker))
            self.buffers.bound()
            row_bits = self.ledger.post_row_write(1, done.row_width, note=f"enroll {name}: readout row")
            report = self._finish("enroll", name, branch, "potentiate", done.fit, done.trainable, row_bits, warm_row=warm_row)
        if self.consolidation is not None:
            report.extra["consolidation"] = self.consolidate(self.consolidation)
        return report

    def consolidate(self, policy: ConsolidationPolicy) -> dict:
        """Run a consolidation policy on the speakers' live branches, oldest first: the enrolled speakers'
        and the suspended speakers' masks; after each enrolment and suspension, or whenever the device is
        idle.  Folded speakers keep their voice in ``store`` (or, once merged, in the cells); revoking them
        then works as for a backbone speaker.  A folded suspension masks its voice from ``store``: still
        digital (switching ``store`` off brings the voice back, as switching its own branch off did), but no
        longer a branch of its own that could be deleted alone; once merged, it is in the cells.  Like every
        operation it leaves the acceptance threshold to ``calibrate()``, which a merge (a write) calls for."""
        self._record_policy(policy)  # the policy about to run, before anything it allows is done
        speakers = {r.adapter: r.name for r in self.registry.values() if r.status == ENROLLED and r.adapter}
        masks = {_suspension(r.label): r.name for r in self.registry.values() if r.status == REVOKED}
        made: dict[str, int] = {}  # each branch's age: the audit entry that committed it (the log survives a save)
        for entry in self.audit.entries:
            details = entry.get("details")
            if isinstance(details, dict) and isinstance(details.get("adapter"), str):
                made.setdefault(details["adapter"], entry["index"])
        live = [name for name in hybrid.adapter_names(self.model) if name in speakers or name in masks]
        branches = sorted(live, key=lambda name: made.get(name, -1))
        plan = policy(self.model, branches, self.ledger)
        before, written = self.ledger.joules("write"), hybrid.write_history(self.model)
        try:
            try:
                done = apply_plan(self.model, plan)
            finally:  # even if the merge after the fold is interrupted: a folded branch is gone, its record follows
                live = set(hybrid.adapter_names(self.model))
                for record in self.registry.values():
                    if record.adapter in plan.fold and record.adapter not in live:
                        record.adapter = None
            done["write_energy_j"] = self.ledger.joules("write") - before  # the fold's and a merge's, beside the enrolment's own
            done["suspensions_folded"] = [masks[name] for name in plan.fold if name in masks]  # whose masks now live in store
            hybrid.calibrate_cleared(self.model, self.buffers.replay.x)  # a merge wrote cells: their ADCs, on training frames
        except BaseException:  # a fold done or cells a merge pulsed before an interrupt: on the record, by name
            live = set(hybrid.adapter_names(self.model))
            gone = [name for name in plan.fold if name not in live]
            self._log_interrupted_writes(STORE, written, folded=gone, speakers=[speakers.get(n) or masks[n] for n in gone])
            raise
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

    def refit_readout(self) -> OperationReport:
        """Refit every enrolled speaker's readout row together on the replay buffer's features (``fit_rows``):
        digital rows only, no cell and no branch changes.  Each enrolment fits its own row against rows that
        never met its voice, so as speakers accumulate the older rows fire for newer voices; the device runs
        this when idle.  Kept only if the holdout buffer's score (accuracy, ties to the lower loss) rises, the
        old rows and the new scored on the same read of the holdout's features (the network is frozen): a
        refit that changes nothing is not written.  Like every operation it leaves the acceptance threshold to
        ``calibrate()``.  Refused while a suspension is in force: its mask was trained against rows that had the
        suspended voice among their negatives, and rows refitted without it let the voice back in (review60)."""
        self._require_deployed("refit_readout")
        suspended = self.suspended()
        if suspended:
            raise ValueError(f"refit_readout is refused while a suspension is in force ({', '.join(suspended)}): the "
                             "rows would be refitted without the suspended voices among their negatives, and the masks "
                             "trained against the present rows would no longer keep those voices out")
        labels = self.active_labels
        data = self.buffers.replay.of_classes(labels)
        holdout = self.buffers.holdout.of_classes(labels)
        voices = torch.unique(data.y).numel()
        if voices < 2 or len(holdout) == 0:
            raise ValueError(f"refit_readout needs replay samples of at least two enrolled speakers (the buffer holds "
                             f"{voices}) and holdout samples to check the refit on (it holds {len(holdout)})")
        head = self.model.head
        with readout_inputs(head) as seen:  # the holdout's features, read once: both sets of rows are scored on them
            predict_logits(self.model, holdout.x)
        features = torch.cat(seen)

        def score() -> float:
            with torch.no_grad():
                return selection_score(head(features), holdout.y.to(features.device))

        rows, before = head.snapshot(), score()
        with self._undone_on_failure("refit_readout"):  # an interrupted refit puts the rows back
            evaluations = fit_rows(self.model, labels, data, data.class_weights(head.n_classes), "refit readout")
            after = score()
            kept = after > before  # a refit that changes nothing the holdout can see is not written
            if not kept:
                head.revert(rows)
            row_bits = self._post_rows(len(labels), "refit readout: readout rows") if kept else 0
            trainable = len(labels) * (head.in_features + 1)
            result = FitResult(evaluations, 0 if kept else -1, max(before, after), trainable)
            return self._finish("refit_readout", None, None, "potentiate", result, trainable, row_bits, rows=len(labels),
                                kept=kept, holdout_score_before=before, holdout_score_after=after)

    def suspended(self) -> list[str]:
        """Revoked speakers whose voice a suspension masks (its branch live, folded or merged): by the audit entry
        of their last revocation (one without counts as suspended), by their mask branch live, or by a
        consolidation's record of folding it that no erasure of that suspension followed (an entry that names it
        among ``suspensions_erased`` and pulsed cells): each is checked, so one record gone astray is not enough."""
        modes, live = self._revocation_modes(), set(hybrid.adapter_names(self.model))
        erased_at, folded_at = {}, {}  # the last erasure of each speaker, the last fold of each mask (an interrupted one too)
        for entry in self.audit.entries:
            details = entry["details"]
            if entry["action"] == "revoke" and details.get("mode") == "erase" and details.get("write_pulses", 0) > 0:
                erased_at.update(dict.fromkeys(details.get("suspensions_erased", []), entry["index"]))
            elif entry["action"] in ("consolidate", "interrupted"):
                folded_at.update(dict.fromkeys(details.get("folded", []), entry["index"]))
        return [r.name for r in self.registry.values() if r.status == REVOKED and (
            modes[r.name] != "erase" or _suspension(r.label) in live
            or folded_at.get(_suspension(r.label), -1) > erased_at.get(r.name, -1))]


def _refusal(what: str, erased: EraseResult) -> str:
    """Why an erasure of suspensions is not committed, and what its cells are now."""
    cells = ("no cell was written, so the suspensions hold as before" if not erased.write_pulses else
             f"the {erased.cells_written} cells it wrote (its check passed before they were written and failed after: the "
             "reads are noisy and the ADCs recalibrated) stay, on the record as 'interrupted', and the masks were trained "
             "against the cells before: run restore and calibrate; a retry in this process, before any save, is judged by "
             "the same stand-in rows")
    where = "on the cells as written" if erased.write_pulses else "on its rounds, unwritten"
    return (f"{what}: after {len(erased.fits)} rounds {erased.residual:.0%} of the voices' samples still reach their stand-in "
            f"rows with every branch off ({where}); not committed: the masks and rows are as they were; {cells}; supply "
            "more of the voices' samples or raise EraseConfig.max_rounds")


def _suspension(label: int) -> str:
    """The branch that masks suspended speaker ``label``'s voice."""
    return f"revoke_{label}"
