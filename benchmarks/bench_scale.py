"""Scale: time, memory and energy per operation against the number of enrolled speakers and the corpus size.

Four parts, all in one run so the ratios are side by side:

1. enrolling one bundled speaker with today's enrolment (``learning.continual.ENROLL``) and with the fast one
   (the new row fitted on the frozen features, then ``learning.continual.FAST_ENROLL``), thread CPU seconds and
   validation and test accuracies (new speaker, old speakers), each of the six speakers held out in turn
   (``--held-out``), enrolment seeds 0-2;
2. an authenticator enrolling speakers one after another up to 200 on a generated corpus, with the default
   consolidation policy and (positive control) with none: identification accuracy and verification EER on the
   enrolled speakers' test utterances (also on a copy after ``refit_readout``, the readout rows refitted together
   on the replay buffer as the device would when idle, with the refit's seconds; refused while a suspension is
   in force; whether it was kept), the share of the revoked speakers' claims accepted (with and without the refit)
   and, as their reference, the share of up to 20 voices never enrolled yet (the next in the corpus), beside the accuracy of
   logistic regression trained on all of those
   speakers at once on the same frames (what the corpus allows a linear model that sees every speaker's
   training data together, as the authenticator never does), verify time per utterance (beside the
   6-speaker state), the bytes the authenticator holds (and one booted from its saved state holds after a verify), enroll / revoke seconds and energy, at 6, 25,
   100 and 200 speakers; the energy in two parts: what the ledger charges (SRAM writes of branches, rows
   and folds) and the training's compute on the chip (its forward, backward and evaluation passes and Adam's
   updates, ``energy_report.chip_training_j``), counted on a copy so that the meter stays out of the timings;
3. loading N speakers of a generated corpus-size file: seconds and peak resident-memory growth.
4. 60 speakers enrolled with the default policy, then suspend-revoked one by one, the policy running after
   each suspension and (control) on a twin without it: branches, verify time beside the 6-speaker state, and
   memory at 0, 10, 25 and 50.

Run: python benchmarks/bench_scale.py [--corpus BIG.h5] [--skip-bundled] [--skip-many] [--skip-corpus]
    [--skip-suspend] [--revoke-mode erase|suspend] [--enroll-recipe quick|fast|product] [--no-control]
Part 2 uses a smaller RSNN (hidden 128), by default 1-epoch enrolments (``--enroll-recipe fast`` or
``product`` for the authenticator's own) and buffer caps of an eighth of the product's (``--replay 512
--holdout 256``; the product's are 4096 / 2048) so that 2 × 200 enrolments fit a shared 2-core machine; its
accuracy column shows what that costs.  Its revocations suspend by default (``--revoke-mode erase`` for the
product's default mode, which writes cells).  The linear floor is fitted over speakers 0..N-1, suspended ones
included, which the authenticator no longer scores.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from common import clock, print_table

from neuro_rm import layers as hybrid
from neuro_rm.auth import REVOKE_MODES, REVOKED, OperationReport, SpeakerAuthenticator
from neuro_rm.data import load_bundled_speakers, load_speakers, read_info
from neuro_rm.data.synthetic import GeneratorConfig, generate_corpus
from neuro_rm.energy_report import chip_training_j
from neuro_rm.learning import LabelledSet, TrainConfig, accuracy, predict_logits
from neuro_rm.learning.baseline import linear_baseline
from neuro_rm.learning.consolidation import BranchBudget
from neuro_rm.learning.continual import ENROLL, FAST_ENROLL
from neuro_rm.learning.metrics import equal_error_rate, verification_trials
from neuro_rm.learning.seeds import mean_sd_ci
from neuro_rm.learning.unlearn import UnlearnConfig
from neuro_rm.models import RSNNConfig
from neuro_rm.work import WorkMeter

CHECKPOINTS = (6, 25, 100, 200)


def _acc(auth: SpeakerAuthenticator, data: LabelledSet) -> float:
    return accuracy(predict_logits(auth.model, data.x), data.y)


def _held_out(splits, new: int) -> tuple[list[str], LabelledSet, LabelledSet, LabelledSet]:
    """The bundled speakers relabelled so that ``new`` is label 5 (the one enrolment grows) and the other five
    are 0-4 in their order: names, then train, validation and test."""
    order = [s for s in range(len(splits.speaker_names)) if s != new] + [new]
    to_label = torch.argsort(torch.tensor(order))
    return ([splits.speaker_names[s] for s in order],
            *(LabelledSet(part.x, to_label[part.y]) for part in (splits.train, splits.val, splits.test)))


def _eer(auth: SpeakerAuthenticator, data: LabelledSet, labels: list[int]) -> float:
    """Verification EER on ``data``'s utterances of ``labels``, each claiming each of ``labels`` once."""
    held = data.of_classes(labels)
    trials = verification_trials(auth.scores(held.x), held.y, labels)
    return equal_error_rate(trials["genuine"], trials["impostor"])[0]


