"""The ``neuro-rm`` command: one subcommand per job, ``--json`` for one machine-readable JSON object.

Lifecycle commands share a state folder (``--state``, default ``neuro_rm_state``): ``train`` creates it,
``deploy`` writes the crossbars, ``revoke``/``enroll``/``restore`` change only LoRA branches, ``verify``
answers claims.  Every change is saved as a crash-safe, signed snapshot, by one process at a time: a
command that changes the state holds its lock from loading to saving.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from neuro_rm.auth import REVOKE_MODES, SpeakerAuthenticator, UnsetPolicyWarning
from neuro_rm.auth.persistence import policy_record, revocations_at, revoked_in
from neuro_rm.characterize import characterize_device
from neuro_rm.crossbar import COMPENSATIONS, CrossbarConfig
from neuro_rm.device import PRESETS, DeviceConfig, preset_name
from neuro_rm.learning.attacks import AuditConfig
from neuro_rm.learning.consolidation import BranchBudget
from neuro_rm.learning.continual import ENROLL, FAST_ENROLL
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.loop import TrainConfig
from neuro_rm.learning.metrics import accuracy, predict_logits
from neuro_rm.learning.placement import resolve_device
from neuro_rm.learning.train import PRETRAIN
from neuro_rm.learning.unlearn import METHODS, UnlearnConfig
from neuro_rm.models.rsnn import RSNNConfig
from neuro_rm.statekey import ENV as KEY_ENV
from neuro_rm.statekey import refuse_inside
from neuro_rm.statelock import StateBusyError
from neuro_rm.store import CorruptStateError, StaleSnapshotWarning, has_state, writing
from neuro_rm.tasks.runner import jsonable

DEFAULT_STATE = Path("neuro_rm_state")
WRITERS = ("train", "deploy", "revoke", "enroll", "restore", "consolidate")  # commands that change a state: they take its lock
# Numeric options, wherever they appear: (lowest, highest); POSITIVE ones must also be > 0.
NUMBER_RANGES = {
    "seed": (0, 2**32 - 1), "epochs": (1, 10**4), "lr": (0, 10.0), "batch_size": (1, 10**6), "hidden": (1, 8192),
    "hold_out": (0, 10**6), "speakers": (1, 10**6), "tolerance": (0, 1e3), "levels": (2, 1 << 16), "rows": (1, 1 << 14),
    "cols": (1, 1 << 14), "wait": (0, 86_400.0), "shadows": (1, 100), "references": (1, 100), "relearn_seeds": (1, 100),
    "seeds": (2, 100), "max_branches": (0, 10**6), "merge_horizon": (0, 1e30), "wear_budget": (0, 1.0),
}
POSITIVE = ("lr", "tolerance", "merge_horizon", "wear_budget")


# ---------------------------------------------------------------------- output
def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_format(v)}" for k, v in value.items())
    return str(value)


def render_table(result: dict) -> str:
    width = max(len(k) for k in result)
    return "\n".join(f"{key:<{width}}  {_format(value)}" for key, value in result.items())


def _emit(result: dict, as_json: bool, render: Callable[[dict], str] = render_table) -> None:
    print(json.dumps(jsonable(result), indent=2, sort_keys=True) if as_json else render(result))


# ---------------------------------------------------------------------- data
def _splits(path: Path | None, n_speakers: int | None = None):  # noqa: ANN202 - data layer type
    from neuro_rm.data import load_bundled_speakers, load_speakers

    return load_bundled_speakers(n_speakers) if path is None else load_speakers(path, n_speakers)


def _labelled(frames) -> LabelledSet:  # noqa: ANN001
    return LabelledSet(frames.x, frames.y)


def _speaker_label(splits, name: str) -> int:  # noqa: ANN001
    if name not in splits.speaker_names:
        raise KeyError(f"speaker {name!r} is not in the data (speakers: {splits.speaker_names})")
    return splits.speaker_names.index(name)


def _state_data(auth: SpeakerAuthenticator, data: Path | None):  # noqa: ANN202
    source = data if data is not None else auth.metadata.get("data")
    return _splits(Path(source) if source else None, auth.metadata.get("n_speakers"))


# ---------------------------------------------------------------------- commands
def cmd_device(args: argparse.Namespace) -> None:
    overrides = {k: v for k, v in (("tolerance_us", args.tolerance), ("levels", args.levels)) if v is not None}
    config = PRESETS[args.preset](**overrides)
    _emit(characterize_device(config, args.rows, args.cols, args.seed), args.json)


def cmd_data(args: argparse.Namespace) -> None:
    from neuro_rm.data.summary import format_summary, summarize

    _emit(summarize(args.path), args.json, format_summary)


def cmd_train(args: argparse.Namespace) -> None:
    from neuro_rm.learning import distributed

    distributed.init_from_env(args.device)
    try:
        _train(args, distributed.rank())
    finally:
        distributed.leave()


def _train(args: argparse.Namespace, rank: int) -> None:
    if has_state(args.state) and not args.overwrite:
        raise ValueError(f"{args.state} holds a state already; training would replace its deployment, registry, "
                         "revocations and audit log: pass --overwrite to replace it")
    splits = _splits(args.data, args.speakers)
    names = splits.speaker_names
    if not 0 <= args.hold_out < len(names) - 1:
        raise ValueError(f"--hold-out must leave at least 2 of the {len(names)} speakers to train on")
    first = list(range(len(names) - args.hold_out))
    trained = set(names[: len(first)])
    if not args.discard_revocations:  # before any training: the save would refuse
        revoked = revoked_in(args.state) if args.overwrite else set()
        back = sorted(trained if revoked is None else (revoked | set(revocations_at(args.state))) & trained)
        if back:
            raise ValueError(f"{args.state} holds a state that revoked {', '.join(back)} (or cannot be read), and "
                             "training on this data would enrol them again with no record of the revocation: pass "
                             "--discard-revocations to replace it anyway, on the record")
    rsnn = RSNNConfig(n_inputs=splits.train.x.shape[-1], n_hidden=args.hidden, n_outputs=len(first))
    auth, fit = SpeakerAuthenticator.pretrain(
        names[: len(first)], _labelled(splits.train).of_classes(first), _labelled(splits.val).of_classes(first), rsnn,
        config=replace(_recipe_rate(_budget(PRETRAIN, args.epochs), args.lr), batch_size=args.batch_size, progress=not args.json),
        seed=args.seed,
        device=args.device,
    )
    auth.metadata = {"data": str(args.data.resolve()) if args.data else None, "n_speakers": args.speakers}
    test = _labelled(splits.test).of_classes(first)
    result = {"speakers": names[: len(first)], "held_out": names[len(first):], "best_epoch": fit.best_epoch,
              "averaged_epochs": fit.averaged_epochs, "lr": fit.lr,
              "val_accuracy": fit.best_score, "test_accuracy": accuracy(predict_logits(auth.model, test.x), test.y),
              "trainable_params": fit.trainable_params, "steps": fit.steps}
    if rank == 0:
        from neuro_rm.learning.baseline import linear_baseline

        linear = linear_baseline(_labelled(splits.train).of_classes(first), _labelled(splits.val).of_classes(first), test)
        result |= {"baseline_linear_accuracy": linear.accuracy, "margin_over_linear": result["test_accuracy"] - linear.accuracy}
        auth.save(args.state, overwrite=args.overwrite, discard_revocations=args.discard_revocations)
        _emit(result, args.json)


def cmd_deploy(args: argparse.Namespace) -> None:
    auth = SpeakerAuthenticator.load(args.state, device=args.device)
    result = auth.deploy(DeviceConfig.taox_1t1r(tolerance_us=args.tolerance), seed=args.seed)
    auth.calibrate()
    auth.save(args.state)
    _emit(result, args.json)


def cmd_revoke(args: argparse.Namespace) -> None:
    twice = sorted({name for name in args.names if args.names.count(name) > 1})
    if twice:
        raise ValueError(f"revoke: {', '.join(twice)} named more than once")
    auth = SpeakerAuthenticator.load(args.state, device=args.device)
    suspended = auth.suspended() if args.mode == "erase" else []
    upgrade = bool(suspended) and any(name in suspended for name in args.names)
    if upgrade and sorted(args.names) != sorted(suspended):
        raise ValueError(f"an erasure of suspended voices erases every one of them together ({', '.join(suspended)}): name "
                         f"them all, as in: neuro-rm revoke {' '.join(suspended)} --mode erase")
    if not upgrade:
        if len(args.names) > 1:
            raise ValueError("revoke takes one speaker, or every suspended speaker at once with --mode erase")
        auth.require_enrolled(args.names[0])  # fail before loading data
    splits = _state_data(auth, args.data)
    train = LabelledSet.concat(_labelled(splits.train), _labelled(splits.val))
    samples = {name: train.of_classes([_speaker_label(splits, name)]).x for name in args.names}
    config = UnlearnConfig(method=args.method, train=replace(_budget(UnlearnConfig().train, args.epochs), lr=args.lr))
    if upgrade:
        report = auth.erase_suspended(samples, config=config)
    else:
        report = auth.revoke(args.names[0], samples[args.names[0]], config=config, mode=args.mode)
    auth.calibrate()
    auth.save(args.state)
    _emit({"speaker": ", ".join(args.names), "trainable_params": report.trainable_params,
           "holdout_accuracy": report.holdout_accuracy, **report.extra}, args.json)


def cmd_audit_forgetting(args: argparse.Namespace) -> None:
    from neuro_rm.readout import readout_of
    from neuro_rm.tasks.speaker import SpeakerData, audit_revocation, train_speaker_model

    auth = SpeakerAuthenticator.load(args.state, device=args.device)
    if not auth.deployed:
        raise ValueError("audit-forgetting works on a deployed state; run `neuro-rm deploy` first")
    rec = auth.record(args.speaker)
    splits = _state_data(auth, args.data)
    data = SpeakerData(splits.speaker_names, _labelled(splits.train), _labelled(splits.val), _labelled(splits.test))
    keep = [auth.record(name).label for name in auth.enrolled if name != args.speaker]
    for name in [args.speaker, *auth.enrolled]:
        if auth.record(name).label != _speaker_label(splits, name):
            raise ValueError(f"speaker {name!r} has row {auth.record(name).label} in the state but label "
                             f"{_speaker_label(splits, name)} in the data; audit with the data the state was built on")
    targets = {"state": auth.model}
    if args.old_state is not None:  # a copy from before the revocation: its voiceprint and the positive control
        old = SpeakerAuthenticator.load(args.old_state, anchored=False, device=args.device)  # older than its folder's latest, by design
        row = old.record(args.speaker).label
        voiceprint = old.model.head.copy_row(row)
        targets["original"] = old.model
    else:  # the current row of a revoked speaker is erased: branch-off needs the old one, so it is skipped
        voiceprint = None
    pretrain = _recipe_rate(_budget(PRETRAIN, args.epochs), args.lr if args.lr is not None else _pretrain_rate(auth))
    rsnn = replace(auth.model.config, n_outputs=max(auth.model.head.n_classes, rec.label + 1))
    readout = readout_of(auth.model)  # the attack's own models are read as the audited array is
    if "original" not in targets:  # positive control: a model of the same recipe that learnt the voice
        targets["trained_with"] = train_speaker_model(data, sorted(keep + [rec.label]), rsnn, pretrain, args.seed + 4000,
                                                      auth.device_config, "control: trained with the voice", readout)[0]
    targets["retrain"], retrained = train_speaker_model(data, keep, rsnn, pretrain, args.seed + 4001, auth.device_config,
                                                        "gold standard: retrained without the voice", readout)
    audit = AuditConfig(shadows=args.shadows, references=args.references, relearn_seeds=args.relearn_seeds)
    report = audit_revocation(data, targets, rec.label, keep, rsnn, voiceprint, pretrain, auth.device_config,
                              audit, seed=args.seed, crossbar=readout)
    _emit({"speaker": args.speaker, "status": rec.status,
           "voiceprint": "old state" if args.old_state is not None else "none (give --old-state for branch-off)",
           "lr": pretrain.lr if not pretrain.lr_candidates else "chosen on validation", "retrain_lr": retrained.lr,
           **report}, args.json)


def _pretrain_rate(auth: SpeakerAuthenticator) -> float | None:
    """The learning rate the state's backbone was pretrained at, as its audit log records it (None for a log
    that names none): the attack's shadow, control and retrained models are trained as the audited one was."""
    rates = [entry["details"].get("lr") for entry in auth.audit.entries
             if entry.get("action") == "pretrain" and isinstance(entry.get("details"), dict)]
    rate = rates[-1] if rates else None
    usable = isinstance(rate, int | float) and not isinstance(rate, bool) and math.isfinite(rate) and rate > 0
    return float(rate) if usable else None


