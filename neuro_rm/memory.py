"""How much tensor memory an object keeps alive, found by walking what it holds.

A model's ``state_dict`` is only part of what it holds: a simulated crossbar keeps read caches (decoded
weights, noise scales, ADC tables) and reusable work buffers, a fused layer its ΔW.  This walks an object's
attributes, containers and tensors (a gradient included) and counts each underlying storage once, so views
and tensors shared between two holders are not counted twice.
"""

from __future__ import annotations

import types

import numpy as np
import torch

_LEAVES = (str, bytes, int, float, complex, bool, type(None), torch.dtype, torch.device, torch.Generator)
_NOT_WALKED = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, type)


def storages(*roots: object) -> dict[tuple, int]:
    """The tensor storages reachable from ``roots``, each once: (device type, index, address) → bytes."""
    found: dict[tuple, int] = {}
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, _LEAVES + _NOT_WALKED):
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            storage = item.untyped_storage()
            if storage.nbytes():
                found[(item.device.type, item.device.index, storage.data_ptr())] = storage.nbytes()
            if item.is_leaf:  # a gradient is held memory too (reading it off a non-leaf only warns)
                stack.append(item.grad)
        elif isinstance(item, np.ndarray):
            base = item if item.base is None else item.base
            found.setdefault(("numpy", None, id(base)), base.nbytes if isinstance(base, np.ndarray) else item.nbytes)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        else:
            stack.extend(getattr(item, "__dict__", {}).values())
            stack.extend(getattr(item, name) for name in getattr(type(item), "__slots__", ()) if hasattr(item, name))
    return found