def bundled_enrolment(pretrain_epochs: int, held_out: tuple[int, ...] = tuple(range(6)),
                      seeds: tuple[int, ...] = (0, 1, 2)) -> list[tuple]:
    """Each bundled speaker in ``held_out`` in turn enrolled into a state pretrained on the other five and
    deployed, with ``ENROLL`` and with the quick recipe (the row fitted on the frozen features, then
    ``FAST_ENROLL``), per seed, the two in turn (which runs first alternates with the seed: neither is always the
    warmer); accuracy on validation (which also picks each schedule's best epoch, shown: -1 is the start) and on
    the test split, which nothing chose on, and the test verification EER over all six speakers and over the five
    old ones among themselves, beside the deployed state's before the enrolment; then mean ± sd over every
    (speaker, seed) of both recipes and of the time ratio."""
    splits = load_bundled_speakers()
    old = list(range(5))
    recipes = (("today: ENROLL", ENROLL, False), ("quick: row fitted, FAST_ENROLL", FAST_ENROLL, True))
    rows, results = [], {label: [] for label in ("before", *(label for label, _, _ in recipes))}
    ratios = []
    for new in held_out:
        names, train, val, test = _held_out(splits, new)
        base, _ = SpeakerAuthenticator.pretrain(names[:5], train.of_classes(old), val.of_classes(old),
                                                config=TrainConfig(epochs=pretrain_epochs, lr=1e-3))
        base.deploy()
        before = ("", "", "", _acc(base, val.of_classes(old)), "", _acc(base, test.of_classes(old)), "", _eer(base, test, old))
        results["before"].append(before)
        rows.append((f"{names[5]}, deployed before enrolment (5 speakers)", *before))
        state = tempfile.mkdtemp()
        base.save(state)
        for seed in seeds:
            seconds = {}
            for label, config, warm in recipes if seed % 2 == 0 else recipes[::-1]:
                auth = SpeakerAuthenticator.load(state)
                auth.consolidation = None
                now = clock()  # one torch thread: the thread's CPU time, which other jobs on the machine do not inflate
                start = now()
                report = auth.enroll(names[5], train.of_classes([5]).x, val.of_classes([5]).x, replace(config, seed=seed),
                                     warm_row=warm)
                seconds[label] = now() - start
                figures = (seconds[label], report.fit.best_epoch,
                           *(_acc(auth, split.of_classes(labels)) for split in (val, test) for labels in ([5], old)),
                           _eer(auth, test, [*old, 5]), _eer(auth, test, old))
                results[label].append(figures)
                rows.append((f"{names[5]}, seed {seed}, {label}", *figures))
            ratios.append(seconds[recipes[1][0]] / seconds[recipes[0][0]])
            rows.append((f"{names[5]}, seed {seed}, ratio quick / today", ratios[-1], "", "", "", "", "", "", ""))

    def spread(values: tuple) -> str:
        values = [v for v in values if v != ""]
        if not values:
            return ""
        return f"{statistics.fmean(values):.4g} ± {statistics.stdev(values):.2g}" if len(values) > 1 else f"{values[0]:.4g}"

    for label in results:
        rows.append((f"mean ± sd, {label}", *(spread(column) for column in zip(*results[label], strict=True))))
    rows.append(("mean ± sd, ratio quick / today", spread(tuple(ratios)), "", "", "", "", "", "", ""))
    if len(held_out) > 1:
        rows.append(_paired(results[recipes[1][0]], results[recipes[0][0]], len(seeds)))
    return rows