def cmd_enroll(args: argparse.Namespace) -> None:
    auth = SpeakerAuthenticator.load(args.state, device=args.device)
    if args.speaker in auth.registry:
        raise ValueError(f"speaker {args.speaker!r} exists already ({auth.registry[args.speaker].status})")
    splits = _state_data(auth, args.data)
    label = _speaker_label(splits, args.speaker)
    recipe = FAST_ENROLL if args.quick else ENROLL
    recipe = replace(_budget(recipe, args.epochs), lr=recipe.lr if args.lr is None else args.lr)
    report = auth.enroll(args.speaker, splits.train.select([label]).x, splits.val.select([label]).x, recipe,
                         warm_row=args.quick)
    auth.calibrate()
    auth.save(args.state)
    test = splits.test.select([label])
    new_acc = float((predict_logits(auth.model, test.x).argmax(1) == auth.registry[args.speaker].label).float().mean())
    _emit({"speaker": args.speaker, "recipe": {"epochs": recipe.epochs, "lr": recipe.lr, "min_steps": recipe.min_steps,
                                               "warm_row": args.quick},
           "trainable_params": report.trainable_params, "holdout_accuracy": report.holdout_accuracy,
           "new_speaker_test_accuracy": new_acc, **report.extra}, args.json)


def cmd_restore(args: argparse.Namespace) -> None:
    auth = SpeakerAuthenticator.load(args.state, device=args.device)
    report = auth.restore(TrainConfig(epochs=args.epochs, lr=args.lr))
    auth.calibrate()
    auth.save(args.state)
    _emit({"trainable_params": report.trainable_params, "holdout_accuracy": report.holdout_accuracy, **report.extra}, args.json)


