import pytest
import torch

from neuro_rm.learning.data import LabelledSet


def synthetic_speakers(n_speakers=4, per_speaker=60, n_inputs=20, steps=5, seed=0):
    """Spike-count frames where each speaker drives its own band of channels more often."""
    generator = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for speaker in range(n_speakers):
        rate = torch.full((steps, n_inputs), 0.05)
        band = slice(speaker * n_inputs // n_speakers, (speaker + 1) * n_inputs // n_speakers)
        rate[:, band] = 0.6
        xs.append(torch.bernoulli(rate.expand(per_speaker, steps, n_inputs), generator=generator))
        ys.append(torch.full((per_speaker,), speaker))
    x, y = torch.cat(xs), torch.cat(ys)
    x[:, 0, 0] = 1.0  # every sample has at least one spike
    return LabelledSet(x, y)


@pytest.fixture(scope="session")
def tiny_speech():
    """train / val / test splits of a small, easy synthetic speaker set."""
    return {name: synthetic_speakers(seed=i) for i, name in enumerate(("train", "val", "test"))}