def _paired(quick: list[tuple], today: list[tuple], per_speaker: int) -> tuple:
    """Quick minus today on the test columns, each held-out speaker's mean over its seeds (the speakers are the
    independent units; seeds of one speaker share its pretrained state): mean ± sd and the 95 % t-interval."""
    row: list[str] = ["paired quick − today, per held-out speaker, mean ± sd [95 % t-interval]", "", "", "", ""]
    for column in range(4, 8):
        gaps = [v - w for (v, w) in zip((f[column] for f in quick), (f[column] for f in today), strict=True)]
        per = [statistics.fmean(gaps[i:i + per_speaker]) for i in range(0, len(gaps), per_speaker)]
        mean, sd, (low, high) = mean_sd_ci(per)
        row.append(f"{mean:+.4f} ± {sd:.4f} [{low:+.4f}, {high:+.4f}]")
    return tuple(row)


def _memory_mib(auth: SpeakerAuthenticator) -> tuple[float, float, float, float]:
    """(state, buffers, fused caches, everything held) in MiB.  State: what a save keeps, the model's
    ``state_dict`` tensors and the buffers as kept (packed).  Fused caches: the dense ΔW per fused layer (and,
    where no digest can be made, the copy of the factor values its staleness check compares).  Everything held
    (``SpeakerAuthenticator.memory``) adds to both the crossbars' read caches and work buffers."""
    held = auth.memory()
    fused = sum(layer._fused_cache.nbytes() for _, layer in hybrid.hybrid_layers(auth.model) if layer._fused_cache is not None)
    return (held["model"] + held["buffers"]) / 2**20, held["buffers"] / 2**20, fused / 2**20, held["total"] / 2**20


def _booted_mib(auth: SpeakerAuthenticator, sample: torch.Tensor, claim: str) -> float:
    """Everything held, in MiB, by the authenticator a device boots from this one's saved state and serves one
    verify with: no work buffers left by training, the fused ΔW rebuilt."""
    with tempfile.TemporaryDirectory() as folder:
        auth.save(Path(folder) / "state")
        booted = SpeakerAuthenticator.load(Path(folder) / "state")
        booted.verify(sample, claim)
        return booted.memory()["total"] / 2**20


def _identification(auth: SpeakerAuthenticator, test: LabelledSet) -> tuple[float, float]:
    """On the enrolled speakers' test utterances: identification accuracy (the highest-scoring enrolled speaker
    is the right one) and the verification EER, every utterance claiming every enrolled speaker once (what
    authentication asks: is this the claimed voice, not which of N it is)."""
    held = test.of_classes(auth.active_labels)
    return accuracy(auth.scores(held.x), held.y), _eer(auth, test, auth.active_labels)


def _refitted(auth: SpeakerAuthenticator, now: Callable[[], float]) -> tuple[SpeakerAuthenticator | None, float, bool | None]:
    """A copy of ``auth`` after ``refit_readout`` (as the device would run it when idle before the checkpoint;
    the original goes on without it), the refit's seconds and whether it was kept; None, nan, None where the
    refit is refused (a suspension in force)."""
    twin = copy.deepcopy(auth)
    start = now()
    try:
        kept = twin.refit_readout().extra["kept"]
    except ValueError:
        return None, float("nan"), None
    return twin, now() - start, kept


def _claims_accepted(auth: SpeakerAuthenticator | None, test: LabelledSet, voices: list[int]) -> float:
    """Share of ``voices``' test utterances' claims to each enrolled speaker accepted at the threshold calibrated
    on the holdout buffer (on a copy: the calibration is the measurement's, not the state's); nan without any."""
    if auth is None or not voices:
        return float("nan")
    probe = copy.deepcopy(auth)
    probe.calibrate()
    claims = probe.scores(test.of_classes(voices).x)[:, probe.active_labels]
    return float((claims >= probe.threshold).float().mean())


