"""Plasticity hooks: the layers say what happened to their synapses, hooks listen.

Kinds of event, in the complementary-learning-systems picture:
``program`` (cortex written), ``potentiate`` (an adapter learnt something new: enrolment),
``depress`` (an adapter trained to suppress: unlearning), ``forget`` (an adapter erased),
``consolidate`` (an adapter merged into the crossbar), ``drift`` (cells relaxed), ``fault`` (cells stuck).
A ``forget`` event with ``cells=True`` says the cells themselves were rewritten to erase something.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

KINDS = ("program", "potentiate", "depress", "forget", "consolidate", "drift", "fault")


@dataclass
class PlasticityEvent:
    kind: str
    layer: str
    adapter: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown plasticity event kind {self.kind!r}; expected one of {KINDS}")


class PlasticityHook(Protocol):
    def __call__(self, event: PlasticityEvent) -> None: ...


class HookBus:
    """Fans events out to registered hooks; layers of one model share one bus."""

    def __init__(self) -> None:
        self._hooks: list[PlasticityHook] = []

    def register(self, hook: PlasticityHook) -> Callable[[], None]:
        """Add a hook; returns a function that removes it again."""
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook) if hook in self._hooks else None

    def emit(self, event: PlasticityEvent) -> None:
        for hook in list(self._hooks):
            hook(event)

    def __len__(self) -> int:
        return len(self._hooks)


class Recorder:
    """Keeps every event, with tensors copied to CPU, for plots and audits.

    Layers put snapshots in ``event.data``: ``conductance_us`` for program/drift/fault events and
    ``delta_weight`` for adapter events.
    """

    def __init__(self, kinds: tuple[str, ...] = KINDS) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"Recorder got unknown event kinds {sorted(unknown)}")
        self.kinds = kinds
        self.events: list[PlasticityEvent] = []

    def __call__(self, event: PlasticityEvent) -> None:
        if event.kind == "forget":  # an erased adapter leaves no copy of its ΔW behind, here either
            for earlier in self.select(layer=event.layer, adapter=event.adapter):
                earlier.data.pop("delta_weight", None)
            if event.data.get("cells"):  # cells rewritten to erase something: older snapshots of them go too
                for earlier in self.select(layer=event.layer):
                    earlier.data.pop("conductance_us", None)
                    earlier.data.pop("delta_weight", None)
        if event.kind not in self.kinds:
            return
        kept = {k: v for k, v in event.data.items() if not (event.kind == "forget" and k == "delta_weight")}
        data = {k: (v.detach().cpu().clone() if hasattr(v, "detach") else v) for k, v in kept.items()}
        self.events.append(PlasticityEvent(event.kind, event.layer, event.adapter, data))

    def select(self, kind: str | None = None, layer: str | None = None, adapter: str | None = None) -> list[PlasticityEvent]:
        return [
            e
            for e in self.events
            if (kind is None or e.kind == kind)
            and (layer is None or e.layer == layer)
            and (adapter is None or e.adapter == adapter)
        ]

    def latest(self, kind: str, layer: str, adapter: str | None = None) -> PlasticityEvent:
        found = self.select(kind, layer, adapter)
        if not found:
            raise KeyError(f"no {kind!r} event recorded for layer {layer!r}" + (f", adapter {adapter!r}" if adapter else ""))
        return found[-1]
