"""The schedules the quick enrolment was chosen among, and those tried after review58, on held-out bundled speakers.

Each speaker in ``--held-out`` is enrolled into a state pretrained on the other five (as part 1 of
``bench_scale.py``) by each schedule in ``--variants``, for each seed; per run and as a mean per schedule:
thread CPU seconds, the epoch validation kept (-1: the start), new- and old-speaker accuracy and the six-speaker
verification EER, on validation (what a choice may read) and on test (which no choice should).

    OMP_NUM_THREADS=1 python benchmarks/probe_quick_enrolment.py --held-out 5,2 --seeds 0,1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import replace

import torch
from bench_scale import _acc, _eer, _held_out
from common import clock, print_table

from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.data import load_bundled_speakers
from neuro_rm.learning import TrainConfig
from neuro_rm.learning.continual import ENROLL, FAST_ENROLL

# name: (schedule, the row fitted on the frozen features first[, the readout refitted after])
VARIANTS = {
    "ENROLL": (ENROLL, False),
    "random row, 5 epochs at 1e-2": (TrainConfig(epochs=5, lr=1e-2, batch_size=64), False),
    "fitted row, 5 epochs at 1e-2": (TrainConfig(epochs=5, lr=1e-2, batch_size=64), True),
    "fitted row, 5 epochs at 3e-3": (TrainConfig(epochs=5, lr=3e-3, batch_size=64), True),
    "fitted row, 3 epochs at 1e-2": (TrainConfig(epochs=3, lr=1e-2, batch_size=64), True),
    "fitted row, 3 epochs at 3e-3": (TrainConfig(epochs=3, lr=3e-3, batch_size=64), True),
    "fitted row, 6 epochs at 3e-3": (TrainConfig(epochs=6, lr=3e-3, batch_size=64), True),
    "fitted row, 6 epochs at 1e-3": (TrainConfig(epochs=6, lr=1e-3, batch_size=64), True),
    "fitted row, 4 epochs at 3e-3, batch 32": (TrainConfig(epochs=4, lr=3e-3, batch_size=32), True),
    "fitted row, 5 epochs at 3e-3, batch 32": (TrainConfig(epochs=5, lr=3e-3, batch_size=32), True),
    "fitted row, 3 epochs at 2e-3, batch 16": (TrainConfig(epochs=3, lr=2e-3, batch_size=16), True),
    "FAST_ENROLL after the fitted row, then refit_readout": (FAST_ENROLL, True, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held-out", default="5,2")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--variants", default=",".join(str(i) for i in range(len(VARIANTS))),
                        help="indices into: " + "; ".join(f"{i} {name}" for i, name in enumerate(VARIANTS)))
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    chosen = [list(VARIANTS)[int(i)] for i in args.variants.split(",")]
    splits, old = load_bundled_speakers(), list(range(5))
    rows, results = [], {name: [] for name in chosen}
    for new in (int(s) for s in args.held_out.split(",")):
        names, train, val, test = _held_out(splits, new)
        base, _ = SpeakerAuthenticator.pretrain(names[:5], train.of_classes(old), val.of_classes(old),
                                                config=TrainConfig(epochs=args.pretrain_epochs, lr=1e-3))
        base.deploy()
        state = tempfile.mkdtemp()
        base.save(state)
        for seed in (int(s) for s in args.seeds.split(",")):
            for name in chosen:
                config, warm, *refit = VARIANTS[name]
                auth = SpeakerAuthenticator.load(state)
                auth.consolidation = None
                now = clock()
                start = now()
                report = auth.enroll(names[5], train.of_classes([5]).x, val.of_classes([5]).x, replace(config, seed=seed),
                                     warm_row=warm)
                if refit:
                    auth.refit_readout()
                figures = (now() - start, report.fit.best_epoch,
                           *(f(auth, split) for split in (val, test) for f in (lambda a, s: _acc(a, s.of_classes([5])),
                                                                              lambda a, s: _acc(a, s.of_classes(old)),
                                                                              lambda a, s: _eer(a, s, [*old, 5]))))
                results[name].append(figures)
                rows.append((f"{names[5]}, seed {seed}, {name}", *figures))
    rows += [(f"mean, {name}", *(statistics.fmean(c) for c in zip(*results[name], strict=True))) for name in chosen]
    print_table("Enrolment schedules on held-out bundled speakers", (
        "run", "seconds", "epoch kept", "val acc, new", "val acc, old", "val EER, 6 speakers", "test acc, new",
        "test acc, old", "test EER, 6 speakers"), rows)


if __name__ == "__main__":
    main()