def _verify_pass(auth: SpeakerAuthenticator, samples: torch.Tensor, claims: list[str]) -> float:
    """The median seconds of one verify over ``samples``."""
    now = clock()
    times = []
    for x, claim in zip(samples, claims, strict=False):
        start = now()
        auth.verify(x, claim)
        times.append(now() - start)
    return statistics.median(times)


def _verify_seconds(auth: SpeakerAuthenticator, reference: SpeakerAuthenticator, samples: torch.Tensor,
                    claims: list[str], repeats: int = 5) -> tuple[float, float, float]:
    """Seconds of one verify on ``auth`` and on ``reference`` (the 6-speaker state, kept aside), passes taken
    in turn so both see the same machine (its speed drifts over a run's minutes); each the fastest of
    ``repeats`` passes' medians, as every timing here: on a shared machine, the pass nothing interrupted.
    Also inference joules per verified utterance on ``auth``."""
    hybrid.reset_counts(auth.model)
    passes = [(_verify_pass(auth, samples, claims), _verify_pass(reference, samples, claims)) for _ in range(repeats)]
    from neuro_rm.energy import Ledger

    ledger = Ledger()
    hybrid.post_inference(ledger, hybrid.collect_counts(auth.model))
    return min(t for t, _ in passes), min(r for _, r in passes), ledger.joules("infer") / (repeats * len(samples))


def _training_j(auth: SpeakerAuthenticator, operation: Callable[[SpeakerAuthenticator], object]) -> float:
    """Chip joules of the training ``operation`` runs (at the ledger's node), counted on a copy of ``auth``:
    the meter's hooks would slow the timed operations, and the copy's state is the one they start from."""
    twin = copy.deepcopy(auth)
    with WorkMeter() as meter:
        operation(twin)
    return math.fsum(chip_training_j(record, twin.ledger.energy) for record in meter.records)


def _deployed(train: LabelledSet, val: LabelledSet, n_first: int, replay: int, holdout: int) -> SpeakerAuthenticator:
    """Speakers 0 .. n_first-1 pretrained (RSNN 140-128-N), deployed, with the given buffer caps and the
    default consolidation policy: where parts 2 and 4 start."""
    first = list(range(n_first))
    auth, _ = SpeakerAuthenticator.pretrain([f"s{i}" for i in first], train.of_classes(first), val.of_classes(first),
                                            RSNNConfig(n_inputs=train.x.shape[-1], n_hidden=128, n_outputs=n_first),
                                            TrainConfig(epochs=10, lr=2e-3, batch_size=64))
    auth.deploy()
    auth.buffers.max_replay, auth.buffers.max_holdout = replay, holdout
    auth.calibrate()
    auth.consolidation = BranchBudget()
    return auth


