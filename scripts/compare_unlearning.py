"""Choose the unlearning method and the verification score by validation results (the test split is not read).

    python scripts/compare_unlearning.py [--data FILE] [--revoke LABEL]

Pretrains and deploys the speaker RSNN on all speakers but the last, then, on copies:
- revokes one speaker with each unlearning method, and, as the gold standard, retrains from scratch
  without that speaker (the voice was never learnt);
- enrolls the last speaker afterwards.
It prints validation metrics: forgotten and retained accuracy, membership-inference AUC (the revoked
speaker's training samples vs its validation samples), and, for two verification scores — the claimed
speaker's logit and its log-softmax over the enrolled speakers — the share of impostor trials and of the
revoked voice's claims accepted at the equal-error threshold of the holdout buffer.  A stranger row (the
last speaker on the deployed model, before enrolment) shows how each score treats a voice never enrolled.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import replace

import torch

from neuro_rm.auth import REVOKED, SpeakerAuthenticator
from neuro_rm.data import load_bundled_speakers, load_speakers
from neuro_rm.learning import LabelledSet, accuracy, equal_error_rate, mia_auc, predict_logits
from neuro_rm.learning.unlearn import METHODS
from neuro_rm.speaker_demo import DemoConfig

SCORES = ("logit", "log-softmax")


def claim_scores(auth: SpeakerAuthenticator, x: torch.Tensor, kind: str) -> torch.Tensor:
    """(samples × enrolled speakers): every sample claims every enrolled speaker."""
    logits = predict_logits(auth.model, x)[:, auth.active_labels]
    return logits if kind == "logit" else torch.log_softmax(logits, dim=1)


def acceptance(auth: SpeakerAuthenticator, outsider: torch.Tensor, kind: str) -> tuple[float, float]:
    """(impostor trials accepted, outsider's claims accepted) at the holdout's equal-error threshold."""
    holdout = auth.buffers.holdout.of_classes(auth.active_labels)
    scores = claim_scores(auth, holdout.x, kind)
    own = torch.stack([holdout.y == c for c in auth.active_labels], dim=1)
    _, threshold = equal_error_rate(scores[own], scores[~own])
    far = float((scores[~own] >= threshold).float().mean())
    return far, float((claim_scores(auth, outsider, kind) >= threshold).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--revoke", type=int, default=DemoConfig.revoke_label)
    args = parser.parse_args()
    splits = load_bundled_speakers() if args.data is None else load_speakers(args.data)
    train, val = (LabelledSet(s.x, s.y) for s in (splits.train, splits.val))
    names, config = splits.speaker_names, DemoConfig()
    new = len(names) - 1
    old = list(range(new))
    keep = [c for c in old if c != args.revoke]
    forget_train, forget_val = train.of_classes([args.revoke]), val.of_classes([args.revoke])

    base, _ = SpeakerAuthenticator.pretrain(names[:-1], train.of_classes(old), val.of_classes(old), config=config.pretrain)
    base.deploy(config.device)
    stranger = val.of_classes([new]).x
    print("stranger (never enrolled) on the deployed model:")
    for kind in SCORES:
        far, accepted = acceptance(base, stranger, kind)
        print(f"  {kind}: impostor trials accepted {far:.3f}, stranger's claims accepted {accepted:.3f}")

    candidates = {}
    for method in METHODS:
        trial = copy.deepcopy(base)
        trial.revoke(names[args.revoke], forget_train.x, retain=train.of_classes(keep), config=replace(config.unlearn, method=method))
        candidates[method] = trial
    gold, _ = SpeakerAuthenticator.pretrain(names[:-1], train.of_classes(keep), val.of_classes(keep),  # the voice never seen
                                            config=config.pretrain, seed=config.seed + 1)
    gold.registry[names[args.revoke]].status = REVOKED
    gold.deploy(config.device)
    candidates["retrain (never learnt)"] = gold

    print("\n| method | forget acc | retain acc | MIA AUC | stage | score | impostor accepted | revoked voice accepted |")
    print("|---|---|---|---|---|---|---|---|")
    for method, auth in candidates.items():
        f_logits = predict_logits(auth.model, forget_val.x)
        retain_acc = accuracy(predict_logits(auth.model, val.of_classes(keep).x), val.of_classes(keep).y)
        mia = mia_auc(predict_logits(auth.model, forget_train.x), forget_train.y, f_logits, forget_val.y)
        forget_acc = accuracy(f_logits, forget_val.y)
        for stage in ("revoke", "enroll"):
            if stage == "enroll":
                auth.enroll(names[new], train.of_classes([new]).x, val.of_classes([new]).x, config.enroll)
            for kind in SCORES:
                far, accepted = acceptance(auth, forget_val.x, kind)
                print(f"| {method} | {forget_acc:.3f} | {retain_acc:.3f} | {mia:.3f} | {stage} | {kind} | {far:.3f} | {accepted:.3f} |")


if __name__ == "__main__":
    main()
