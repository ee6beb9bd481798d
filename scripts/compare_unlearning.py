"""Choose the default unlearning method by validation results (the test split is not read).

    python scripts/compare_unlearning.py [--data FILE] [--revoke LABEL]

Pretrains and deploys the speaker RSNN once, then revokes one speaker with each method on a copy and
prints validation metrics: forgotten and retained accuracy, membership-inference AUC (the speaker's
training samples vs its validation samples), and how often the revoked speaker's validation samples
would be accepted as someone else at the equal-error threshold.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import replace

from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.data import load_bundled_speakers, load_speakers
from neuro_rm.learning import LabelledSet, accuracy, mia_auc, predict_logits
from neuro_rm.learning.unlearn import METHODS
from neuro_rm.speaker_demo import DemoConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--revoke", type=int, default=DemoConfig.revoke_label)
    args = parser.parse_args()
    splits = load_bundled_speakers() if args.data is None else load_speakers(args.data)
    train, val = (LabelledSet(s.x, s.y) for s in (splits.train, splits.val))
    old = list(range(len(splits.speaker_names) - 1))
    keep = [c for c in old if c != args.revoke]
    config = DemoConfig()
    auth, _ = SpeakerAuthenticator.pretrain(splits.speaker_names[:-1], train.of_classes(old), val.of_classes(old),
                                            config=config.pretrain)
    auth.deploy(config.device)
    auth.calibrate()
    forget_train, forget_val = train.of_classes([args.revoke]), val.of_classes([args.revoke])
    print("| method | forget val acc | retain val acc | MIA AUC (train vs val) | revoked accepted as someone |")
    print("|---|---|---|---|---|")
    for method in METHODS:
        trial = copy.deepcopy(auth)
        trial.revoke(splits.speaker_names[args.revoke], forget_train.x, retain=train.of_classes(keep),
                     config=replace(config.unlearn, method=method))
        trial.calibrate()
        scores = trial.scores(forget_val.x)[:, trial.active_labels]
        accepted = float((scores >= trial.threshold).float().mean())
        f_logits, r_logits = predict_logits(trial.model, forget_val.x), predict_logits(trial.model, val.of_classes(keep).x)
        mia = mia_auc(predict_logits(trial.model, forget_train.x), forget_train.y, f_logits, forget_val.y)
        print(f"| {method} | {accuracy(f_logits, forget_val.y):.3f} | {accuracy(r_logits, val.of_classes(keep).y):.3f} "
              f"| {mia:.3f} | {accepted:.3f} |")


if __name__ == "__main__":
    main()