def many_speakers(corpus: Path, recipe: Recipe, replay: int, holdout: int, checkpoints: tuple[int, ...] = CHECKPOINTS,
                  control: bool = True, revoke_mode: str = "suspend") -> list[tuple]:
    """Enrol speakers one after another into two copies of one deployed authenticator, the default
    consolidation policy on one and none on the other, step by step in turn (so both see the same load);
    at each checkpoint, verify and revoke (``revoke_mode``) on both.  Seconds are the thread's CPU time (one
    torch thread)."""
    splits = load_speakers(corpus, n_speakers=max(checkpoints) + 1, cache=False)
    train = LabelledSet(splits.train.x, splits.train.y)
    val = LabelledSet(splits.val.x, splits.val.y)
    base = _deployed(train, val, checkpoints[0], replay, holdout)
    reference = copy.deepcopy(base)  # the 6-speaker state, timed beside every checkpoint
    auths = {"on": base}
    if control:
        auths["off"] = copy.deepcopy(base)
        auths["off"].consolidation = None  # every branch stays live
    test = LabelledSet(splits.test.x, splits.test.y)
    probe = test.of_classes([0, 1, 2, 3])  # never revoked below
    rows: dict[str, list[tuple]] = {policy: [] for policy in auths}
    floor = {n: linear_baseline(train.of_classes(list(range(n))), val.of_classes(list(range(n))),
                                test.of_classes(list(range(n)))).accuracy for n in checkpoints}
    enrolled: dict[str, list[tuple[float, float]]] = {policy: [] for policy in auths}
    now = clock()
    for label in range(checkpoints[0], max(checkpoints) + 1):
        for policy, auth in auths.items():
            if label in checkpoints:
                claims = [f"s{int(y)}" for y in probe.y[:40]]
                verify_s, reference_s, verify_j = _verify_seconds(auth, reference, probe.x[:40], claims)
                identified, eer = _identification(auth, test)
                refitted, refit_s, refit_kept = _refitted(auth, now)
                refit_identified, refit_eer = _identification(refitted, test) if refitted else (float("nan"),) * 2
                gone = [r.label for r in auth.registry.values() if r.status == REVOKED]
                unheard = list(range(label, min(label + 20, max(checkpoints) + 1)))  # not enrolled yet: the next in the corpus
                accepted = [_claims_accepted(a, test, voices) for voices in (gone, unheard) for a in (auth, refitted)]

                def revoke(a: SpeakerAuthenticator, gone: int = label - 2) -> OperationReport:
                    return a.revoke(f"s{gone}", train.of_classes([gone]).x, mode=revoke_mode, config=recipe.revoke)

                def enroll(a: SpeakerAuthenticator, new: int = label) -> None:
                    a.enroll(f"s{new}", train.of_classes([new]).x, val.of_classes([new]).x, recipe.enroll,
                             warm_row=recipe.warm_row)

                revoke_train_j = _training_j(auth, revoke)
                before_j, start = auth.ledger.joules(), now()
                rounds = revoke(auth).extra.get("rounds", 0)  # an erasure's consolidation rounds (a suspension: 0)
                revoke_s, revoke_j = now() - start, auth.ledger.joules() - before_j
                enroll_train_j = _training_j(auth, enroll)  # the next enrolment, from the state it starts from
                recent = enrolled[policy][-5:] or [(float("nan"), float("nan"))]
                rows[policy].append((label, policy, len(hybrid.adapter_names(auth.model)), identified, floor[label], eer,
                                     refit_identified, refit_eer, refit_s, refit_kept, *accepted, len(unheard), verify_s * 1e3,
                                     verify_s / reference_s, verify_j, *_memory_mib(auth),
                                     _booted_mib(auth, probe.x[0], claims[0]), statistics.median(t for t, _ in recent),
                                     statistics.median(j for _, j in recent), enroll_train_j, revoke_s, rounds, revoke_j,
                                     revoke_train_j))
            if label < max(checkpoints):
                before_j, start = auth.ledger.joules(), now()
                auth.enroll(f"s{label}", train.of_classes([label]).x, val.of_classes([label]).x, recipe.enroll,
                            warm_row=recipe.warm_row)
                enrolled[policy].append((now() - start, auth.ledger.joules() - before_j))
    return [row for policy_rows in rows.values() for row in policy_rows]


def many_suspensions(corpus: Path, recipe: Recipe, replay: int, holdout: int, enrolled: int = 60,
                      counts: tuple[int, ...] = (0, 10, 25, 50)) -> list[tuple]:
    """Enrol ``enrolled`` speakers with the default policy, then suspend-revoke them one after another, on the
    authenticator as it is (the policy folds the oldest live branches, masks included, after each suspension)
    and on a twin with no policy, where each suspension adds a branch for good.  At each count of suspensions,
    verify beside the 6-speaker state (as in part 2), the branches and memory."""
    splits = load_speakers(corpus, n_speakers=enrolled + 1, cache=False)
    train, val = LabelledSet(splits.train.x, splits.train.y), LabelledSet(splits.val.x, splits.val.y)
    auth = _deployed(train, val, CHECKPOINTS[0], replay, holdout)
    reference = copy.deepcopy(auth)
    probe = LabelledSet(splits.test.x, splits.test.y).of_classes([0, 1, 2, 3])  # never suspended below
    claims = [f"s{int(y)}" for y in probe.y[:40]]
    for label in range(CHECKPOINTS[0], enrolled + 1):
        auth.enroll(f"s{label}", train.of_classes([label]).x, val.of_classes([label]).x, recipe.enroll,
                    warm_row=recipe.warm_row)
    twin = copy.deepcopy(auth)
    twin.consolidation = None
    rows: dict[str, list[tuple]] = {"on": [], "off": []}
    for done in range(max(counts) + 1):
        for policy, a in (("on", auth), ("off", twin)):
            if done in counts:
                verify_s, reference_s, _ = _verify_seconds(a, reference, probe.x[:40], claims)
                state, _, fused, held = _memory_mib(a)
                rows[policy].append((done, policy, len(hybrid.adapter_names(a.model)), verify_s * 1e3,
                                     verify_s / reference_s, state + fused, fused, held))
            if done < max(counts):
                label = enrolled - done
                a.revoke(f"s{label}", train.of_classes([label]).x, mode="suspend", config=recipe.revoke)
    return rows["on"] + rows["off"]


