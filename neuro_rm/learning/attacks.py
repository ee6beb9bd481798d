"""Attacks that try to undo a revocation, each with a positive control in its caller.

``branch_off_accuracy``: someone who can edit the state switches every digital branch off and puts back a
copy of the revoked speaker's old readout row (their voiceprint, read from an earlier state folder);
``branch_off_auc``: the same with the row's bias free.
``relearn``: someone with k recordings of the revoked voice trains a fresh small branch and a fresh readout
row on them; the steps until the voice is recognised again are compared with a model that never learnt
the voice.  ``MembershipAttack``: shadow models trained with and without the speaker teach a classifier
what "this model was trained on that voice" looks like in the scores the verifier exposes; its AUC says
how well a target model's answers can be told from those of models that never heard the voice.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.metrics import roc_auc
from neuro_rm.lora import AdapterConfig


def _head(model: nn.Module) -> nn.Module:
    head = getattr(model, "head", None)
    if head is None or not hasattr(head, "grow"):
        raise TypeError(f"{type(model).__name__} has no growable readout (model.head); the attacks need one")
    return head


def _restored(model: nn.Module, row: int, voiceprint: tuple[torch.Tensor, torch.Tensor], cells: Sequence[str] = ()) -> nn.Module:
    """A copy of ``model`` with every digital branch off but ``cells`` (branches standing for cell writes not yet
    made) and ``voiceprint`` (weight, bias) back in ``row``."""
    attacked = copy.deepcopy(model)
    if hybrid.hybrid_layers(attacked):
        hybrid.set_adapter(attacked, list(cells))
    _head(attacked).write_row(row, voiceprint)
    return attacked.eval()


@torch.no_grad()
def branch_off_accuracy(model: nn.Module, row: int, voiceprint: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor,
                        cells: Sequence[str] = ()) -> float:
    """Share of ``x`` classified as ``row`` with every digital branch off (but ``cells``, branches standing for
    cell writes not yet made) and ``voiceprint`` (weight, bias) written back into that readout row. The model
    is not changed (the attack runs on a copy)."""
    return float((_restored(model, row, voiceprint, cells)(x).argmax(dim=1) == row).float().mean())


@torch.no_grad()
def branch_off_auc(model: nn.Module, row: int, voiceprint: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor,
                   others: torch.Tensor) -> float:
    """Branch-off without a threshold: the AUC of the restored row's margin over the best other row, ``x`` (the
    voice) against ``others`` (other speakers).  An editor who writes the old row back may write its bias too,
    and argmax (``branch_off_accuracy``) scores only the old bias; 1.0 means some bias brings the voice back
    and lets no other speaker in.  Part of it needs no old row (no other row claims the voice): compare it
    with the same attack on a zero row (``audit_forgetting``'s ``branch_off_auc_zero_row``)."""
    attacked = _restored(model, row, voiceprint)

    def margin(z: torch.Tensor) -> torch.Tensor:
        logits = attacked(z)
        rest = torch.cat([logits[:, :row], logits[:, row + 1 :]], dim=1)
        return logits[:, row] - rest.max(dim=1).values

    return roc_auc(margin(x), margin(others))


@dataclass(frozen=True)
class RelearnConfig:
    steps: int = 60  # attack budget; a voice not recognised within it counts as steps + 1
    lr: float = 3e-4  # small enough that models that knew the voice and models that did not differ per step
    rank: int = 8
    negatives_per_step: int = 32
    recall: float = 0.5  # recognised: this share of the voice's held-out samples goes to its new row ...
    retained: float = 0.8  # ... while the other speakers keep this accuracy


@dataclass
class RelearnResult:
    steps: int  # first step at which the voice was recognised (config.steps + 1 if never)
    voice_loss: list[float]  # cross-entropy of the voice's held-out samples after each step, up to then


def relearn(
    model: nn.Module, voice: torch.Tensor, voice_eval: torch.Tensor, others: LabelledSet,
    config: RelearnConfig = RelearnConfig(), seed: int = 0, old_row: int | None = None,
) -> RelearnResult:
    """Fine-tune a fresh rank-``config.rank`` branch and a fresh readout row on ``voice`` (k samples) plus
    minibatches of ``others``; count the steps until the voice is recognised. Runs on a copy, with the
    voice's ``old_row`` (if any) erased first, so every target relearns into a fresh row alike."""
    attacked = copy.deepcopy(model)
    head = _head(attacked)
    if old_row is not None:
        head.erase_row(old_row)
    new = head.grow(1, seed=seed)[0]
    head.train_rows([new])
    params = [head.weight, head.bias]
    if hybrid.hybrid_layers(attacked):
        params += hybrid.add_adapter(attacked, "relearn", AdapterConfig(config.rank, 2.0 * config.rank))
        hybrid.activate_adapter(attacked, "relearn")
    optimizer = torch.optim.Adam(params, lr=config.lr)
    generator = torch.Generator().manual_seed(seed)
    k = len(voice)
    weights = torch.cat([torch.full((k,), config.negatives_per_step / k), torch.ones(config.negatives_per_step)])
    losses: list[float] = []
    found = config.steps + 1
    for step in range(config.steps + 1):
        attacked.eval()
        with torch.no_grad():
            voice_logits, other_logits = attacked(voice_eval), attacked(others.x)
        losses.append(float(F.cross_entropy(voice_logits, torch.full((len(voice_eval),), new))))
        recall = float((voice_logits.argmax(dim=1) == new).float().mean())
        kept = float((other_logits.argmax(dim=1) == others.y).float().mean())
        if recall >= config.recall and kept >= config.retained:
            found = step
            break  # recognised: the attack has what it wanted
        if step == config.steps:
            break
        attacked.train()
        pick = torch.randint(len(others), (config.negatives_per_step,), generator=generator)
        x = torch.cat([voice, others.x[pick]])
        y = torch.cat([torch.full((k,), new), others.y[pick]])
        loss = (F.cross_entropy(attacked(x), y, reduction="none") * weights).sum() / weights.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    head.train_rows(None)
    return RelearnResult(found, losses)


class MembershipAttack:
    """Speaker-level membership inference from the verifier's scores, trained on shadow models.

    Features of one probe utterance on one model: for every retained speaker's row, its score placed on
    that row's own scale (0 = the mean score of the other retained speakers' samples, 1 = the mean score of
    its own speaker's samples), sorted. A model trained with the probed voice learnt it as a negative for
    every other row, so its scores sit low on that scale; a stranger's voice lands nearer its closest
    speaker. Logistic regression on shadow models (with vs without the voice) turns features into a score.
    """

    def __init__(self, probe: torch.Tensor, cohort: LabelledSet, rows: list[int]) -> None:
        if len(probe) == 0 or len(rows) < 2:
            raise ValueError("the membership attack needs probe samples and at least two retained rows")
        missing = [r for r in rows if not (cohort.y == r).any()]
        if missing:
            raise ValueError(f"the cohort has no samples of rows {missing}")
        self.probe, self.cohort, self.rows = probe, cohort, list(rows)
        self._weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @torch.no_grad()
    def features(self, model: nn.Module) -> torch.Tensor:
        model.eval()
        probe, cohort = model(self.probe)[:, self.rows], model(self.cohort.x)[:, self.rows]
        scaled = []
        for j, row in enumerate(self.rows):
            own = self.cohort.y == row
            impostor, genuine = cohort[~own, j].mean(), cohort[own, j].mean()
            scaled.append((probe[:, j] - impostor) / (genuine - impostor).clamp_min(1e-6))
        return torch.stack(scaled, dim=1).sort(dim=1, descending=True).values

    def fit(self, members: list[nn.Module], non_members: list[nn.Module], l2: float = 1e-2) -> MembershipAttack:
        if not members or not non_members:
            raise ValueError("the membership attack needs shadow models with and without the voice")
        inside = torch.cat([self.features(m) for m in members])
        outside = torch.cat([self.features(m) for m in non_members])
        x = torch.cat([inside, outside])
        y = torch.cat([torch.ones(len(inside)), torch.zeros(len(outside))])
        mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-6)
        w = torch.zeros(x.shape[1], requires_grad=True)
        b = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.LBFGS([w, b], max_iter=200)

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = F.binary_cross_entropy_with_logits((x - mean) / std @ w + b, y) + l2 * w.pow(2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
        self._weights = (mean, std, w.detach(), b.detach())
        return self

    def scores(self, model: nn.Module) -> torch.Tensor:
        """Membership score of every probe utterance on ``model`` (higher: trained on that voice)."""
        if self._weights is None:
            raise ValueError("fit the membership attack on shadow models first")
        mean, std, w, b = self._weights
        return (self.features(model) - mean) / std @ w + b

    def auc(self, model: nn.Module, references: list[nn.Module]) -> float:
        """How well ``model``'s answers are told from those of ``references`` (models that never heard the
        voice): 0.5 = not at all; near 1 = the model gives itself away as trained on the voice."""
        reference = torch.cat([self.scores(m) for m in references])
        return roc_auc(self.scores(model), reference)

    def null_spread(self, references: list[nn.Module]) -> tuple[float, float]:
        """(mean, sd) of the AUC of each reference against the others: what a model that never heard the
        voice scores by chance of its seed, the yardstick for any target's AUC.  The sd is what informs: every
        reference scores the same probes, so were its scores the same in every comparison each pair's two AUCs
        would sum to 1 and the mean be 0.5 exactly (digital models); read through the chip, each call draws fresh
        read noise and the mean scatters a little around 0.5."""
        if len(references) < 3:
            return math.nan, math.nan
        values = torch.tensor([self.auc(m, references[:i] + references[i + 1 :]) for i, m in enumerate(references)])
        return float(values.mean()), float(values.std())


@dataclass(frozen=True)
class AuditConfig:
    """How hard the forgetting audit tries; the defaults are those of the README's figures."""

    shadows: int = 3  # shadow models with the voice, and as many without, to train the membership attack
    references: int = 3  # further models without the voice, the population targets are compared with
    relearn: RelearnConfig = RelearnConfig()
    relearn_k: tuple[int, ...] = (1, 5, 10)
    relearn_seeds: int = 3

    def __post_init__(self) -> None:
        if self.shadows < 1 or self.references < 1 or self.relearn_seeds < 1 or not self.relearn_k:
            raise ValueError(f"AuditConfig needs shadows, references, relearn seeds and k values >= 1, got {self}")


@dataclass
class VoiceData:
    """What the attacker holds of the revoked voice and of the others (never the training samples)."""

    row: int  # the voice's readout row
    voiceprint: tuple[torch.Tensor, torch.Tensor] | None  # a copy of that row from before revocation, if held
    recordings: torch.Tensor  # the attacker's recordings of the voice (relearning draws k of them)
    probe: torch.Tensor  # held-out samples of the voice: branch-off, relearning success, membership probes
    others: LabelledSet  # other speakers' samples: relearning negatives and the membership cohort


def audit_forgetting(
    targets: dict[str, nn.Module],
    voice: VoiceData,
    shadows_with: list[nn.Module],
    shadows_without: list[nn.Module],
    references: list[nn.Module],
    config: AuditConfig = AuditConfig(),
    seed: int = 0,
) -> dict[str, float]:
    """Run every attack on every target; flat keys ``<target>.<measure>``; ``seed`` draws the relearning
    attack's recordings and its new row (``config.relearn_seeds`` draws from ``seed * relearn_seeds`` on).

    Include the original model (the attacks' positive control) and a model retrained without the voice
    (the gold standard) among ``targets``; ``membership.null_*`` is the spread of the membership AUC among
    models that never heard the voice.
    """
    rows = sorted(int(c) for c in torch.unique(voice.others.y))
    attack = MembershipAttack(voice.probe, voice.others, rows).fit(shadows_with, shadows_without)
    report: dict[str, float] = {}
    report["membership.null_mean"], report["membership.null_sd"] = attack.null_spread(references)
    for name, model in targets.items():
        if voice.voiceprint is not None:  # without an old copy of the row there is nothing to put back
            report[f"{name}.branch_off_accuracy"] = branch_off_accuracy(model, voice.row, voice.voiceprint, voice.probe)
            report[f"{name}.branch_off_auc"] = branch_off_auc(model, voice.row, voice.voiceprint, voice.probe, voice.others.x)
            # its control: a zero row scores "no other row claims this voice", which needs no old copy (review32)
            zero = (torch.zeros_like(voice.voiceprint[0]), torch.zeros_like(voice.voiceprint[1]))
            report[f"{name}.branch_off_auc_zero_row"] = branch_off_auc(model, voice.row, zero, voice.probe, voice.others.x)
        report[f"{name}.membership_auc"] = attack.auc(model, references)
        for k in config.relearn_k:
            if k > len(voice.recordings):
                raise ValueError(f"relearning with k={k} needs {k} recordings of the voice, have {len(voice.recordings)}")
            steps = []
            for draw in range(seed * config.relearn_seeds, (seed + 1) * config.relearn_seeds):
                pick = torch.randperm(len(voice.recordings), generator=torch.Generator().manual_seed(draw))[:k]
                result = relearn(model, voice.recordings[pick], voice.probe, voice.others, config.relearn, draw, voice.row)
                steps.append(float(result.steps))
            report[f"{name}.relearn_steps.{k}"] = sum(steps) / len(steps)
            report[f"{name}.relearn_steps_sd.{k}"] = float(torch.tensor(steps).std()) if len(steps) > 1 else 0.0
    return report
