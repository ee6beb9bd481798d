"""What merging one enrolment branch into the cells costs: accuracy, cells moved, clipping and pulses.

The bundled speakers 0-4 are pretrained and deployed (as ``benchmarks/bench_scale.py`` part 1 starts); speaker 5
is enrolled with the default recipe; then its branch is folded and merged into the crossbars
(``learning.consolidation``, the move the default policy does not make).  Prints, per enrolment seed, the share
of the branch's ΔW entries beyond the write threshold (and the share of its energy they carry), and validation
accuracy of the new and the old speakers before and after the merge.  Validation data only.
Run: OMP_NUM_THREADS=1 python benchmarks/bench_merge.py [--pretrain-epochs 30] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from dataclasses import replace

import torch
from common import deployed_bundled

from neuro_rm import layers as hybrid
from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.learning.consolidation import Plan, apply_plan
from neuro_rm.learning.continual import ENROLL
from neuro_rm.learning.report import accuracy_on


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    base, splits, _, val = deployed_bundled(args.pretrain_epochs)
    state = tempfile.mkdtemp()
    base.save(state)
    old, new = list(range(5)), 5

    def acc(auth: SpeakerAuthenticator, labels: list[int]) -> float:
        return accuracy_on(auth.model, val.of_classes(labels))

    for seed in args.seeds:
        auth = SpeakerAuthenticator.load(state)
        auth.consolidation = None
        auth.enroll(splits.speaker_names[new], splits.train.select([new]).x, splits.val.select([new]).x, replace(ENROLL, seed=seed))
        branch = auth.registry[splits.speaker_names[new]].adapter
        before = acc(auth, [new]), acc(auth, old)
        for name, layer in hybrid.hybrid_layers(auth.model):
            delta = layer.delta_weight([branch]).reshape(layer.crossbar.out_features, -1)
            beyond = delta.abs() > layer.crossbar.write_threshold
            print(f"seed {seed}, {name}: ΔW entries beyond the write threshold {float(beyond.float().mean()):.3f}, "
                  f"carrying {float((delta * beyond).pow(2).sum() / delta.pow(2).sum()):.3f} of its energy")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            done = apply_plan(auth.model, Plan(fold=[branch], merge=True, fuse=False))
        hybrid.calibrate_cleared(auth.model, auth.buffers.replay.x)
        clipped = "; ".join(str(w.message).split(";")[0] for w in caught) or "no cell clipped"
        after = acc(auth, [new]), acc(auth, old)
        print(f"seed {seed}: validation accuracy new / old speakers {before[0]:.3f} / {before[1]:.3f} before the merge, "
              f"{after[0]:.3f} / {after[1]:.3f} after; {done['merge_pulses']} pulses; {clipped}", flush=True)


if __name__ == "__main__":
    main()
