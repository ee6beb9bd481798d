import dataclasses
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from neuro_rm.audit import AuditLog
from neuro_rm.auth.fingerprint import fingerprint
from neuro_rm.energy import Ledger

LIMIT = 1
TABLE = {"k": 1}


def reads_a_global(model, branches, ledger):
    return len(branches) > LIMIT


class Keeper:
    def keep(self, model, branches, ledger):
        return []

    def merge(self, model, branches, ledger):
        return branches


class Delegating:
    def __call__(self, model, branches, ledger):
        return self.decide(branches)

    def decide(self, branches):
        return branches[:LIMIT]


class Declared:
    def __init__(self, limit):
        self.limit, self.calls = limit, 0

    def __call__(self, model, branches, ledger):
        self.calls += 1  # changes at every call: not a setting
        return branches[: self.limit]

    def audit_record(self):
        return {"limit": self.limit}


def reads_a_table(model, branches, ledger):
    return branches[: TABLE["k"]]


class Slotted:
    __slots__ = ("limit",)

    def __init__(self, limit):
        self.limit = limit


@dataclasses.dataclass
class Hidden:
    limit: int = dataclasses.field(default=1, repr=False)


def _digest(value):
    return fingerprint(value).split()[-1]


def test_policies_that_decide_differently_get_different_fingerprints(monkeypatch):
    """review59 F2: each pair below behaved differently and shared a digest."""
    keeper = Keeper()
    assert _digest(keeper.keep) != _digest(keeper.merge)
    assert _digest(functools.partial(sorted, reverse=True)) != _digest(functools.partial(sorted, reverse=False))
    assert _digest(Slotted(1)) != _digest(Slotted(9))
    assert _digest(Hidden(1)) != _digest(Hidden(9))
    before = _digest(reads_a_global)
    monkeypatch.setattr(sys.modules[__name__], "LIMIT", 9)
    assert _digest(reads_a_global) != before
    weights = torch.zeros(100_000)
    changed = weights.clone()
    changed[50_000] = 1.0
    assert _digest(lambda model, branches, ledger, w=weights: w) != _digest(lambda model, branches, ledger, w=changed: w)
    assert _digest(Slotted(1)) == _digest(Slotted(1))  # control: the same settings, the same digest


def test_what_the_third_review_found_hidden_is_read(monkeypatch):
    """review60: nested settings, a class's other methods, non-simple globals, scalar tensors, numpy arrays."""
    assert _digest(Hidden({"a": {"b": {"k": 1}}})) != _digest(Hidden({"a": {"b": {"k": 9}}}))
    before = _digest(Delegating())
    monkeypatch.setattr(Delegating, "decide", lambda self, branches: branches)
    assert _digest(Delegating()) != before
    before = _digest(reads_a_table)
    monkeypatch.setitem(TABLE, "k", 9)
    assert _digest(reads_a_table) != before
    assert _digest(Hidden(torch.tensor(1.5))) != _digest(Hidden(torch.tensor(2.5)))
    values = np.zeros(10_000)
    changed = values.copy()
    changed[5_000] = 1.0
    assert _digest(Hidden(values)) != _digest(Hidden(changed))
    layer = torch.nn.Sequential(torch.nn.Linear(3, 2))
    before = _digest(layer)
    with torch.no_grad():
        layer[0].weight += 1
    assert _digest(layer) != before
    shared = [1]
    for _ in range(7):
        shared = [shared] * 30  # read once per level, not 30^7 times
    assert len(_digest(Hidden(shared))) == 16
    assert _digest(Hidden(np.array([1, "a", (2, 3)], dtype=object))) != _digest(Hidden(np.array([1, "a", (2, 4)], dtype=object)))
    policy = Declared(2)
    before = _digest(policy)
    policy(None, [], None)
    assert _digest(policy) == before  # a declared record: the call counter is not a setting
    assert _digest(Declared(3)) != before


def test_a_fingerprint_ignores_where_the_code_sits_and_never_raises():
    source = "def policy(model, branches, ledger):\n    return branches[:2]\n"
    here, there = {}, {}
    exec(compile(source, "a.py", "exec"), here)  # noqa: S102 - the same function from two files and lines
    exec(compile("\n\n\n" + source, "b.py", "exec"), there)  # noqa: S102
    assert _digest(here["policy"]) == _digest(there["policy"])

    class Unprintable:
        __slots__ = ()

        def __repr__(self):
            raise RuntimeError("no")

    def later():
        return unset  # noqa: F821 - a cell assigned after the function is made

    assert len(_digest(Unprintable())) == 16 and len(_digest(later)) == 16  # read as far as it can be, no error
    unset = 1  # noqa: F841


def test_one_policy_has_one_fingerprint_in_every_process():
    """review59 F3: a closure over a function or an object printed a memory address into the digest."""
    code = ("import json, functools; from tests.test_fingerprint import Keeper, reads_a_global;"
            "from neuro_rm.auth.fingerprint import fingerprint; k = Keeper(); marker = object();"
            "rules = frozenset(Keeper() for _ in range(5)); import numpy as np; objects = np.array([1, 'a', (2, 3)], dtype=object);"
            "policy = lambda model, branches, ledger: (reads_a_global, marker, k.keep)[2](model, branches, ledger);"
            "print(json.dumps([fingerprint(policy), fingerprint(k.merge), fingerprint(functools.partial(sorted, key=len)),"
            "fingerprint(functools.partial(sorted, key=rules)), fingerprint(functools.partial(sorted, key=objects))]))")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
                                      env=env).stdout) for _ in range(2)]
    assert runs[0] == runs[1] and all(" unreadable" not in f for f in runs[0])


def test_live_state_a_policy_holds_does_not_read_as_a_change():
    """review61 B1: a policy holding the authenticator read its audit log, which grows at every operation, so
    every operation and save logged a 'changed' policy."""
    class Authenticator:  # what the check recognises: an object with an audit log
        def __init__(self):
            self.audit, self.ledger = AuditLog(), Ledger()

    auth = Authenticator()
    policy = Hidden({"auth": auth, "limit": 2})
    before = _digest(policy)
    auth.audit.append("enroll", "dee")
    auth.ledger.post_sram_write(64)
    assert _digest(policy) == before
    assert _digest(Hidden({"auth": auth, "limit": 3})) != before  # control: a setting beside it still counts