def cmd_consolidate(args: argparse.Namespace) -> None:
    auth = SpeakerAuthenticator.load(args.state, device=args.device)
    settings: dict[str, object] = {}
    if args.max_branches is not None:
        settings["max_branches"] = args.max_branches
    if args.wear_budget is not None:
        settings["wear_budget"] = args.wear_budget
    if args.merge_horizon is not None or args.no_merge:
        settings["horizon_inferences"] = args.merge_horizon
    if args.off and settings:
        raise ValueError(f"--off sets no policy; it cannot go with {', '.join(sorted(settings))}")
    if args.off:
        auth.consolidation = auth.unset_custom_policy = None
    elif settings:  # the state's own budget with these settings; any other policy gives way to a budget
        base = auth.consolidation if type(auth.consolidation) is BranchBudget else BranchBudget()
        auth.consolidation, auth.unset_custom_policy = replace(base, **settings), None
    refit = {}
    if args.refit_readout:  # first: refused (a suspension in force), it leaves the policy unrun and nothing saved
        report = auth.refit_readout()
        refit = {key: report.extra[key] for key in ("rows", "kept", "holdout_score_before", "holdout_score_after", "write_bits")}
        if report.extra["kept"]:
            refit["threshold"] = auth.calibrate()["threshold"]  # the rows the threshold was set on have changed
        refit = {"readout_refit": refit}
    if auth.consolidation is None:
        done: dict[str, object] = {"folded": [], "merged": False}
    else:  # now, as the device would when idle
        done = auth.consolidate(auth.consolidation)
        if done["merged"]:  # the cells changed: the acceptance threshold follows, as after every write
            auth.calibrate()
    if args.off or settings or done["folded"] or done["merged"] or refit:
        auth.save(args.state)
    _emit({"policy": policy_record(auth), **done, **refit}, args.json)  # as the state keeps it


