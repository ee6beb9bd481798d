"""scripts/compare_reports.py: the command behind the README's "the same to the last digit, compared key by key"."""

from __future__ import annotations

from conftest import load_script


def _module():
    return load_script("compare_reports")


def test_a_rerun_differs_only_where_a_figure_or_a_key_differs() -> None:
    differing = _module().differing
    old = {"revoke": {"erase": {"retain_accuracy": 0.9}}, "seconds": 10.0, "code": {"digest": "a"}}
    assert differing(old, {**old, "seconds": 12.0, "code": {"digest": "b"}}) == {}  # timing and provenance
    moved = {**old, "revoke": {"erase": {"retain_accuracy": 0.9 + 1e-12}}}
    assert differing(old, moved) == {"revoke.erase.retain_accuracy": (0.9, 0.9 + 1e-12)}  # the last digit counts
    assert differing(old, {**old, "recipe": {"config": "x"}}) == {"recipe.config": (None, "x")}  # a new key
