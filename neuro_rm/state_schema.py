"""Types and ranges of a saved ``state.json``, checked before a model is built from it.

A signature says who wrote a state, not that the writer was right (an older version, a bug, a holder of
the key): every field is checked here so a bad one is refused by name instead of crashing, or of
allocating a network of 10^12 weights.
"""

from __future__ import annotations

import math
from dataclasses import fields

from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.device import DeviceConfig
from neuro_rm.lora import PRECISION_BITS
from neuro_rm.models.rsnn import RSNNConfig
from neuro_rm.store import CorruptStateError

MAX_UNITS = 1 << 16  # input channels or hidden neurons
MAX_CLASSES = 1 << 12  # speakers ever registered
MAX_PARAMETERS = 10**8  # weights of the backbone and readout together
MAX_RANK = 1 << 12
MAX_COUNT = 10**12  # any other integer setting (endurance cycles, pulses)
MAX_BUFFER_CAP = 10**9  # samples a replay or holdout buffer may be allowed to keep
STATUSES = ("enrolled", "revoked")


def _int(value: object, low: int = 0, high: int = MAX_COUNT) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _require(ok: bool, where: str, what: str) -> None:
    if not ok:
        shown = where.encode("unicode_escape").decode("ascii")  # names from the file may hold line breaks
        raise CorruptStateError(f"state.json: {shown} must be {what}")


def _config(value: object, cls: type, where: str, limits: dict[str, int]) -> None:
    """A dataclass config: exactly its field names, integers where it takes integers, finite numbers."""
    names = {f.name: f for f in fields(cls)}
    _require(isinstance(value, dict) and set(value) == set(names), where, f"an object with keys {sorted(names)}")
    for name, f in names.items():
        v, at = value[name], f"{where}.{name}"
        if f.type == "int":
            _require(_int(v, 0, limits.get(name, MAX_COUNT)), at, f"an integer from 0 to {limits.get(name, MAX_COUNT)}")
        elif f.type == "float":
            _require(_number(v), at, "a finite number")
        elif f.type == "bool":
            _require(isinstance(v, bool), at, "true or false")
        elif f.type == "int | None":
            _require(v is None or _int(v, 0, 64), at, "null or an integer")
        else:
            _require(isinstance(v, str), at, "a string")


def check_state(state: object, stored_values: int = MAX_PARAMETERS) -> None:
    """Raise ``CorruptStateError`` naming the first field of ``state`` with a wrong type or range.

    ``stored_values``: how many numbers the saved model holds; a network needing more weights than that
    is refused before it is built.
    """
    _require(isinstance(state, dict), "the file", "a JSON object")
    units = {"n_inputs": MAX_UNITS, "n_hidden": MAX_UNITS, "n_outputs": MAX_CLASSES}
    _config(state.get("rsnn"), RSNNConfig, "rsnn", units)
    head = state.get("head_classes")
    _require(_int(head, 1, MAX_CLASSES), "head_classes", f"an integer from 1 to {MAX_CLASSES}")
    rsnn = state["rsnn"]
    weights = rsnn["n_inputs"] * rsnn["n_hidden"] + rsnn["n_hidden"] * (rsnn["n_hidden"] + head)
    limit = min(MAX_PARAMETERS, stored_values)
    _require(weights <= limit, "rsnn", f"sizes that fit the saved model ({limit} values), not a network of {weights} weights")
    device, crossbar = state.get("device"), state.get("crossbar")
    _require((device is None) == (crossbar is None), "device and crossbar", "both null (not deployed) or both set")
    if device is not None:
        _config(device, DeviceConfig, "device", {"levels": MAX_UNITS, "max_pulses": 10**4, "give_up_after": 10**4})
        _config(crossbar, CrossbarConfig, "crossbar", {"tile_rows": MAX_UNITS, "tile_cols": MAX_UNITS})
    speakers = state.get("speakers")
    _require(isinstance(speakers, list) and len(speakers) == head, "speakers", f"a list of {head} speaker records")
    for i, record in enumerate(speakers):
        at = f"speakers[{i}]"
        _require(isinstance(record, dict) and set(record) == {"name", "label", "status", "adapter"}, at,
                 "an object with keys adapter, label, name, status")
        _require(isinstance(record["name"], str), f"{at}.name", "a string")
        _require(_int(record["label"], 0, head - 1), f"{at}.label", f"an integer from 0 to {head - 1}")
        _require(record["status"] in STATUSES, f"{at}.status", f"one of {STATUSES}")
    _require(len({r["label"] for r in speakers}) == len(speakers), "speakers", "records with distinct labels")
    adapters = state.get("adapters")
    _require(isinstance(adapters, dict), "adapters", "an object")
    for i, record in enumerate(speakers):
        _require(record["adapter"] is None or (isinstance(record["adapter"], str) and record["adapter"] in adapters),
                 f"speakers[{i}].adapter", "null or the name of one of the state's adapters")
    for name, spec in adapters.items():
        at = f"adapters.{name}"
        _require(isinstance(spec, dict) and set(spec) - {"full_rank"} == {"rank", "alpha", "precision", "layers"}, at,
                 "an object with keys alpha, layers, precision, rank (and full_rank in states saved since it exists)")
        _require(isinstance(spec.get("full_rank", False), bool), f"{at}.full_rank", "true or false")
        _require(_int(spec["rank"], 1, MAX_RANK), f"{at}.rank", f"an integer from 1 to {MAX_RANK}")
        _require(_number(spec["alpha"]), f"{at}.alpha", "a finite number")
        _require(isinstance(spec["precision"], str) and spec["precision"] in PRECISION_BITS, f"{at}.precision", f"one of {sorted(PRECISION_BITS)}")
        _require(_strings(spec["layers"]), f"{at}.layers", "a list of layer names")
    active = state.get("active")
    _require(isinstance(active, dict) and all(_strings(v) for v in active.values()), "active", "an object of name lists")
    fused = state.get("fused", {})  # absent in states saved before fusion was kept
    _require(isinstance(fused, dict) and all(isinstance(v, bool) for v in fused.values()), "fused", "an object of true/false per layer")
    caps = state.get("buffer_caps", {})  # absent in states saved before the caps were kept
    _require(isinstance(caps, dict) and set(caps) <= {"replay", "holdout"} and all(_int(v, 1, MAX_BUFFER_CAP) for v in caps.values()),
             "buffer_caps", f"an object with integer replay and holdout caps from 1 to {MAX_BUFFER_CAP}")
    threshold = state.get("threshold")
    _require(threshold is None or _number(threshold), "threshold", "null or a finite number")
    metadata = state.get("metadata", {})
    _require(isinstance(metadata, dict), "metadata", "an object")
    _require(metadata.get("data") is None or isinstance(metadata["data"], str), "metadata.data", "null or a path")
    _require(metadata.get("n_speakers") is None or _int(metadata["n_speakers"], 1), "metadata.n_speakers", "null or >= 1")
