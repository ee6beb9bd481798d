"""A generated SSC-layout corpus of any size, for scale tests and benchmarks (no recordings needed).

Each utterance is a word spoken by a speaker.  The word sets most of the channel profile (as in SSC,
where the word dominates what the cochlea sees); the speaker adds a per-speaker channel tilt (a
"formant" bump at a speaker-specific place), a speaking rate (utterance length) and a per-speaker
event rate, so speaker identity is learnable from frames but is not the loudest signal.  Speakers hold
unequal sample counts (log-normal), so the top-k selection of ``data.speakers`` has something to rank.
Event counts per utterance are log-normal; ``GeneratorConfig.events_median`` is an assumption of this
generator (SSC files hold some thousands of events per utterance), not a fit to SSC.

Every utterance is drawn from its own generator seeded by (seed, index), so the file's content does not
depend on the chunk size, and it is written in chunks so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from neuro_rm.data.spikefile import DEFAULT_CHANNELS, write_spike_chunks


@dataclass(frozen=True)
class GeneratorConfig:
    """Size and character of a generated corpus (defaults: the size of SSC's training split)."""

    n_samples: int = 75_000
    n_speakers: int = 250
    n_words: int = 35
    n_channels: int = DEFAULT_CHANNELS
    events_median: float = 3000.0
    events_spread: float = 0.35  # σ of log(event count) within a speaker
    speaker_share: float = 0.35  # fraction of a speaker's events drawn from their own channel profile
    max_time: float = 1.4
    chunk: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if not (1 <= self.n_speakers <= self.n_samples and self.n_words >= 1 and self.n_channels >= 8):
            raise ValueError(f"need 1 <= n_speakers <= n_samples, n_words >= 1, n_channels >= 8, got {self}")
        if not (self.events_median >= 1 and self.events_spread >= 0 and 0 <= self.speaker_share <= 1):
            raise ValueError(f"need events_median >= 1, events_spread >= 0, 0 <= speaker_share <= 1, got {self}")
        if self.chunk < 1 or not self.max_time > 0:
            raise ValueError(f"need chunk >= 1 and max_time > 0, got {self}")


def _bumps(rng: np.random.Generator, n_channels: int, count: int, width: float) -> np.ndarray:
    """A channel profile: ``count`` Gaussian bumps at random places, normalised to sum 1."""
    channels = np.arange(n_channels)
    centres = rng.uniform(0, n_channels, count)
    profile = np.exp(-0.5 * ((channels[None, :] - centres[:, None]) / width) ** 2).sum(0) + 0.02
    return profile / profile.sum()


@dataclass
class _Corpus:
    labels: np.ndarray
    speakers: np.ndarray
    word_profiles: np.ndarray  # (n_words, n_channels)
    speaker_profiles: np.ndarray  # (n_speakers, n_channels)
    speaker_rate: np.ndarray  # median events, per speaker
    speaker_length: np.ndarray  # utterance length in seconds, per speaker


def _corpus(config: GeneratorConfig) -> _Corpus:
    rng = np.random.default_rng([config.seed, 0])
    weights = rng.lognormal(0.0, 0.5, config.n_speakers)
    counts = np.maximum(1, np.floor(weights / weights.sum() * config.n_samples)).astype(int)
    counts[np.argmax(counts)] += config.n_samples - counts.sum()  # exact total
    speakers = rng.permutation(np.repeat(np.arange(config.n_speakers), counts))
    return _Corpus(
        labels=rng.integers(0, config.n_words, config.n_samples),
        speakers=speakers,
        word_profiles=np.stack([_bumps(rng, config.n_channels, 4, config.n_channels / 40) for _ in range(config.n_words)]),
        speaker_profiles=np.stack([_bumps(rng, config.n_channels, 2, config.n_channels / 25) for _ in range(config.n_speakers)]),
        speaker_rate=config.events_median * rng.lognormal(0.0, 0.3, config.n_speakers),
        speaker_length=rng.uniform(0.5, 0.95, config.n_speakers) * config.max_time,
    )


def _utterance(config: GeneratorConfig, corpus: _Corpus, index: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([config.seed, 1, index])
    speaker, word = corpus.speakers[index], corpus.labels[index]
    n = max(1, int(rng.lognormal(np.log(corpus.speaker_rate[speaker]), config.events_spread)))
    own = rng.random(n) < config.speaker_share
    units = np.empty(n, dtype=np.int64)
    cdf_word, cdf_speaker = np.cumsum(corpus.word_profiles[word]), np.cumsum(corpus.speaker_profiles[speaker])
    units[~own] = np.searchsorted(cdf_word, rng.random(int((~own).sum())) * cdf_word[-1])
    units[own] = np.searchsorted(cdf_speaker, rng.random(int(own.sum())) * cdf_speaker[-1])
    length = corpus.speaker_length[speaker] * rng.uniform(0.85, 1.15)
    times = np.sort(rng.beta(2.0, 2.5, n) * length)
    return times, np.minimum(units, config.n_channels - 1)


def _chunks(config: GeneratorConfig, corpus: _Corpus) -> Iterator[tuple[list[np.ndarray], list[np.ndarray]]]:
    for start in range(0, config.n_samples, config.chunk):
        pairs = [_utterance(config, corpus, i) for i in range(start, min(start + config.chunk, config.n_samples))]
        yield [t for t, _ in pairs], [u for _, u in pairs]


def generate_corpus(path: str | Path, config: GeneratorConfig = GeneratorConfig()) -> dict[str, int]:
    """Write a generated SSC-layout file to ``path``; returns its sample, speaker and event counts."""
    corpus = _corpus(config)
    events = 0

    def counted() -> Iterator[tuple[list[np.ndarray], list[np.ndarray]]]:
        nonlocal events
        for times, units in _chunks(config, corpus):
            events += sum(len(t) for t in times)
            yield times, units

    write_spike_chunks(
        path, counted(), corpus.labels, corpus.speakers, n_channels=config.n_channels,
        label_names=[f"word{i}" for i in range(config.n_words)],
        speaker_names=[f"gen{i:04d}" for i in range(config.n_speakers)],
        attrs={"source": "neuro_rm.data.synthetic", "generator": asdict(config),
               "default_frames": {"n_bins": 10, "max_time": config.max_time, "group": 5}},
    )
    return {"samples": config.n_samples, "speakers": config.n_speakers, "events": events}
