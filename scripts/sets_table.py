"""Issue 16's table: one column per speaker set, from the folders ``neuro-rm demo --seeds N --out DIR`` wrote.

Every cell is mean ± sd over seeds with the 95 % t-interval, read from each run's ``report.json``; the bars
(RSNN at or above the linear floor, retained speakers no more than 2 points below pretraining after either
revocation) are judged here from the same figures, so the verdict printed beside the table is computed rather
than written by hand (a column run with another recipe than the demo's default, a ``--fast`` smoke run's,
says so in its header and beside each verdict): **met** when the whole interval clears the bar, **missed** when the whole interval
lies below it, **not determined** otherwise (with a few seeds a mean that clears the bar says little), each
with the mean and how many seeds fall below.

    python scripts/sets_table.py "WAV seed 0=/tmp/runs/wav6" "small5=/tmp/runs/small5" ...

A label given twice pools its folders' seeds into one column (a set's seeds run in parts, in parallel:
``--seed 0 --seeds 5`` and ``--seed 5 --seeds 5``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from neuro_rm.learning.seeds import CHOICES, aggregate, flatten, formatted, mean_sd_ci
from neuro_rm.tasks.runner import code_digest
from neuro_rm.tasks.speaker import DemoConfig, recipe

ROWS = (
    ("pretrain.accuracy", "RSNN, test accuracy", "{:.2%}"),
    ("baseline_linear.accuracy", "logistic regression, same frames", "{:.2%}"),
    ("pretrain.margin_over_linear", "RSNN − logistic regression (points)", "{:+.2%}"),
    ("deploy.accuracy", "deployed, after write-verify", "{:.2%}"),
    ("pretrain.retain_accuracy", "retained speakers, pretrained (digital)", "{:.2%}"),
    ("revoke.retain_before", "retained speakers, deployed, before revocation", "{:.2%}"),
    ("revoke.erase.retain_accuracy", "retained speakers after revocation, erase", "{:.2%}"),
    ("revoke.suspend.retain_accuracy", "retained speakers after revocation, suspend", "{:.2%}"),
    ("revoke.erase.retain_change_from_pretrain", "erase: retained change from pretraining (points)", "{:+.2%}"),
    ("revoke.suspend.retain_change_from_pretrain", "suspend: retained change from pretraining (points)", "{:+.2%}"),
    ("revoke.erase.retain_change_from_masked_pretrain", "erase: the same, revoked score masked in pretraining (points)", "{:+.2%}"),
    ("revoke.suspend.retain_change_from_masked_pretrain", "suspend: the same, revoked score masked in pretraining (points)", "{:+.2%}"),
    ("revoke.forget_accuracy", "revoked speaker", "{:.2%}"),
    ("verify.eer", "EER, revoked voice as impostor", "{:.2%}"),
    ("verify.min_dcf", "minDCF, p_target 0.01", "{:.3f}"),
    ("enroll.new_accuracy", "enrolled speaker", "{:.2%}"),
    ("enroll.old_accuracy", "old speakers after enrolment", "{:.2%}"),
    ("revoke.unseen_accept_rate", "never-enrolled voice accepted as someone, after erase", "{:.2%}"),
    ("revoke.revoked_accept_rate", "revoked voice accepted as someone, after erase", "{:.2%}"),
    ("baseline_retrain.revoked_accept_rate", "revoked voice accepted, model retrained without it", "{:.2%}"),
    ("revoke.impostor_accept_rate", "impostor trials of enrolled speakers accepted, after erase", "{:.2%}"),
    ("verify.snorm.eer", "EER after s-norm", "{:.2%}"),
    ("restore.net_repair", "restore, net of its fault-free control (points)", "{:+.2%}"),
    ("revoke.erase.branch_off_auc", "attack: branch off, bias-free row, erased model (AUC)", "{:.3f}"),
    ("revoke.erase.branch_off_auc_zero_row", "the same with a zero row (control), erased model", "{:.3f}"),
    ("revoke.retrain.branch_off_auc", "the same attack on the retrained model", "{:.3f}"),
    ("revoke.erase.membership_auc", "membership AUC, erased model", "{:.3f}"),
    ("revoke.retrain.membership_auc", "membership AUC, retrained model", "{:.3f}"),
    ("revoke.membership.null_sd", "membership AUC's scatter between models that never heard the voice (sd)", "{:.3f}"),
)

# the revocation against the gold standard (the model retrained without the voice), paired within each seed: a seed's
# pretrained model, test split and revoked voice are shared by both, so their difference leaves that scatter out
# (name, minuend, subtrahend, format)
PAIRED = (
    ("retrained without the voice: retained change from pretraining (points)", "baseline_retrain.retain_accuracy",
     "pretrain.retain_accuracy", "{:+.2%}"),
    ("erase − retrained, retained speakers (points)", "revoke.erase.retain_accuracy", "baseline_retrain.retain_accuracy", "{:+.2%}"),
    ("membership AUC, erased − retrained", "revoke.erase.membership_auc", "revoke.retrain.membership_auc", "{:+.3f}"),
)

# (key, lowest acceptable value, what the bar says)
BARS = (
    ("pretrain.margin_over_linear", 0.0, "RSNN at or above the linear floor"),
    ("revoke.erase.retain_change_from_pretrain", -0.02, "erase leaves retained speakers no more than 2 points below pretraining"),
    ("revoke.suspend.retain_change_from_pretrain", -0.02, "suspend leaves retained speakers no more than 2 points below pretraining"),
    # like for like (runs since the key exists): pretraining judged with the revoked voice's score masked
    ("revoke.erase.retain_change_from_masked_pretrain", -0.02, "the same for erase, against pretraining with the revoked score masked"),
    ("revoke.suspend.retain_change_from_masked_pretrain", -0.02, "the same for suspend, against pretraining with the revoked score masked"),
)


# settings each seed chooses for itself (on its validation split): parts may differ there, as seeds do
PER_SEED_CHOICES = tuple(c for c in CHOICES if not c.endswith("."))
_AGGREGATED = (".mean", ".sd", ".ci95", ".per_seed")


# numbers that are settings of the run, not measurements: parts must agree on them wherever they show no spread
# (a measured figure that happens to tie over a part's few seeds, a rate over 155 clips, must not block pooling;
# a step or sample count is the only trace a batch size leaves in a report)
SETTINGS = ("recipe.", "schedule.", "params.", "baseline_linear.", "deploy.cells", "endurance.endurance_cycles",
            "restore.write_noise_us", "energy.training_steps.", "energy.training_samples.", "energy.sram_bytes")
# what the machine said, not how the run was made: parts from two machines may pool
MACHINE = ("energy.gpu_nvml",)


def _held_constant(aggregated: dict) -> dict[str, object]:
    """What a part's seeds all agree on: the values kept once (speakers, preset, readout settings, mode) and the
    settings among the numbers with no spread (recipe, model size, schedule, the deterministic linear baseline),
    per-seed choices apart."""
    held = {k: v for k, v in aggregated.items() if not k.endswith(_AGGREGATED) and k not in ("seeds", *PER_SEED_CHOICES, *MACHINE)}
    for key, sd in aggregated.items():
        name = key[: -len(".sd")]
        if key.endswith(".sd") and sd == 0 and (name.startswith(SETTINGS) or name.endswith(".trainable_params")):
            held[name] = aggregated[name + ".mean"]
    return held


def _keys(aggregated: dict) -> set[str]:
    return {next((k[: -len(end)] for end in _AGGREGATED if k.endswith(end)), k) for k in aggregated}


def load_run(folders: Path | list[Path]) -> tuple[dict, list[dict]]:
    """The aggregated report of a ``--seeds`` run and each seed's own report, flattened.  Several folders (one
    set's seeds run in parts, ``--seed K --seeds N`` each) are pooled: their seeds' reports aggregated afresh;
    refused where a seed comes twice or where the parts disagree on a setting each holds constant over its
    seeds (``_held_constant``: recipe keys listed first) or report different figures (other code).  Seeds are listed in order."""
    folders = [folders] if isinstance(folders, Path) else list(folders)
    parts = []
    for folder in folders:
        summary = folder / "report.json"
        if not summary.is_file():
            raise FileNotFoundError(f"{summary} is missing: pass a folder written by `neuro-rm demo --seeds N --out DIR`")
        aggregated = json.loads(summary.read_text())
        if "seeds" not in aggregated:
            raise ValueError(f"{summary} is one run's report, not a --seeds run's: pass a folder written by "
                             "`neuro-rm demo --seeds N --out DIR`")
        parts.append((aggregated, [json.loads((folder / f"seed_{s}" / "report.json").read_text()) for s in aggregated["seeds"]]))
    if len(parts) == 1:
        aggregated, reports = parts[0]
        return aggregated, [flatten(r) for r in reports]
    seeds = [s for aggregated, _ in parts for s in aggregated["seeds"]]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"the folders {[str(f) for f in folders]} share seeds ({seeds}): each seed may come once")
    held, keys = [_held_constant(a) for a, _ in parts], [_keys(a) for a, _ in parts]
    missing = set.union(*keys) - set.intersection(*keys)  # reported by some parts only: reports of other code

    def values(key: str) -> list:
        return [h[key] for h in held if key in h]

    differing = [key for key in sorted(set().union(*held) | missing, key=lambda k: (not k.startswith("recipe."), k))
                 if key in missing or any(v != values(key)[0] for v in values(key))]
    if differing:
        listed = "; ".join(f"{key!r}: {values(key)} (in {sum(key in k for k in keys)} of {len(parts)} parts)" for key in differing[:4])
        raise ValueError(f"the folders {[str(f) for f in folders]} are not runs of one set and recipe: {len(differing)} "
                         f"setting(s) differ, {listed}")
    pooled = sorted(((s, r) for (a, rs) in parts for s, r in zip(a["seeds"], rs, strict=True)), key=lambda sr: sr[0])
    seeds, reports = [s for s, _ in pooled], [r for _, r in pooled]
    return aggregate(reports, seeds), [flatten(r) for r in reports]


def verdict(aggregated: dict, seeds: list[dict], key: str, floor: float) -> str:
    """Met / missed / not determined by the interval against ``floor``, with the mean and each seed, in points
    ("–" for a run whose reports predate ``key``)."""
    if aggregated.get(f"{key}.mean") is None:
        return "–"
    values = [float(s[key]) for s in seeds]
    per_seed = ", ".join(f"{100 * v:+.1f}" for v in values)
    mean, (lo, hi) = aggregated[f"{key}.mean"], aggregated[f"{key}.ci95"]
    if lo >= floor:
        judged = "met"
    elif hi < floor:
        judged = "**missed**"
    else:
        judged = "**not determined**"
    below = sum(v < floor for v in values)
    return (f"{judged}: mean {100 * mean:+.2f} [{100 * lo:+.1f}, {100 * hi:+.1f}]; seeds: {per_seed} "
            f"({below} of {len(values)} below)")


def off_recipe(aggregated: dict) -> list[str]:
    """The recipe settings in which a run differs from the demo's default (a ``--fast`` smoke run's, say), as
    ``name=value``, then the digest of all its settings where that differs (another batch size, learning rate,
    periphery ...) in a report of this code; empty for the default recipe and for reports from before the recipe keys."""
    default = recipe(DemoConfig())
    held = {key: aggregated.get(key, aggregated.get(key + ".mean")) for key in default}  # kept once; averaged before session 31
    off = [f"{key[len('recipe.'):]}={held[key]:g}" for key, value in default.items()
           if key != "recipe.config" and held[key] is not None and held[key] != value]
    config = held["recipe.config"]
    # a digest is this code's default or not only for reports of this code: a field added since changes every digest
    judged = config not in (None, default["recipe.config"]) and aggregated.get("code.digest") == code_digest()
    return off + ([f"settings digest {config} (default {default['recipe.config']})"] if judged else [])


def _column(label: str, aggregated: dict, off: list[str]) -> str:
    return f"{label}, {len(aggregated['seeds'])} seeds" + (f" (not the default recipe: {', '.join(off)})" if off else "")


def paired(seeds: list[dict], minuend: str, subtrahend: str, fmt: str) -> str:
    """Mean ± sd over seeds of each seed's ``minuend`` − ``subtrahend``, with the t-interval and each seed's
    difference ("–" where a seed's report lacks either key)."""
    if any(s.get(minuend) is None or s.get(subtrahend) is None for s in seeds):
        return "–"
    differences = [float(s[minuend]) - float(s[subtrahend]) for s in seeds]
    mean, sd, (lo, hi) = mean_sd_ci(differences)
    # under the key "paired" (neither a share nor an AUC) the interval is cut only as a signed change in points
    cell, interval = formatted({"paired.mean": mean, "paired.sd": sd, "paired.ci95": (lo, hi)}, "paired", fmt)
    each = ", ".join(f"{100 * d:+.1f}" if fmt.endswith("%}") else f"{d:+.2f}" for d in differences)
    return f"{cell} [{interval}]; seeds: {each}"


def render(runs: list[tuple[str, Path | list[Path]]]) -> str:
    loaded = [(label, *load_run(folder)) for label, folder in runs]
    offs = [off_recipe(a) for _, a, _ in loaded]
    marks = ["(not the default recipe) " if off else "" for off in offs]
    head = "| figure (key) | " + " | ".join(_column(label, a, off) for (label, a, _), off in zip(loaded, offs, strict=True)) + " |"
    lines = [head, "|---" * (len(loaded) + 1) + "|"]
    for key, name, fmt in ROWS:
        cells = []
        for _, aggregated, _ in loaded:
            if aggregated.get(f"{key}.mean") is not None:  # null: not measured in these runs
                cell, interval = formatted(aggregated, key, fmt)
                cells.append(f"{cell} [{interval}]")
            else:
                cells.append("–")
        lines.append(f"| {name} (`{key}`) | " + " | ".join(cells) + " |")
    lines += ["", "| paired within each seed | " + " | ".join(label for label, _, _ in loaded) + " |", "|---" * (len(loaded) + 1) + "|"]
    for name, minuend, subtrahend, fmt in PAIRED:
        lines.append(f"| {name} (`{minuend}` − `{subtrahend}`) | " + " | ".join(paired(s, minuend, subtrahend, fmt) for _, _, s in loaded) + " |")
    lines += ["", "| bar | " + " | ".join(label for label, _, _ in loaded) + " |", "|---" * (len(loaded) + 1) + "|"]
    for key, floor, says in BARS:
        lines.append(f"| {says} | " + " | ".join(mark + verdict(a, s, key, floor) for mark, (_, a, s) in zip(marks, loaded, strict=True)) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=DIR",
                        help="a set's label (no '=' in it) and the --out folder of its --seeds run (a label given twice pools the folders)")
    args = parser.parse_args()
    runs: dict[str, list[Path]] = {}
    for item in args.runs:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            parser.error(f"{item!r}: give each run as LABEL=DIR")
        runs.setdefault(label, []).append(Path(folder))
    print(render(list(runs.items())), end="")


if __name__ == "__main__":
    main()
