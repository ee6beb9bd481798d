"""Write synthetic SSC-layout speaker files the defaults were never tuned on (issue 16's "data nobody tuned for").

    python scripts/make_speaker_files.py --out-dir runs/speaker_files [--seed 0]

Two files with statistics unlike the bundled spiking FSDD and unlike each other:

``hard6.h5``: 6 speakers × 300 recordings (1,800), 700 channels over 1.0 s, 10 words.  Every recording is a
word's sequence of formant-like bands; a speaker only moves the formants a little (a vocal-tract scale) and
adds a weak spectral tilt, a recording adds its own pitch-like shift, time stretch and onset jitter, and a
third of the events are background.  Speaker identity is a subtle cue under large word variation, as in the
issue's 6-speaker set where a linear probe reached 63 %.

``small5.h5``: 5 speakers × 40 recordings (200), 700 channels over 0.5 s, one word, sparse (about 150 events):
a small SSC-style file where pretraining is easy and revocation/enrolment must not damage the rest.

The files depend only on the seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from neuro_rm.data.spikefile import write_spike_file

CHANNELS = 700


def _recording(rng: np.random.Generator, formants: np.ndarray, width: float, tilt: float, events: int,
               duration: float, noise: float, shift_sd: float, stretch_sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Events of one recording: ``formants`` (segments × formants, in channels) visited in turn over ``duration``."""
    segments = len(formants)
    stretch = float(np.exp(rng.normal(0, stretch_sd)))
    onset = rng.uniform(0, 0.1 * duration)
    length = min(duration - onset, 0.8 * duration * stretch)
    n_signal = rng.poisson(events * (1 - noise))
    t = onset + np.sort(rng.uniform(0, length, n_signal))
    seg = np.minimum((t - onset) / length * segments, segments - 1).astype(int)
    which = rng.integers(formants.shape[1], size=n_signal)
    centre = formants[seg, which] + rng.normal(0, shift_sd)
    c = centre + rng.normal(0, width, n_signal) + tilt * rng.exponential(40, n_signal)
    n_noise = rng.poisson(events * noise)
    t = np.concatenate([t, rng.uniform(0, duration, n_noise)])
    c = np.concatenate([c, rng.uniform(0, CHANNELS, n_noise)])
    keep = (c >= 0) & (c < CHANNELS)
    order = np.argsort(t[keep], kind="stable")
    return t[keep][order], c[keep][order].astype(np.int64)


def make_file(path: Path, seed: int, n_speakers: int, per_speaker: int, n_words: int, events: int, duration: float,
              speaker_scale_sd: float, noise: float, shift_sd: float, stretch_sd: float, width: float, n_bins: int) -> None:
    rng = np.random.default_rng(seed)
    words = rng.uniform(60, 640, size=(n_words, 4, 3))  # word → 4 segments × 3 formants (channels)
    scales = np.exp(rng.normal(0, speaker_scale_sd, n_speakers))  # vocal-tract scale per speaker
    tilts = rng.uniform(-1, 1, n_speakers)
    times, units, labels, speakers = [], [], [], []
    for s in range(n_speakers):
        for i in range(per_speaker):
            word = i % n_words
            t, u = _recording(rng, words[word] * scales[s], width, tilts[s], events, duration, noise, shift_sd, stretch_sd)
            times.append(t)
            units.append(u)
            labels.append(word)
            speakers.append(s)
    write_spike_file(
        path, times, units, labels=labels, speakers=speakers, n_channels=CHANNELS,
        label_names=[f"w{k}" for k in range(n_words)], speaker_names=[f"syn{s}" for s in range(n_speakers)],
        attrs={"default_frames": {"n_bins": n_bins, "max_time": duration, "group": 5},
               "source": f"synthetic, scripts/make_speaker_files.py --seed {seed}"},
    )


FILES = {
    "hard6.h5": dict(n_speakers=6, per_speaker=300, n_words=10, events=600, duration=1.0, speaker_scale_sd=0.1,
                     noise=0.35, shift_sd=8.0, stretch_sd=0.15, width=14.0, n_bins=10),
    "small5.h5": dict(n_speakers=5, per_speaker=40, n_words=1, events=400, duration=0.5, speaker_scale_sd=0.3,
                      noise=0.3, shift_sd=10.0, stretch_sd=0.2, width=20.0, n_bins=10),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("runs/speaker_files"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for i, (name, spec) in enumerate(FILES.items()):
        make_file(args.out_dir / name, args.seed + i, **spec)
        print(args.out_dir / name)


if __name__ == "__main__":
    main()