def cmd_verify(args: argparse.Namespace) -> None:
    auth = SpeakerAuthenticator.load(args.state, device=args.device)
    split, _, index = args.sample.partition(":")
    if split not in ("train", "val", "test") or not (index.isascii() and index.isdigit()):
        raise ValueError(f"SAMPLE must be SPLIT:INDEX with SPLIT train, val or test (e.g. test:12), got {args.sample!r}")
    frames = getattr(_state_data(auth, args.data), split)
    if int(index) >= len(frames):
        raise ValueError(f"{split} split has {len(frames)} samples; index {index} is out of range")
    _emit(auth.verify(frames.x[int(index)], args.claim), args.json)


def _demo_may_replace(state: Path, overwrite: bool) -> None:
    """The demo replaces a state it wrote itself (``metadata.origin``); any other only with ``--overwrite``."""
    if overwrite or not has_state(state):
        return
    try:
        origin = SpeakerAuthenticator.load(state).metadata.get("origin")
    except ValueError as error:
        origin = f"unreadable ({str(error).splitlines()[0]})"
    if origin != "demo":
        raise ValueError(f"{state} holds a state the demo did not write ({origin or 'made by train'}); running the demo "
                         "would replace its registry, revocations and audit log: pass --overwrite, or another --out")


def cmd_demo(args: argparse.Namespace) -> None:
    from neuro_rm.tasks.speaker import DemoConfig, SpeakerData, fast, run_speaker_demo, run_speaker_demo_seeds

    if args.out is not None:  # before minutes of work, not after: each state the run will save
        for state in [args.out / "state"] if args.seeds is None else [args.out / f"seed_{args.seed + k}" / "state"
                                                                      for k in range(args.seeds)]:
            _demo_may_replace(state, args.overwrite)
    splits = _splits(args.data, args.speakers)
    data = SpeakerData(splits.speaker_names, _labelled(splits.train), _labelled(splits.val), _labelled(splits.test))
    config = DemoConfig(seed=args.seed, device=PRESETS[args.preset](), crossbar=_readout(args))
    config = fast(config) if args.fast else config
    if args.seeds is None:
        report = run_speaker_demo(data, config, args.out, progress=not args.json)
    else:
        report = run_speaker_demo_seeds(data, config, args.seeds, args.out, progress=not args.json)
    _emit(report, args.json, render_demo)


def cmd_face_demo(args: argparse.Namespace) -> None:
    from neuro_rm.tasks.face import format_result, run_face_demos

    result = run_face_demos(args.model, args.out, args.fast, args.seed, progress=not args.json, ideal=args.ideal,
                            device=PRESETS[args.preset](), persons=args.persons)
    _emit(result, args.json, format_result)


def _readout(args: argparse.Namespace) -> CrossbarConfig:
    """The demo's periphery: realistic or ``--ideal``, read through ``--compensation``."""
    return replace(CrossbarConfig.ideal() if args.ideal else CrossbarConfig(), drift_compensation=args.compensation)


def cmd_diffusion_demo(args: argparse.Namespace) -> None:
    from neuro_rm.tasks.diffusion import render_report, run_diffusion_demo

    report = run_diffusion_demo(args.out, fast=args.fast, seed=args.seed, progress=not args.json, ideal=args.ideal)
    _emit(report, args.json, render_report)


