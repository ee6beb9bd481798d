"""One lifecycle, several seeds: every figure as mean ± sd with a 95 % interval.

Single-seed figures on ~100 test utterances per speaker hide how much a rerun moves them; results on
SHD/SSC-like tasks are reported over seeds.  The interval is Student's t over the per-seed figures
(n − 1 degrees of freedom): it says where the mean over seeds of this recipe lies, not how one run varies
with its test set (the demo's bootstrap ``verify.eer_ci`` says that).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from scipy import stats

INTERVAL = "95 % Student-t interval over seeds (n - 1 degrees of freedom) of the per-seed figure"


def flatten(report: dict, prefix: str = "") -> dict[str, object]:
    """Nested dicts as dotted keys (``energy.inference_j_per_sample.gpu``)."""
    out: dict[str, object] = {}
    for key, value in report.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _numeric(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def mean_sd_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, tuple[float, float]]:
    """Mean, sample sd and the two-sided Student-t interval of the mean of ``values`` (at least 2)."""
    n = len(values)
    if n < 2:
        raise ValueError(f"an interval over seeds needs at least 2 values, got {n}")
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean, sd, (mean - half, mean + half)


# numbers that are settings, chosen or calibrated per seed, not measurements: a mean of two learning rates is
# neither; keys ending in ``.`` cover every key under them (the readout's settings, the recipe's)
CHOICES = ("pretrain.lr", "baseline_retrain.lr", "pretrain.best_epoch", "pretrain.averaged_epochs", "verify.threshold", "readout.", "recipe.")


def aggregate(reports: Sequence[dict], seeds: Sequence[int], skip: Iterable[str] = ("reference",),
              choices: Iterable[str] = CHOICES) -> dict[str, object]:
    """Per key: ``<key>.mean``, ``<key>.sd``, ``<key>.ci95`` over ``reports`` (one per seed).

    A key is aggregated when it is a finite number in every report and not one of ``choices``; a value
    equal in every report (the speakers, the revoke mode) is kept once; anything else (per-seed lists such
    as a bootstrap interval, a learning rate chosen per seed) is listed per seed as ``<key>.per_seed``.
    Keys in ``skip`` are taken from the first report as they are.
    """
    choices = set(choices)
    if len(reports) != len(seeds) or len(reports) < 2:
        raise ValueError(f"need one report per seed and at least 2 seeds, got {len(reports)} reports for seeds {list(seeds)}")
    skip = set(skip)
    flat = [flatten({k: v for k, v in r.items() if k not in skip}) for r in reports]
    keys = list(dict.fromkeys(k for r in flat for k in r))
    out: dict[str, object] = {"seeds": list(seeds), "interval": INTERVAL}
    for key in keys:
        values = [r.get(key) for r in flat]
        chosen = key in choices or any(c.endswith(".") and key.startswith(c) for c in choices)
        if not chosen and all(_numeric(v) for v in values):
            mean, sd, (lo, hi) = mean_sd_ci([float(v) for v in values])
            out[f"{key}.mean"], out[f"{key}.sd"], out[f"{key}.ci95"] = mean, sd, [lo, hi]
        elif all(v == values[0] for v in values):
            out[key] = values[0]
        else:
            out[f"{key}.per_seed"] = values
    for key in skip:
        if key in reports[0]:
            out[key] = reports[0][key]
    return out


def over_seeds(run: Callable[[int], dict], seeds: Sequence[int]) -> dict[str, object]:
    """``run(seed)`` for every seed, aggregated (``aggregate``)."""
    return aggregate([run(seed) for seed in seeds], seeds)


def _format(fmt: str, value: float) -> str:
    """``fmt`` applied to ``value``; a count's mean over seeds is a float, shown rounded like the count."""
    return f"{value:,.0f}" if fmt == "{:,}" else fmt.format(value)


def _cell(fmt: str, mean: float, sd: float) -> str:
    """``fmt`` applied to mean and sd; a percentage sd is in points so '97.1% ± 0.4' reads as intended, and an sd
    is never signed (a signed change's format shows '+0.109 ± 0.189')."""
    if fmt.endswith("%}"):
        return f"{fmt.format(mean)} ± {100 * sd:.2f}"
    return f"{_format(fmt, mean)} ± {_format(fmt.replace('+', ''), sd)}"


def _within_range(key: str, fmt: str, lo: float, hi: float) -> tuple[float, float]:
    """A t-interval cut to what the figure can be: a share to [0, 1] ([-1, 1] for a signed change in points),
    a normalised detection cost (minDCF) and an attack's AUC to [0, 1], a ratio (``×``) to at least 0."""
    name = key.rsplit(".", 1)[-1]
    if name == "min_dcf" or "auc" in name.split("_"):
        return max(lo, 0.0), min(hi, 1.0)
    if fmt.endswith("×"):
        return max(lo, 0.0), hi
    if not fmt.endswith("%}"):
        return lo, hi
    floor = -1.0 if "+" in fmt else 0.0
    return max(lo, floor), min(hi, 1.0)


def formatted(aggregated: dict, key: str, fmt: str) -> tuple[str, str]:
    """``key``'s mean ± sd over seeds and its t-interval (cut to the figure's possible range), each as text."""
    mean, sd, (lo, hi) = aggregated[f"{key}.mean"], aggregated[f"{key}.sd"], aggregated[f"{key}.ci95"]
    lo, hi = _within_range(key, fmt, lo, hi)
    return _cell(fmt, mean, sd), f"{_format(fmt, lo)} – {_format(fmt, hi)}"


def markdown_table(aggregated: dict, rows: Sequence[tuple[str, str, str]], reference: dict | None = None) -> str:
    """``rows`` (key, label, format) as a Markdown table of mean ± sd over seeds, the t-interval (a share's cut
    to its possible range), and the reference figure; a key missing from ``aggregated`` is left out."""
    n = len(aggregated["seeds"])
    lines = [f"| step | mean ± sd over {n} seeds | 95 % interval | reference |", "|---|---|---|---|"]
    for key, label, fmt in rows:
        if f"{key}.mean" not in aggregated:
            continue
        ref = (reference or {}).get(key)
        cell, interval = formatted(aggregated, key, fmt)
        lines.append(f"| {label} | {cell} | {interval} | {'' if ref is None else fmt.format(ref)} |")
    return "\n".join(lines) + "\n"
