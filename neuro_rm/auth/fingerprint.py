"""A stable digest of what a Python callable decides with, for the audit record of a custom consolidation policy.

Its source is never saved, so the record can only say that the policy changed, not what it became.  A policy
that declares its settings (an ``audit_record()`` method returning JSON-ready values) is recorded by them
exactly.  Any other gets a best-effort digest that reads: code (bytecode, constants and names, not the file or
line it sits at) of the function, or of every method of the object's class and its bases; defaults;
closed-over values; the module globals that code reads (functions followed, modules and classes by name); a
bound method's object; a partial's arguments; an object's fields and slots; tensors and numpy arrays by their
bytes; set members and dict keys ordered by their own digests; never a memory address, so one policy gives one
digest in every process; an audit log, a ledger or an authenticator a policy holds is live state, read by its type
alone.  What it cannot see: values nested deeper than ``_DEPTH``, items past the first
``_WIDTH`` of a container, state outside the policy (a file it reads); a policy whose attributes change on
every call (a counter) reads as changed at every operation.  It never raises: a part it cannot read is
named by its error, and the digest of the rest still counts.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections.abc import Callable
from types import CodeType, FunctionType, MethodType, ModuleType

import numpy as np
import torch

from neuro_rm.audit import AuditLog
from neuro_rm.energy import Ledger

_DEPTH = 10  # objects followed into, one level per object (a container and its items are one step)
_WIDTH = 100_000  # items of one container read
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_SIMPLE = (type(None), bool, int, float, complex, str, bytes)


def fingerprint(value: object) -> str:
    """The module-qualified name of ``value`` (or of its type) and a 16-hex-digit digest of what it decides with
    (of its ``audit_record()`` when it declares one)."""
    try:
        kind = value if isinstance(value, FunctionType | MethodType | functools.partial) else type(value)
        name = f"{kind.__module__}.{kind.__qualname__}"
    except Exception:  # noqa: BLE001 - a class whose metaclass refuses even its name
        name = "?"
    try:
        declared = getattr(type(value), "audit_record", None)
        described = _describe(value.audit_record() if callable(declared) else value, _DEPTH, {})
    except Exception as error:  # noqa: BLE001 - a digest must not stop an enrolment or a save
        described = f"unreadable {type(error).__name__}"
    return f"{name} {described[:16]}"


def _describe(value: object, depth: int, memo: dict[tuple[int, int], tuple[object, str]]) -> str:
    """A hex digest of a canonical description of ``value``; a part that cannot be read is described by its error.
    ``memo`` holds what one fingerprint has described already, with the object itself, so that no id is reused
    while it lives (shared parts are read once; a cycle is named)."""
    key = (id(value), depth)
    if key in memo:
        return memo[key][1]
    memo[key] = (value, "cycle")
    try:
        parts = _parts(value, depth, lambda part: _describe(part, depth - 1, memo))
    except Exception as error:  # noqa: BLE001 - the rest of the policy still counts
        parts = ["unreadable", type(error).__name__]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else str(part).encode())
        digest.update(b"\0")
    memo[key] = (value, digest.hexdigest())
    return memo[key][1]


def _parts(value: object, depth: int, inner: Callable[[object], str]) -> list[object]:
    if isinstance(value, _SIMPLE):
        return [type(value).__name__, repr(value) if not isinstance(value, int) or abs(value) < 10**4000 else hex(value)]
    if depth <= 0:
        return ["deep", type(value).__qualname__]
    if isinstance(value, torch.Tensor):
        data = value.detach().to_dense().cpu().contiguous().reshape(-1)
        return ["tensor", data.dtype, tuple(value.shape), hashlib.sha256(data.view(torch.uint8).numpy().tobytes()).hexdigest()]
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:  # its bytes are addresses: read its items
            return ["object array", value.shape, inner(value.ravel().tolist())]
        return ["array", value.dtype.str, value.shape, hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()]
    if isinstance(value, AuditLog | Ledger) or isinstance(getattr(value, "audit", None), AuditLog):
        return ["live state", type(value).__qualname__]  # a log, a ledger, an authenticator: they change at every operation
    if isinstance(value, ModuleType | type):
        return [type(value).__name__, getattr(value, "__module__", ""), getattr(value, "__qualname__", value.__name__)]
    if isinstance(value, CodeType):
        return ["code", value.co_code, value.co_names, value.co_varnames, *(inner(c) for c in value.co_consts)]
    if isinstance(value, FunctionType):
        read = {n: value.__globals__[n] for n in value.__code__.co_names if n in value.__globals__}
        cells = tuple(_cell(cell) for cell in value.__closure__ or ())
        return ["function", value.__module__, value.__qualname__, inner(value.__code__),
                inner((value.__defaults__, value.__kwdefaults__, cells)), inner(read)]
    if isinstance(value, MethodType):
        return ["method", inner(value.__func__), inner(value.__self__)]
    if isinstance(value, functools.partial):
        return ["partial", inner(value.func), inner((value.args, value.keywords))]
    if isinstance(value, dict):
        return ["dict", len(value), *_entries(value, inner)]
    if isinstance(value, list | tuple):
        return [type(value).__name__, len(value), *(inner(item) for item in value[:_WIDTH])]
    if isinstance(value, set | frozenset):
        return [type(value).__name__, len(value), *sorted(inner(item) for item in list(value)[:_WIDTH])]
    cls = type(value)
    methods = {f"{c.__qualname__}.{n}": f for c in cls.__mro__ if c is not object
               for n, f in vars(c).items() if isinstance(f, FunctionType)}
    fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)} if dataclasses.is_dataclass(value) else {}
    slots = {s: getattr(value, s) for c in cls.__mro__ for s in getattr(c, "__slots__", ()) if hasattr(value, s)}
    attributes = dict(vars(value)) if hasattr(value, "__dict__") else {}
    state = {**attributes, **slots, **fields}
    if isinstance(value, torch.nn.Module):
        state |= dict(value.state_dict())
    return ["object", cls.__module__, cls.__qualname__, *_entries(methods, inner),
            *(_entries(state, inner) if state else [_ADDRESS.sub("", repr(value))])]


def _entries(mapping: dict, inner: Callable[[object], str]) -> list[str]:
    """A mapping's items, each key and value one level down (not two, as a (key, value) pair would be), in the
    order of their digests."""
    return sorted(f"{inner(key)}:{inner(item)}" for key, item in list(mapping.items())[:_WIDTH])


def _cell(cell: object) -> object:
    try:
        return cell.cell_contents
    except ValueError:  # a cell not yet assigned
        return "<empty cell>"
