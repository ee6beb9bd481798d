"""Choose the unlearning method and the verification score by validation results (the test split is not read).

    python scripts/compare_unlearning.py [--data FILE] [--revoke LABEL] [--seeds N] [--methods M ...] [--impostor-sd SD ...]

Pretrains and deploys the speaker RSNN on all speakers but the last, then, on copies:
- revokes one speaker with each unlearning method (``--methods``; the impostor target at each ``--impostor-sd``)
  in the `suspend` mode (the masking branch, whose target this
  chooses; erasure's target is chosen by scripts/probe_erase_membership.py), and, as the gold standard, retrains from scratch
  without that speaker (the voice was never learnt);
- enrolls the last speaker afterwards.
The validation split is halved per speaker: one half is the device's (pretraining's selection, the holdout
buffer that selects each revocation and sets the threshold), the other scores the candidates, so no
candidate is scored on samples that chose it.  It prints, on the scoring half: forgotten and retained
accuracy (balanced: the mean over retained speakers), a loss-threshold membership AUC (the revoked voice's
training samples against its scoring samples: per-sample memorisation, a weak attack; read it against the
retrained model's row, a model that never heard the voice, not against 0.5) and, for two verification scores — the claimed speaker's logit
and its log-softmax over the enrolled speakers — the share of impostor trials accepted at the holdout's
equal-error threshold, the share of the revoked voice's recordings accepted as *anyone* (its best claim
over the enrolled speakers: per claim, a voice that passes as one speaker would be diluted K−1 times), and
how far its mean claim score sits above an impostor trial's, in the trials' sd (with logits, 0: it is answered as
a typical impostor is), beside impostor trials accepted per claim and as anyone else (the nearer comparison: an enrolled speaker has K−1
others to pass as, the revoked voice K).
The deployed row is the positive control: the model before revocation, whose forget accuracy shows the voice
present and whose retained accuracy is what a revocation is measured against; its 'outsider' is a stranger
(the last speaker, before enrolment), how each score treats a voice never enrolled.  Membership as a privacy
claim is judged by the demo's shadow-model attack and scripts/probe_erase_membership.py, not by this column.
Each figure is a mean and standard deviation over independent seeds: one run's figures move by several
points with the random state, so a choice must hold across seeds.
"""

from __future__ import annotations

import argparse
import copy
import statistics
from dataclasses import replace

import torch

from neuro_rm.auth import REVOKED, SpeakerAuthenticator
from neuro_rm.data import load_bundled_speakers, load_speakers
from neuro_rm.learning import (
    LabelledSet,
    accuracy,
    equal_error_rate,
    mia_auc,
    per_class_accuracy,
    predict_logits,
)
from neuro_rm.learning.erase import ERASE_IMPOSTOR_SD
from neuro_rm.learning.unlearn import MASK_IMPOSTOR_SD, METHODS
from neuro_rm.tasks.speaker import DemoConfig

SCORES = ("logit", "log-softmax")


def claim_scores(auth: SpeakerAuthenticator, x: torch.Tensor, kind: str) -> torch.Tensor:
    """(samples × enrolled speakers): every sample claims every enrolled speaker."""
    logits = predict_logits(auth.model, x)[:, auth.active_labels]
    return logits if kind == "logit" else torch.log_softmax(logits, dim=1)


