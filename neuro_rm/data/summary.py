"""What is in a data file: per-speaker counts, durations and spike rates (backs ``neuro-rm data``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import h5py
import numpy as np

from neuro_rm.data.faces import load_faces
from neuro_rm.data.spikefile import BLOCK, validate_file

SHOWN = 20  # speakers listed by format_summary (SSC has hundreds)


def _stats(values: np.ndarray) -> dict[str, float]:
    return {
        k: round(float(f(values)), 4)
        for k, f in (("mean", np.mean), ("median", np.median), ("min", np.min), ("max", np.max))
    }


def summarize_spikes(path: str | Path) -> dict[str, object]:
    """Samples per speaker and per label, events per sample, last-spike time and rates of an SSC-layout file;
    SpikeFileError (one line per problem) if any sample would be refused by the loader."""
    info = validate_file(path)
    counts, last = np.zeros(len(info), dtype=np.int64), np.zeros(len(info))
    with h5py.File(info.path, "r") as file:
        times = file["spikes/times"]
        for start in range(0, len(info), BLOCK):
            for i, t in enumerate(times[start : start + BLOCK], start):
                counts[i], last[i] = len(t), (float(np.max(t)) if len(t) else 0.0)
    rate = counts / np.maximum(last, 1e-9)
    speakers = Counter(info.speaker_names[int(s)] for s in info.speakers)
    labels = Counter(info.labels.tolist())
    return {
        "kind": "spikes",
        "path": str(info.path),
        "samples": len(info),
        "n_channels": info.n_channels,
        "speakers": dict(speakers.most_common()),
        "labels": {info.label_names[k]: n for k, n in sorted(labels.items())},
        "events_per_sample": _stats(counts),
        "last_spike_s": _stats(last),
        "max_time_s": round(float(last.max()), 4),
        "rate_hz": round(float(rate[counts > 0].mean()), 2) if counts.any() else 0.0,
        "rate_per_channel_hz": round(float(rate[counts > 0].mean() / info.n_channels), 3)
        if counts.any()
        else 0.0,
        "attrs": info.attrs,
    }


def summarize_faces(path: str | Path | None = None) -> dict[str, object]:
    """Persons, images per person and image shape of a faces .npz (default: the bundled one)."""
    faces = load_faces(path)
    per_person = np.bincount(faces.labels.numpy())
    return {
        "kind": "faces",
        "images": len(faces),
        "persons": int((per_person > 0).sum()),
        "images_per_person": _stats(per_person[per_person > 0]),
        "shape": list(faces.images.shape[1:]),
    }


def summarize(path: str | Path | None = None) -> dict[str, object]:
    """Summary of one file (.npz: faces, else an SSC-layout spike file), of every .h5 in a folder (e.g. an SSC
    download), or of both bundled sets when None.  ``rate_hz`` is events per second of a sample's span (0 to
    its last spike), averaged over samples."""
    if path is None:
        from neuro_rm.data.bundled import bundled_speech_path

        return {"speech": summarize_spikes(bundled_speech_path()), "faces": summarize_faces()}
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.h5"))
        if not files:
            raise FileNotFoundError(f"no .h5 files in {path}")
        return {f.name: summarize_spikes(f) for f in files}
    return summarize_faces(path) if path.suffix == ".npz" else summarize_spikes(path)


def format_summary(summary: dict[str, object]) -> str:
    """A readable table of :func:`summarize`'s output."""
    if "kind" not in summary:
        return "\n\n".join(format_summary(part) for part in summary.values())  # type: ignore[arg-type]
    if summary["kind"] == "faces":
        per = summary["images_per_person"]
        return (
            f"faces: {summary['images']} images of {summary['persons']} persons "
            f"({per['min']:.0f}-{per['max']:.0f} each), {'×'.join(map(str, summary['shape']))} pixels"
        )
    ev, last = summary["events_per_sample"], summary["last_spike_s"]
    lines = [
        f"spikes: {summary['path']}",
        f"  samples {summary['samples']}, channels {summary['n_channels']}, "
        f"speakers {len(summary['speakers'])}, labels {len(summary['labels'])}",
        f"  events/sample  mean {ev['mean']:.0f}  median {ev['median']:.0f}  min {ev['min']:.0f}  max {ev['max']:.0f}",
        f"  last spike (s) mean {last['mean']:.3f}  median {last['median']:.3f}  max {summary['max_time_s']:.3f}",
        f"  rate           {summary['rate_hz']:.0f} Hz per sample, {summary['rate_per_channel_hz']:.2f} Hz per channel",
        "  speaker               samples",
    ]
    speakers = list(summary["speakers"].items())
    lines += [f"  {name:<20} {n:>8}" for name, n in speakers[:SHOWN]]
    if len(speakers) > SHOWN:
        lines.append(
            f"  ... {len(speakers) - SHOWN} more speakers ({sum(n for _, n in speakers[SHOWN:])} samples)"
        )
    return "\n".join(lines)
