"""Synthesise a WAV folder of speakers nobody recorded, and encode it with the project's cochlea.

    python scripts/make_wav_speakers.py --wav-dir runs/wav_speakers --out runs/wav_speakers.h5
        [--speakers 6] [--takes 20] [--seed 0]

Issue 16 asks for "a cochlea-encoded WAV folder of your own making": audio the defaults never saw, going
through the same path as a user's recordings (WAV → ``neuro_rm.data.cochlea`` → SSC-layout file →
``neuro-rm demo --data``).  Nothing is downloaded and no recording is copied; every sample comes from a
small source-filter synthesiser written here:

* **Source**: a glottal pulse train at the speaker's pitch (phase-accumulated, so the pitch can glide),
  smoothed by a two-pole low-pass whose pole sets the speaker's spectral tilt, plus breath noise.
* **Filter**: three formant resonators in cascade (unit gain at 0 Hz), whose centre frequencies follow the
  phones of the word; the speaker's vocal-tract length scales every formant (a shorter tract, higher formants).
  Fricatives and stop bursts are noise through one resonator, added in parallel.
* **Words**: ten pseudo-words of 3-4 phones (vowels, nasals, liquids, fricatives, stops) stand in for the ten
  digits, so the files are named as FSDD's ``{word}_{speaker}_{take}.wav`` and the existing encoder reads them.
* **Per utterance**: pitch offset and glide, speaking rate, a slight formant shift, onset, loudness and
  background noise (10-30 dB SNR) are drawn afresh, so a speaker is a distribution, not a template.

Output depends only on the seed (each utterance has its own generator keyed by seed, speaker, word and take);
the encoding runs on one thread, as ``scripts/build_spiking_fsdd.py``, so the .h5 bytes repeat too.  The
default 6 speakers × 10 words × 20 takes (1,200 clips) take about a minute to write and encode on one core.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.io import wavfile
from scipy.signal import lfilter

from neuro_rm.data.fsdd import encode_fsdd, list_recordings

RATE = 8000  # Hz, as FSDD and the cochlea's default
BLOCK = 40  # samples (5 ms) per step of the control tracks
BANDWIDTHS = (60.0, 90.0, 150.0)  # formant bandwidths, Hz


@dataclass(frozen=True)
class Phone:
    """One segment: formants (Hz, adult reference tract), voicing and noise levels, noise band, length."""

    formants: tuple[float, float, float]
    voice: float
    noise: float
    noise_hz: float
    noise_bw: float
    seconds: float
    closure: float = 0.0  # silent lead-in of a stop, seconds


def _vowel(f1: float, f2: float, f3: float) -> Phone:
    return Phone((f1, f2, f3), 1.0, 0.0, 0.0, 1.0, 0.15)


PHONES = {
    # vowels: textbook adult formant averages
    "a": _vowel(730, 1090, 2440), "i": _vowel(270, 2290, 3010), "u": _vowel(300, 870, 2240),
    "e": _vowel(530, 1840, 2480), "o": _vowel(570, 840, 2410),
    # nasals and liquids: voiced, weaker, their own formant targets
    "m": Phone((250, 1000, 2200), 0.3, 0.0, 0.0, 1.0, 0.07), "n": Phone((250, 1500, 2500), 0.3, 0.0, 0.0, 1.0, 0.07),
    "l": Phone((360, 1300, 2800), 0.6, 0.0, 0.0, 1.0, 0.07), "r": Phone((420, 1300, 1600), 0.6, 0.0, 0.0, 1.0, 0.07),
    # fricatives: noise bands, formants carried over from the neighbours
    "s": Phone((500, 1500, 2500), 0.0, 0.5, 3300, 700, 0.11), "f": Phone((500, 1500, 2500), 0.0, 0.25, 1800, 2500, 0.1),
    # stops: a closure, then a short burst
    "p": Phone((400, 1000, 2300), 0.0, 0.8, 800, 600, 0.07, closure=0.05),
    "t": Phone((400, 1700, 2600), 0.0, 0.8, 3000, 900, 0.07, closure=0.05),
    "k": Phone((400, 1900, 2400), 0.0, 0.8, 1800, 500, 0.07, closure=0.05),
}
WORDS = ("sami", "tulo", "keni", "pafo", "lima", "nuka", "resu", "fito", "mosa", "kapu")


@dataclass(frozen=True)
class Voice:
    """What stays fixed for a speaker: pitch (Hz), formant scale (1 / relative tract length), glottal
    low-pass pole (spectral tilt), breathiness and speaking rate."""

    pitch: float
    tract: float
    tilt: float
    breath: float
    rate: float


def speaker_voice(seed: int, speaker: int) -> Voice:
    rng = np.random.default_rng([seed, speaker])
    return Voice(
        pitch=float(np.exp(rng.uniform(np.log(85), np.log(240)))),
        tract=float(rng.uniform(0.85, 1.18)),
        tilt=float(rng.uniform(0.88, 0.97)),
        breath=float(rng.uniform(0.02, 0.15)),
        rate=float(rng.uniform(0.85, 1.15)),
    )


def _resonator(hz: float, bw: float, peak: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two-pole resonator; unit gain at 0 Hz (cascade formants) or about unit gain at the peak (noise bands)."""
    r = np.exp(-np.pi * bw / RATE)
    theta = 2 * np.pi * min(hz, 0.45 * RATE) / RATE
    a = np.array([1.0, -2 * r * np.cos(theta), r * r])
    gain = (1 - r) * np.sqrt(1 - 2 * r * np.cos(2 * theta) + r * r) if peak else a.sum()
    return np.array([gain]), a