def cmd_energy(args: argparse.Namespace) -> None:
    from neuro_rm import energy_report, work

    if args.state is not None:  # a saved state: its inference, counted on its holdout buffer, priced every way
        with _key_file(args.key_file):
            auth = SpeakerAuthenticator.load(args.state)
        if not auth.deployed:
            raise ValueError(f"{args.state} is not deployed yet: run neuro-rm deploy --state {args.state} first")
        holdout = auth.buffers.holdout.of_classes(auth.active_labels)
        result = energy_report.inference_keys(work.measure(lambda: predict_logits(auth.model, holdout.x)))
    else:  # the speaker lifecycle, run here: every stage's training joules, writes and inference
        from neuro_rm.tasks.speaker import DemoConfig, SpeakerData, fast, run_speaker_demo

        if args.out is not None:
            _demo_may_replace(args.out / "state", args.overwrite)  # the lifecycle saves its state there too
        splits = _splits(args.data, args.speakers)
        data = SpeakerData(splits.speaker_names, _labelled(splits.train), _labelled(splits.val), _labelled(splits.test))
        config = DemoConfig(seed=args.seed)
        report = run_speaker_demo(data, fast(config) if args.fast else config, args.out, progress=not args.json)
        result = {key: value for key, value in report.items() if key.startswith("energy.")}
    _emit(result, args.json)


def render_demo(report: dict) -> str:
    reference = report.get("reference", {})
    rows = [("step", "metric", "measured", "reference")]
    for key, value in report.items():
        if key in ("reference", "speakers") or isinstance(value, dict):
            continue
        step, _, metric = key.partition(".")
        ref = reference.get(key)
        rows.append((step, metric or key, _format(value), "" if ref is None else _format(ref)))
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def _build_state(args: argparse.Namespace, deploy: bool = True) -> None:
    """What a user running ``faults`` on a fresh clone wants: train and deploy a model with the defaults first
    (saying so), rather than an error.  Their reports go to stderr, so stdout stays the one JSON object."""
    data = [] if args.data is None else ["--data", str(args.data)]
    steps = [["train", "--state", str(args.state), "--seed", str(args.seed), *data],
             ["deploy", "--state", str(args.state), "--seed", str(args.seed)]][: 2 if deploy else 1]
    print(f"neuro-rm {args.command}: no state folder at {args.state}; building one first with the defaults: "
          + " && ".join(f"neuro-rm {' '.join(step)}" for step in steps), file=sys.stderr)
    with contextlib.redirect_stdout(sys.stderr):
        for step in steps:
            sub = build_parser().parse_args(step)
            sub.func(sub)


def cmd_faults(args: argparse.Namespace) -> None:
    from neuro_rm.reliability import fault_sweep, preset_sweeps

    presets = None if args.preset is None else sorted(PRESETS) if args.preset == "both" else [args.preset]
    if not args.state.exists():
        _build_state(args, deploy=presets is None)  # with --preset each preset is deployed in memory
    auth = SpeakerAuthenticator.load(args.state, device=args.device)
    splits = _state_data(auth, args.data)

    def progress(row: dict) -> None:
        print(f"  {row['label']}: {row['accuracy']:.3f} -> {row['restored_accuracy']:.3f} "
              f"(net repair {row['net_repair']:+.3f}, gap to control {row['repair']:+.3f})", file=sys.stderr)

    sweep = {"restore": TrainConfig(epochs=args.epochs, lr=2e-3, patience=4), "on_row": None if args.json else progress,
             "train": _labelled(splits.train)}
    if presets is None:
        results = {preset_name(auth.device_config) if auth.deployed else "none": fault_sweep(auth, _labelled(splits.test), **sweep)}
    else:
        results = preset_sweeps(auth, _labelled(splits.test), presets, seed=args.seed, **sweep)
    result = {"preset": next(iter(results)), **next(iter(results.values()))} if len(results) == 1 else {"presets": results}
    _emit(result, args.json, lambda r: "\n\n".join(
        f"preset {name}\n" + render_table(
            {"clean_accuracy": one["clean_accuracy"], "control (restore on the healthy array)": one["control_accuracy"]}
            | {row["label"]: f"{row['accuracy']:.3f} -> {row['restored_accuracy']:.3f} (repair {row['repair']:+.3f})"
               for row in one["rows"]})
        for name, one in results.items()))


RECIPE = "the recipe's, with more epochs on small data sets"


def _recipe_rate(config: TrainConfig, lr: float | None) -> TrainConfig:
    """The recipe's learning rate, chosen on validation among its candidates, or exactly ``lr`` if given."""
    return config if lr is None else replace(config, lr=lr, lr_candidates=())


def _budget(config: TrainConfig, epochs: int | None) -> TrainConfig:
    """The recipe, whose step budget grows on small sets, or exactly ``epochs`` epochs when the user says so."""
    return config if epochs is None else replace(config, epochs=epochs, min_steps=0)


