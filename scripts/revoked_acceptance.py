"""How often a revoked voice is accepted as an enrolled speaker, by unlearning method and score, on validation.

    python scripts/revoked_acceptance.py

Pretrains and deploys the speaker RSNN, revokes speaker 1 (relabel or uniform), enrolls speaker 5, then
sets the equal-error threshold on the validation trials of the enrolled speakers and reports, for three
verification scores (log-softmax, logit margin over the best other speaker, mean-centred logit), the share
of impostor trials and of the revoked voice's claims accepted.  Only the validation split is read.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch

from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.data import load_bundled_speakers
from neuro_rm.learning import LabelledSet, equal_error_rate, predict_logits
from neuro_rm.speaker_demo import DemoConfig


def claim_scores(auth: SpeakerAuthenticator, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Scores (samples × enrolled speakers) for every sample claiming every enrolled speaker."""
    z = predict_logits(auth.model, x)[:, auth.active_labels]
    if kind == "log-softmax":
        return torch.log_softmax(z, dim=1)
    if kind == "margin":
        best_other = torch.stack([torch.cat([z[:, :j], z[:, j + 1:]], 1).max(1).values for j in range(z.shape[1])], 1)
        return z - best_other
    return z - z.mean(dim=1, keepdim=True)


def main() -> None:
    splits = load_bundled_speakers()
    train, val = (LabelledSet(s.x, s.y) for s in (splits.train, splits.val))
    config, old = DemoConfig(), [0, 1, 2, 3, 4]
    base, _ = SpeakerAuthenticator.pretrain(splits.speaker_names[:5], train.of_classes(old), val.of_classes(old),
                                            config=config.pretrain)
    base.deploy(config.device)
    print("| method | score | impostor trials accepted | revoked voice accepted |\n|---|---|---|---|")
    for method in ("relabel", "uniform"):
        auth = copy.deepcopy(base)
        auth.revoke(splits.speaker_names[1], train.of_classes([1]).x, retain=train.of_classes([0, 2, 3, 4]),
                    config=replace(config.unlearn, method=method))
        auth.enroll(splits.speaker_names[5], train.of_classes([5]).x, val.of_classes([5]).x, config.enroll)
        holdout = val.of_classes(auth.active_labels)
        for kind in ("log-softmax", "margin", "centred logit"):
            scores = claim_scores(auth, holdout.x, kind)
            own = torch.stack([holdout.y == c for c in auth.active_labels], 1)
            _, threshold = equal_error_rate(scores[own], scores[~own])
            revoked = claim_scores(auth, val.of_classes([1]).x, kind)
            print(f"| {method} | {kind} | {float((scores[~own] >= threshold).float().mean()):.1%} "
                  f"| {float((revoked >= threshold).float().mean()):.1%} |")


if __name__ == "__main__":
    main()
