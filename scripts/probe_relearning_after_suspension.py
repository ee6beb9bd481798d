"""Why row re-learning is refused while a suspension is in force: the suspended voice with the refusal off.

    OMP_NUM_THREADS=1 python scripts/probe_relearning_after_suspension.py --seeds 0 1 2 3 4

Per seed, six speakers of a generated corpus are pretrained (RSNN 140-128-6, as ``bench_scale.py`` part 2
starts) and deployed, and speaker 1 is suspended (the reference: on a copy, erased instead).  Then, each on its own copy: nothing more; a readout refit
(``refit_readout``) and an erasure of speaker 2 (``revoke(mode="erase")``), both with the authenticator's
refusal switched off on that copy; an enrolment of a seventh speaker (allowed: a known limit, README,
Security); a ``restore`` (allowed: its repair branch trains on the replay buffer, without the voice); a
second suspension (of speaker 2); the mask folded and merged into the cells by a consolidation policy; the
suspension turned into an erasure (``revoke(mode="erase")`` of the suspended speaker, i.e. ``erase_suspended``)
with its mask live, folded into ``store`` or merged, and an erasure of speaker 2 after it (allowed then).  After
each, at the threshold calibrated on the holdout buffer, the share of claims accepted: the suspended voice's to
every enrolled speaker, three never-enrolled voices' (the reference a forgotten voice is held to) and impostor
trials among the enrolled (the suspension's promise: no more often than those); the branch-off attack: the
share of the voice's test utterances its old readout row (copied before the suspension) takes with every
digital branch off; and the enrolled speakers' test accuracy.  Mean ± sd over seeds with the 95 % interval of the mean; the differences are paired by seed.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.data import load_speakers
from neuro_rm.data.synthetic import GeneratorConfig, generate_corpus
from neuro_rm.learning import LabelledSet, TrainConfig, accuracy, predict_logits
from neuro_rm.learning.attacks import branch_off_accuracy
from neuro_rm.learning.consolidation import BranchBudget
from neuro_rm.learning.seeds import mean_sd_ci
from neuro_rm.learning.unlearn import UnlearnConfig
from neuro_rm.models import RSNNConfig

FIRST, SUSPENDED, ERASED, NEW, STRANGERS = 6, 1, 2, 6, [7, 8, 9]
REFERENCE = "s1 erased instead (reference)"
REVOKE = UnlearnConfig(train=TrainConfig(epochs=4, lr=1e-2, batch_size=64))


def accepted(auth: SpeakerAuthenticator, test: LabelledSet, voiceprint: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """Claims accepted at the holdout's equal-error threshold (on a copy: the calibration is the probe's)."""
    probe = copy.deepcopy(auth)
    probe.calibrate()

    def share(voices: list[int]) -> float:
        return float((probe.scores(test.of_classes(voices).x)[:, probe.active_labels] >= probe.threshold).float().mean())

    _, impostor = probe.trial_scores(test.of_classes(probe.active_labels))
    return {"suspended": share([SUSPENDED]), "never enrolled": share(STRANGERS),
            "impostor trials": float((impostor >= probe.threshold).float().mean()),
            "branch-off": branch_off_accuracy(probe.model, SUSPENDED, voiceprint, test.of_classes([SUSPENDED]).x),
            "retained": accuracy(predict_logits(probe.model, test.of_classes(probe.active_labels).x),
                                 test.of_classes(probe.active_labels).y)}


def unrefused(operation: Callable[[SpeakerAuthenticator], object]) -> Callable[[SpeakerAuthenticator], object]:
    """``operation`` on an authenticator whose suspension check finds nothing: the refusal switched off."""
    def run(auth: SpeakerAuthenticator) -> object:
        auth.suspended = lambda: []  # on this copy only
        return operation(auth)
    return run


def one_seed(splits, seed: int) -> dict[str, dict[str, float]]:
    train, val, test = (LabelledSet(s.x, s.y) for s in (splits.train, splits.val, splits.test))
    first = list(range(FIRST))
    auth, _ = SpeakerAuthenticator.pretrain([f"s{i}" for i in first], train.of_classes(first), val.of_classes(first),
                                            RSNNConfig(n_inputs=train.x.shape[-1], n_hidden=128, n_outputs=FIRST),
                                            TrainConfig(epochs=10, lr=2e-3, batch_size=64), seed=seed)
    auth.deploy(seed=seed)
    voiceprint = auth.model.head.copy_row(SUSPENDED)
    erased = copy.deepcopy(auth)  # the reference: the voice erased straight away, never suspended
    erased.revoke(f"s{SUSPENDED}", train.of_classes([SUSPENDED]).x, config=REVOKE)
    auth.revoke(f"s{SUSPENDED}", train.of_classes([SUSPENDED]).x, config=REVOKE, mode="suspend")
    def erase_suspension(a: SpeakerAuthenticator) -> object:
        return a.revoke(f"s{SUSPENDED}", train.of_classes([SUSPENDED]).x, config=REVOKE)

    def erase_s2(a: SpeakerAuthenticator) -> object:
        return a.revoke(f"s{ERASED}", train.of_classes([ERASED]).x, config=REVOKE)

    def merge(a: SpeakerAuthenticator) -> object:
        return a.consolidate(BranchBudget(max_branches=0, horizon_inferences=1e30, wear_budget=1.0))

    operations = {
        "suspended": lambda a: None,
        "+ refit, refusal off": unrefused(lambda a: a.refit_readout()),
        "+ erase s2, refusal off": unrefused(erase_s2),
        "+ enrol s6 (allowed)": lambda a: a.enroll(f"s{NEW}", train.of_classes([NEW]).x, val.of_classes([NEW]).x),
        "+ restore (allowed)": lambda a: a.restore(),
        "+ suspend s2 (allowed)": lambda a: a.revoke(f"s{ERASED}", train.of_classes([ERASED]).x, config=REVOKE, mode="suspend"),
        "+ mask merged into the cells (allowed)": merge,
        "+ suspension erased": erase_suspension,
        "+ mask folded, suspension erased": lambda a: (a.consolidate(BranchBudget(max_branches=0)), erase_suspension(a)),
        "+ mask merged, suspension erased": lambda a: (merge(a), erase_suspension(a)),
        "+ suspension erased, erase s2 (allowed)": lambda a: (erase_suspension(a), erase_s2(a)),
    }
    out = {REFERENCE: accepted(erased, test, voiceprint)}
    for name, operation in operations.items():
        twin = copy.deepcopy(auth)
        operation(twin)
        out[name] = accepted(twin, test, voiceprint)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / "voices.h5"
        generate_corpus(corpus, GeneratorConfig(n_samples=10 * 50, n_speakers=10, events_median=1000, seed=7))
        splits = load_speakers(corpus, n_speakers=10, cache=False)
        test = LabelledSet(splits.test.x, splits.test.y)
        print(f"test utterances: the suspended voice's {len(test.of_classes([SUSPENDED]))}, the never-enrolled voices' "
              f"{len(test.of_classes(STRANGERS))}", flush=True)
        runs = []
        for seed in args.seeds:
            runs.append(one_seed(splits, seed))
            print(f"seed {seed}: " + "; ".join(f"{op}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items())
                                                for op, r in runs[-1].items()), flush=True)
    print("\n| after | suspended voice's claims accepted | never-enrolled voices' | impostor trials | suspended − impostor "
          "(points), seeds above | suspended − never enrolled (points) | suspended's change from the suspension (points) | "
          "branch-off: old row takes | voice − the reference's (points) | enrolled speakers' test accuracy |"
          "\n|---|---|---|---|---|---|---|---|---|---|")
    for op in runs[0]:
        cells = [cell([100 * r[op][key] for r in runs], "%") for key in ("suspended", "never enrolled", "impostor trials")]
        above = [100 * (r[op]["suspended"] - r[op]["impostor trials"]) for r in runs]
        cells.append(cell(above, "") + f", {sum(d > 0 for d in above)} of {len(runs)}")
        cells.append(cell([100 * (r[op]["suspended"] - r[op]["never enrolled"]) for r in runs], ""))
        cells.append(cell([100 * (r[op]["suspended"] - r["suspended"]["suspended"]) for r in runs], "")
                     if op.startswith("+") else "–")
        cells.append(cell([100 * r[op]["branch-off"] for r in runs], "%"))
        cells.append(cell([100 * (r[op]["suspended"] - r[REFERENCE]["suspended"]) for r in runs], "") if op != REFERENCE else "–")
        cells.append(cell([100 * r[op]["retained"] for r in runs], "%"))
        print(f"| {op} | " + " | ".join(cells) + " |")


def cell(values: list[float], unit: str) -> str:
    """Mean ± sd [95 % interval of the mean] over seeds; differences (no ``unit``) signed."""
    mean, sd, (low, high) = mean_sd_ci(values)
    shown = "{:.1f}" if unit else "{:+.1f}"
    return f"{shown.format(mean)} ± {sd:.1f}{' ' + unit if unit else ''} [{shown.format(low)}, {shown.format(high)}]"


if __name__ == "__main__":
    main()