# ---------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse's own refusals (``--epochs abc``, an unknown option) as one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="neuro-rm", description=__doc__.splitlines()[0])
    command = functools.partial(_command, parser.add_subparsers(dest="command", required=True))
    _task_commands(command)
    _state_commands(command)
    return parser


def _command(sub: argparse._SubParsersAction, name: str, func: Callable, help: str, state: bool = False,
             data: bool = False) -> argparse.ArgumentParser:
    """A subcommand with the options every command has, and those of commands on a state or a data file."""
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda[:N] (default: %(default)s)")
    if state:
        p.add_argument("--state", type=Path, default=DEFAULT_STATE, help="state folder (default: %(default)s)")
        p.add_argument("--key-file", type=Path, default=None,
                       help=f"key that signs the state (default: ${KEY_ENV}, else ~/.config/neuro_rm/state.key)")
    if name in WRITERS:
        p.add_argument("--wait", type=float, default=0.0,
                       help="seconds to wait for another neuro-rm working on this state (default: refuse at once)")
    if data:
        p.add_argument("--data", type=Path, default=None, help="SSC-layout HDF5 file (default: bundled spiking FSDD)")
    p.set_defaults(func=func)
    return p


def _task_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """The device and data look-ups, the three task demos and the energy figures."""
    p = command("device", cmd_device, "characterise the simulated RM cell: program an array, measure it")
    p.add_argument("--preset", choices=sorted(PRESETS), default="taox_1t1r", help="cited cell preset (default: the paper's TaOx)")
    p.add_argument("--tolerance", type=float, default=None, help="write-verify tolerance, µS (default: the preset's)")
    p.add_argument("--levels", type=int, default=None, help="programmable conductance levels (default: the preset's)")
    p.add_argument("--rows", type=int, default=128)
    p.add_argument("--cols", type=int, default=128)

    p = command("data", cmd_data, "summarise an SSC-layout file, or the bundled data sets")
    p.add_argument("path", nargs="?", type=Path, default=None)

    p = command("demo", cmd_demo, "the main job: train, deploy, revoke, enroll, restore, verify on speaker data", data=True)
    p.add_argument("--speakers", type=int, default=None, help="keep the N speakers with most samples (default: all)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for plots and the final state")
    p.add_argument("--fast", action="store_true", help="two epochs per step: a smoke run, not results")
    p.add_argument("--overwrite", action="store_true", help="replace a state at OUT/state that the demo did not write")
    _readout_options(p)
    p.add_argument("--compensation", choices=COMPENSATIONS, default="none",
                   help="drift compensation the whole lifecycle reads through, so every branch trains under it "
                        "(default: %(default)s; each stage also reports the others, switched on after the fact)")
    p.add_argument("--seeds", type=int, default=None,
                   help="run the lifecycle with seeds --seed .. --seed+N-1; every figure as mean, sd and 95%% t-interval")

    p = command("face-demo", cmd_face_demo,
                "faces: learn 5 Olivetti persons, forget one, add one, on a CNN or MLP-Mixer, with energy")
    p.add_argument("--model", choices=["cnn", "mixer", "both"], default="cnn", help="network to run the lifecycle on")
    p.add_argument("--out", type=Path, default=None, help="folder for face_demo_<model>.json")
    p.add_argument("--fast", action="store_true", help="one fold, few epochs: a smoke run, not results")
    p.add_argument("--persons", type=int, default=None,
                   help="learn Olivetti persons 0..N-1 first, forget person 1, add person N (default 5, the paper's)")
    _readout_options(p)

    p = command("diffusion-demo", cmd_diffusion_demo,
                "stylized generation: learn 6 styles, forget 2 and learn 4 new ones with LoRA on a crossbar DiT")
    p.add_argument("--out", type=Path, default=Path("runs/diffusion"), help="folder for sample grids and diffusion_demo.json")
    p.add_argument("--fast", action="store_true", help="tiny sizes, a few steps: a smoke run, not results")
    _readout_options(p)

    p = command("energy", cmd_energy, "energy ratios of the speaker task under every technology node and GPU "
                "assumption, and the joules of every training stage", data=True)
    p.add_argument("--state", type=Path, default=None,
                   help="price a saved, deployed state's inference instead of running the lifecycle")
    p.add_argument("--key-file", type=Path, default=None, help=f"key that signs the state (default: ${KEY_ENV})")
    p.add_argument("--speakers", type=int, default=None, help="keep the N speakers with most samples (default: all)")
    p.add_argument("--out", type=Path, default=None, help="folder for the lifecycle's plots, report and state")
    p.add_argument("--fast", action="store_true", help="two epochs per step: a smoke run, not results")
    p.add_argument("--overwrite", action="store_true", help="replace a state at OUT/state that the demo did not write")


