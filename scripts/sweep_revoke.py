"""Retained speakers through revocation and enrolment on small data: the previous recipe against the current one.

    OMP_NUM_THREADS=1 python scripts/sweep_revoke.py --data runs/speaker_files/small5.h5 --seeds 0 1 2

Per seed: pretrain with the current recipe (``PRETRAIN``), deploy, then on copies revoke speaker 1 in each mode
and enroll the held-back speaker after the erase, once with the previous recipe (per-sample retain term and
selection, step budgets that shrink with the data set, erasure's readout rows re-learnt without weight decay) and
once with the current one (balanced retain terms, ``min_steps``, weight decay 3e-2 on the re-learnt rows).  Retained accuracy is given on the validation split (what chose the current recipe) and on the
test split (reported only), each as the change from the deployed model, in points.
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import replace
from pathlib import Path

import torch

from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.data import load_bundled_speakers, load_speakers
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.erase import EraseConfig
from neuro_rm.learning.report import accuracy_on
from neuro_rm.learning.seeds import mean_sd_ci
from neuro_rm.learning.unlearn import UnlearnConfig
from neuro_rm.models.rsnn import ERASE_SYNAPSES, RSNNConfig
from neuro_rm.tasks.speaker import DemoConfig

NEW = {"unlearn": UnlearnConfig(), "readout": EraseConfig().readout, "enroll": DemoConfig().enroll}
OLD = {"unlearn": UnlearnConfig(balanced=False, train=replace(UnlearnConfig().train, min_steps=0), impostor_sd=1.0),
       "readout": replace(EraseConfig().readout, min_steps=0, patience_steps=None, weight_decay=0.0),
       "enroll": replace(DemoConfig().enroll, min_steps=0)}


def one_seed(splits, seed: int) -> dict[str, float]:  # noqa: ANN001
    names = splits.speaker_names
    k = len(names)
    old, gone, new = list(range(k - 1)), 1, k - 1
    keep = [c for c in old if c != gone]
    sets = {s: LabelledSet(getattr(splits, s).x, getattr(splits, s).y) for s in ("train", "val", "test")}
    auth, _ = SpeakerAuthenticator.pretrain(names[:-1], sets["train"].of_classes(old), sets["val"].of_classes(old),
                                            RSNNConfig(n_inputs=sets["train"].x.shape[-1], n_outputs=k - 1), seed=seed)
    auth.deploy(seed=seed)
    base = {s: accuracy_on(auth.model, sets[s].of_classes(keep)) for s in ("val", "test")}
    out = {"deployed.val": base["val"], "deployed.test": base["test"]}
    for recipe, cfg in (("old", OLD), ("new", NEW)):
        for mode in ("suspend", "erase"):
            who = copy.deepcopy(auth)
            erase = EraseConfig(unlearn=cfg["unlearn"], layers=ERASE_SYNAPSES, readout=cfg["readout"])
            who.revoke(names[gone], sets["train"].of_classes([gone]).x, retain=sets["train"].of_classes(keep),
                       config=cfg["unlearn"], mode=mode, erase=erase)
            for s in ("val", "test"):
                out[f"{recipe}.{mode}.retain_change.{s}"] = accuracy_on(who.model, sets[s].of_classes(keep)) - base[s]
            out[f"{recipe}.{mode}.forget.test"] = accuracy_on(who.model, sets["test"].of_classes([gone]))
            if mode == "erase":
                who.enroll(names[new], sets["train"].of_classes([new]).x, sets["val"].of_classes([new]).x, cfg["enroll"])
                for s in ("val", "test"):
                    out[f"{recipe}.enroll.old_change.{s}"] = accuracy_on(who.model, sets[s].of_classes(keep)) - base[s]
                out[f"{recipe}.enroll.new.test"] = accuracy_on(who.model, sets["test"].of_classes([new]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="SSC-layout file (default: the bundled FSDD)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None, help="JSON of every seed's figures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    splits = load_bundled_speakers() if args.data is None else load_speakers(args.data, cache=False)
    runs = []
    for seed in args.seeds:
        runs.append(one_seed(splits, seed))
        print(json.dumps({"seed": seed, **runs[-1]}), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(runs, indent=1))
    print("| figure (points; change from deployed) | mean ± sd | per seed |\n|---|---|---|")
    for key in runs[0]:
        values = [100 * r[key] for r in runs]
        spread = f"{mean_sd_ci(values)[0]:+.1f} ± {mean_sd_ci(values)[1]:.1f}" if len(values) > 1 else f"{values[0]:+.1f}"
        print(f"| {key} | {spread} | {', '.join(f'{v:+.1f}' for v in values)} |")


if __name__ == "__main__":
    main()
