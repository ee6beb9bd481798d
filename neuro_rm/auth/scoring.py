"""Scoring of the speaker authenticator: verification scores, trials, the calibrated threshold, accept/reject."""

from __future__ import annotations

import torch

from neuro_rm.auth.registry import REVOKED
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.metrics import accuracy, equal_error_rate, predict_logits


class Scoring:
    """The scoring half of ``SpeakerAuthenticator`` (the registry's model, labels and buffers)."""

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
        if len(self.active_labels) < 2:
            raise ValueError(f"calibrate needs at least two enrolled speakers (there are {len(self.active_labels)}): the "
                             "threshold is set on impostor trials, one enrolled speaker's samples claiming another's")
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
        # an enrolled claim's score is its own logit, as ``scores`` gives it, without masking every other
        # speaker's: the cost of one verify does not grow with the number of enrolled voices
        score = float(predict_logits(self.model, x)[0, rec.label])
        return {"claim": claim, "accept": score >= self.threshold, "score": score, "threshold": self.threshold}