def _train_command(command: Callable[..., argparse.ArgumentParser]) -> None:
    """``train``: the lifecycle's first step, which makes a state folder (or replaces one)."""
    p = command("train", cmd_train, "digital pretraining of the speaker RSNN (torchrun-ready)", state=True, data=True)
    p.add_argument("--speakers", type=int, default=None)
    p.add_argument("--hold-out", type=int, default=1, help="last speakers left out, to enroll later")
    p.add_argument("--overwrite", action="store_true", help="replace the state folder's existing state")
    p.add_argument("--discard-revocations", action="store_true",
                   help="save a state that enrols again speakers a state saved in this folder revoked (the new "
                   "audit log names them)")
    p.add_argument("--hidden", type=int, default=RSNNConfig.n_hidden, help="recurrent LIF neurons")
    p.add_argument("--epochs", type=int, default=None, help=f"exactly this many epochs (default: {RECIPE})")
    p.add_argument("--lr", type=float, default=None, help="exactly this learning rate (default: the recipe's, "
                   f"chosen on validation among {', '.join(f'{lr:g}' for lr in (PRETRAIN.lr, *PRETRAIN.lr_candidates))})")
    p.add_argument("--batch-size", type=int, default=64)


def _state_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """The step-by-step speaker lifecycle on a saved state, and the fault sweep."""
    _train_command(command)
    p = command("deploy", cmd_deploy, "write the backbone into crossbars with write-and-verify", state=True)
    p.add_argument("--tolerance", type=float, default=DeviceConfig.tolerance_us)

    p = command("revoke", cmd_revoke, "forget a speaker: erase (default) writes the forgetting into the cells; "
                "suspend masks the voice with a digital branch (reversible by design unless a merging policy writes it into "
                "the cells)", state=True, data=True)
    p.add_argument("names", nargs="+", metavar="speaker",
                   help="the speaker to revoke; to turn suspensions into erasures, every suspended speaker")
    p.add_argument("--mode", choices=REVOKE_MODES, default="erase",
                   help="erase: the cells are rewritten, so switching branches off does not bring the voice back (costs RM writes); "
                   "suspend: cheap LoRA mask, undone by switching it off (once consolidated, by switching store off); "
                   "an erasure of an enrolled speaker is refused while any suspension is in force: erase the suspended "
                   "speakers first, all together (default: %(default)s)")
    p.add_argument("--method", choices=METHODS, default=UnlearnConfig.method, help="unlearning target (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help=f"exactly this many epochs (default: {RECIPE})")
    p.add_argument("--lr", type=float, default=UnlearnConfig().train.lr)

    p = command("audit-forgetting", cmd_audit_forgetting, "attack a revocation: branch-off with an old voiceprint, "
                "relearning from k recordings, shadow-model membership inference", state=True, data=True)
    p.add_argument("speaker")
    p.add_argument("--old-state", type=Path, default=None,
                   help="a copy of the state from before the revocation (the attacker's old voiceprint)")
    p.add_argument("--epochs", type=int, default=None, help=f"epochs of each shadow and control model (default: {RECIPE})")
    p.add_argument("--shadows", type=int, default=AuditConfig.shadows)
    p.add_argument("--references", type=int, default=AuditConfig.references)
    p.add_argument("--relearn-seeds", type=int, default=AuditConfig.relearn_seeds)
    p.add_argument("--lr", type=float, default=None, help="exactly this learning rate for the shadow, control and "
                   "retrained models (default: the rate the state was pretrained at, from its audit log; the recipe's "
                   "choice on validation where the log names none)")

    p = command("enroll", cmd_enroll, "learn a new speaker with a LoRA branch and a new readout row", state=True, data=True)
    p.add_argument("speaker")
    p.add_argument("--quick", action="store_true",
                   help="the device-sized recipe: the new readout row fitted on the frozen features, then FAST_ENROLL "
                        f"({FAST_ENROLL.epochs} epochs at lr {FAST_ENROLL.lr:g}): a fraction of the default's time, "
                        "for a higher verification EER (README, Scale)")
    p.add_argument("--epochs", type=int, default=None, help=f"exactly this many epochs (default: {RECIPE})")
    p.add_argument("--lr", type=float, default=None, help=f"learning rate (default: the recipe's: {ENROLL.lr:g}; --quick's: {FAST_ENROLL.lr:g})")

    p = command("restore", cmd_restore, "train a restore branch against write noise, drift or stuck cells", state=True)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)

    p = command("consolidate", cmd_consolidate, "set the state's consolidation policy (saved with it) and run it now, "
                "as the device would when idle: fold the oldest branches into store beyond a budget; settings not "
                "given keep the state's own (a custom policy gives way to a BranchBudget)", state=True)
    p.add_argument("--max-branches", type=int, default=None,
                   help=f"live speaker branches kept before the oldest are folded (default policy: {BranchBudget.max_branches})")
    merging = p.add_mutually_exclusive_group()
    merging.add_argument("--merge-horizon", type=float, default=None,
                         help="also write store into the cells when the reads saved over this many input vectors "
                         "outweigh the write (a merged suspension can no longer be undone by switching branches)")
    merging.add_argument("--no-merge", action="store_true", help="never write store into the cells (the default policy)")
    p.add_argument("--wear-budget", type=float, default=None,
                   help=f"share of the cells' endurance a merge may wear the most-worn cell to (default {BranchBudget.wear_budget})")
    p.add_argument("--off", action="store_true", help="no policy: branches pile up until one is set again")
    p.add_argument("--refit-readout", action="store_true",
                   help="first refit every enrolled speaker's readout row together on the replay buffer (digital rows, "
                        "no cell written; kept only if the holdout buffer's score rises; refused while a "
                        "suspension is in force), then run the policy: each enrolment fits its own row against rows "
                        "that never met its voice")

    p = command("verify", cmd_verify, "accept or reject a sample's claim to be a speaker", state=True, data=True)
    p.add_argument("sample", help="SPLIT:INDEX of the data file, e.g. test:12")
    p.add_argument("--claim", required=True)

    p = command("faults", cmd_faults, "accuracy under device faults, with and without a restore branch", state=True, data=True)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--preset", choices=[*sorted(PRESETS), "both"], default=None,
                   help="sweep on this cell preset (or both), deployed in memory from a trained, undeployed state "
                   "(default: the state's own array)")