@dataclass(frozen=True)
class Recipe:
    """How parts 2 and 4 enrol and suspend-revoke each speaker."""

    enroll: TrainConfig
    revoke: UnlearnConfig
    warm_row: bool = False  # the new row fitted on the frozen features first (the quick recipe)


def recipe(name: str, epochs: int) -> Recipe:
    """``quick``: ``epochs`` at lr 5e-3 for both (what fits 2 x 200 enrolments on a shared 2-core machine);
    ``fast``: the quick enrolment (the row fitted on the frozen features, then ``FAST_ENROLL``) and ``FAST_ENROLL``'s
    schedule for the revocation; ``product``: the authenticator's defaults (``ENROLL``, ``UnlearnConfig()``)."""
    if name == "product":
        return Recipe(ENROLL, UnlearnConfig())
    train = FAST_ENROLL if name == "fast" else TrainConfig(epochs=epochs, lr=5e-3, batch_size=64)
    return Recipe(train, UnlearnConfig(train=train), warm_row=name == "fast")


LOAD = """
import sys, time
from neuro_rm.data import load_speakers
def kb(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field))
load_speakers(sys.argv[4], n_speakers=1, cache=False)  # warm-up on another, tiny file: nothing of the measured one
open("/proc/self/clear_refs", "w").write("5")
before, start = kb("VmRSS:"), time.perf_counter()
splits = load_speakers(sys.argv[1], n_speakers=int(sys.argv[2]), cache_dir=sys.argv[3])
print(time.perf_counter() - start, (kb("VmHWM:") - before) / 1024, len(splits.train) + len(splits.val) + len(splits.test))
"""


