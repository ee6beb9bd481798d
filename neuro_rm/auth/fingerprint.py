"""A stable digest of what a Python callable decides with, for the audit record of a custom consolidation policy.

Its source is never saved, so the record can only say that the policy changed, not what it became.  The digest
reads the code (bytecode, constants and names, not the file or line it sits at), defaults, closed-over values,
the simple module globals the code reads, a bound method's object, a partial's arguments, an object's fields
and slots and its class's ``__call__``; tensors by their bytes; never a memory address, so one policy gives
one digest in every process.  It never raises: what cannot be read is named as unreadable.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from types import CodeType, FunctionType, MethodType

import torch

_DEPTH = 6  # nesting followed before a value is summarised by its type
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_SIMPLE = (type(None), bool, int, float, complex, str, bytes)


def fingerprint(value: object) -> str:
    """The module-qualified name of ``value`` (or of its type) and a 16-hex-digit digest of what it decides with."""
    kind = value if isinstance(value, FunctionType | MethodType | functools.partial) else type(value)
    name = f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', type(kind).__name__)}"
    digest = hashlib.sha256()
    try:
        _feed(digest, value, _DEPTH)
    except Exception as error:  # noqa: BLE001 - a digest must not stop an enrolment or a save
        return f"{name} unreadable ({type(error).__name__})"
    return f"{name} {digest.hexdigest()[:16]}"


def _feed(digest: hashlib._Hash, value: object, depth: int) -> None:
    """Feed a canonical description of ``value`` to ``digest``."""
    def put(*parts: object) -> None:
        for part in parts:
            digest.update(part if isinstance(part, bytes) else str(part).encode())
            digest.update(b"\0")

    if isinstance(value, _SIMPLE):
        put(type(value).__name__, repr(value))
    elif depth <= 0:
        put("deep", type(value).__qualname__)
    elif isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous()
        put("tensor", data.dtype, tuple(data.shape), hashlib.sha256(data.view(torch.uint8).numpy().tobytes()).hexdigest())
    elif isinstance(value, CodeType):
        put("code", value.co_code, value.co_names, value.co_varnames)
        for constant in value.co_consts:
            _feed(digest, constant, depth - 1)
    elif isinstance(value, FunctionType):
        put("function", value.__module__, value.__qualname__)
        _feed(digest, value.__code__, depth - 1)
        _feed(digest, (value.__defaults__, value.__kwdefaults__), depth - 1)
        _feed(digest, tuple(_cell(cell) for cell in value.__closure__ or ()), depth - 1)
        read = {n: value.__globals__[n] for n in value.__code__.co_names if n in value.__globals__}
        _feed(digest, {n: v for n, v in read.items() if isinstance(v, _SIMPLE)}, depth - 1)
    elif isinstance(value, MethodType):
        put("method")
        _feed(digest, (value.__func__, value.__self__), depth - 1)
    elif isinstance(value, functools.partial):
        put("partial")
        _feed(digest, (value.func, value.args, value.keywords), depth - 1)
    elif isinstance(value, dict):
        put("dict", len(value))
        for key in sorted(value, key=repr):
            _feed(digest, (key, value[key]), depth - 1)
    elif isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        put(type(value).__name__, len(items))
        for item in items:
            _feed(digest, item, depth - 1)
    else:
        cls = type(value)
        put("object", cls.__module__, cls.__qualname__)
        call = cls.__dict__.get("__call__")
        if isinstance(call, FunctionType):
            _feed(digest, call.__code__, depth - 1)
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)} if dataclasses.is_dataclass(value) else {}
        slots = {s: getattr(value, s) for c in cls.__mro__ for s in getattr(c, "__slots__", ()) if hasattr(value, s)}
        attributes = dict(vars(value)) if hasattr(value, "__dict__") else {}
        if fields or slots or attributes:
            _feed(digest, {**attributes, **slots, **fields}, depth - 1)
        else:
            put(_ADDRESS.sub("", repr(value)))


def _cell(cell: object) -> object:
    try:
        return cell.cell_contents
    except ValueError:  # a cell not yet assigned
        return "<empty cell>"