def _readout_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ideal", action="store_true", help="read the crossbars without read noise, DAC or ADC "
                   "(the report still gives each stage's accuracy under both readouts)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="taox_1t1r", help="cited cell preset (default: %(default)s)")


def check_numbers(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse numeric options outside their range (NaN and infinities included), naming the option."""
    for name, (low, high) in NUMBER_RANGES.items():
        value = getattr(args, name, None)
        if value is not None and not (math.isfinite(value) and low <= value <= high and (value > 0 or name not in POSITIVE)):
            bound = f"> 0 and <= {high:g}" if name in POSITIVE else f"from {low:g} to {high:g}"
            print(f"neuro-rm {args.command}: error: --{name.replace('_', '-')}: must be {bound}, got {value}", file=sys.stderr)
            raise SystemExit(2)


@contextmanager
def _key_file(path: Path | None) -> Iterator[None]:
    """``--key-file`` reaches load and save the way ``$NEURO_RM_KEY_FILE`` does, for this command only."""
    before = os.environ.get(KEY_ENV)
    if path is not None:
        os.environ[KEY_ENV] = str(path)
    try:
        yield
    finally:
        if path is not None and before is None:
            del os.environ[KEY_ENV]
        elif path is not None:
            os.environ[KEY_ENV] = before


# commands whose model, data and simulated crossbars follow --device (the others refuse a GPU)
ON_DEVICE = frozenset({"train", "deploy", "revoke", "enroll", "restore", "consolidate", "verify"})


def _run(args: argparse.Namespace) -> None:
    """Run the command; one that changes a state holds the state's lock throughout (rank 0 under torchrun)."""
    if getattr(args, "state", None) is not None:  # before any work: a key inside the folder would travel with every copy
        refuse_inside(args.state, args.key_file)
    locked = args.command in WRITERS and os.environ.get("RANK", "0") == "0"  # torchrun's rank 0 alone saves
    lock = writing(args.state, args.wait, args.command == "train", _notice(args.command)) if locked else nullcontext()
    where = resolve_device(args.device)
    if where.type != "cpu" and args.command not in ON_DEVICE:
        raise ValueError(f"--device {args.device}: `{args.command}` runs on the CPU only so far")
    with _key_file(getattr(args, "key_file", None)), lock:
        args.func(args)


def _notice(command: str) -> Callable[[str], None]:
    return lambda message: print(f"neuro-rm {command}: {message}", file=sys.stderr, flush=True)


def _error_lines(error: BaseException) -> list[str]:
    """One line per problem: a message listing several problems (``data`` on a bad file) keeps each."""
    if isinstance(error, KeyError) and error.args:
        return [str(error.args[0])]
    if isinstance(error, OSError) and error.strerror:
        return [f"{error.strerror}: {error.filename}" if error.filename else error.strerror]
    return str(error).split("\n") if str(error) else [type(error).__name__]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named after the command, as its other refusals are
        parser.exit(2, f"neuro-rm {args.command}: error: unrecognized arguments: {' '.join(unknown)}\n")
    check_numbers(parser, args)
    caught: list[warnings.WarningMessage] = []
    try:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", StaleSnapshotWarning)
                warnings.simplefilter("always", UnsetPolicyWarning)
                _run(args)
        finally:  # outside the recording context: showing a warning inside it would record it again
            for warning in caught:
                if issubclass(warning.category, (StaleSnapshotWarning, UnsetPolicyWarning)):  # the user's to act on
                    print(f"neuro-rm {args.command}: warning: {warning.message}", file=sys.stderr)
                else:
                    warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    except BrokenPipeError:  # the reader stopped early (``| head``): not an error of the command
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush finds no pipe
        return 0
    except (ValueError, KeyError, OSError, StateBusyError, CorruptStateError) as error:
        for line in _error_lines(error):
            print(f"neuro-rm {args.command}: error: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
