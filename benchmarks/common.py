"""Shared timing helpers for the benchmark scripts (ratios are measured side by side in one run)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def clock() -> Callable[[], float]:
    """With one torch thread, the calling thread's CPU time: on a shared machine it leaves out the time other
    jobs hold the core (a wall clock counts it); with more threads the wall clock (the workers' time is elsewhere)."""
    return time.thread_time if torch.get_num_threads() == 1 else time.perf_counter


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    now = clock()
    times = []
    for _ in range(repeats):
        start = now()
        fn()
        times.append(now() - start)
    return statistics.median(times)


def interleaved_best(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Fastest of ``repeats`` runs of each function, timed round-robin: on a shared machine the fastest run is
    the one nothing else interrupted, and round-robin exposes every variant to the same load."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {label: [] for label in fns}
    now = clock()
    for _ in range(repeats):
        for label, fn in fns.items():
            start = now()
            fn()
            times[label].append(now() - start)
    return {label: min(t) for label, t in times.items()}


def print_table(title: str, header: tuple[str, ...], rows: list[tuple]) -> None:
    print(f"\n## {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        cells = [f"{c:.4g}" if isinstance(c, float) else str(c) for c in row]
        print("| " + " | ".join(cells) + " |", flush=True)


def deployed_bundled(pretrain_epochs: int):  # noqa: ANN201 - (authenticator, splits, train, val)
    """The bundled speakers' authenticator as the lifecycle benchmarks start from: speakers 0-4 pretrained
    for ``pretrain_epochs`` and deployed; speaker 5 is left to enrol."""
    from neuro_rm.auth import SpeakerAuthenticator
    from neuro_rm.data import load_bundled_speakers
    from neuro_rm.learning import LabelledSet, TrainConfig

    splits = load_bundled_speakers()
    train, val = LabelledSet(splits.train.x, splits.train.y), LabelledSet(splits.val.x, splits.val.y)
    old = list(range(5))
    auth, _ = SpeakerAuthenticator.pretrain(splits.speaker_names[:5], train.of_classes(old), val.of_classes(old),
                                            config=TrainConfig(epochs=pretrain_epochs, lr=1e-3))
    auth.deploy()
    return auth, splits, train, val
