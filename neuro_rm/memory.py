"""How much tensor memory an object keeps alive, found by walking what it holds.

A model's ``state_dict`` is only part of what it holds: a simulated crossbar keeps read caches (decoded
weights, noise scales, ADC tables) and reusable work buffers, a fused layer its ΔW, a hook the snapshots it
records.  This walks an object's attributes and slots, containers, the closures, defaults and bound objects
of functions it holds, and tensors (a gradient included), and counts each underlying block of memory once,
so views, numpy arrays over a tensor's memory and tensors shared between two holders are not counted twice.
Module globals are not walked: what a module holds is not the object's.
"""

from __future__ import annotations

import collections
import functools
import types

import numpy as np
import torch

_LEAVES = (str, bytes, int, float, complex, bool, type(None), torch.dtype, torch.device, torch.Generator,
           types.ModuleType, type, types.BuiltinFunctionType)
_SEQUENCES = (list, tuple, set, frozenset, collections.deque)


def _held_by_function(item: object) -> list[object]:
    """What a callable keeps alive besides its module's globals: closure cells, defaults, bound objects."""
    if isinstance(item, types.MethodType):
        return [item.__self__, item.__func__]
    if isinstance(item, functools.partial):
        return [item.func, item.args, item.keywords]
    cells = []
    for cell in item.__closure__ or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:  # a cell not filled yet
            continue
    return [*cells, item.__defaults__, item.__kwdefaults__]


def _slots(item: object) -> list[object]:
    names = {name for cls in type(item).__mro__ for name in getattr(cls, "__slots__", ())}
    return [getattr(item, name) for name in names if name not in ("__dict__", "__weakref__") and hasattr(item, name)]


def _tensor_parts(item: torch.Tensor) -> list[torch.Tensor]:
    """The dense tensors a sparse one keeps its numbers in."""
    if item.layout == torch.sparse_coo:
        return [item._indices(), item._values()]
    compressed = {torch.sparse_csr: ("crow_indices", "col_indices"), torch.sparse_csc: ("ccol_indices", "row_indices"),
                  torch.sparse_bsr: ("crow_indices", "col_indices"), torch.sparse_bsc: ("ccol_indices", "row_indices")}
    return [getattr(item, name)() for name in compressed[item.layout]] + [item.values()]


def storages(*roots: object) -> dict[tuple, int]:
    """The memory blocks of tensors and numpy arrays reachable from ``roots``, each once:
    (device type, index, address) → bytes."""
    found: dict[tuple, int] = {}
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, _LEAVES):
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            if item.layout != torch.strided:
                stack.extend(_tensor_parts(item))
                continue
            storage = item.untyped_storage()
            if storage.nbytes():
                found[(item.device.type, item.device.index, storage.data_ptr())] = storage.nbytes()
            if item.is_leaf:  # a gradient is held memory too (reading it off a non-leaf only warns)
                stack.append(item.grad)
        elif isinstance(item, np.ndarray):
            base = item
            while isinstance(base.base, np.ndarray):
                base = base.base
            if base.nbytes:  # keyed like a CPU tensor's storage: an array over a tensor's memory is that memory
                found.setdefault(("cpu", None, base.__array_interface__["data"][0]), base.nbytes)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, _SEQUENCES):
            stack.extend(item)
        elif isinstance(item, (types.FunctionType, types.MethodType, functools.partial)):
            stack.extend(_held_by_function(item))
        else:
            stack.extend(getattr(item, "__dict__", {}).values())
            stack.extend(_slots(item))
    return found