def halves(data: LabelledSet, seed: int) -> tuple[LabelledSet, LabelledSet]:
    """Each speaker's samples shuffled with ``seed`` and cut in two: (the device's half, the scoring half)."""
    generator = torch.Generator().manual_seed(seed)
    first = torch.zeros(len(data), dtype=torch.bool)
    for c in torch.unique(data.y):
        idx = torch.nonzero(data.y == c).flatten()
        first[idx[torch.randperm(len(idx), generator=generator)[: len(idx) // 2]]] = True
    return data.where(first), data.where(~first)


def acceptance(auth: SpeakerAuthenticator, impostors: LabelledSet, outsider: torch.Tensor, kind: str) -> dict:
    """At the holdout's equal-error threshold: the impostor trials of ``impostors`` (enrolled speakers claiming
    each other) accepted, per trial and as anyone else (an enrolled speaker's best claim to another), the
    ``outsider``'s recordings accepted as anyone, and its mean claim's lead over an impostor trial's mean score, in
    the trials' sd (with log-softmax a voice no row answers spreads its mass evenly, so its lead is positive even
    where it scores as impostors do)."""
    holdout = auth.buffers.holdout.of_classes(auth.active_labels)
    scores = claim_scores(auth, holdout.x, kind)
    own = torch.stack([holdout.y == c for c in auth.active_labels], dim=1)
    _, threshold = equal_error_rate(scores[own], scores[~own])
    others = torch.stack([impostors.y != c for c in auth.active_labels], dim=1)
    trials = claim_scores(auth, impostors.x, kind).masked_fill(~others, float("-inf"))  # genuine claims left out
    claims = claim_scores(auth, outsider, kind)
    return {"impostor": float((trials[others] >= threshold).float().mean()),
            "impostor_any": float((trials.max(dim=1).values >= threshold).float().mean()),
            "outsider": float((claims.max(dim=1).values >= threshold).float().mean()),
            "gap": float((claims.mean() - trials[others].mean()) / trials[others].std())}


def run(splits, revoke: int, seed: int, methods: list[str], impostor_sds: list[float]) -> list[dict]:
    """One pretrain → deploy → revoke (each method) / retrain → enroll run; a row per method, stage and score."""
    train = LabelledSet(splits.train.x, splits.train.y)
    val, score = halves(LabelledSet(splits.val.x, splits.val.y), seed)  # the device's half, the scoring half
    names, config = splits.speaker_names, DemoConfig()
    new = len(names) - 1
    old = list(range(new))
    keep = [c for c in old if c != revoke]
    forget_train, forget_score, retained = train.of_classes([revoke]), score.of_classes([revoke]), score.of_classes(keep)
    seeded = lambda c: replace(c, seed=seed)  # noqa: E731

    def trials(auth: SpeakerAuthenticator, outsider: LabelledSet) -> list[dict]:
        impostors = score.of_classes(auth.active_labels)
        return [{"score": kind, **acceptance(auth, impostors, outsider.x, kind)} for kind in SCORES]

    def facts(auth: SpeakerAuthenticator) -> dict:
        """Read once per model and stage: every read of the array draws its read noise anew."""
        f_logits = predict_logits(auth.model, forget_score.x)
        return {"forget_acc": accuracy(f_logits, forget_score.y),
                "retain_acc": statistics.fmean(per_class_accuracy(predict_logits(auth.model, retained.x), retained.y).values()),
                "mia": mia_auc(predict_logits(auth.model, forget_train.x), forget_train.y, f_logits, forget_score.y)}

    base, _ = SpeakerAuthenticator.pretrain(names[:-1], train.of_classes(old), val.of_classes(old),
                                            config=seeded(config.pretrain), seed=seed)
    base.deploy(config.device, seed=seed)
    deployed = facts(base)
    rows = [{"method": "deployed; outsider: a stranger", "stage": "deploy", **row, **deployed}
            for row in trials(base, score.of_classes([new]))]
    candidates = {}
    for method, sd in [(m, sd) for m in methods for sd in (impostor_sds if m == "impostor" else [None])]:
        trial = copy.deepcopy(base)
        target = replace(config.unlearn, method=method, train=seeded(config.unlearn.train))
        trial.revoke(names[revoke], forget_train.x, retain=train.of_classes(keep), mode="suspend",
                     config=target if sd is None else replace(target, impostor_sd=sd))
        candidates[method if sd is None else f"{method} (sd {sd:g})"] = trial
    gold, _ = SpeakerAuthenticator.pretrain(names[:-1], train.of_classes(keep), val.of_classes(keep),  # the voice never seen
                                            config=seeded(config.pretrain), seed=seed + 1000)
    gold.registry[names[revoke]].status = REVOKED
    gold.deploy(config.device, seed=seed)
    candidates["retrained without the speaker"] = gold
    for method, auth in candidates.items():
        for stage in ("revoke", "enroll"):
            if stage == "enroll":
                auth.enroll(names[new], train.of_classes([new]).x, val.of_classes([new]).x, seeded(config.enroll))
            stage_facts = facts(auth)  # of this stage's model
            rows += [{"method": method, "stage": stage, **row, **stage_facts} for row in trials(auth, forget_score)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--revoke", type=int, default=DemoConfig.revoke_label)
    parser.add_argument("--seeds", type=int, default=3, help="independent runs (pretraining, unlearning, enrolment)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--impostor-sd", type=float, nargs="+", default=[MASK_IMPOSTOR_SD, ERASE_IMPOSTOR_SD],
                        help="the impostor target's depth below the mean impostor logit, in sd (one candidate each)")
    args = parser.parse_args()
    splits = load_bundled_speakers() if args.data is None else load_speakers(args.data)
    runs = [run(splits, args.revoke, seed, args.methods, args.impostor_sd) for seed in range(args.seeds)]
    fmt = lambda key, rows: f"{statistics.mean(r[key] for r in rows):.3f} ± {statistics.pstdev(r[key] for r in rows):.3f}"  # noqa: E731
    print(f"mean ± sd over {args.seeds} seeds, on the scoring half of validation; 'outsider' is the revoked voice "
          "(a stranger on the deployed model); 'lead' is its mean claim score less an impostor trial's, in the trials' sd")
    print("| method | stage | score | impostor trials accepted | impostor accepted as anyone else | "
          "outsider accepted as anyone | outsider's lead (impostor sd) | forget acc | retain acc (balanced) | loss-threshold MIA AUC |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for i, row in enumerate(runs[0]):
        same = [r[i] for r in runs]
        extra = " | ".join(fmt(k, same) for k in ("forget_acc", "retain_acc", "mia"))
        print(f"| {row['method']} | {row['stage']} | {row['score']} | {fmt('impostor', same)} | {fmt('impostor_any', same)} | {fmt('outsider', same)} | "
              f"{fmt('gap', same)} | {extra} |")

if __name__ == "__main__":
    main()