def _filter_blocks(x: np.ndarray, hz: np.ndarray, bw: float, peak: bool) -> np.ndarray:
    """Filter ``x`` through a resonator whose centre moves block by block (state carried across blocks)."""
    out = np.empty_like(x)
    state = np.zeros(2)
    for k, f in enumerate(hz):
        b, a = _resonator(float(f), bw, peak)
        out[k * BLOCK:(k + 1) * BLOCK], state = lfilter(b, a, x[k * BLOCK:(k + 1) * BLOCK], zi=state)
    return out


def _smooth(track: np.ndarray, width: int) -> np.ndarray:
    """Moving average along blocks (edges padded with the end values): coarticulation between phones."""
    pad = np.pad(track, [(width // 2, width - 1 - width // 2)] + [(0, 0)] * (track.ndim - 1), mode="edge")
    kernel = np.ones(width) / width
    return np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="valid"), 0, pad)


def utterance(voice: Voice, word: str, rng: np.random.Generator) -> np.ndarray:
    """One spoken ``word`` by ``voice`` as float samples at RATE, peak 1 before the loudness draw."""
    rate = voice.rate * float(np.exp(rng.normal(0, 0.1)))
    shift = voice.tract * float(np.exp(rng.normal(0, 0.03)))
    rows = []  # per block: F1, F2, F3, voicing, noise, noise centre, noise bandwidth
    for symbol in word:
        p = PHONES[symbol]
        closure = round(p.closure / rate * RATE / BLOCK)
        rows += [[*p.formants, 0.0, 0.0, p.noise_hz or 1000.0, p.noise_bw]] * closure
        n = max(1, round((p.seconds - p.closure) * float(np.exp(rng.normal(0, 0.08))) / rate * RATE / BLOCK))
        rows += [[*p.formants, p.voice, p.noise, p.noise_hz or 1000.0, p.noise_bw]] * n
    track = np.array(rows)
    track[:, :3] = _smooth(track[:, :3], 7) * shift
    track[:, 3:5] = _smooth(track[:, 3:5], 3)
    track[:, 5] *= shift
    lead, tail = (round(rng.uniform(0.05, 0.2) * RATE / BLOCK) for _ in range(2))
    silent = lambda k: np.repeat(np.r_[track[0, :3], 0, 0, track[0, 5:]][None], k, 0)  # noqa: E731
    track = np.concatenate([silent(lead), track, silent(tail)])
    n = len(track) * BLOCK
    per_sample = lambda col: np.interp(np.arange(n), np.arange(len(track)) * BLOCK + BLOCK / 2, track[:, col])  # noqa: E731

    # source: pitch with an utterance offset, a declining glide and slow wander, as a pulse train
    glide = np.linspace(1.08, 0.92, n) ** rng.uniform(0.5, 1.5)
    wander = np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    f0 = voice.pitch * float(np.exp(rng.normal(0, 0.06))) * glide * wander / wander.mean()
    phase = np.cumsum(f0 / RATE)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    glottal = lfilter([1.0], [1.0, -2 * voice.tilt, voice.tilt**2], pulses)
    glottal /= np.abs(glottal).max() + 1e-12
    source = (glottal + voice.breath * rng.normal(0, 1, n)) * per_sample(3)
    speech = source
    for j, bw in enumerate(BANDWIDTHS):
        speech = _filter_blocks(speech, track[:, j], bw, peak=False)
    hiss = rng.normal(0, 1, n) * per_sample(4)
    speech = speech + _filter_blocks(hiss, track[:, 5], float(np.median(track[:, 6])), peak=True)
    snr_db = rng.uniform(10, 30)
    speech = speech + rng.normal(0, 1, n) * np.sqrt(np.mean(speech**2)) * 10 ** (-snr_db / 20)
    return speech / (np.abs(speech).max() + 1e-12) * rng.uniform(0.3, 0.9)


def speaker_name(speaker: int) -> str:
    """Letters only, as the FSDD file-name pattern wants: voicea, voiceb, ..., voiceba, ..."""
    name = ""
    while True:
        name = chr(97 + speaker % 26) + name
        speaker //= 26
        if not speaker:
            return "voice" + name


def write_folder(wav_dir: Path, n_speakers: int, takes: int, seed: int, words: int = len(WORDS)) -> int:
    """Write ``n_speakers × words × takes`` WAV files (16-bit PCM); refuses a folder that already holds WAVs."""
    if not 1 <= words <= len(WORDS):
        raise ValueError(f"words must be in 1..{len(WORDS)}, got {words}")
    if n_speakers < 2 or takes < 1:
        raise ValueError(f"need at least 2 speakers and 1 take, got {n_speakers} and {takes}")
    wav_dir.mkdir(parents=True, exist_ok=True)
    if any(wav_dir.glob("*.wav")):
        raise FileExistsError(f"{wav_dir} already holds WAV files; choose an empty folder")
    for s in range(n_speakers):
        voice = speaker_voice(seed, s)
        for w in range(words):
            for k in range(takes):
                audio = utterance(voice, WORDS[w], np.random.default_rng([seed, s, w, k]))
                wavfile.write(wav_dir / f"{w}_{speaker_name(s)}_{k}.wav", RATE, np.round(audio * 32767).astype(np.int16))
    return n_speakers * words * takes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wav-dir", type=Path, default=Path("runs/wav_speakers"))
    parser.add_argument("--out", type=Path, help="also encode the folder into this SSC-layout .h5 file")
    parser.add_argument("--speakers", type=int, default=6)
    parser.add_argument("--words", type=int, default=len(WORDS))
    parser.add_argument("--takes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        count = write_folder(args.wav_dir, args.speakers, args.takes, args.seed, args.words)
    except (ValueError, FileExistsError) as err:
        parser.error(str(err))
    print(f"{args.wav_dir}: {count} WAV files")
    if args.out:
        torch.set_num_threads(1)  # the same bytes on every rebuild, as scripts/build_spiking_fsdd.py
        args.out.parent.mkdir(parents=True, exist_ok=True)
        stats = encode_fsdd(
            list_recordings(args.wav_dir), args.out, label_names=WORDS[:args.words],
            source=f"synthetic voices, scripts/make_wav_speakers.py --seed {args.seed}; "
                   "spike encoding by neuro_rm.data.cochlea",
        )
        print(f"{args.out}: {stats['samples']} recordings, {stats['events'] / stats['samples']:.0f} events "
              f"per recording, {stats['seconds']:.1f} s")


if __name__ == "__main__":
    main()