def corpus_loading(path: Path, checkpoints: tuple[int, ...] = CHECKPOINTS) -> list[tuple]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        warm_up = Path(folder) / "warm_up.h5"
        generate_corpus(warm_up, GeneratorConfig(n_samples=40, n_speakers=2, n_channels=read_info(path).n_channels, seed=2))
        for n in checkpoints:
            with tempfile.TemporaryDirectory() as cache:
                out = subprocess.run([sys.executable, "-c", LOAD, str(path), str(n), cache, str(warm_up)],
                                     capture_output=True, text=True, check=True)
                seconds, peak_mb, samples = out.stdout.split()
                rows.append((n, int(samples), float(seconds), float(peak_mb)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=None, help="corpus-size file for part 3 (scripts/make_corpus.py)")
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--held-out", default="0,1,2,3,4,5", help="part 1: the bundled speakers enrolled in turn, each "
                        "into a state pretrained on the other five (default: %(default)s)")
    parser.add_argument("--enroll-recipe", choices=("quick", "fast", "product"), default="quick",
                        help="enrolment and revocation in parts 2 and 4 (see recipe())")
    parser.add_argument("--enroll-epochs", type=int, default=1, help="epochs of each quick enrolment")
    parser.add_argument("--replay", type=int, default=512, help="replay buffer cap in part 2 (samples in all; the product's is 4096)")
    parser.add_argument("--holdout", type=int, default=256, help="holdout buffer cap in part 2 (the product's is 2048)")
    parser.add_argument("--checkpoints", default=",".join(map(str, CHECKPOINTS)),
                        help="enrolled-speaker counts to measure at (default: %(default)s)")
    parser.add_argument("--skip-bundled", action="store_true")
    parser.add_argument("--skip-corpus", action="store_true")
    parser.add_argument("--skip-many", action="store_true", help="skip part 2 (many speakers, the longest)")
    parser.add_argument("--skip-suspend", action="store_true", help="skip part 4 (many suspensions)")
    parser.add_argument("--revoke-mode", choices=REVOKE_MODES, default="suspend",
                        help="how part 2 revokes at each checkpoint (the product's default is erase)")
    parser.add_argument("--no-control", action="store_true",
                        help="part 2 without its policy-off twin (for the slower recipes: it reads every branch)")
    args = parser.parse_args()
    checkpoints = tuple(int(n) for n in args.checkpoints.split(","))
    torch.set_num_threads(1)
    if not args.skip_bundled:
        print_table("Enrolling one bundled speaker, today vs quick (side by side)",
                    ("enrolment", "seconds", "epoch kept", "val acc, new speaker", "val acc, old speakers",
                     "test acc, new speaker", "test acc, old speakers", "test EER, 6 speakers", "test EER, 5 old speakers"),
                    bundled_enrolment(args.pretrain_epochs, tuple(int(s) for s in args.held_out.split(","))))
    if not args.skip_many:
        with tempfile.TemporaryDirectory() as folder:
            corpus = Path(folder) / "scale.h5"
            generate_corpus(corpus, GeneratorConfig(n_samples=(max(checkpoints) + 1) * 50,
                                                    n_speakers=max(checkpoints) + 1, events_median=1000, seed=7))
            rows = many_speakers(corpus, recipe(args.enroll_recipe, args.enroll_epochs), args.replay, args.holdout, checkpoints,
                                 control=not args.no_control, revoke_mode=args.revoke_mode)
        print_table(f"Many speakers (RSNN 140-128-N on a generated corpus of {max(checkpoints) + 1} speakers x 50 "
                    f"utterances; enrolment recipe {args.enroll_recipe}; revoke mode {args.revoke_mode}; buffer caps {args.replay} / {args.holdout}; thread CPU seconds; enroll = median "
                    "of the last 5 enrolments)",
                    ("speakers", "policy", "branches", "test acc, enrolled", "test acc, linear floor", "test EER, enrolled",
                     "test acc, readout refit", "test EER, readout refit", "refit s", "refit kept", "revoked claims accepted",
                     "revoked claims accepted, refit", "unheard claims accepted", "unheard claims accepted, refit",
                     "unheard voices", "verify ms/utt", "verify / 6 speakers", "verify J/utt", "state MiB", "buffers MiB", "fused MiB", "all held MiB", "booted MiB",
                     "enroll s", "enroll J, writes", "enroll J, training", "revoke s", "erasure rounds",
                     "revoke J, writes", "revoke J, training"), rows)
    if not args.skip_suspend:
        with tempfile.TemporaryDirectory() as folder:
            corpus = Path(folder) / "suspend.h5"
            generate_corpus(corpus, GeneratorConfig(n_samples=61 * 50, n_speakers=61, events_median=1000, seed=7))
            rows = many_suspensions(corpus, recipe(args.enroll_recipe, args.enroll_epochs), args.replay, args.holdout)
        print_table(f"Suspensions (60 speakers enrolled with the default policy, then suspend-revoked one after another, "
                    f"the policy on or off during the suspensions; "
                    f"buffer caps {args.replay} / {args.holdout})",
                    ("suspended", "policy", "branches", "verify ms/utt", "verify / 6 speakers", "state + fused MiB", "fused MiB",
                     "all held MiB"), rows)
    if args.corpus is not None and not args.skip_corpus:
        print_table(f"Loading N speakers of {args.corpus.name} (fresh cache; peak RSS growth)",
                    ("speakers", "samples", "seconds", "peak MiB"), corpus_loading(args.corpus, checkpoints))


if __name__ == "__main__":
    main()
